//! Each injected fault gives a clear error, or is retried away, and nothing is lost or
//! loaded twice.

mod support;

use dap::{Credentials, DapClient, DapError};
use emulator::{Endpoint, FaultKind};
use replica::{ReplicaError, Status, TableRef};
use support::{Fixture, account};

fn count(requests: &[String], prefix: &str) -> usize {
    requests.iter().filter(|r| r.starts_with(prefix)).count()
}

async fn seeded() -> Fixture {
    let f = Fixture::new().await;
    f.accounts((1..=5).map(|i| account(i, "x")).collect());
    f
}

async fn nothing_published(f: &Fixture) {
    assert!(f.rows("SELECT 1 FROM pg_tables WHERE schemaname = 'canvas' AND tablename = 'accounts'").await.is_empty());
    assert!(f.rows("SELECT 1 FROM instructure_dap.table_sync").await.is_empty());
}

#[tokio::test]
async fn rate_limits_are_waited_out_with_retry_after() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::CreateJob, FaultKind::TooManyRequests { retry_after: Some(1) }, 2);
    let out = f.replicate("accounts").await.unwrap();
    assert_eq!((out.status, out.counts.inserted), (Status::Success, 5));
    assert_eq!(count(&f.emulator.requests(), "POST /dap/query/canvas/table/accounts/data"), 3);
}

#[tokio::test]
async fn a_rate_limit_longer_than_allowed_is_a_clear_transient_error() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::CreateJob, FaultKind::TooManyRequests { retry_after: Some(3600) }, 1);
    let err = f.replicate("accounts").await.unwrap_err();
    assert!(err.is_transient());
    assert!(err.to_string().contains("429 Too Many Requests"), "{err}");
    nothing_published(&f).await;
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_dap_error() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::Schema, FaultKind::Status(503, "ServiceUnavailable".into()), 2);
    assert_eq!(f.replicate("accounts").await.unwrap().status, Status::Success);

    let g = seeded().await;
    g.emulator.inject(Endpoint::Schema, FaultKind::Status(500, "ProcessingError".into()), 10);
    let err = g.replicate("accounts").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTTP 500") && text.contains("ProcessingError") && text.contains("DAP error uuid"), "{text}");
    assert!(err.is_transient());
    nothing_published(&g).await;
}

#[tokio::test]
async fn a_failed_job_names_its_error_type_and_uuid() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::CreateJob, FaultKind::FailJob("ProcessingError".into()), 1);
    let err = f.replicate("accounts").await.unwrap_err();
    let ReplicaError::Dap(DapError::JobFailed { error, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(error.kind, "ProcessingError");
    assert_eq!(error.uuid.len(), 36);
    assert!(err.is_transient());
    nothing_published(&f).await;
    // The next run starts a fresh job and succeeds.
    assert_eq!(f.replicate("accounts").await.unwrap().counts.inserted, 5);
}

#[tokio::test]
async fn an_expired_url_is_resolved_again() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::Download, FaultKind::ExpiredUrl, 1);
    let out = f.replicate("accounts").await.unwrap();
    assert_eq!(out.counts.inserted, 5);
    let requests = f.emulator.requests();
    // Three objects, one resolved twice.
    assert_eq!(count(&requests, "POST /dap/object/url"), 4, "{requests:#?}");
}

/// A 403 on a fresh URL too: something on the way refuses DAP's URLs (an S3 endpoint
/// policy in an existing VPC); a setting to fix, not retried.
#[tokio::test]
async fn a_url_refused_again_when_fresh_is_a_configuration_error() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::Download, FaultKind::ExpiredUrl, 2);
    let err = f.replicate("accounts").await.unwrap_err();
    assert!(matches!(err, ReplicaError::Dap(DapError::DownloadRefused { .. })), "{err:?}");
    assert!(err.is_configuration() && !err.is_transient());
    assert!(err.to_string().contains("S3 gateway endpoint policy"), "{err}");
    assert_eq!(count(&f.emulator.requests(), "POST /dap/object/url"), 2, "two URLs, then it stops");
    nothing_published(&f).await;
}

