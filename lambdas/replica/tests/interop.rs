//! Interchange with Instructure's official `dap` client 2.3.1: a table `dap initdb` created
//! is synced by us, a table we initialized is synced by `dap syncdb` and listed by
//! `dap listdb`, and the same table created by both tools has the same catalog entries
//! and metadata. Both run against the DAP emulator and the test PostgreSQL; the official
//! client comes with the Python tools (`cargo xtask test` installs them), as moto does.

use anyhow::{Context, Result, bail, ensure};
use dap::{ClientConfig, Credentials, DapClient};
use emulator::{Emulator, Settings};
use replica::{Budget, Counts, Replicator, TableRef};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use std::path::{Path, PathBuf};
use std::time::Duration;

async fn connect(url: &str) -> Result<PgConnection> {
    PgConnection::connect(&format!("{url}?sslmode=disable")).await.context("connecting to the test database")
}

/// What the catalog says of a replicated table: columns, types, nullability, comments,
/// constraints and enum types, in one comparable text.
const DESCRIBE: &str = "
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'column ' || a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' -- ' || col_description(a.attrelid, a.attnum), '') AS line
  FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::text::regclass
  UNION ALL
  SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE n.nspname = 'canvas' AND starts_with(t.typname, split_part($1, '.', 2) || '__') GROUP BY t.typname
  UNION ALL
  SELECT 'meta ' || source_namespace || '.' || source_table || ' ' || \"timestamp\" || ' v' || schema_version || ' '
         || coalesce(target_schema, '') || '.' || target_table || ' ' || schema_description_format || ' ' || md5(schema_description)
  FROM instructure_dap.table_sync WHERE source_table = split_part($1, '.', 2)
) lines";

struct Official {
    bin: PathBuf,
    base_url: String,
    client_id: String,
    client_secret: String,
}

impl Official {
    /// Runs `dap <command> --namespace canvas --table <table> --connection-string <db>`.
    async fn run(&self, command: &str, table: Option<&str>, db: &str) -> Result<String> {
        let mut args = vec!["--namespace", "canvas"];
        if let Some(t) = table {
            args.extend(["--table", t]);
        }
        args.extend(["--connection-string", db]);
        self.cli(command, &args).await
    }

