//! The replication workflow as a typed state machine, and the Lambda payload contract it
//! relies on.
//!
//! # Payload contract
//!
//! ```text
//! list_tables  in:  {}            (the schedule's input)
//!              out: {"tables": [{"namespace": "canvas", "table": "accounts"}, ...]}
//! sync_table   in:  {"namespace", "table", "cursor"?}
//! init_table   out: {"namespace", "table", "status": "success" | "init_needed" | "in_progress",
//!                    "cursor"?, "counts"?: {"inserted", "updated", "deleted"}, "duration_ms"}
//! summarize    in:  {"results": [table result | failed table], "list_error"?: {"Error", "Cause"}}
//!              out: {"failed": n, "succeeded": n, "subject": "...", "message": "..."}
//! ```
//!
//! A failed table is recorded by the workflow itself (the Lambda raised an error) as
//! `{"namespace", "table", "status": "failed", "error": {"Error", "Cause"}}`; the `Error` is
//! the error type the Lambda raised (e.g. `DapError`, with the DAP error type and uuid in
//! `Cause`). A Lambda raises [`TRANSIENT_ERROR`] for what is worth retrying after a pause
//! (rate limits, DAP `ProcessingError`s, dropped connections).
//!
//! Long loads never run in one call: `init_table` and `sync_table` answer `in_progress` with
//! a cursor when their time budget is spent, and the workflow calls them again with it.

use crate::asl::{
    Catcher, Choice, ChoiceRule, Condition, Fail, Graph, Io, MapState, Pass, ResultPath, Retrier, StateMachine,
    Succeed, Task, Transition,
};
use crate::constructs::workflow::Workflow;
use serde_json::{Value, json};

/// The error name a Lambda raises for a failure worth retrying after a pause.
pub const TRANSIENT_ERROR: &str = "TransientError";

/// The placeholders the definition uses, substituted by CloudFormation.
pub const LIST_TABLES_ARN: &str = "ListTablesArn";
pub const SYNC_TABLE_ARN: &str = "SyncTableArn";
pub const INIT_TABLE_ARN: &str = "InitTableArn";
pub const SUMMARIZE_ARN: &str = "SummarizeArn";
pub const ALERTS_TOPIC_ARN: &str = "AlertsTopicArn";

/// Lambda's own transient failures, as Step Functions reports them.
const LAMBDA_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

#[derive(Clone, Debug)]
pub struct PipelineProps {
    pub map_concurrency: u32,
    pub notify_on_success: bool,
    pub run_timeout_seconds: u32,
    /// Lambda timeout of the replication functions; the task timeout sits just above it.
    pub replicate_timeout_seconds: u32,
}

fn lambda_retries() -> Vec<Retrier> {
    vec![
        Retrier::new(&LAMBDA_ERRORS, 2, 6, 2.0),
        Retrier { max_delay_seconds: Some(600), ..Retrier::new(&[TRANSIENT_ERROR], 30, 4, 2.0) },
    ]
}

/// A `lambda:invoke` task passing the state as payload and keeping only the function's answer.
fn invoke(arn_placeholder: &str, timeout_seconds: u32, catch: Vec<Catcher>, next: Transition) -> Task {
    Task {
        comment: None,
        resource: "arn:aws:states:::lambda:invoke".into(),
        io: Io {
            parameters: Some(json!({ "FunctionName": Workflow::placeholder(arn_placeholder), "Payload.$": "$" })),
            output_path: Some("$.Payload".into()),
            ..Io::default()
        },
        timeout_seconds: Some(timeout_seconds),
        retry: lambda_retries(),
        catch,
        transition: next,
    }
}

fn publish(subject: Value, message: Value, next: &str) -> Task {
    Task {
        comment: None,
        resource: "arn:aws:states:::sns:publish".into(),
        io: Io {
            parameters: Some({
                let mut p = json!({ "TopicArn": Workflow::placeholder(ALERTS_TOPIC_ARN) });
                let (sk, sv) = key_value("Subject", subject);
                let (mk, mv) = key_value("Message", message);
                p[sk] = sv;
                p[mk] = mv;
                p
            }),
            result_path: Some(ResultPath::Discard),
            ..Io::default()
        },
        timeout_seconds: Some(60),
        retry: vec![Retrier::new(&["States.ALL"], 5, 3, 2.0)],
        catch: vec![],
        transition: Transition::next(next),
    }
}

/// A JSONPath value (`$...` or `States.` intrinsic) becomes a `Key.$` field.
fn key_value(key: &str, value: Value) -> (String, Value) {
    match value.as_str() {
        Some(s) if s.starts_with('$') || s.starts_with("States.") => (format!("{key}.$"), value),
        _ => (key.to_owned(), value),
    }
}

