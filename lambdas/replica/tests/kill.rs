//! A replication process killed (SIGKILL) in the middle of an init, then run again: the
//! rerun finishes from where the dead one stopped, with every row exactly once.

mod support;

use emulator::Settings;
use replica::{Budget, Replicator, Status, TableRef};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Fixture, account};

const ROWS: i64 = 120;

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_mid_init_is_finished_exactly_by_a_rerun() {
    let f = Fixture::with_settings(Settings {
        rows_per_object: 1,
        download_delay: Duration::from_millis(25),
        ..Settings::default()
    })
    .await;
    f.accounts((1..=ROWS).map(|i| account(i, &format!("a{i}"))).collect());

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_init", "--exact", "--ignored", "--nocapture"])
        .env("CD2_CHILD_DAP", f.emulator.base_url())
        .env("CD2_CHILD_DB", &f.app_url)
        .spawn()
        .expect("the child starts");
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM cd2_aws.object_done").fetch_one(&f.db).await.unwrap_or(0);
        if done >= 5 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the child finished before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(60), "the child loaded nothing within a minute");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let published = f.rows("SELECT 1 FROM pg_tables WHERE schemaname = 'canvas' AND tablename = 'accounts'").await;
    assert!(published.is_empty(), "a killed init must not leave a visible table");

    f.emulator.update_settings(|s| s.download_delay = Duration::ZERO);
    let rerun = f.replicate("accounts").await.unwrap();
    assert_eq!(rerun.status, Status::Success);
    assert_eq!(rerun.counts.inserted, ROWS as u64);
    let counted = f.texts("SELECT count(*)::text || '/' || count(DISTINCT id)::text FROM canvas.accounts").await;
    assert_eq!(counted, [Some(format!("{ROWS}/{ROWS}"))]);
    let jobs =
        f.emulator.requests().iter().filter(|r| r.starts_with("POST /dap/query/canvas/table/accounts/data")).count();
    assert_eq!(jobs, 1, "the rerun resumed the dead process's job");
}

/// The process that gets killed; run only by the test above.
#[tokio::test]
#[ignore = "started as a child process by a_process_killed_mid_init_is_finished_exactly_by_a_rerun"]
async fn child_init() {
    let base = std::env::var("CD2_CHILD_DAP").expect("CD2_CHILD_DAP");
    let db = std::env::var("CD2_CHILD_DB").expect("CD2_CHILD_DB");
    let s = Settings::default();
    let mut config =
        dap::ClientConfig::new(&base, dap::Credentials { client_id: s.client_id, client_secret: s.client_secret });
    config.poll_interval = Duration::from_millis(5);
    let dap = dap::DapClient::new(config).unwrap();
    let mut r = Replicator::connect(&replica::parse_connection_string(&db).unwrap(), dap).await.unwrap();
    r.init(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
}