/// DAP behind a certificate the functions do not trust (a proxy inspecting TLS): one clear
/// error at the first request, not retries until the run's retries give up.
#[tokio::test]
async fn a_refused_certificate_is_a_configuration_error_at_the_first_request() {
    let dir = std::env::temp_dir().join(format!("cd2-https-{}", std::process::id()));
    let https = testkit::UntrustedHttps::start(&dir).expect("openssl s_server");
    let f = seeded().await;
    let mut config = support::client_config(&f.emulator);
    config.base_url = https.url();
    config.retry.first = std::time::Duration::from_secs(5);
    let started = std::time::Instant::now();
    let err = DapClient::new(config).unwrap().schema("canvas", "accounts").await.unwrap_err();
    assert!(matches!(err, DapError::Certificate { .. }), "{err:?}");
    assert!(err.is_configuration() && !err.is_transient());
    assert!(err.to_string().contains("not accepted") && err.to_string().contains("invalid peer certificate"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "not retried after a backoff");
}

#[tokio::test]
async fn a_malformed_row_names_object_and_line_and_loads_nothing_of_it() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::CreateJob, FaultKind::MalformedRow, 1);
    let err = f.replicate("accounts").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ReplicaError::Data { line: 2, .. }), "{err:?}");
    assert!(
        text.contains("part-00000") && text.contains("line 2") && text.contains("fields where the header has"),
        "{text}"
    );
    assert!(!err.is_transient(), "bad data does not go away by retrying");
    nothing_published(&f).await;
}

#[tokio::test]
async fn bad_credentials_say_what_to_check_and_never_show_the_secret() {
    let f = seeded().await;
    let mut config = support::client_config(&f.emulator);
    config.credentials = Credentials { client_id: "us-east-1#nobody".into(), client_secret: "hunter2-secret".into() };
    let dap = DapClient::new(config.clone()).unwrap();
    let err = dap.schema("canvas", "accounts").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DapError::Authentication(_)), "{err:?}");
    assert!(err.is_configuration() && !err.is_transient(), "a wrong secret is not retried");
    assert!(text.contains("check the credentials"), "{text}");
    assert!(
        !text.contains("hunter2")
            && !format!("{err:?}").contains("hunter2")
            && !format!("{config:?}").contains("hunter2")
    );
}

#[tokio::test]
async fn an_unknown_table_is_named() {
    let f = seeded().await;
    let err = f.replicate("nope").await.unwrap_err().to_string();
    assert!(err.contains("DAP found nothing to get the schema of canvas.nope"), "{err}");
}

