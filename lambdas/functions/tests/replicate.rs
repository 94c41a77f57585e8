//! `sync_table` and `init_table` against the DAP emulator, a real PostgreSQL (TLS
//! verify-full, the password from a secret in moto) and the call limits.

mod support;

use contract::{ErrorName, Status, TableState};
use emulator::{Endpoint, FaultKind, Settings};
use functions::database::{Credentials, DbAuth, DbSettings};
use functions::replicate::{Kind, Replication};
use functions::settings::CallLimits;
use replica::Archive as _;
use std::time::{Duration, Instant, SystemTime};
use support::{Aws, database, demo_emulator};

struct Setup {
    aws: Aws,
    emulator: emulator::Emulator,
    db_url: String,
    db: sqlx::PgPool,
}

impl Setup {
    async fn new(settings: Settings) -> Self {
        let aws = Aws::start().await;
        let emulator = demo_emulator(settings).await;
        let (db_url, db) = database().await;
        Self { aws, emulator, db_url, db }
    }

    async fn replication(&self, limits: CallLimits) -> Replication {
        let dap =
            functions::DapAccess::new(self.aws.dap_settings(&self.emulator).await, self.aws.secrets()).await.unwrap();
        let user = support::admin_user(&self.db_url);
        let secret = self
            .aws
            .put_secret(
                &format!("cd2-test/db-{}", support::uuid_like()),
                serde_json::json!({"password": "unused-here"}),
            )
            .await;
        let settings = DbSettings { target: support::target(&self.db_url, &user), auth: DbAuth::Secret(secret) };
        Replication::new(dap, Credentials::new(settings, &self.aws.sdk), limits)
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM canvas.{table}")))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

fn limits(budget_ms: u64) -> CallLimits {
    CallLimits {
        budget: Duration::from_millis(budget_ms),
        margin: Duration::from_secs(2),
        max_calls: 50,
        max_idle_calls: 3,
    }
}

fn courses() -> TableState {
    serde_json::from_value(serde_json::json!({"namespace": "canvas", "table": "courses"})).unwrap()
}

/// The fixture's first course, with another id.
fn course(id: u64) -> serde_json::Value {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(emulator::DEMO_FIXTURE).unwrap()).unwrap();
    let mut row = fixture["tables"][1]["rows"][0].clone();
    row["id"] = serde_json::json!(id);
    row
}

/// Calls as the workflow does: sync, then init while `in_progress`.
async fn run_table(
    r: &mut Replication,
    mut state: TableState,
) -> Result<(TableState, Vec<Status>), functions::FunctionError> {
    let mut seen = Vec::new();
    let mut kind = Kind::Sync;
    loop {
        state = r.handle(kind, state, support::in_a_minute()).await?;
        seen.push(state.status);
        match state.status {
            Status::InitNeeded => kind = Kind::Init,
            Status::InProgress => {}
            _ => return Ok((state, seen)),
        }
    }
}

#[tokio::test]
async fn a_new_table_loads_over_several_budgeted_calls_and_then_syncs() {
    let s =
        Setup::new(Settings { rows_per_object: 2, download_delay: Duration::from_millis(400), ..Settings::default() })
            .await;
    let mut r = s.replication(limits(1200)).await;
    let (done, seen) = run_table(&mut r, courses()).await.unwrap();
    assert_eq!(seen[0], Status::InitNeeded);
    assert!(seen.iter().filter(|s| **s == Status::InProgress).count() >= 2, "several calls: {seen:?}");
    assert_eq!(done.status, Status::Success);
    assert_eq!(done.calls as usize, seen.len(), "each call is counted");
    assert_eq!(done.counts.inserted, 25);
    assert!(done.started_ms > 0 && done.duration_ms > 1000, "{done:?}");
    assert_eq!(s.count("courses").await, 25);

    // The next run syncs, from a fresh state.
    s.emulator.commit("canvas", "courses", vec![course(9001)], vec![]);
    let (synced, _) = run_table(&mut r, courses()).await.unwrap();
    assert_eq!(synced.status, Status::Success);
    assert!(done.current_to_s.is_some() && synced.current_to_s >= done.current_to_s, "{synced:?}");
    assert!(synced.rows.is_some(), "{synced:?}");
    assert_eq!(synced.calls, 1);
    assert_eq!(synced.counts.inserted + synced.counts.updated, 1);
}

#[tokio::test]
async fn a_job_that_never_completes_fails_with_no_progress() {
    let s = Setup::new(Settings { polls_before_complete: u32::MAX, ..Settings::default() }).await;
    let mut r = s.replication(limits(1100)).await;
    let mut state = r.handle(Kind::Sync, courses(), support::in_a_minute()).await.unwrap();
    assert_eq!(state.status, Status::InitNeeded);
    for idle in 1..3 {
        state = r.handle(Kind::Init, state, support::in_a_minute()).await.unwrap();
        assert_eq!((state.status, state.idle_calls), (Status::InProgress, idle));
        assert!(state.cursor.is_some(), "the job is carried");
    }
    let e = r.handle(Kind::Init, state, support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::NoProgress, "{e}");
    assert!(e.detail.message.contains("nothing loaded in 3 calls in a row"), "{e}");
}

#[tokio::test]
async fn no_call_reaches_the_invocation_deadline() {
    let s = Setup::new(Settings { rows_per_object: 5, ..Settings::default() }).await;
    let mut r = s.replication(CallLimits { budget: Duration::from_secs(600), ..limits(0) }).await;
    let state = r.handle(Kind::Sync, courses(), support::in_a_minute()).await.unwrap();

    // A download that stalls far beyond the deadline: the object is abandoned at the budget.
    s.emulator.inject(Endpoint::Download, FaultKind::Stall(Duration::from_secs(60)), 1);
    let started = Instant::now();
    let deadline = SystemTime::now() + Duration::from_secs(8);
    let state = r.handle(Kind::Init, state, deadline).await.unwrap();
    assert_eq!(state.status, Status::InProgress);
    assert!(started.elapsed() < Duration::from_secs(7), "answered {:?} after the start", started.elapsed());

    // DAP asking to wait longer than the invocation has: stopped just before the deadline.
    s.emulator.inject(Endpoint::Schema, FaultKind::TooManyRequests { retry_after: Some(100) }, 1);
    let started = Instant::now();
    let e = r.handle(Kind::Init, state.clone(), SystemTime::now() + Duration::from_secs(8)).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Transient, "{e}");
    assert!(started.elapsed() < Duration::from_secs(8), "answered {:?} after the start", started.elapsed());

