//! The scale run: the whole workflow ([`support::stage`]) over N tables in the four
//! namespaces, twice (an init run, then a sync run), against an emulator that enforces
//! DAP's per-client limits on a shortened clock and misbehaves as DAP does:
//!
//! - sizes skewed as real ones are: most tables tiny, every 25th large enough to need
//!   several budgeted init calls;
//! - schema drift between the runs on every 5th table: a column and an enum label
//!   dropped, a column added, a type widened;
//! - every 20th table refused for good (a DAP 400), and a few failing once (503s that the
//!   state machine's Retry cures);
//! - 502s and 429s (with and without `Retry-After`) on job creations, spread over the run.
//!
//! It checks that no window of the emulator's clock saw more job-creation attempts than
//! the limit, that DAP never answered 429 for its limit, that every injected failure (and
//! only those) is in each run's alert, that every other table is replicated, that schema
//! notes come in the run where the schema changed, and that no state of the run came near
//! 256 KiB; and it prints the figures as one line. `cargo xtask bench run --tables N` runs
//! it at full size ([`testkit::SCALE_TABLES_VAR`]); CI runs it small.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use emulator::{Emulator, Endpoint, FaultKind, RateLimit, Settings};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::database;
use support::stage::{Setup, Stage};

/// DAP's limit on job creations per window.
const LIMIT: usize = 5;
/// The scale the CI run uses.
const CI_TABLES: usize = 60;
/// Two seconds: the shared window's slack (at least 250 ms) is what keeps a process the
/// busy machine pauses between its slot and its request from arriving in the next window.
const CI_WINDOW_MS: u64 = 2000;

/// Rows an object, and a pause before each download: a large table's ten objects take
/// longer than one call's budget.
const ROWS_PER_OBJECT: usize = 20;
const LARGE_ROWS: usize = 200;
const BUDGET_SECONDS: u32 = 2;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Fine,
    /// DAP refuses the table's schema for good.
    Refused,
    /// DAP fails the table's schema requests for one call.
    Flaky,
}

#[derive(Clone, Debug)]
struct Planned {
    namespace: &'static str,
    table: String,
    rows: usize,
    fate: Fate,
    drifts: bool,
}

impl Planned {
    fn name(&self) -> String {
        format!("{}.{}", self.namespace, self.table)
    }
}

/// `n` tables: one in canvas_logs, a tenth in catalog, a sixth in new_quizzes, the rest
/// in canvas, with long names like DAP's longest.
fn plan(n: usize) -> Vec<Planned> {
    (0..n)
        .map(|i| {
            let namespace = match i {
                0 => "canvas_logs",
                _ if i % 10 == 1 => "catalog",
                _ if i % 6 == 2 => "new_quizzes",
                _ => "canvas",
            };
            let table =
                if i == 0 { "web_logs".to_owned() } else { format!("table_{i:04}_assignment_override_students") };
            let fate = match i % 20 {
                7 => Fate::Refused,
                13 if i < 60 => Fate::Flaky,
                _ => Fate::Fine,
            };
            let rows = if i % 25 == 3 { LARGE_ROWS } else { 1 + i % 4 };
            Planned { namespace, table, rows, fate, drifts: i % 5 == 4 }
        })
        .collect()
}

fn schema(drifted: bool) -> Value {
    let mut values = json!({
        "name": {"type": "string"},
        "workflow_state": {"type": "string", "enum": ["active", "deleted", "pending"]},
        "score": {"type": "integer", "format": "int16"},
        "legacy": {"type": "string"},
    });
    if drifted {
        let v = values.as_object_mut().unwrap();
        v.shift_remove("legacy");
        v.insert("workflow_state".into(), json!({"type": "string", "enum": ["active", "deleted"]}));
        v.insert("score".into(), json!({"type": "integer", "format": "int32"}));
        v.insert("added".into(), json!({"type": "string"}));
    }
    json!({
        "type": "object",
        "properties": {
            "key": {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}}, "required": ["id"]},
            "value": {"type": "object", "properties": values, "required": ["name"]},
            "meta": {"type": "object", "properties": {"ts": {"type": "string", "format": "date-time"}}}
        }
    })
}

fn rows(from: usize, count: usize) -> Vec<Value> {
    (from..from + count)
        .map(|id| json!({"id": id, "name": format!("row {id}"), "workflow_state": "active", "score": id % 100}))
        .collect()
}

