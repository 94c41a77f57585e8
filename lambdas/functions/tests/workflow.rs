//! The real workflow, end to end: the state machine definition `cargo xtask synth` writes,
//! executed by moto's Step Functions interpreter, its Lambda tasks reaching the real
//! function binaries (moto's launcher forwards each invocation to `cargo lambda watch`,
//! whose runtime API the binaries poll), against the DAP emulator and PostgreSQL.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use emulator::{Emulator, Endpoint, FaultKind, Settings};
use serde_json::{Value, json};
use stack::app::{self, Config, pipeline};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Aws, database};

/// The binaries, by the names the definition's ARNs end in.
const FUNCTIONS: [(&str, &str, usize); 4] = [
    ("list_tables", env!("CARGO_BIN_EXE_list_tables"), 1),
    ("sync_table", env!("CARGO_BIN_EXE_sync_table"), 3),
    ("init_table", env!("CARGO_BIN_EXE_init_table"), 3),
    ("summarize", env!("CARGO_BIN_EXE_summarize"), 1),
];

const ACCOUNT: &str = "123456789012";

/// The bucket the Map's ResultWriter writes the tables' results to.
const RESULTS_BUCKET: &str = "cd2-e2e-results";

/// The dev environment's definition, with one namespace.
fn definition(topic_arn: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack/envs/dev.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::from_toml(&text, "dev.toml", &["namespaces=[\"canvas\"]".into()]).unwrap();
    let mut asl = app::build(&config).unwrap().state_machine.to_string();
    for (placeholder, function) in [
        (pipeline::LIST_TABLES_ARN, "list_tables"),
        (pipeline::SYNC_TABLE_ARN, "sync_table"),
        (pipeline::INIT_TABLE_ARN, "init_table"),
        (pipeline::SUMMARIZE_ARN, "summarize"),
    ] {
        let arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}");
        asl = asl.replace(&format!("${{{placeholder}}}"), &arn);
    }
    asl.replace(&format!("${{{}}}", pipeline::ALERTS_TOPIC_ARN), topic_arn)
        .replace(&format!("${{{}}}", pipeline::RESULTS_BUCKET), RESULTS_BUCKET)
}

/// canvas.accounts and canvas.courses from the demo data, and two more tables like
/// accounts: users (which DAP refuses for good) and enrollments (which fails once).
fn dap() -> Settings {
    // Four rows an object and a pause before each download: courses' 25 rows take
    // several budgeted calls.
    Settings { rows_per_object: 4, download_delay: Duration::from_millis(600), ..Settings::default() }
}

fn add_tables(emulator: &Emulator) {
    emulator.load_fixture(Path::new(emulator::DEMO_FIXTURE)).unwrap();
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(emulator::DEMO_FIXTURE).unwrap()).unwrap();
    let accounts = &demo["tables"][0];
    assert_eq!(accounts["table"], "accounts");
    for table in ["users", "enrollments"] {
        emulator.put_schema("canvas", table, accounts["schema"].clone());
        emulator.commit("canvas", table, accounts["rows"].as_array().unwrap().clone(), vec![]);
    }
    // A permanent DAP error for users, at every call.
    emulator.inject_on_table(Endpoint::Schema, "users", FaultKind::Status(400, "ValidationError".into()), 100);
    // Enrollments: as many 503s as the client tries in one call, so the call fails as
    // transient and the state machine's Retry calls again.
    emulator.inject_on_table(Endpoint::Schema, "enrollments", FaultKind::Status(503, "ServiceUnavailable".into()), 5);
}

struct Run {
    sfn: aws_sdk_sfn::Client,
}

impl Run {
    async fn start(&self, machine: &str, name: &str) -> String {
        self.sfn.start_execution().state_machine_arn(machine).name(name).input("{}").send().await.unwrap().execution_arn
    }