    // Nothing was lost: the next calls (on a new connection) finish the table exactly.
    let (done, _) = run_table(&mut r, state).await.unwrap();
    assert_eq!(done.status, Status::Success);
    assert_eq!(s.count("courses").await, 25);
}

#[tokio::test]
async fn failures_carry_stable_names_and_the_dap_error() {
    let s = Setup::new(Settings::default()).await;
    let mut r = s.replication(limits(30_000)).await;
    s.emulator.inject(Endpoint::CreateJob, FaultKind::FailJob("ValidationError".into()), 1);
    let state = r.handle(Kind::Sync, courses(), support::in_a_minute()).await.unwrap();
    let e = r.handle(Kind::Init, state.clone(), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Dap, "{e}");
    assert_eq!(e.detail.dap_type.as_deref(), Some("ValidationError"));
    let d: lambda_runtime::Diagnostic = e.into();
    assert_eq!(d.error_type, "DapError");

    s.emulator.inject(Endpoint::CreateJob, FaultKind::FailJob("ProcessingError".into()), 1);
    let e = r.handle(Kind::Init, state.clone(), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Transient, "DAP's ProcessingError is worth a retry: {e}");

    let (done, _) = run_table(&mut r, state.clone()).await.unwrap();
    assert_eq!(done.status, Status::Success);
    let e = r.handle(Kind::Init, state, support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::TableState, "{e}");

    let accounts: TableState =
        serde_json::from_value(serde_json::json!({"namespace": "canvas", "table": "accounts"})).unwrap();
    s.emulator.inject(Endpoint::CreateJob, FaultKind::MalformedRow, 1);
    let e = run_table(&mut r, accounts).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Data, "{e}");
}