/// The tables each run's alert names as failed.
fn failed_in(alert: &str) -> BTreeSet<String> {
    let body: Value = serde_json::from_str(alert).unwrap();
    let message = body["Message"].as_str().unwrap_or_default();
    message
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|l| l.split_once(": ").map(|(t, _)| t.to_owned()))
        .filter(|t| t.contains('.'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_at_scale_stays_inside_daps_limits_and_step_functions_quotas() {
    let n = env_number(testkit::SCALE_TABLES_VAR, CI_TABLES as u64) as usize;
    assert!(n >= testkit::SCALE_MIN_TABLES, "the scale run needs at least {} tables", testkit::SCALE_MIN_TABLES);
    let window = Duration::from_millis(env_number(testkit::SCALE_WINDOW_MS_VAR, CI_WINDOW_MS));
    let planned = plan(n);
    let emulator = Emulator::start(Settings {
        rows_per_object: ROWS_PER_OBJECT,
        polls_before_complete: 1,
        download_delay: Duration::from_millis(300),
        rate_limit: Some(RateLimit { calls: LIMIT, window }),
        ..Settings::default()
    })
    .await
    .unwrap();
    for (i, t) in planned.iter().enumerate() {
        emulator.put_schema(t.namespace, &t.table, schema(false));
        emulator.commit(t.namespace, &t.table, rows(1, t.rows), vec![]);
        match t.fate {
            Fate::Refused => emulator.inject_on_table(
                Endpoint::Schema,
                &t.table,
                FaultKind::Status(400, "ValidationError".into()),
                1000,
            ),
            // As many 503s as the client tries in one call: the call fails as transient.
            Fate::Flaky => emulator.inject_on_table(
                Endpoint::Schema,
                &t.table,
                FaultKind::Status(503, "ServiceUnavailable".into()),
                5,
            ),
            Fate::Fine => {}
        }
        // Job creations meet 502s and 429s, with and without Retry-After, now and then.
        let fault = match i % 12 {
            5 => Some(FaultKind::Status(502, "BadGateway".into())),
            9 => Some(FaultKind::TooManyRequests { retry_after: None }),
            11 => Some(FaultKind::TooManyRequests { retry_after: Some(1) }),
            _ => None,
        };
        if let Some(fault) = fault {
            emulator.inject_after(Endpoint::CreateJob, fault, 3, 1);
        }
    }
    let (db_url, db) = database().await;
    let setup = Setup {
        overrides: &["map_concurrency=10", "namespaces=[\"canvas\", \"canvas_logs\", \"catalog\", \"new_quizzes\"]"],
        namespaces: "canvas,canvas_logs,catalog,new_quizzes",
        replicators: 10,
        budget_seconds: BUDGET_SECONDS,
        rate_window: Some(window),
        // Tables wait for slots many windows long at scale: that is waiting, not a stuck job.
        env: &[(contract::env::replicate::MAX_IDLE_CALLS, "1000"), (contract::env::replicate::MAX_CALLS, "1000")],
        archive: false,
    };
    let stage = Stage::start(&emulator, &db_url, &setup).await;
    let refused: BTreeSet<String> = planned.iter().filter(|t| t.fate == Fate::Refused).map(Planned::name).collect();
    let within = Duration::from_secs(600) + window * (3 * n as u32 / LIMIT as u32);

    let started = Instant::now();
    let init = stage.start_run("init").await;
    let first = stage.finish(&init, within).await;
    // Between the runs: new rows everywhere, and the drifting tables' schemas change.
    for t in &planned {
        if t.drifts {
            emulator.put_schema(t.namespace, &t.table, schema(true));
        }
        emulator.commit(t.namespace, &t.table, rows(10_000, 1), vec![]);
    }
    let sync = stage.start_run("sync").await;
    let second = stage.finish(&sync, within).await;
    let wall = started.elapsed();

    let alerts = stage.alerts().await;
    let attempts = emulator.job_attempts().len();
    let most = emulator.max_job_attempts_per(window);
    let status_429 = emulator.rate_limited();
    let max_state = stage.max_state_bytes(&init).await.max(stage.max_state_bytes(&sync).await);
    let map_output = stage.state_output_bytes(&init, "ReplicateTables").await;
    let reported: usize = alerts.iter().map(|a| failed_in(a).intersection(&refused).count()).sum();
    // The least time DAP's limit allows for these attempts: LIMIT a window, the first at once.
    let rate_bound = window.as_secs_f64() * (attempts.saturating_sub(1) / LIMIT) as f64;
    println!(
        "run-bench: tables={n} wall_s={:.0} rate_bound_s={rate_bound:.0} ratio={:.2} create_attempts={attempts} max_attempts_per_window={most} limit={LIMIT} status_429={status_429} max_state_bytes={max_state} state_limit={} failed_as_injected={reported}/{}",
        wall.as_secs_f64(),
        wall.as_secs_f64() / rate_bound.max(f64::MIN_POSITIVE),
        contract::STATE_LIMIT,
        2 * refused.len(),
    );

    let logs = stage.logs.display().to_string();
    for (run, d) in [("init", &first), ("sync", &second)] {
        let expected = if refused.is_empty() { ExecutionStatus::Succeeded } else { ExecutionStatus::Failed };
        assert_eq!(d.status, expected, "the {run} run: {d:?}; logs in {logs}");
    }
    assert!(most <= LIMIT, "{most} job creations within one window of {window:?}");
    assert_eq!(status_429, 0, "DAP answered 429 for its limit");
    assert!(max_state < contract::STATE_LIMIT / 2, "a state of {max_state} bytes");
    assert!(max_state > 40 * n, "the history holds the states (the listing alone is more): {max_state} bytes");
    let map_output = map_output.expect("the Map's output is in the history");
    assert!(map_output < 1024, "the Map hands on where the results are, not them: {map_output} bytes");
    // Each run alerts once, naming exactly the tables DAP refused.
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    for alert in &alerts {
        assert_eq!(failed_in(alert), refused, "{alert}");
    }
    // Every other table is in the replica, with the rows of both runs.
    let synced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM instructure_dap.table_sync").fetch_one(&db).await.unwrap();
    assert_eq!(synced as usize, n - refused.len());
    for t in planned.iter().filter(|t| t.fate != Fate::Refused).step_by(7) {
        let sql = format!(r#"SELECT count(*) FROM "{}"."{}""#, t.namespace, t.table);
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&db).await.unwrap();
        assert_eq!(count as usize, t.rows + 1, "{}", t.name());
    }
    // Schema changes are reported in the sync run, where they happened.
    let drifted = planned.iter().find(|t| t.drifts && t.fate == Fate::Fine).unwrap();
    let sync_alert = alerts.iter().find(|a| a.contains("SCHEMA CHANGES")).expect("the sync run reports the drift");
    assert!(sync_alert.contains(&format!("{}: column `legacy` is no longer in the DAP schema", drifted.name())));
    assert_eq!(alerts.iter().filter(|a| a.contains("SCHEMA CHANGES")).count(), 1, "only in the run where it happened");
    stage.stop();
}
