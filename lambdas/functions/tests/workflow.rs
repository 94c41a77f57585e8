//! The real workflow, end to end ([`support::stage`]): four tables, a multi-call init, a
//! permanent DAP fault and a transient one, the alert, and a second run kept out.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use emulator::Emulator;
use serde_json::{Value, json};
use stack::app::pipeline;
use stack::constructs::alerts::{ALERTS_NOT_SENT, RUNS_SUCCEEDED};
use std::time::{Duration, Instant};
use support::database;
use support::stage::{ARCHIVE_BUCKET, RESULTS_BUCKET, Setup, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_replicates_retries_records_a_failure_alerts_and_keeps_a_second_run_out() {
    let emulator = Emulator::start(support::demo_dap()).await.unwrap();
    support::add_demo_tables(&emulator);
    let (db_url, db) = database().await;

    let setup = Setup {
        overrides: &["namespaces=[\"canvas\"]"],
        namespaces: "canvas",
        replicators: 3,
        budget_seconds: 2,
        rate_window: None,
        env: &[],
        archive: true,
    };
    let stage = Stage::start(&emulator, &db_url, &setup).await;

    assert_eq!(stage.nat_state(), "stopped", "the NAT instance is stopped between runs");
    let first = stage.start_run("scheduled-1").await;
    // Once tables load, a second scheduled run starts: it must leave them to the first.
    let started = Instant::now();
    while !emulator.requests().iter().any(|r| r.contains("/data ")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no table started; logs in {}", stage.logs.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = stage.start_run("scheduled-2").await;
    let skipped = stage.finish(&second, Duration::from_secs(60)).await;
    assert_eq!(skipped.status, ExecutionStatus::Succeeded, "{skipped:?}");
    let output: Value = serde_json::from_str(skipped.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["skipped_because"].as_str(), Some(first.as_str()), "names the run that holds the tables");
    assert_eq!(output["tables"], json!([]));
    assert_eq!(stage.counted(RUNS_SUCCEEDED), 0.0, "a skipped run is no success for the no-success alarm");

    let done = stage.finish(&first, Duration::from_secs(300)).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Failed,
        "one table failed, so the run did; logs in {}",
        stage.logs.display()
    );
    assert_eq!(done.error.as_deref(), Some(pipeline::RUN_FAILED));
    assert_eq!(stage.nat_state(), "running", "the run started its NAT instance first");
    // The tables' results went to S3, under the prefix, with their manifest.
    let written = stage.s3.list_objects_v2().bucket(RESULTS_BUCKET).send().await.unwrap();
    let keys: Vec<&str> = written.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.iter().any(|k| k.starts_with("runs/") && k.ends_with("/manifest.json")), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("/SUCCEEDED_0.json")), "{keys:?}");

    // The replica: three tables whole, users absent.
    for (table, rows) in [("accounts", 3), ("courses", 25), ("enrollments", 3)] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM canvas.{table}")))
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(n, rows, "canvas.{table}");
    }
    let users: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('canvas.users')::text").fetch_one(&db).await.unwrap();
    assert_eq!(users, None);
    // The raw zone: each loaded table's snapshot, every object as DAP served it.
    let jobs = support::archive::jobs(&emulator, &stage.s3, ARCHIVE_BUCKET).await;
    let mut archived: Vec<(String, contract::archive::JobKind)> =
        jobs.iter().map(|(folder, _)| (folder.table.table.clone(), folder.kind)).collect();
    archived.sort();
    let snapshot = contract::archive::JobKind::Snapshot;
    assert_eq!(
        archived,
        [("accounts".to_owned(), snapshot), ("courses".to_owned(), snapshot), ("enrollments".to_owned(), snapshot)]
    );
    // Athena's tables for them, made by the functions in the stack's Glue database.
    let catalog = support::archive::Catalog {
        glue: s3_archive::aws_sdk_glue::Client::new(&stage.aws.sdk),
        name: support::stage::ARCHIVE_CATALOG.into(),
    };
    let tables = catalog.tables().await;
    for table in ["accounts", "courses", "enrollments"] {
        assert!(tables.contains(&format!("canvas__{table}__snapshot")), "{tables:?}");
    }
    assert!(!tables.iter().any(|t| t.contains("users")), "{tables:?}");

    // `cargo xtask restore` without --into: init_table rebuilds a lost table from the
    // archive alone, inside the stack, called again while it answers in_progress.
    let lost = "DROP TABLE canvas.courses; DELETE FROM instructure_dap.table_sync WHERE source_table = 'courses'";
    sqlx::raw_sql(lost).execute(&db).await.unwrap();
    let asked_dap = || emulator.requests().iter().filter(|r| r.contains("/table/courses/")).count();
    let asked_before = asked_dap();
    let mut state = json!({"namespace": "canvas", "table": "courses", "restore": true});
    for _ in 0..20 {
        let answer = stage
            .aws
            .moto
            .boto(&format!(
                "import json\n\
                 out = boto3.client('lambda', **kw).invoke(FunctionName='init_table', Payload='''{state}''')\n\
                 print(json.dumps({{'error': out.get('FunctionError'), 'state': json.loads(out['Payload'].read())}}))"
            ))
            .unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"], Value::Null, "{answer}; logs in {}", stage.logs.display());
        state = answer["state"].clone();
        if state["status"] != "in_progress" {
            break;
        }
    }
    assert_eq!(state["status"], "success", "{state}");
    assert_eq!(state["restore"], true, "the state carries the request from call to call");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas.courses").fetch_one(&db).await.unwrap();
    assert_eq!(n, 25, "restored");
    assert_eq!(asked_dap(), asked_before, "from the archive alone: DAP was not asked about the table");
    // Enrollments' first call met five 503s, the Retry's call one success.
    let schema_calls = emulator.requests().iter().filter(|r| r.contains("/table/enrollments/schema")).count();
    assert!(schema_calls >= 6, "{schema_calls} schema requests for enrollments");

    // The alert, as the SQS queue subscribed to the topic got it.
    let alerts = stage.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let envelope: Value = serde_json::from_str(&alerts[0]).unwrap();
    let subject = envelope["Subject"].as_str().unwrap();
    let body = envelope["Message"].as_str().unwrap();
    assert_eq!(subject, "[cd2-e2e] Canvas Data 2 replication FAILED: 1 of 4 tables");
    assert!(body.contains(&format!("Execution: {first}")), "{body}");
    assert!(body.contains("- canvas.users: DapError"), "{body}");
    assert!(body.contains("DAP error type ValidationError, uuid "), "{body}");
    let users = &body[body.find("- canvas.users").unwrap()..body.find("SUCCEEDED").unwrap()];
    assert!(users.contains("(2 calls, "), "a sync that found users new, then the init that failed: {body}");
    assert!(body.contains("SUCCEEDED: 3 of 4 tables; rows inserted 31"), "{body}");
    let courses = body.lines().find(|l| l.trim_start().starts_with("canvas.courses:")).expect(body);
    let calls: u32 = courses.split('(').nth(1).and_then(|c| c.split(' ').next()).unwrap().parse().unwrap();
    assert!(calls >= 3, "courses loaded over several budgeted calls: {courses}");
    assert_eq!(stage.counted(RUNS_SUCCEEDED), 0.0, "a run with a failed table is no success");
    // How fresh each table is, as summarize wrote it for status --tables, and its metrics
    // in its log (the embedded metric format).
    let fresh = functions::freshness::load(&stage.s3, RESULTS_BUCKET).await.unwrap();
    let outcomes: Vec<(&str, &str, bool)> =
        fresh.tables.iter().map(|t| (t.table.as_str(), t.last_outcome.as_str(), t.current_to_s.is_some())).collect();
    assert_eq!(
        outcomes,
        [
            ("accounts", "success", true),
            ("courses", "success", true),
            ("enrollments", "success", true),
            ("users", "DapError", false)
        ]
    );
    assert!(fresh.tables[1].rows.is_some_and(|n| n > 0), "{fresh:?}");
    let logged = std::fs::read_dir(&stage.logs)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect::<String>();
    let metrics: Vec<Value> = logged
        .lines()
        .filter(|l| l.contains("\"_aws\"") && l.contains("TablesFailed"))
        .filter_map(|l| serde_json::from_str(&l[l.find('{')?..]).ok())
        .collect();
    let metrics = metrics
        .iter()
        .find(|m| m["TablesFailed"].as_f64() == Some(1.0))
        .unwrap_or_else(|| panic!("summarize's metrics of the first run: {metrics:?}"));
    assert_eq!(metrics["TablesSucceeded"].as_f64(), Some(3.0));
    assert_eq!(metrics["StateMachineArn"], stage.machine.as_str());

    // A run of the tables that load is one.
    let input = json!({"tables": [{"namespace": "canvas", "table": "accounts"}]}).to_string();
    let started = stage.sfn.start_execution().state_machine_arn(&stage.machine).name("picked").input(input);
    let picked = started.send().await.unwrap().execution_arn;
    let done = stage.finish(&picked, Duration::from_secs(120)).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "logs in {}", stage.logs.display());
    assert_eq!(stage.counted(RUNS_SUCCEEDED), 1.0, "the run that replicated every table counts");

    // A run with no table to replicate succeeds, and is no success for the alarm.
    let none = json!({"tables": []}).to_string();
    let started = stage.sfn.start_execution().state_machine_arn(&stage.machine).name("empty").input(none);
    let empty = started.send().await.unwrap().execution_arn;
    let done = stage.finish(&empty, Duration::from_secs(120)).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "logs in {}", stage.logs.display());
    assert_eq!(stage.counted(RUNS_SUCCEEDED), 1.0, "a run that replicated nothing is no success");
    stage.stop();
}