fn status_is(status: &str, next: &str) -> ChoiceRule {
    ChoiceRule { condition: Condition::StringEquals("$.status".into(), status.into()), next: next.into() }
}

/// The per-table loop run inside the Map.
fn table_graph(props: &PipelineProps) -> Graph {
    let task_timeout = props.replicate_timeout_seconds + 60;
    let to_failed = || vec![Catcher::new(&["States.ALL"], "$.error", "TableFailed")];
    Graph::new("SyncTable")
        .state("SyncTable", invoke(SYNC_TABLE_ARN, task_timeout, to_failed(), Transition::next("AfterSync")))
        .state(
            "AfterSync",
            Choice {
                comment: Some(
                    "init_needed: the table is not in the replica yet; in_progress: call again with the cursor".into(),
                ),
                choices: vec![status_is("init_needed", "InitTable"), status_is("in_progress", "SyncTable")],
                default: Some("TableDone".into()),
            },
        )
        .state("InitTable", invoke(INIT_TABLE_ARN, task_timeout, to_failed(), Transition::next("AfterInit")))
        .state(
            "AfterInit",
            Choice {
                comment: Some("in_progress: the snapshot is partly loaded; call again with the cursor".into()),
                choices: vec![status_is("in_progress", "InitTable")],
                default: Some("TableDone".into()),
            },
        )
        .state("TableDone", Succeed::default())
        .state(
            "TableFailed",
            Pass {
                comment: Some("Record the failure and let the other tables go on".into()),
                io: Io {
                    parameters: Some(json!({
                        "namespace.$": "$.namespace",
                        "table.$": "$.table",
                        "status": "failed",
                        "error.$": "$.error",
                    })),
                    ..Io::default()
                },
                transition: Transition::End,
            },
        )
}

/// The whole run: list, replicate each table, summarize, alert on failure.
pub fn definition(props: &PipelineProps) -> StateMachine {
    let done_or_report = if props.notify_on_success { "PublishReport" } else { "Done" };
    let mut graph = Graph::new("ListTables")
        .state(
            "ListTables",
            invoke(
                LIST_TABLES_ARN,
                120,
                vec![Catcher::new(&["States.ALL"], "$.list_error", "ListTablesFailed")],
                Transition::next("ReplicateTables"),
            ),
        )
        .state(
            "ListTablesFailed",
            Pass {
                comment: Some("No table list: summarize with the error and no results".into()),
                io: Io { parameters: Some(json!({ "results": [], "list_error.$": "$.list_error" })), ..Io::default() },
                transition: Transition::next("Summarize"),
            },
        )
        .state(
            "ReplicateTables",
            MapState {
                comment: Some("One table per iteration; failures are caught inside, so the others go on".into()),
                items_path: "$.tables".into(),
                item_selector: Some(json!({
                    "namespace.$": "$$.Map.Item.Value.namespace",
                    "table.$": "$$.Map.Item.Value.table",
                })),
                max_concurrency: props.map_concurrency,
                processor: table_graph(props),
                io: Io {
                    result_selector: None,
                    parameters: None,
                    result_path: Some(ResultPath::Path("$.results".into())),
                    output_path: None,
                    input_path: None,
                },
                retry: vec![],
                catch: vec![],
                transition: Transition::next("Summarize"),
            },
        )
        .state(
            "Summarize",
            invoke(
                SUMMARIZE_ARN,
                120,
                vec![Catcher::new(&["States.ALL"], "$.summary_error", "SummaryFailed")],
                Transition::next("AnyFailed"),
            ),
        )
        .state(
            "AnyFailed",
            Choice {
                comment: None,
                choices: vec![ChoiceRule {
                    condition: Condition::NumericGreaterThan("$.failed".into(), 0.0),
                    next: "PublishAlert".into(),
                }],
                default: Some(done_or_report.into()),
            },
        )
        .state("PublishAlert", publish(json!("$.subject"), json!("$.message"), "RunFailed"))
        .state(
            "SummaryFailed",
            publish(
                json!("Canvas Data 2 replication: the summary step failed"),
                json!("States.JsonToString($.summary_error)"),
                "RunFailed",
            ),
        )
        .state(
            "RunFailed",
            Fail {
                comment: None,
                error: "ReplicationFailed".into(),
                cause: "One or more tables failed; the alert email and the Summarize step's output say which and why"
                    .into(),
            },
        )
        .state("Done", Succeed::default());
    if props.notify_on_success {
        graph = graph.state("PublishReport", publish(json!("$.subject"), json!("$.message"), "Done"));
    }
    StateMachine {
        comment: "Canvas Data 2 replica: list the DAP tables, init or sync each, summarize, alert on failure".into(),
        timeout_seconds: Some(props.run_timeout_seconds),
        graph,
    }
}
