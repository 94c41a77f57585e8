//! DAP's limit of 5 job creations a minute per client, shared through the replica
//! database by concurrent runs (the Map's Lambdas), against an emulator that enforces it
//! with a shrunk window and counts the 429s it answers.

mod support;

use dap::{DapClient, DapError, Limit, Query};
use emulator::{Emulator, Endpoint, FaultKind, RateLimit, Settings};
use replica::{Budget, Replicator, Status, TableRef};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Fixture, client_config};

/// DAP's minute, shrunk.
const WINDOW: Duration = Duration::from_millis(400);
const CALLS: usize = 5;

fn settings() -> Settings {
    Settings { rate_limit: Some(RateLimit { calls: CALLS, window: WINDOW }), rows_per_object: 2, ..Settings::default() }
}

/// What each Lambda has: its own DAP client, which keeps DAP's limit in-process too, on
/// the shrunk clock (the pause after a 429 without `Retry-After` shrunk alike).
fn lambda_client(emulator: &Emulator) -> DapClient {
    let mut config = client_config(emulator);
    config.job_limit = Limit { calls: CALLS, per: WINDOW };
    config.default_retry_after = WINDOW / 2;
    DapClient::new(config).unwrap()
}

/// `workers` concurrent replicators (each its own DAP client and connection, as the Map's
/// Lambdas are) working through `tables`; every table must succeed.
async fn replicate_all(f: &Fixture, tables: Vec<String>, workers: usize) {
    let queue = Arc::new(Mutex::new(tables));
    let options = replica::parse_connection_string(&f.app_url).unwrap();
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, options, dap) = (queue.clone(), options.clone(), lambda_client(&f.emulator));
            tokio::spawn(async move {
                // A warm container: logged in before its first slot.
                dap.check_credentials().await.unwrap();
                let mut r = Replicator::connect(&options, dap).await.unwrap();
                loop {
                    let Some(table) = queue.lock().unwrap().pop() else { break };
                    let outcome = r.replicate(&TableRef::new("canvas", &table), Budget::unlimited()).await.unwrap();
                    assert_eq!(outcome.status, Status::Success, "{table}");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

fn small_schema() -> Value {
    emulator::table_schema(json!({"name": {"type": "string"}}), &[])
}

fn add_tables(emulator: &Emulator, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let table = format!("t{i:03}");
            emulator.put_schema("canvas", &table, small_schema());
            emulator.commit(
                "canvas",
                &table,
                vec![json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})],
                vec![],
            );
            table
        })
        .collect()
}