    /// Runs `dap <command> <args>` with the emulator's address and credentials.
    async fn cli(&self, command: &str, args: &[&str]) -> Result<String> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(["--base-url", &self.base_url, "--non-interactive", "--no-log-to-console", "--loglevel", "warning"]);
        cmd.arg(command)
            .args(args)
            .env("DAP_CLIENT_ID", &self.client_id)
            .env("DAP_CLIENT_SECRET", &self.client_secret)
            .env("DAP_TRACKING", "false");
        let out = cmd.output().await.with_context(|| format!("running the official `dap {command}`"))?;
        if !out.status.success() {
            bail!(
                "official `dap {command}` failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

async fn describe(db: &str, table: &str) -> Result<String> {
    let described: Option<String> = sqlx::query_scalar(DESCRIBE)
        .bind(table)
        .fetch_one(&mut connect(db).await?)
        .await
        .with_context(|| format!("describing {table}"))?;
    Ok(described.unwrap_or_default())
}

async fn scalar(db: &str, sql: &str) -> Result<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut connect(db).await?)
        .await
        .with_context(|| sql.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_and_ours_read_and_sync_each_others_tables() -> Result<()> {
    let dap_bin = testkit::python_tools().map_err(anyhow::Error::msg)?.join("dap");
    interop(&dap_bin).await
}

async fn interop(dap_bin: &Path) -> Result<()> {
    let settings = Settings { rows_per_object: 10, polls_before_complete: 1, ..Settings::default() };
    let emulator = Emulator::start(settings.clone()).await?;
    emulator.load_fixture(Path::new(emulator::DEMO_FIXTURE)).map_err(anyhow::Error::msg)?;
    let official = Official {
        bin: dap_bin.to_path_buf(),
        base_url: emulator.base_url(),
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
    };
    let mut config = ClientConfig::new(
        &emulator.base_url(),
        Credentials { client_id: settings.client_id.clone(), client_secret: settings.client_secret.clone() },
    );
    config.poll_interval = Duration::from_millis(50);
    let ours = DapClient::new(config)?;
    let suffix = uuid_suffix();
    let theirs_db = testkit::fresh_database().await;
    let ours_db = testkit::fresh_database().await;
    let replicator = |db: String| {
        let ours = ours.clone();
        async move { Replicator::connect(&replica::parse_connection_string(&db)?, ours).await }
    };

    // The official client's plain API commands work against the emulator.
    let listed = official.cli("list", &["--namespace", "canvas"]).await?;
    ensure!(
        listed.lines().map(str::trim).collect::<Vec<_>>() == ["accounts", "courses"],
        "`dap list` printed {listed:?}"
    );
    let out = std::env::temp_dir().join(format!("cd2-interop-{suffix}"));
    let out_arg = out.to_string_lossy().into_owned();
    official.cli("schema", &["--namespace", "canvas", "--table", "accounts", "--output-directory", &out_arg]).await?;
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(out.join("accounts_schema_version_1.json"))?)?;
    ensure!(schema["version"] == 1 && schema["schema"]["properties"]["key"].is_object(), "`dap schema` wrote {schema}");
    for format in ["jsonl", "tsv"] {
        let args = ["--namespace", "canvas", "--table", "courses", "--format", format, "--output-directory", &out_arg];
        official.cli("snapshot", &args).await?;
    }
    let mut snapshot_files = 0;
    for job in std::fs::read_dir(&out)?.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("job_")) {
        snapshot_files += std::fs::read_dir(job.path())?.count();
    }
    ensure!(snapshot_files == 6, "`dap snapshot` wrote {snapshot_files} files; expected two jobs of three objects");
    let _ = std::fs::remove_dir_all(&out);
    println!("ok   interop   dap list, schema and snapshot (jsonl and tsv) work against the emulator");

    // The same tables, initialized by each tool, look the same in the catalog.
    official.run("initdb", Some("accounts,courses"), &theirs_db).await?;
    let mut mine = replicator(ours_db.clone()).await?;
    for t in ["accounts", "courses"] {
        mine.init(&TableRef::new("canvas", t), Budget::unlimited()).await?;
        let (a, b) =
            (describe(&theirs_db, &format!("canvas.{t}")).await?, describe(&ours_db, &format!("canvas.{t}")).await?);
        ensure!(a == b, "canvas.{t} differs between the official client and ours:\n--- official\n{a}\n--- ours\n{b}");
    }
    println!("ok   interop   initdb and our init create the same tables, types, comments and metadata");

    // Changes upstream; each tool syncs the table the other initialized.
    emulator.commit(
        "canvas",
        "accounts",
        vec![
            json!({"id": 2, "name": "Faculty of Arts and Humanities", "workflow_state": "active", "sis_ids": ["ARTS"]}),
            json!({"id": 4, "name": "New\tFaculty \\ of \"Law\"", "workflow_state": "deleted"}),
        ],
        vec![json!({"id": 3})],
    );
    emulator.commit(
        "canvas",
        "courses",
        vec![json!({"id": 101, "name": "Course 1, renamed", "workflow_state": "completed", "is_public": true})],
        vec![json!({"id": 102}), json!({"id": 103})],
    );
    let synced =
        replicator(theirs_db.clone()).await?.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await?;
    ensure!(
        synced.counts == Counts { inserted: 1, updated: 1, deleted: 1 },
        "our sync of a table `dap initdb` created applied {:?}",
        synced.counts
    );
    official.run("syncdb", Some("accounts,courses"), &ours_db).await?;
    let official_sync =
        scalar(&theirs_db, "SELECT string_agg(id || ':' || name, '|' ORDER BY id) FROM canvas.accounts").await?;
    let our_sync =
        scalar(&ours_db, "SELECT string_agg(id || ':' || name, '|' ORDER BY id) FROM canvas.accounts").await?;
    ensure!(
        official_sync == our_sync,
        "accounts after sync differ:\nofficial-created, synced by us: {official_sync}\nours, synced by dap: {our_sync}"
    );
    official.run("syncdb", Some("courses"), &theirs_db).await?;
    for t in ["accounts", "courses"] {
        let (a, b) =
            (describe(&theirs_db, &format!("canvas.{t}")).await?, describe(&ours_db, &format!("canvas.{t}")).await?);
        ensure!(a == b, "canvas.{t} differs after the syncs:\n--- official\n{a}\n--- ours\n{b}");
        let data = format!("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM canvas.{t} t");
        ensure!(
            scalar(&theirs_db, &data).await? == scalar(&ours_db, &data).await?,
            "canvas.{t} rows differ after the syncs"
        );
    }
    println!("ok   interop   each tool syncs the other's tables to the same rows");

    let listed = official.run("listdb", None, &ours_db).await?;
    let listed: Value = serde_json::from_str(&listed).with_context(|| format!("`dap listdb` printed: {listed}"))?;
    let entries: Vec<(String, String)> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (e["name"].as_str().unwrap_or_default().to_owned(), e["command"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    ensure!(
        entries.contains(&("accounts".into(), "syncdb".into()))
            && entries.contains(&("courses".into(), "syncdb".into())),
        "`dap listdb` does not list our tables as initialized: {listed}"
    );
    println!("ok   interop   dap listdb lists the tables we replicate");
    Ok(())
}

fn uuid_suffix() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
    )
}
