//! `cargo xtask demo`: the whole workflow on this machine, for someone with no AWS account,
//! no DAP key and no database of their own. The state machine `cargo xtask synth` writes for
//! dev runs in moto's Step Functions interpreter, its Lambda tasks reaching the real function
//! binaries, against the DAP emulator's demo tables and a throwaway PostgreSQL; one table DAP
//! refuses on purpose and one fails once, so the alert and the retry show.
//!
//! A test without libtest's harness (`harness = false`): `cargo test` runs it like any other
//! and shows what it prints, and `cargo xtask demo` runs it alone with the same build, so
//! the demo and the tests share every artifact. It exits non-zero when the run did not go
//! as the workflow should, so what the README promises a newcomer is tested.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use contract::{CaughtError, ErrorName, Status, TableState};
use emulator::Emulator;
use serde_json::Value;
use stack::app::{Function, pipeline};
use std::collections::BTreeSet;
use std::time::Duration;
use support::stage::{Setup, Stage};

/// Longer than the run takes (about a minute, most of it the 30 s the workflow waits before
/// retrying enrollments' transient failure).
const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// The rows of a replicated table shown at the end.
const SHOWN_ROWS: i64 = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let emulator = Emulator::start(support::demo_dap()).await.expect("the DAP emulator starts");
    support::add_demo_tables(&emulator);
    let (db_url, db) = support::database().await;
    let setup = Setup {
        overrides: &["namespaces=[\"canvas\"]"],
        namespaces: "canvas",
        replicators: 2,
        budget_seconds: 2,
        rate_window: None,
        env: &[],
        archive: false,
    };
    println!("starting moto's Step Functions, S3, SNS and SQS, and the functions behind cargo lambda watch ...");
    let stage = Stage::start(&emulator, &db_url, &setup).await;
    println!("DAP API (the emulator)   {}", emulator.base_url());
    println!("  canvas.accounts, canvas.courses (loaded over several 2-second calls), canvas.enrollments");
    println!("  (answers 503 five times, so its first call fails and the workflow's Retry calls again),");
    println!("  canvas.users (refused by DAP for good: ValidationError)");
    println!("PostgreSQL               {}", db_url.split('@').next_back().unwrap_or_default());
    println!("AWS (moto)               {}", stage.aws.moto.endpoint());
    println!("state machine            {} (dev's definition, as synth writes it)", stage.machine);
    println!();

    let run = stage.start_run("demo-1").await;
    println!("run demo-1 started: the NAT instance woken, the tables listed, then each table as it finishes");
    let (mut seen, mut printed) = (0, BTreeSet::new());
    let started = std::time::Instant::now();
    let done = loop {
        let d = stage.sfn.describe_execution().execution_arn(&run).send().await.expect("moto answers");
        print_ended_calls(&stage, &mut seen, &mut printed);
        if d.status != ExecutionStatus::Running {
            break d;
        }
        if started.elapsed() > RUN_DEADLINE {
            let logs = stage.halt();
            eprintln!("the run did not end within {RUN_DEADLINE:?}; the functions' logs are in {}", logs.display());
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "run demo-1 ended {}{}",
        done.status.as_str(),
        done.error
            .as_deref()
            .map(|e| format!(": {e} (a table failed, so the run does, after its alert)"))
            .unwrap_or_default()
    );
    println!();
    // What the demo shows is what the workflow does: `cargo xtask test` runs it, and a demo
    // that showed something else fails there.
    let mut wrong = Vec::new();
    if done.status != ExecutionStatus::Failed || done.error.as_deref() != Some(pipeline::RUN_FAILED) {
        wrong.push(format!(
            "the run ended {:?} {:?}, not {} for canvas.users",
            done.status,
            done.error,
            pipeline::RUN_FAILED
        ));
    }
    if printed.len() != 4 {
        wrong.push(format!("{} tables finished, not 4: {printed:?}", printed.len()));
    }

    println!("the alert email, as the topic's subscriber got it:");
    let alerts = stage.alerts().await;
    if alerts.len() != 1 {
        wrong.push(format!("{} alerts, not 1", alerts.len()));
    }
    for alert in alerts {
        let envelope: Value = serde_json::from_str(&alert).expect("SNS's JSON envelope");
        println!("  Subject: {}", envelope["Subject"].as_str().unwrap_or_default());
        for line in envelope["Message"].as_str().unwrap_or_default().lines() {
            println!("  | {line}");
        }
    }
    println!();

    println!("canvas.courses in the replica, the first {SHOWN_ROWS} rows:");
    let rows: Vec<(i64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, name, workflow_state::text FROM canvas.courses ORDER BY id LIMIT $1")
            .bind(SHOWN_ROWS)
            .fetch_all(&db)
            .await
            .expect("the replicated table reads");
    if rows.len() as i64 != SHOWN_ROWS {
        wrong.push(format!("{} rows of canvas.courses, not {SHOWN_ROWS}", rows.len()));
    }
    for (id, name, state) in rows {
        println!("  {id:>6}  {:<40} {}", name.unwrap_or_default(), state.unwrap_or_default());
    }
    let synced: Vec<(String, String)> = sqlx::query_as(
        "SELECT source_table, \"timestamp\"::text FROM instructure_dap.table_sync ORDER BY source_table",
    )
    .fetch_all(&db)
    .await
    .expect("the metadata reads");
    println!("instructure_dap.table_sync, as the official dap client writes it:");
    for (table, at) in synced {
        println!("  canvas.{table:<30} current to {at}");
    }
    println!();
    if !wrong.is_empty() {
        let logs = stage.halt();
        eprintln!("the demo did not go as the workflow should: {}", wrong.join("; "));
        eprintln!("the functions' logs and every call's answer are in {}", logs.display());
        std::process::exit(1);
    }
    println!("cleaning up: the functions, moto, the emulator and the database");
    stage.stop();
}

/// A line for each table call that ended since the last look (`seen` lines of the
/// answers file so far): a table done, a table failed for good, a call failed as transient
/// (which the workflow's `Retry` calls again). `finished` collects the tables done or failed.
fn print_ended_calls(stage: &Stage, seen: &mut usize, finished: &mut BTreeSet<String>) {
    let Ok(text) = std::fs::read_to_string(&stage.answers) else { return };
    // A line being written has no newline yet: it is read at the next look.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in complete.lines().skip(*seen) {
        *seen += 1;
        let Ok(call) = serde_json::from_str::<testkit::LambdaAnswer>(line) else { continue };
        if call.function != Function::SyncTable.binary() && call.function != Function::InitTable.binary() {
            continue;
        }
        let Ok(mut state) = serde_json::from_str::<TableState>(&call.request) else { continue };
        let name = state.table_ref().to_string();
        if call.error.is_some() {
            let answer: Value = serde_json::from_str(&call.answer).unwrap_or_default();
            let error = answer["errorType"].as_str().unwrap_or("Unhandled").to_owned();
            if error == ErrorName::Transient.as_str() {
                println!("{}", state.line(&format!("call failed, {error}: the workflow's Retry calls again")));
            } else if finished.insert(name) {
                // What Step Functions catches: the error's name, and the answer as its cause.
                state.error = Some(CaughtError { Error: error, Cause: call.answer });
                println!("{}", state.finished_line());
            }
            continue;
        }
        let Ok(answer) = serde_json::from_str::<TableState>(&call.answer) else { continue };
        state = answer;
        match state.status {
            Status::InProgress => {}
            Status::InitNeeded => println!("{}", state.line("new: its snapshot is loaded next")),
            _ => {
                if finished.insert(name) {
                    println!("{}", state.finished_line());
                }
            }
        }
    }
}
