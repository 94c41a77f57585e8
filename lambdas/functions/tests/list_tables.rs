//! `list_tables` against the DAP emulator and moto (Secrets Manager for the DAP key, Step
//! Functions for the overlap check).

mod support;

use contract::{ErrorName, ListRequest, RunInput, TableRef};
use emulator::{Endpoint, FaultKind, Settings};
use functions::list::Lister;
use support::{Aws, demo_emulator};

async fn lister(aws: &Aws, emulator: &emulator::Emulator, skip: &[&str]) -> Lister {
    let settings = aws.dap_settings(emulator).await;
    Lister {
        dap: functions::dap_client(&settings, &aws.secrets()).await.expect("the DAP key is read"),
        sfn: aws_sdk_sfn::Client::new(&aws.sdk),
        namespaces: vec!["canvas".into()],
        skip: skip.iter().map(|s| s.to_string()).collect(),
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
    let lister = lister(&aws, &emulator, &[]).await;

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
    let lister = lister(&aws, &emulator, &[]).await;
    emulator.inject(Endpoint::ListTables, FaultKind::Status(503, "ServiceUnavailable".into()), 10);
    let e = lister.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Transient, "{e}");

    // A DAP key that DAP refuses.
    let name = format!("cd2-test/bad-{}", support::uuid_like());
    aws.put_secret(&name, serde_json::json!({"client_id": "us-east-1#nobody", "client_secret": "wrong-secret-value"}))
        .await;
    let settings = functions::settings::DapSettings { secret_id: name, ..aws.dap_settings(&emulator).await };
    let bad = Lister { dap: functions::dap_client(&settings, &aws.secrets()).await.unwrap(), ..lister };
    let e = bad.handle(request(&machine, &execution), support::in_a_minute()).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Configuration, "a refused key is a setting to fix, never retried: {e}");
    assert!(!e.to_string().contains("wrong-secret-value"), "{e}");

    // No DAP key stored at all.
    let missing = functions::settings::DapSettings { secret_id: "cd2-test/none".into(), ..settings };
    let e = functions::dap_client(&missing, &aws.secrets()).await.unwrap_err();
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
    let lister = lister(&aws, &emulator, &[]).await;
    emulator.inject(Endpoint::ListTables, FaultKind::TooManyRequests { retry_after: Some(100) }, 1);
    let started = std::time::Instant::now();
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let e = lister.handle(request(&machine, &execution), soon).await.unwrap_err();
    assert_eq!(e.name, ErrorName::Transient, "{e}");
    assert!(e.detail.message.contains("still waiting on DAP"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered before the deadline");
}