#[tokio::test]
async fn a_table_left_by_an_interrupted_official_init_is_reported() {
    let f = seeded().await;
    f.exec("CREATE TABLE canvas.accounts (id bigint PRIMARY KEY)").await;
    let err = f.replicate("accounts").await.unwrap_err().to_string();
    assert!(err.contains("not registered in instructure_dap.table_sync"), "{err}");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_by_logging_in_again() {
    let f = seeded().await;
    assert_eq!(f.replicate("accounts").await.unwrap().counts.inserted, 5);
    f.emulator.revoke_tokens();
    f.emulator.commit("canvas", "accounts", vec![account(6, "six")], vec![]);
    assert_eq!(f.replicate("accounts").await.unwrap().counts.inserted, 1, "the same client goes on");
    assert_eq!(count(&f.emulator.requests(), "POST /ids/auth/login"), 2);
}

#[tokio::test]
async fn the_last_event_of_a_key_decides_between_upsert_and_delete() {
    let f = Fixture::new().await;
    let schema = serde_json::json!({"type": "object", "$schema": "http://json-schema.org/draft-07/schema#", "properties": {
        "key": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        "value": {"type": "object", "properties": {"url": {"type": "string"}}}
    }});
    f.emulator.put_schema("canvas_logs", "web_logs", schema);
    f.emulator.commit("canvas_logs", "web_logs", vec![serde_json::json!({"id": "a", "url": "/1"})], vec![]);
    f.replicator()
        .await
        .replicate(&TableRef::new("canvas_logs", "web_logs"), replica::Budget::unlimited())
        .await
        .unwrap();
    // Delete then re-insert `a` within one incremental result (web_logs repeats keys).
    f.emulator.commit("canvas_logs", "web_logs", vec![], vec![serde_json::json!({"id": "a"})]);
    f.emulator.commit("canvas_logs", "web_logs", vec![serde_json::json!({"id": "a", "url": "/2"})], vec![]);
    f.emulator.update_settings(|s| s.rows_per_object = 100);
    f.replicator()
        .await
        .replicate(&TableRef::new("canvas_logs", "web_logs"), replica::Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(f.texts("SELECT url FROM canvas_logs.web_logs WHERE id = 'a'").await, [Some("/2".into())]);
}

#[tokio::test]
async fn a_failed_download_never_shows_the_presigned_url() {
    for (endpoint, fault) in
        [(Endpoint::ObjectUrl, FaultKind::UnreachableUrl), (Endpoint::Download, FaultKind::DropConnection)]
    {
        let f = seeded().await;
        f.emulator.inject(endpoint, fault.clone(), 1_000);
        let err = f.replicate("accounts").await.unwrap_err();
        let text = format!("{err} / {err:?}");
        assert!(err.is_transient(), "{fault:?}: {text}");
        assert!(text.contains("part-00000"), "{fault:?}: the error names the object: {text}");
        assert!(!text.contains("X-Amz-Signature") && !text.contains("/files/"), "{fault:?}: {text}");
        nothing_published(&f).await;
    }
}

#[tokio::test]
async fn an_empty_line_followed_by_more_rows_is_bad_data_not_the_end() {
    let f = seeded().await;
    f.emulator.inject(Endpoint::CreateJob, FaultKind::EmptyLine, 1);
    let err = f.replicate("accounts").await.unwrap_err();
    assert!(matches!(err, ReplicaError::Data { line: 3, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("part-00000") && text.contains("empty, and more lines follow"), "{text}");
    nothing_published(&f).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_terminated_mid_copy_is_transient_and_the_rerun_is_exact() {
    let f = Fixture::with_settings(emulator::Settings { rows_per_object: 500, ..emulator::Settings::default() }).await;
    f.accounts((1..=1000).map(|i| account(i, &format!("account number {i}"))).collect());
    // The first download pauses halfway, with its COPY running, long enough to be found.
    f.emulator.inject(Endpoint::Download, FaultKind::Stall(std::time::Duration::from_secs(3)), 1);
    let mut r = f.replicator().await;
    let task = tokio::spawn(async move {
        let out = r.replicate(&TableRef::new("canvas", "accounts"), replica::Budget::unlimited()).await;
        (r, out)
    });
    let started = std::time::Instant::now();
    loop {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY %'",
        )
        .fetch_all(&f.db)
        .await
        .unwrap();
        if killed.contains(&true) {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no COPY to terminate");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (mut r, out) = task.await.unwrap();
    let err = out.expect_err("the load loses its connection");
    assert!(err.is_transient(), "{err}");
    assert!(err.connection_lost(), "{err:?}");
    nothing_published(&f).await;

    // The same replicator connects again and finishes exactly.
    let rerun = r.replicate(&TableRef::new("canvas", "accounts"), replica::Budget::unlimited()).await.unwrap();
    assert_eq!((rerun.status, rerun.counts.inserted), (Status::Success, 1000));
    assert_eq!(
        f.texts("SELECT count(DISTINCT id)::text || '/' || count(*)::text FROM canvas.accounts").await,
        [Some("1000/1000".into())]
    );
}

#[tokio::test]
async fn a_schema_change_queued_behind_a_long_query_gives_up_within_the_budget() {
    let f = seeded().await;
    f.replicate("accounts").await.unwrap();
    // An analyst's transaction holds the table (a long report, say).
    let mut analyst = f.db.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM canvas.accounts").execute(&mut *analyst).await.unwrap();

    f.emulator.put_schema("canvas", "accounts", support::accounts_schema(2));
    let started = std::time::Instant::now();
    let budget = std::time::Duration::from_secs(2);
    let err =
        f.replicator().await.sync(&TableRef::new("canvas", "accounts"), replica::Budget::of(budget)).await.unwrap_err();
    assert!(started.elapsed() < budget + std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(err.sqlstate().as_deref(), Some("55P03"), "{err}");
    assert!(err.is_transient(), "{err}");

    analyst.commit().await.unwrap();
    let out = f.replicate("accounts").await.unwrap();
    assert!(out.notes.join("\n").contains("type smallint -> integer"), "{:?}", out.notes);
}
