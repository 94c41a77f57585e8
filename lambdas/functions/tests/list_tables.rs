//! `list_tables` against the DAP emulator and moto (Secrets Manager for the DAP key, Step
//! Functions for the overlap check).

mod support;

use contract::{ErrorName, ListRequest, RunInput, TableRef};
use emulator::{Endpoint, FaultKind, Settings};
use functions::database::{Credentials, DbAuth, DbSettings};
use functions::list::Lister;
use support::{Aws, database, demo_emulator};

async fn lister(aws: &Aws, emulator: &emulator::Emulator, skip: &[&str]) -> Lister {
    let settings = aws.dap_settings(emulator).await;
    Lister {
        dap: functions::DapAccess::new(settings, aws.secrets()).await.expect("the DAP key is read"),
        sfn: aws_sdk_sfn::Client::new(&aws.sdk),
        namespaces: vec!["canvas".into()],
        skip: skip.iter().map(|s| s.to_string()).collect(),
        database: None,
    }
}

/// A state machine in moto (its executions stay RUNNING: moto does not execute them here).
async fn state_machine(aws: &Aws) -> String {
    let sfn = aws_sdk_sfn::Client::new(&aws.sdk);
    let definition = r#"{"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": true}}}"#;
    sfn.create_state_machine()
        .name(format!("replication-{}", support::uuid_like()))
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/states")
        .send()
        .await
        .unwrap()
        .state_machine_arn
}

async fn start(aws: &Aws, machine: &str, name: &str) -> String {
    let sfn = aws_sdk_sfn::Client::new(&aws.sdk);
    sfn.start_execution().state_machine_arn(machine).name(name).send().await.unwrap().execution_arn
}

fn request(machine: &str, execution: &str) -> ListRequest {
    ListRequest { execution: execution.into(), state_machine: machine.into(), input: RunInput::default() }
}

#[tokio::test]
async fn lists_the_namespace_minus_the_skip_list_as_fresh_states() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let execution = start(&aws, &machine, "only").await;

    let all =
        lister(&aws, &emulator, &[]).await.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap();
    let names: Vec<String> = all.tables.iter().map(|t| t.to_string()).collect();
    assert_eq!(names, ["canvas.accounts", "canvas.courses"]);
    assert_eq!(all.skipped_because, None);

    let some = lister(&aws, &emulator, &["canvas.courses"])
        .await
        .handle(request(&machine, &execution), support::in_a_minute())
        .await
        .unwrap();
    assert_eq!(some.tables.len(), 1);
    assert_eq!(some.tables[0].table, "accounts");

    let mut wanted = request(&machine, &execution);
    wanted.input.tables = Some(vec![TableRef { namespace: "canvas".into(), table: "courses".into() }]);
    let picked = lister(&aws, &emulator, &[]).await.handle(wanted.clone(), support::in_a_minute()).await.unwrap();
    assert_eq!(picked.tables.len(), 1);
    wanted.input.tables = Some(vec![TableRef { namespace: "canvas".into(), table: "nope".into() }]);
    let unknown = lister(&aws, &emulator, &[]).await.handle(wanted, support::in_a_minute()).await.unwrap_err();
    assert_eq!(unknown.name, ErrorName::Dap);
    assert!(unknown.detail.message.contains("DAP has no table canvas.nope"), "{unknown}");
}

#[tokio::test]
async fn a_run_is_skipped_while_an_earlier_one_runs() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let first = start(&aws, &machine, "first").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = start(&aws, &machine, "second").await;
    let mut lister = lister(&aws, &emulator, &[]).await;

    let skipped = lister.handle(request(&machine, &second), support::in_a_minute()).await.unwrap();
    assert_eq!(
        skipped.skipped_because.as_deref(),
        Some(first.as_str()),
        "the later run names the one holding the tables"
    );
    assert!(skipped.tables.is_empty(), "a skipped run touches no table");
    let going = lister.handle(request(&machine, &first), support::in_a_minute()).await.unwrap();
    assert_eq!(going.skipped_because, None, "the earlier run goes on");
    assert_eq!(going.tables.len(), 2);

    let sfn = aws_sdk_sfn::Client::new(&aws.sdk);
    sfn.stop_execution().execution_arn(&first).send().await.unwrap();
    let after = lister.handle(request(&machine, &second), support::in_a_minute()).await.unwrap();
    assert_eq!(after.skipped_because, None, "once the earlier run ended, nothing holds the tables");
}