#[tokio::test]
async fn iam_tokens_are_signed_for_the_user_and_the_rds_bundle_is_what_is_trusted() {
    let s = Setup::new(Settings::default()).await;
    let user = support::admin_user(&s.db_url);
    let target = support::target(&s.db_url, &user);
    let iam = Credentials::new(DbSettings { target: target.clone(), auth: DbAuth::Iam }, &s.aws.sdk);
    let token = iam.password().await.unwrap();
    assert!(token.starts_with(&format!("{}:{}/?Action=connect&DBUser={user}", target.host, target.port)), "{token}");
    assert!(token.contains("X-Amz-Signature=") && token.contains("X-Amz-Expires=900"), "{token}");

    // Without DB_ROOT_CERT the functions trust the RDS CAs only: the test server's
    // certificate (from a private CA) is refused, as any impostor's would be.
    let mut rds = target;
    rds.root_cert = Some(replica::RootCert::Pem(functions::database::RDS_CA_BUNDLE.to_vec()));
    let e = replica::connect::connect(&rds).await.unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[test]
fn every_rds_certificate_shipped_is_valid_for_another_year() {
    let bundle = std::str::from_utf8(functions::database::RDS_CA_BUNDLE).unwrap();
    let certs: Vec<String> = bundle
        .split("-----END CERTIFICATE-----")
        .filter_map(|c| {
            c.find("-----BEGIN CERTIFICATE-----").map(|at| format!("{}-----END CERTIFICATE-----\n", &c[at..]))
        })
        .collect();
    assert!(certs.len() >= 60, "the RSA2048, RSA4096 and ECC384 roots of every region: {}", certs.len());
    let dir = std::env::temp_dir().join(format!("cd2-rds-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, cert) in certs.iter().enumerate() {
        let file = dir.join(format!("{i}.pem"));
        std::fs::write(&file, cert).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-enddate", "-checkend", &(365 * 24 * 3600).to_string(), "-in"])
            .arg(&file)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "certificate {i} expires within a year: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A warm container holds no database connection between calls (Aurora pauses only when
/// none is open): the call's session is gone once it answered, whatever its outcome.
#[tokio::test]
async fn no_database_connection_outlives_a_call() {
    let s = Setup::new(Settings { rows_per_object: 5, ..Settings::default() }).await;
    let user = support::admin_user(&s.db_url);
    let secret =
        s.aws.put_secret(&format!("cd2-test/db-{}", support::uuid_like()), serde_json::json!({"password": "x"})).await;
    let mut target = support::target(&s.db_url, &user);
    target.application_name = format!("cd2-held-{}", support::uuid_like());
    let dap = functions::DapAccess::new(s.aws.dap_settings(&s.emulator).await, s.aws.secrets()).await.unwrap();
    let credentials = Credentials::new(DbSettings { target: target.clone(), auth: DbAuth::Secret(secret) }, &s.aws.sdk);
    let mut r = Replication::new(dap, credentials, limits(30_000));
    let sessions = async || -> i64 {
        // The server ends a backend just after the client's goodbye: give it a moment.
        for _ in 0..50 {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&target.application_name)
                .fetch_one(&s.db)
                .await
                .unwrap();
            if n == 0 {
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        1
    };

    let (done, _) = run_table(&mut r, courses()).await.unwrap();
    assert_eq!(done.status, Status::Success);
    assert_eq!(sessions().await, 0, "a finished table leaves no session behind");
    s.emulator.inject(Endpoint::CreateJob, FaultKind::FailJob("ValidationError".into()), 1);
    let accounts: TableState =
        serde_json::from_value(serde_json::json!({"namespace": "canvas", "table": "accounts"})).unwrap();
    run_table(&mut r, accounts).await.unwrap_err();
    assert_eq!(sessions().await, 0, "nor does a failed call");
}

#[tokio::test]
async fn with_the_archive_on_init_and_sync_write_every_object_once_as_served() {
    let s = Setup::new(Settings { rows_per_object: 4, ..Settings::default() }).await;
    let (archive, s3, bucket, catalog) = support::archive::with_catalog(&s.aws).await;
    let mut r = s.replication(limits(30_000)).await.with_archive(std::sync::Arc::new(archive));
    let (done, _) = run_table(&mut r, courses()).await.unwrap();
    assert_eq!((done.status, done.counts.inserted), (Status::Success, 25));
    s.emulator.commit("canvas", "courses", vec![course(9001)], vec![]);
    let (synced, _) = run_table(&mut r, courses()).await.unwrap();
    assert_eq!(synced.status, Status::Success);

    let jobs = support::archive::jobs(&s.emulator, &s3, &bucket).await;
    assert_eq!(jobs.len(), 2, "a snapshot and an incremental job: {jobs:?}");
    let (snapshot, incremental) = (&jobs[0].0, &jobs[1].0);
    assert_eq!(snapshot.kind, contract::archive::JobKind::Snapshot);
    assert_eq!(jobs[0].1.objects.len(), 7, "25 rows, 4 an object");
    assert_eq!(incremental.since, Some(snapshot.until), "the incremental job starts where the snapshot ends");
    let current_to: chrono::NaiveDateTime = sqlx::query_scalar(
        r#"SELECT "timestamp" FROM instructure_dap.table_sync WHERE source_namespace = 'canvas' AND source_table = 'courses'"#,
    )
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(incremental.until, current_to.and_utc(), "the last job ends where the replica is current to");
    assert_eq!(jobs[1].1.schema, jobs[0].1.schema);
    let written = support::archive::versions(&s3, &bucket).await;
    assert!(written.values().all(|n| *n == 1), "each key written once: {written:?}");

    // Athena's tables: one per kind and schema version, and one per kind for the newest,
    // whose columns are the files' in their order (Athena reads TSV by position).
    let v = snapshot.schema_version;
    let names = ["canvas__courses__incremental", "canvas__courses__snapshot"];
    let mut expected: Vec<String> = names.iter().flat_map(|n| [n.to_string(), format!("{n}_v{v}")]).collect();
    expected.sort();
    assert_eq!(catalog.tables().await, expected);
    for (folder, manifest) in &jobs {
        let name = format!("canvas__courses__{}", folder.kind.as_str());
        let described = catalog.table(&name).await;
        let header = support::archive::header_columns(&s3, &bucket, &manifest.objects[0]).await;
        let columns: Vec<&str> = described.columns.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(columns, header, "{name}: the columns of {}", manifest.objects[0]);
        assert!(described.columns.contains(&("id".into(), "bigint".into())), "{described:?}");
        assert!(described.columns.contains(&("meta_ts".into(), "string".into())), "{described:?}");
        let location = format!("s3://{bucket}/{}", folder.version_prefix());
        assert_eq!(described.location, location);
        assert_eq!(described.partition_keys, [s3_archive::catalog::DAY]);
        let template = format!("{location}day=${{{}}}/", s3_archive::catalog::DAY);
        assert_eq!(described.parameters["storage.location.template"], template);
        assert_eq!(described.parameters["skip.header.line.count"], "1");
        assert_eq!(described.parameters["projection.enabled"], "true");
        assert_eq!(catalog.table(&format!("{name}_v{v}")).await, described, "the version's table is the same");
    }
}

/// The real writer, but the `nth` object's write answers a failure after the object is in
/// the bucket: what a function that stops between the write and the commit leaves.
#[derive(Debug)]
struct StopsAfterWriting {
    archive: s3_archive::S3Archive,
    writes: std::sync::atomic::AtomicUsize,
    nth: usize,
}

impl replica::Archive for StopsAfterWriting {
    fn write(&self, key: String, received: tokio::sync::mpsc::Receiver<dap::Received>) -> replica::ArchiveFuture {
        let written = self.archive.write(key, received);
        let stop = self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.nth;
        Box::pin(async move {
            written.await?;
            if stop {
                return Err(replica::ArchiveError {
                    message: "injected: stopped after the write".into(),
                    transient: true,
                });
            }
            Ok(())
        })
    }

    fn put(&self, key: String, body: Vec<u8>) -> replica::ArchiveFuture {
        self.archive.put(key, body)
    }

    fn keys(&self, prefix: String) -> replica::archive::BoxFuture<'_, Result<Vec<String>, replica::ArchiveError>> {
        self.archive.keys(prefix)
    }
}

#[tokio::test]
async fn an_object_written_but_not_committed_is_loaded_and_written_again_once() {
    let s =
        Setup::new(Settings { rows_per_object: 2, download_delay: Duration::from_millis(300), ..Settings::default() })
            .await;
    let (s3, bucket) = support::archive::bucket(&s.aws).await;
    let archive = StopsAfterWriting {
        archive: s3_archive::S3Archive::new(s3.clone(), bucket.clone()),
        writes: Default::default(),
        nth: 2,
    };
    // Budgeted calls too: objects abandoned mid-way leave nothing behind either.
    let mut r = s.replication(limits(1200)).await.with_archive(std::sync::Arc::new(archive));
    let (done, seen) = run_table(&mut r, courses()).await.unwrap();
    assert!(seen.iter().filter(|s| **s == Status::InProgress).count() >= 2, "several calls: {seen:?}");
    assert_eq!((done.status, done.counts.inserted), (Status::Success, 25));
    assert_eq!(s.count("courses").await, 25);
    let jobs = support::archive::jobs(&s.emulator, &s3, &bucket).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1.objects.len(), 13);
    let written = support::archive::versions(&s3, &bucket).await;
    assert!(written.values().any(|n| *n >= 2), "the object that failed after its write was written again");
}

#[tokio::test]
async fn objects_loaded_before_the_archive_was_on_are_archived_before_the_manifest() {
    let s =
        Setup::new(Settings { rows_per_object: 2, download_delay: Duration::from_millis(300), ..Settings::default() })
            .await;
    let mut r = s.replication(limits(1200)).await;
    let state = r.handle(Kind::Sync, courses(), support::in_a_minute()).await.unwrap();
    let state = r.handle(Kind::Init, state, support::in_a_minute()).await.unwrap();
    assert_eq!(state.status, Status::InProgress, "{state:?}");
    let loaded: i64 = sqlx::query_scalar("SELECT count(*) FROM cd2_aws.object_done").fetch_one(&s.db).await.unwrap();
    assert!(loaded > 0, "some objects loaded with the archive off");

    // The archive is turned on in the middle of the job.
    let (s3, bucket) = support::archive::bucket(&s.aws).await;
    let archive = s3_archive::S3Archive::new(s3.clone(), bucket.clone());
    let mut r = s.replication(limits(30_000)).await.with_archive(std::sync::Arc::new(archive));
    let (done, _) = run_table(&mut r, state).await.unwrap();
    assert_eq!(done.status, Status::Success);
    assert_eq!(s.count("courses").await, 25);
    // Every object the manifest names is there, as served.
    let jobs = support::archive::jobs(&s.emulator, &s3, &bucket).await;
    assert_eq!((jobs.len(), jobs[0].1.objects.len()), (1, 13));
}

#[tokio::test]
async fn an_object_whose_load_fails_is_not_archived() {
    // One object, with a row a field short: it downloads whole, and the database refuses it.
    let s = Setup::new(Settings { rows_per_object: 100, ..Settings::default() }).await;
    let (s3, bucket) = support::archive::bucket(&s.aws).await;
    let archive = s3_archive::S3Archive::new(s3.clone(), bucket.clone());
    let mut r = s.replication(limits(30_000)).await.with_archive(std::sync::Arc::new(archive));
    s.emulator.inject(Endpoint::CreateJob, FaultKind::MalformedRow, 1);
    let e = run_table(&mut r, courses()).await.unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
    // The copy is written apart from the call: it has had time to end, or to be given up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(support::archive::versions(&s3, &bucket).await.is_empty(), "nothing of it is kept");
    let uploads = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
}

#[tokio::test]
async fn a_catalog_that_refuses_fails_the_table_with_what_to_fix() {
    let s = Setup::new(Settings { rows_per_object: 100, ..Settings::default() }).await;
    let (s3, bucket) = support::archive::bucket(&s.aws).await;
    let glue = s3_archive::aws_sdk_glue::Client::new(&s.aws.sdk);
    let archive = s3_archive::S3Archive::new(s3.clone(), bucket.clone())
        .with_catalog(s3_archive::Catalog::new(glue, "cd2_no_such_database".into()));
    let mut r = s.replication(limits(30_000)).await.with_archive(std::sync::Arc::new(archive));
    let e = run_table(&mut r, courses()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration, "{e}");
    // The line is cut to fit a report; what to fix comes first.
    let e = e.to_string();
    assert!(
        e.contains("Glue table canvas__courses__snapshot") && e.contains("in database cd2_no_such_database"),
        "{e}"
    );
    let published: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('canvas.courses')::text").fetch_one(&s.db).await.unwrap();
    assert_eq!(published, None, "the table waits for its catalog, as for its archive");
}

/// The archive, but before it lists a table's jobs a replication from DAP syncs the table
/// (`sync`): a restore that planned before the replication moved the table on.
#[derive(Debug)]
struct SyncsFirst {
    archive: std::sync::Arc<s3_archive::S3Archive>,
    sync: tokio::sync::Mutex<Option<replica::Replicator>>,
}

impl replica::ArchiveReader for SyncsFirst {
    fn jobs(
        &self,
        table: &contract::TableRef,
    ) -> replica::archive::BoxFuture<'_, Result<Vec<replica::ArchivedJob>, replica::ArchiveError>> {
        let table = table.clone();
        Box::pin(async move {
            if let Some(mut replicator) = self.sync.lock().await.take() {
                let synced = replicator.sync(&table, replica::Budget::unlimited()).await.unwrap();
                assert_eq!(synced.status, replica::Status::Success);
                replicator.close().await;
            }
            replica::ArchiveReader::jobs(self.archive.as_ref(), &table).await
        })
    }

    fn open(&self, key: &str) -> replica::archive::BoxFuture<'_, Result<dap::ObjectReader, replica::ArchiveError>> {
        replica::ArchiveReader::open(self.archive.as_ref(), key)
    }
}

#[tokio::test]
async fn a_restore_never_moves_a_table_back_nor_leaves_a_job_that_replication_resumes() {
    let s = Setup::new(Settings { rows_per_object: 4, ..Settings::default() }).await;
    let (s3, bucket) = support::archive::bucket(&s.aws).await;
    let archive = std::sync::Arc::new(s3_archive::S3Archive::new(s3, bucket));
    let mut r = s.replication(limits(30_000)).await.with_archive(archive.clone());
    assert_eq!(run_table(&mut r, courses()).await.unwrap().0.status, Status::Success);
    let table = contract::TableRef::new("canvas", "courses");
    let connect = async |url: &str, dap: dap::DapClient| {
        replica::Replicator::connect(&support::target(url, &support::admin_user(url)), dap).await.unwrap()
    };

    // A restore stopped at once leaves its archived job saved; replication does not take
    // it for a DAP job (whose objects DAP would not know), but starts one of its own.
    let (url, stopped) = database().await;
    let out = connect(&url, dap_client(None))
        .await
        .restore(&table, archive.clone(), replica::Budget::of(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(out.status, replica::Status::InProgress, "{out:?}");
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM cd2_aws.job").fetch_one(&stopped).await.unwrap();
    assert_eq!(saved, 1, "the archived job is saved");
    let replicated =
        connect(&url, dap_client(Some(&s.emulator))).await.replicate(&table, replica::Budget::unlimited()).await;
    assert_eq!(replicated.unwrap().counts.inserted, 25);

    // A table restored to the snapshot; then the archive gets an incremental job from
    // there, and a replication moves the table past it while a restore plans to replay it.
    let (url, racing) = database().await;
    let restored =
        connect(&url, dap_client(None)).await.restore(&table, archive.clone(), replica::Budget::unlimited()).await;
    assert_eq!(restored.unwrap().status, replica::Status::Success);
    s.emulator.commit("canvas", "courses", vec![course(9001)], vec![]);
    assert_eq!(run_table(&mut r, courses()).await.unwrap().0.status, Status::Success);
    s.emulator.commit("canvas", "courses", vec![course(9002)], vec![]);
    let reader = SyncsFirst {
        archive: archive.clone(),
        sync: tokio::sync::Mutex::new(Some(connect(&url, dap_client(Some(&s.emulator))).await)),
    };
    let timestamp = async || -> chrono::NaiveDateTime {
        sqlx::query_scalar(r#"SELECT "timestamp" FROM instructure_dap.table_sync"#).fetch_one(&racing).await.unwrap()
    };
    let e = connect(&url, dap_client(None))
        .await
        .restore(&table, std::sync::Arc::new(reader), replica::Budget::unlimited())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("a replication ran meanwhile"), "{e}");
    let after_the_sync = timestamp().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas.courses").fetch_one(&racing).await.unwrap();
    assert_eq!(rows, 27, "the replication's rows stay");
    // Restoring again goes on from where the table is: nothing in the archive is newer.
    let again = connect(&url, dap_client(None)).await.restore(&table, archive, replica::Budget::unlimited()).await;
    assert_eq!(again.unwrap().counts, contract::Counts::default());
    assert_eq!(timestamp().await, after_the_sync, "the table never moved back");
}

/// Bytes that do not compress, in the download's chunk sizes.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_large_object_goes_in_parts_and_one_given_up_on_leaves_nothing() {
    let aws = Aws::start().await;
    let (s3, bucket) = support::archive::bucket(&aws).await;
    let archive = s3_archive::S3Archive::new(s3.clone(), bucket.clone());
    let body = noise(s3_archive::PART * 2 + 12_345);

    let (tee, received) = tokio::sync::mpsc::channel(4);
    let written = tokio::spawn(archive.write("canvas/big/part-0.tsv.gz".into(), received));
    for chunk in body.chunks(64 * 1024) {
        tee.send(dap::Received::Chunk(chunk.to_vec().into())).await.unwrap();
    }
    tee.send(dap::Received::End).await.unwrap();
    written.await.unwrap().unwrap();
    assert!(support::archive::get(&s3, &bucket, "canvas/big/part-0.tsv.gz").await == body, "the parts make the object");

    let (tee, received) = tokio::sync::mpsc::channel(4);
    let written = tokio::spawn(archive.write("canvas/big/part-1.tsv.gz".into(), received));
    for chunk in body.chunks(64 * 1024).take(200) {
        tee.send(dap::Received::Chunk(chunk.to_vec().into())).await.unwrap();
    }
    drop(tee);
    assert!(written.await.unwrap().unwrap_err().transient, "a download given up on is tried again");
    assert_eq!(support::archive::versions(&s3, &bucket).await.len(), 1, "nothing is kept of it");
    let uploads = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "its parts are removed: {uploads:?}");

    let missing = s3_archive::S3Archive::new(s3, "cd2-no-such-bucket".into());
    let e = missing.put("k".into(), b"{}".to_vec()).await.unwrap_err();
    assert!(!e.transient && e.message.contains("cd2-no-such-bucket"), "{e:?}");
}

/// The emulator's DAP, or (`None`) a DAP that nothing answers.
fn dap_client(emulator: Option<&emulator::Emulator>) -> dap::DapClient {
    let s = Settings::default();
    let url = emulator.map_or_else(|| "http://127.0.0.1:9".to_owned(), |e| e.base_url());
    let mut config =
        dap::ClientConfig::new(&url, dap::Credentials { client_id: s.client_id, client_secret: s.client_secret });
    config.poll_interval = Duration::from_millis(20);
    dap::DapClient::new(config).unwrap()
}

/// What a reader sees of canvas.courses: its columns, its rows, its `table_sync` row.
async fn courses_as_replicated(db: &sqlx::PgPool) -> (String, String, String) {
    let columns: String = sqlx::query_scalar(
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
         FROM information_schema.columns WHERE table_schema = 'canvas' AND table_name = 'courses'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    let rows: String =
        sqlx::query_scalar("SELECT json_agg(t ORDER BY id)::text FROM canvas.courses t").fetch_one(db).await.unwrap();
    let sync: String = sqlx::query_scalar(
        r#"SELECT json_build_array("timestamp", schema_version, target_schema, target_table, schema_description_format,
                  schema_description)::text
           FROM instructure_dap.table_sync WHERE source_namespace = 'canvas' AND source_table = 'courses'"#,
    )
    .fetch_one(db)
    .await
    .unwrap();
    (columns, rows, sync)
}

#[tokio::test]
async fn a_table_restored_from_the_archive_alone_equals_the_replicated_one_and_syncs_on() {
    let s = Setup::new(Settings { rows_per_object: 4, ..Settings::default() }).await;
    let (archive, _, _, catalog) = support::archive::with_catalog(&s.aws).await;
    let archive = std::sync::Arc::new(archive);
    let mut r = s.replication(limits(30_000)).await.with_archive(archive.clone());
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(emulator::DEMO_FIXTURE).unwrap()).unwrap();
    // Three phases: the snapshot; upserts and a delete; a new column and rows that fill it.
    assert_eq!(run_table(&mut r, courses()).await.unwrap().0.status, Status::Success);
    let mut renamed = fixture["tables"][1]["rows"][0].clone();
    renamed["name"] = serde_json::json!("Renamed");
    s.emulator.commit("canvas", "courses", vec![course(9001), renamed], vec![serde_json::json!({"id": 102})]);
    assert_eq!(run_table(&mut r, courses()).await.unwrap().0.status, Status::Success);
    let mut schema = fixture["tables"][1]["schema"].clone();
    schema["properties"]["value"]["properties"]["syllabus_body"] = serde_json::json!({"type": "string"});
    s.emulator.put_schema("canvas", "courses", schema);
    let mut with_syllabus = course(9002);
    with_syllabus["syllabus_body"] = serde_json::json!("Week 1: reading");
    s.emulator.commit("canvas", "courses", vec![with_syllabus], vec![]);
    let (done, _) = run_table(&mut r, courses()).await.unwrap();
    assert_eq!(done.status, Status::Success);
    let replicated = courses_as_replicated(&s.db).await;
    assert!(replicated.0.contains("syllabus_body text") && replicated.1.contains("Week 1: reading"), "{replicated:?}");
    // The schema change gave the changes a table of the new version; the newest's table
    // follows it, and the old version's stays for the files written before.
    let tables = catalog.tables().await;
    let versions: Vec<&String> = tables.iter().filter(|t| t.starts_with("canvas__courses__incremental_v")).collect();
    assert_eq!(versions.len(), 2, "{tables:?}");
    let newest = catalog.table("canvas__courses__incremental").await;
    let has_syllabus = |d: &support::archive::Described| d.columns.iter().any(|(c, _)| c == "syllabus_body");
    assert!(has_syllabus(&newest), "{newest:?}");
    let old = catalog
        .table(
            versions
                .iter()
                .find(|t| {
                    **t != &format!("canvas__courses__incremental_v{}", newest.parameters["cd2_aws.schema_version"])
                })
                .unwrap(),
        )
        .await;
    assert!(!has_syllabus(&old) && old.location != newest.location, "{old:?}");

    // Another database, and a DAP that answers nothing: the archive alone.
    let (url, restored_db) = database().await;
    let options = support::target(&url, &support::admin_user(&url));
    let mut restorer = replica::Replicator::connect(&options, dap_client(None)).await.unwrap();
    let table = contract::TableRef::new("canvas", "courses");
    let out = restorer.restore(&table, archive.clone(), replica::Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, replica::Status::Success, "{out:?}");
    assert_eq!(courses_as_replicated(&restored_db).await, replicated, "columns, rows and table_sync as replicated");
    let again = restorer.restore(&table, archive, replica::Budget::unlimited()).await.unwrap();
    assert_eq!((again.status, again.counts), (replica::Status::Success, contract::Counts::default()), "nothing left");
    restorer.close().await;

    // Replication goes on from the restored table.
    s.emulator.commit("canvas", "courses", vec![course(9003)], vec![]);
    let mut replicator = replica::Replicator::connect(&options, dap_client(Some(&s.emulator))).await.unwrap();
    let synced = replicator.sync(&table, replica::Budget::unlimited()).await.unwrap();
    assert_eq!((synced.status, synced.counts.inserted), (replica::Status::Success, 1));
}