/// The run's preflight, end to end: the database's certificate is one the functions do not
/// trust (a region whose authority the bundle lacks, a wrong endpoint). One alert says so
/// and no table is attempted. The time from the start to the alert is printed (the README
/// quotes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_functions_do_not_trust_is_one_alert_before_any_table() {
    let emulator = Emulator::start(support::demo_dap()).await.unwrap();
    support::add_demo_tables(&emulator);
    let (db_url, _db) = database().await;
    let dir = std::env::temp_dir().join(format!("cd2-untrusted-{}", support::uuid_like()));
    let other_ca = testkit::unrelated_ca(&dir).unwrap().display().to_string();
    let setup = Setup {
        overrides: &["namespaces=[\"canvas\"]"],
        namespaces: "canvas",
        replicators: 1,
        budget_seconds: 2,
        rate_window: None,
        env: &[(contract::env::database::ROOT_CERT, &other_ca)],
        archive: false,
    };
    let mut stage = Stage::start(&emulator, &db_url, &setup).await;

    let started = Instant::now();
    let run = stage.start_run("untrusted").await;
    let alerts = loop {
        let alerts = stage.alerts().await;
        if !alerts.is_empty() {
            break alerts;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no alert; logs in {}", stage.logs.display());
    };
    let to_alert = started.elapsed();
    let done = stage.finish(&run, Duration::from_secs(60)).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "logs in {}", stage.logs.display());
    assert_eq!(done.error.as_deref(), Some(pipeline::RUN_FAILED));

    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let envelope: Value = serde_json::from_str(&alerts[0]).unwrap();
    let (subject, body) = (envelope["Subject"].as_str().unwrap(), envelope["Message"].as_str().unwrap());
    assert_eq!(subject, "[cd2-e2e] Canvas Data 2 replication FAILED: no table was replicated");
    assert!(body.contains("ConfigurationError"), "{body}");
    assert!(body.contains("before any table, the run's check of the database failed"), "{body}");
    assert!(body.contains("certificate") || body.contains("UnknownIssuer"), "{body}");
    let attempted: Vec<String> = emulator.requests().into_iter().filter(|r| r.contains("/schema")).collect();
    assert!(attempted.is_empty(), "no table is attempted: {attempted:?}");
    println!("preflight: time from the run's start to the alert {:.1} s", to_alert.as_secs_f64());

    // An on-demand NAT instance that never forwards (its boot broken): after its looks the
    // run fails with one alert that names it, before list_tables.
    stage.break_nat();
    let asked = emulator.requests().len();
    let broken = stage.start_run("no-nat").await;
    let done = stage.finish(&broken, Duration::from_secs(180)).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "logs in {}", stage.logs.display());
    let alerts = stage.alerts().await;
    let envelope: Value = serde_json::from_str(alerts.last().expect("the run's alert")).unwrap();
    let body = envelope["Message"].as_str().unwrap();
    assert!(body.contains("NatNotReady") && body.contains("did not start forwarding"), "{body}");
    assert!(body.contains(&stage.nat), "names the instance: {body}");
    assert_eq!(emulator.requests().len(), asked, "DAP was not asked anything");

    // The alert cannot be published (the topic is gone): the run still fails, as
    // AlertNotSent, and is counted for the alarm that says so.
    let sns = aws_sdk_sns::Client::new(&stage.aws.sdk);
    sns.delete_topic().topic_arn(&stage.topic).send().await.unwrap();
    let unsent = stage.start_run("unsent").await;
    let done = stage.finish(&unsent, Duration::from_secs(180)).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.error.as_deref(), Some(pipeline::ALERT_NOT_SENT), "logs in {}", stage.logs.display());
    assert_eq!(stage.counted(ALERTS_NOT_SENT), 1.0);
    std::fs::remove_dir_all(dir).ok();
    stage.stop();
}