fn job_requests(emulator: &Emulator) -> usize {
    emulator.requests().iter().filter(|r| r.starts_with("POST /dap/query/") && r.contains("/data ")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tables_ten_at_a_time_share_the_limit_and_meet_no_429() {
    let f = Fixture::with_settings(settings()).await;
    let tables = add_tables(&f.emulator, 100);
    let started = Instant::now();
    replicate_all(&f, tables, 10).await;
    let elapsed = started.elapsed();
    assert_eq!(f.emulator.rate_limited(), 0, "no 429 from DAP");
    assert_eq!(job_requests(&f.emulator), 100, "one snapshot job per table");
    let loaded =
        f.texts("SELECT count(*)::text FROM instructure_dap.table_sync WHERE source_namespace = 'canvas'").await;
    assert_eq!(loaded, [Some("100".into())]);
    let rows = f.texts("SELECT sum(n)::text FROM (SELECT count(*) AS n FROM canvas.t000 UNION ALL SELECT count(*) FROM canvas.t099) c").await;
    assert_eq!(rows, [Some("4".into())]);
    // 100 creations at 5 a window need 19 windows after the first: the shared window, not
    // luck, kept them apart.
    assert!(elapsed >= WINDOW * 19, "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_502s_and_429s_take_slots_too_and_a_429_holds_every_process_off() {
    let f = Fixture::with_settings(settings()).await;
    let tables = add_tables(&f.emulator, 30);
    // Spread over the run (each fault's skip counts from the end of the one before): 502s
    // from the gateway, 429s with and without Retry-After.
    let (bad_gateway, too_many) =
        (FaultKind::Status(502, "BadGateway".into()), FaultKind::TooManyRequests { retry_after: None });
    f.emulator.inject_after(Endpoint::CreateJob, bad_gateway.clone(), 2, 2);
    f.emulator.inject_after(Endpoint::CreateJob, too_many, 8, 2);
    f.emulator.inject_after(Endpoint::CreateJob, FaultKind::TooManyRequests { retry_after: Some(1) }, 6, 1);
    f.emulator.inject_after(Endpoint::CreateJob, bad_gateway, 4, 1);
    replicate_all(&f, tables, 6).await;

    let attempts = f.emulator.job_attempts();
    assert_eq!(attempts.len(), 30 + 6, "one attempt a table, and one more for each fault");
    let most = f.emulator.max_job_attempts_per(WINDOW);
    assert!(most <= CALLS, "{most} attempts in one window: retries skipped the shared window");
    assert_eq!(f.emulator.rate_limited(), 0, "no 429 from DAP's own limit");
    let loaded =
        f.texts("SELECT count(*)::text FROM instructure_dap.table_sync WHERE source_namespace = 'canvas'").await;
    assert_eq!(loaded, [Some("30".into())]);
}

#[tokio::test]
async fn a_429_to_one_process_holds_the_others_off_for_its_retry_after() {
    let f = Fixture::with_settings(settings()).await;
    let mut tables = add_tables(&f.emulator, 4);
    f.emulator.inject(Endpoint::CreateJob, FaultKind::TooManyRequests { retry_after: Some(2) }, 1);
    let first = tables.split_off(3);
    // One process meets the 429; three more start while it holds off, with room in the window.
    let later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        replicate_all(&f, tables, 3).await;
    };
    tokio::join!(replicate_all(&f, first, 1), later);
    let attempts = f.emulator.job_attempts();
    assert_eq!(attempts.len(), 5);
    let refused = attempts[0];
    assert!(
        attempts[1..].iter().all(|t| t.duration_since(refused) >= Duration::from_millis(1900)),
        "every process waited out the Retry-After: {:?}",
        attempts.iter().map(|t| t.duration_since(refused)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn clients_that_count_only_their_own_calls_meet_a_storm_of_429s() {
    // A window long enough that all fifty requests fall in it, even on a slow machine.
    let window = Duration::from_secs(3);
    let emulator =
        Emulator::start(Settings { rate_limit: Some(RateLimit { calls: CALLS, window }), ..settings() }).await.unwrap();
    add_tables(&emulator, 10);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut config = client_config(&emulator);
        config.job_limit = Limit { calls: CALLS, per: window };
        config.retry.attempts = Some(1);
        let dap = DapClient::new(config).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            for _ in 0..CALLS {
                if let Err(e) = dap.start_job("canvas", &format!("t{i:03}"), &Query::snapshot()).await {
                    refused.push(e);
                }
            }
            refused
        }));
    }
    let mut refused = Vec::new();
    for t in tasks {
        refused.extend(t.await.unwrap());
    }
    // Each client stays within 5 a window, and holds off once DAP said 429; together they
    // still make 50 requests into one window (30 or so are refused in a typical run).
    assert!(refused.len() >= 15, "{} refused", refused.len());
    assert_eq!(emulator.rate_limited() as usize, refused.len());
    assert!(
        refused
            .iter()
            .all(|e| matches!(e, DapError::RateLimited { retry_after: Some(d), .. } if *d >= Duration::from_secs(1) && *d <= window)),
        "429 with Retry-After in whole seconds, until the window frees: {refused:?}"
    );
}

#[tokio::test]
async fn a_call_whose_budget_ends_before_a_slot_frees_creates_no_job_and_comes_back_later() {
    let f = Fixture::with_settings(Settings { rows_per_object: 2, ..Settings::default() }).await;
    add_tables(&f.emulator, 1);
    let mut config = client_config(&f.emulator);
    config.job_limit = Limit::per_minute(CALLS);
    let mut r =
        Replicator::connect(&replica::parse_connection_string(&f.app_url).unwrap(), DapClient::new(config).unwrap())
            .await
            .unwrap();
    // Other runs took all five slots a moment ago.
    f.exec(
        "INSERT INTO cd2_aws.dap_rate_limit (quota, sent) SELECT 'create_job', array_agg(extract(epoch FROM now())::float8) FROM generate_series(1, 5)",
    )
    .await;
    let started = Instant::now();
    let outcome = r.replicate(&TableRef::new("canvas", "t000"), Budget::of(Duration::from_secs(2))).await.unwrap();
    assert_eq!((outcome.status, outcome.cursor), (Status::InProgress, None), "no job to resume yet");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "waited out the budget (one call a budget, not a busy loop): {took:?}"
    );
    assert_eq!(job_requests(&f.emulator), 0);
    // The window frees: the next call gets its slot.
    f.exec("UPDATE cd2_aws.dap_rate_limit SET sent = '{}'").await;
    let outcome = r.replicate(&TableRef::new("canvas", "t000"), Budget::unlimited()).await.unwrap();
    assert_eq!(outcome.status, Status::Success);
    assert_eq!(job_requests(&f.emulator), 1);
}