/// Init of a generated table with the archive off and on, alternating, three times each:
/// the same rows either way, every object in the bucket as served, and the rows per second
/// of each, which `cargo xtask bench replication` reports at its `--rows` in an optimized
/// build (moto's S3 on the same machine takes the parts). Small here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_loads_the_same_rows_and_its_cost_is_measured() {
    use emulator::bench;
    let rows: u64 = std::env::var(testkit::ARCHIVE_BENCH_ROWS_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let settings = Settings { rows_per_object: rows.div_ceil(8) as usize, ..Settings::default() };
    let emulator = emulator::Emulator::start(settings).await.unwrap();
    let generated = emulator::Generated { rows, change_every: 10, revision: 0 };
    emulator.put_generated(bench::NAMESPACE, bench::TABLE, bench::schema(), generated);
    let aws = Aws::start().await;
    let (s3, bucket) = support::archive::bucket(&aws).await;
    let archive = std::sync::Arc::new(s3_archive::S3Archive::new(s3.clone(), bucket.clone()));
    let table = contract::TableRef::new(bench::NAMESPACE, bench::TABLE);
    let dap = dap_client(Some(&emulator));
    // DAP prepares a job before any byte moves: the server's time, not the load's.
    dap.run_job(bench::NAMESPACE, bench::TABLE, &dap::Query::snapshot()).await.unwrap();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for archived in [false, true] {
            let (url, db) = database().await;
            let options = support::target(&url, &support::admin_user(&url));
            let mut replicator = replica::Replicator::connect(&options, dap.clone()).await.unwrap();
            if archived {
                replicator.set_archive(archive.clone());
            }
            let started = Instant::now();
            let out = replicator.init(&table, replica::Budget::unlimited()).await.unwrap();
            let rate = rows as f64 / started.elapsed().as_secs_f64();
            replicator.close().await;
            assert_eq!(out.counts.inserted, rows);
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM canvas.{}", bench::TABLE)))
                    .fetch_one(&db)
                    .await
                    .unwrap();
            assert_eq!(n as u64, rows);
            if archived { on.push(rate) } else { off.push(rate) }
        }
    }
    let jobs = support::archive::jobs(&emulator, &s3, &bucket).await;
    assert!(!jobs.is_empty() && jobs.iter().all(|(_, m)| m.objects.len() == 8), "{jobs:?}");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut off), median(&mut on));
    println!("archive-bench: rows={rows} off_rows_per_s={off:.0} on_rows_per_s={on:.0} on_over_off={:.3}", on / off);
}