    async fn finish(
        &self,
        execution: &str,
        within: Duration,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let started = Instant::now();
        loop {
            let d = self.sfn.describe_execution().execution_arn(execution).send().await.unwrap();
            if d.status != ExecutionStatus::Running {
                return d;
            }
            assert!(started.elapsed() < within, "{execution} still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_replicates_retries_records_a_failure_alerts_and_keeps_a_second_run_out() {
    let emulator = Emulator::start(dap()).await.unwrap();
    add_tables(&emulator);
    let (db_url, db) = database().await;

    let logs = tempdir();
    let watch_logs = logs.clone();
    let mut watch = tokio::task::spawn_blocking(move || testkit::LambdaWatch::start(&watch_logs))
        .await
        .unwrap()
        .expect("cargo lambda watch");
    let forward = watch.invoke_url();
    let moto = tokio::task::spawn_blocking(move || testkit::Moto::start(Some(&forward))).await.unwrap().expect("moto");
    let aws = Aws::start_with(moto).await;
    aws.execute_state_machines().await;

    let dap_settings = aws.dap_settings(&emulator).await;
    let target = replica::parse_connection_string(&db_url).unwrap();
    let db_secret = aws.put_secret("cd2-e2e/db", json!({"password": "trusted-on-loopback"})).await;
    let sns = aws_sdk_sns::Client::new(&aws.sdk);
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
    let topic = sns.create_topic().name("cd2-e2e-alerts").send().await.unwrap().topic_arn.unwrap();
    let queue = sqs.create_queue().queue_name("alerts").send().await.unwrap().queue_url.unwrap();
    let queue_arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:alerts");
    sns.subscribe().topic_arn(&topic).protocol("sqs").endpoint(&queue_arn).send().await.unwrap();
    let s3 = functions::results::s3_client(&aws.sdk);
    s3.create_bucket().bucket(RESULTS_BUCKET).send().await.unwrap();

    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", aws.moto.endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("DAP_API_URL", dap_settings.api_url.clone()),
        ("DAP_SECRET_ID", dap_settings.secret_id.clone()),
        ("DAP_POLL_INTERVAL_MS", "50".into()),
        ("NAMESPACES", "canvas".into()),
        ("SKIP_TABLES", String::new()),
        ("DB_HOST", target.host.clone()),
        ("DB_PORT", target.port.to_string()),
        ("DB_NAME", target.database.clone()),
        ("DB_USER", target.user.clone()),
        ("DB_AUTH", "secret".into()),
        ("DB_SECRET_ARN", db_secret),
        ("DB_TLS", "verify-full".into()),
        ("DB_ROOT_CERT", testkit::server_ca().expect("the test server has TLS").display().to_string()),
        ("TIME_BUDGET_SECONDS", "2".into()),
        ("STACK_NAME", "cd2-e2e".into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (name, exe, instances) in FUNCTIONS {
        watch.serve(name, Path::new(exe), instances, &env, &logs).unwrap();
    }

    let run = Run { sfn: aws_sdk_sfn::Client::new(&aws.sdk) };
    let machine = run
        .sfn
        .create_state_machine()
        .name("cd2-e2e-Replication")
        .definition(definition(&topic))
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/states"))
        .send()
        .await
        .unwrap()
        .state_machine_arn;

    let first = run.start(&machine, "scheduled-1").await;
    // Once tables load, a second scheduled run starts: it must leave them to the first.
    let started = Instant::now();
    while !emulator.requests().iter().any(|r| r.contains("/data ")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no table started; logs in {}", logs.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = run.start(&machine, "scheduled-2").await;
    let skipped = run.finish(&second, Duration::from_secs(60)).await;
    assert_eq!(skipped.status, ExecutionStatus::Succeeded, "{skipped:?}");
    let output: Value = serde_json::from_str(skipped.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["skipped_because"].as_str(), Some(first.as_str()), "names the run that holds the tables");
    assert_eq!(output["tables"], json!([]));

    let done = run.finish(&first, Duration::from_secs(300)).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "one table failed, so the run did; logs in {}", logs.display());
    assert_eq!(done.error.as_deref(), Some(pipeline::RUN_FAILED));
    // The tables' results went to S3, under the prefix, with their manifest.
    let written = s3.list_objects_v2().bucket(RESULTS_BUCKET).send().await.unwrap();
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
    // Enrollments' first call met five 503s, the Retry's call one success.
    let schema_calls = emulator.requests().iter().filter(|r| r.contains("/table/enrollments/schema")).count();
    assert!(schema_calls >= 6, "{schema_calls} schema requests for enrollments");

    // The alert, as the SQS queue subscribed to the topic got it.
    let message = receive_one(&sqs, &queue).await;
    let envelope: Value = serde_json::from_str(&message).unwrap();
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
    drop(watch);
    std::fs::remove_dir_all(&logs).ok();
}

/// The one message on `queue`.
async fn receive_one(sqs: &aws_sdk_sqs::Client, queue: &str) -> String {
    let mut messages = Vec::new();
    for _ in 0..10 {
        let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
        messages.extend(got.messages.unwrap_or_default().into_iter().filter_map(|m| m.body));
        if !messages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(messages.len(), 1, "{messages:#?}");
    messages.pop().unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cd2-e2e-{}", support::uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