#[tokio::test]
async fn failures_are_raised_with_their_names_never_swallowed() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let execution = start(&aws, &machine, "x").await;

    // DAP down for longer than the client retries: transient, and no empty list.
    let mut lister = lister(&aws, &emulator, &[]).await;
    emulator.inject(Endpoint::ListTables, FaultKind::Status(503, "ServiceUnavailable".into()), 10);
    let e = lister.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Transient, "{e}");

    // A DAP key that DAP refuses.
    let name = format!("cd2-test/bad-{}", support::uuid_like());
    aws.put_secret(&name, serde_json::json!({"client_id": "us-east-1#nobody", "client_secret": "wrong-secret-value"}))
        .await;
    let settings = functions::settings::DapSettings { secret_id: name, ..aws.dap_settings(&emulator).await };
    let mut bad = Lister { dap: functions::DapAccess::new(settings.clone(), aws.secrets()).await.unwrap(), ..lister };
    let e = bad.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration, "a refused key is a setting to fix, never retried: {e}");
    assert!(!e.to_string().contains("wrong-secret-value"), "{e}");

    // No DAP key stored at all.
    let missing = functions::settings::DapSettings { secret_id: "cd2-test/none".into(), ..settings };
    let e = functions::DapAccess::new(missing, aws.secrets()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration);
    assert!(e.detail.message.contains("set_key.sh"), "{e}");
}

/// DAP answering with a 429 pause longer than the invocation has left: a transient error
/// just before the deadline, which the state machine retries, not Lambda's timeout without
/// an answer.
#[tokio::test]
async fn a_listing_still_waiting_at_the_deadline_ends_with_a_transient_error() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let execution = start(&aws, &machine, "x").await;
    let mut lister = lister(&aws, &emulator, &[]).await;
    emulator.inject(Endpoint::ListTables, FaultKind::TooManyRequests { retry_after: Some(100) }, 1);
    let started = std::time::Instant::now();
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let e = lister.handle(request(&machine, &execution), soon).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Transient, "{e}");
    assert!(e.detail.message.contains("still waiting on DAP"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered before the deadline");
}

/// How the tables' calls would reach the test database as `user`, trusting `ca`.
async fn credentials(aws: &Aws, db_url: &str, user: &str, ca: &std::path::Path) -> Credentials {
    let secret = aws
        .put_secret(&format!("cd2-test/db-{}", support::uuid_like()), serde_json::json!({"password": "unused-here"}))
        .await;
    let target = support::target(db_url, user).root_cert_path(ca);
    Credentials::new(DbSettings { target, auth: DbAuth::Secret(secret) }, &aws.sdk)
}

/// The run's preflight: the listing logs in to DAP while the database is asked for the
/// connection a table's call makes, as a role that may create only in its database. A
/// certificate the functions do not trust, or a role that may not reach the metadata
/// tables, ends the listing with that reason before any table.
#[tokio::test]
async fn the_listing_checks_the_database_connection_the_tables_will_make() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let execution = start(&aws, &machine, "x").await;
    let (db_url, db) = database().await;
    let suffix = support::uuid_like();
    let (app, stranger) = (format!("preflight_app_{suffix}"), format!("preflight_other_{suffix}"));
    let database_name = replica::parse_connection_string(&db_url).unwrap().database;
    for sql in [
        format!("CREATE ROLE {app} LOGIN"),
        format!("GRANT CREATE ON DATABASE \"{database_name}\" TO {app}"),
        format!("CREATE ROLE {stranger} LOGIN"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&db).await.unwrap();
    }
    let server_ca = testkit::server_ca().expect("the test server has TLS");

    let mut ok = lister(&aws, &emulator, &[]).await;
    ok.database = Some(credentials(&aws, &db_url, &app, &server_ca).await);
    let listed = ok.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap();
    assert_eq!(listed.tables.len(), 2);
    let made: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('instructure_dap.table_sync')::text").fetch_one(&db).await.unwrap();
    assert!(made.is_some(), "the check made the metadata tables as the role");

    let dir = std::env::temp_dir().join(format!("cd2-preflight-{suffix}"));
    let other_ca = testkit::unrelated_ca(&dir).unwrap();
    let mut untrusted = lister(&aws, &emulator, &[]).await;
    untrusted.database = Some(credentials(&aws, &db_url, &app, &other_ca).await);
    let e = untrusted.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration, "a certificate the functions refuse is no retry's business: {e}");
    let message = &e.detail.message;
    assert!(message.starts_with("before any table, the run's check of the database failed"), "{e}");
    assert!(message.contains("certificate") || message.contains("UnknownIssuer"), "{e}");

    let mut refused = lister(&aws, &emulator, &[]).await;
    refused.database = Some(credentials(&aws, &db_url, &stranger, &server_ca).await);
    let e = refused.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_ne!(e.name, ErrorName::Transient, "a role without the grants stays without them: {e}");
    assert!(e.detail.message.contains("instructure_dap"), "names what it may not reach: {e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A database check that fails with a setting to fix is the answer at once: the listing,
/// held by DAP's rate limit for longer than the invocation has, is not waited for.
#[tokio::test]
async fn a_database_to_fix_is_said_without_waiting_for_dap() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let execution = start(&aws, &machine, "x").await;
    let (db_url, _db) = database().await;
    let dir = std::env::temp_dir().join(format!("cd2-preflight-{}", support::uuid_like()));
    let other_ca = testkit::unrelated_ca(&dir).unwrap();
    let mut lister = lister(&aws, &emulator, &[]).await;
    lister.database = Some(credentials(&aws, &db_url, "postgres", &other_ca).await);
    emulator.inject(Endpoint::ListTables, FaultKind::TooManyRequests { retry_after: Some(100) }, 1);
    let started = std::time::Instant::now();
    let e = lister.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration, "{e}");
    assert!(e.detail.message.starts_with("before any table, the run's check of the database failed"), "{e}");
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(30), "DAP's 100 s pause was waited for: {waited:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A warm container read a key DAP now refuses: when set_key.sh has stored another, the
/// listing reads the secret again and goes on with it; when the secret still holds the
/// refused key, it fails at once, after one login only.
#[tokio::test]
async fn a_refused_key_is_read_again_and_a_new_one_is_used_at_once() {
    let aws = Aws::start().await;
    let emulator = demo_emulator(Settings::default()).await;
    let machine = state_machine(&aws).await;
    let execution = start(&aws, &machine, "x").await;
    let name = format!("cd2-test/rotated-{}", support::uuid_like());
    aws.put_secret(&name, serde_json::json!({"client_id": "us-east-1#old", "client_secret": "revoked-secret-value"}))
        .await;
    let settings = functions::settings::DapSettings { secret_id: name.clone(), ..aws.dap_settings(&emulator).await };
    let mut warm = lister(&aws, &emulator, &[]).await;
    warm.dap = functions::DapAccess::new(settings, aws.secrets()).await.unwrap();
    let logins = || emulator.requests().iter().filter(|r| r.contains("/ids/auth/login")).count();

    let before = logins();
    let e = warm.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration, "{e}");
    assert_eq!(logins() - before, 1, "the secret still holds the refused key: no second try");

    // A secret that cannot be read again (here: a field missing) leaves DAP's refusal the
    // answer, with why no new key was taken.
    let half = serde_json::json!({"client_id": "us-east-1#new"});
    aws.secrets().put_secret_value().secret_id(&name).secret_string(half.to_string()).send().await.unwrap();
    let unread = warm.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(unread.name, ErrorName::Configuration, "{unread}");
    assert!(
        unread.detail.message.starts_with("DAP rejected the client id or secret"),
        "the refusal stays first: {unread}"
    );
    assert!(unread.detail.message.contains("reading the secret again for a new key failed too"), "{unread}");

    let good = emulator.settings();
    let key = serde_json::json!({"client_id": good.client_id, "client_secret": good.client_secret});
    aws.secrets().put_secret_value().secret_id(&name).secret_string(key.to_string()).send().await.unwrap();
    let before = logins();
    let listed = warm.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap();
    assert_eq!(listed.tables.len(), 2, "the key set_key.sh stored is used by the warm container");
    assert_eq!(logins() - before, 2, "the refused login, then the new key's");
}
