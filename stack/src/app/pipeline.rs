//! The replication workflow as a typed state machine, over the payload contract of the
//! `contract` crate (every `$.field` below is one of its field constants).
//!
//! ```text
//! ListTables -> Skipped? -> ReplicateTables (Distributed Map, one child execution a table:
//!               |             SyncTable <-> in_progress, InitTable <-> in_progress, Failed)
//!               Skipped     -> Summarize -> AnyFailed? -> PublishAlert -> RunFailed
//! ```
//!
//! - Long loads never run in one call: `init_table` and `sync_table` answer `in_progress`
//!   with the state to call them again with; they count their calls and fail with
//!   `NoProgressError` after too many, so the loop is bounded by the handlers.
//! - Each table runs in a child execution with its own history (a table needing 40 calls
//!   is about 300 events there), so 500 tables fit in the 25,000 events a Standard
//!   execution allows. The listing is at most `MAX_TABLES` short [`contract::TableRef`]s;
//!   every table's last [`TableState`] goes to S3 (the Map's `ResultWriter`), where
//!   `summarize` reads it, so the Map's output is only where the results are.
//! - A Lambda raises `TransientError` for what a pause may cure (retried here with backoff)
//!   and a named permanent error otherwise ([`ErrorName`]); a failed table is recorded and
//!   the others go on; the summary runs whatever happened, and any failure makes the run
//!   fail after the alert is published.
//! - When an earlier run still holds the tables, `list_tables` answers `skipped_because`
//!   and this run ends at once, touching nothing.
//! - `list_tables` is the run's preflight: its listing logs in to DAP and it makes the
//!   database connection the tables' calls will make; a setting to fix in either is one
//!   `ConfigurationError`, summarized and alerted before any table is attempted.

use super::Function;
use crate::asl::{
    Catcher, Choice, ChoiceRule, Condition, Fail, Graph, Io, MapMode, MapState, Parallel, Pass, ResultPath,
    ResultWriter, Retrier, StateMachine, Succeed, Task, Transition, Wait,
};
use crate::constructs::alerts::{ALERTS_NOT_SENT, METRIC_DIMENSION, METRICS_NAMESPACE, RUNS_SUCCEEDED};
use crate::constructs::workflow::Workflow;
use contract::{ErrorName, ListRequest, RunResults, Status, Summary, SummaryRequest, TableList, TableState, path};
use serde_json::{Map, Value, json};

/// The placeholders the definition uses, substituted by CloudFormation (and the functions'
/// ARNs', [`Function::arn_placeholder`]).
pub const ALERTS_TOPIC_ARN: &str = "AlertsTopicArn";
pub const RESULTS_BUCKET: &str = "ResultsBucket";

/// Where under the results bucket each run's results go (`runs/<map run id>/...`).
pub const RESULTS_PREFIX: &str = "runs";

/// Lambda's own transient failures, as Step Functions reports them.
const LAMBDA_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// The name the whole run fails with when a table (or the listing) failed.
pub const RUN_FAILED: &str = "ReplicationFailed";

/// The name a run fails with when its alert (or report) could not be published.
pub const ALERT_NOT_SENT: &str = "AlertNotSent";

#[derive(Clone, Debug)]
pub struct PipelineProps {
    pub map_concurrency: u32,
    pub map_mode: MapMode,
    pub notify_on_success: bool,
    pub run_timeout_seconds: u32,
    /// Lambda timeout of the replication functions; the task timeout sits just above it.
    pub replicate_timeout_seconds: u32,
    /// Lambda timeout of `list_tables`; its task's sits just above it.
    pub list_timeout_seconds: u32,
    /// NAT instances that run only when needed (`network.nat = "instance-on-demand"`): the
    /// run starts them and waits until they forward before anything else.
    pub on_demand_nats: usize,
}

/// The placeholder of the `i`th on-demand NAT instance's id: `NatInstanceA`, `NatInstanceB`.
pub fn nat_placeholder(i: usize) -> String {
    format!("NatInstance{}", char::from(b'A' + u8::try_from(i).expect("two NATs at most")))
}

/// The name a run fails with when its NAT instances did not come up.
pub const NAT_NOT_READY: &str = "NatNotReady";

/// How often, and how many times, the run looks whether its NAT instances forward: a
/// stopped instance boots and sets its ready tag in about a minute; five are given.
const NAT_POLL_SECONDS: u32 = 10;
const NAT_POLLS: u32 = 30;

/// The on-demand NAT instances started, then looked at every 10 s until each is running and
/// has set its ready tag ([`crate::constructs::nat::READY_TAG`]), or failing the run with
/// [`NAT_NOT_READY`] after five minutes of looking. Each look starts them again (a no-op on
/// one running): one that was on its way down when the run began comes back up. One
/// branch of a Parallel whose output is dropped, so the run's input goes on to
/// `list_tables` as it was.
fn wake_nats(count: usize) -> Graph {
    let ids: Vec<Value> = (0..count).map(|i| json!(Workflow::placeholder(&nat_placeholder(i)))).collect();
    let ec2 = |action: &str| format!("arn:aws:states:::aws-sdk:ec2:{action}");
    let names = (0..count).map(|i| Workflow::placeholder(&nat_placeholder(i))).collect::<Vec<_>>().join(", ");
    Graph::new("NatPolls")
        .state(
            "NatPolls",
            Pass { comment: None, io: Io::default(), result: Some(json!({ "polls": 0 })), transition: Transition::next("StartNat") },
        )
        .state(
            "StartNat",
            Task {
                comment: Some("Starting a running instance is a no-op; one still stopping is tried again".into()),
                resource: ec2("startInstances"),
                io: Io {
                    parameters: Some(json!({ "InstanceIds": ids })),
                    result_path: Some(ResultPath::Discard),
                    ..Io::default()
                },
                timeout_seconds: Some(60),
                retry: vec![Retrier::new(&["States.ALL"], 10, 6, 1.5)],
                catch: vec![],
                transition: Transition::next("NatReady"),
            },
        )
        .state(
            "NatReady",
            Task {
                comment: Some("The instances running with their ready tag set".into()),
                resource: ec2("describeInstances"),
                io: Io {
                    parameters: Some(json!({
                        "InstanceIds": ids,
                        "Filters": [
                            { "Name": format!("tag:{}", crate::constructs::nat::READY_TAG), "Values": ["yes"] },
                            { "Name": "instance-state-name", "Values": ["running"] },
                        ],
                    })),
                    // Only those ready are listed, each instance its own reservation: all are
                    // ready when the last one's is there (an empty list may be left out, so
                    // no path into it here: the Choice asks whether it is present).
                    result_path: Some(ResultPath::Path("$.check".into())),
                    ..Io::default()
                },
                timeout_seconds: Some(60),
                retry: vec![Retrier::new(&["States.ALL"], 5, 3, 2.0)],
                catch: vec![],
                transition: Transition::next("IsNatUp"),
            },
        )
        .state(
            "IsNatUp",
            Choice {
                comment: None,
                choices: vec![
                    ChoiceRule {
                        condition: Condition::IsPresent(format!("$.check.Reservations[{}]", count - 1), true),
                        next: "NatUp".into(),
                    },
                    ChoiceRule {
                        condition: Condition::NumericGreaterThan("$.polls".into(), f64::from(NAT_POLLS - 1)),
                        next: "NatNotUp".into(),
                    },
                ],
                default: Some("WaitForNat".into()),
            },
        )
        .state("WaitForNat", Wait { comment: None, seconds: NAT_POLL_SECONDS, transition: Transition::next("CountNatPoll") })
        .state(
            "CountNatPoll",
            Pass {
                comment: None,
                io: Io { parameters: Some(json!({ "polls.$": "States.MathAdd($.polls, 1)" })), ..Io::default() },
                result: None,
                transition: Transition::next("StartNat"),
            },
        )
        .state("NatUp", Succeed { comment: None })
        .state(
            "NatNotUp",
            Fail {
                comment: None,
                error: NAT_NOT_READY.into(),
                cause: format!(
                    "the NAT instance(s) {names} did not start forwarding within {} minutes, so no table was attempted: see the instance's system log (EC2 console, Actions, Monitor and troubleshoot, Get system log); the next run starts it again",
                    NAT_POLL_SECONDS * NAT_POLLS / 60
                ),
            },
        )
}

fn lambda_retries() -> Vec<Retrier> {
    vec![
        Retrier::new(&LAMBDA_ERRORS, 2, 6, 2.0),
        Retrier { max_delay_seconds: Some(600), ..Retrier::new(&[ErrorName::Transient.as_str()], 30, 4, 2.0) },
    ]
}

/// `"key.$": "$.path"` entries from (key, JSONPath) pairs.
fn selector(pairs: &[(&str, &str)]) -> Value {
    let map: Map<String, Value> = pairs.iter().map(|(k, p)| (format!("{k}.$"), json!(p))).collect();
    Value::Object(map)
}

/// A `lambda:invoke` task sending `payload` (a selector; `None`: the whole state) and
/// keeping only the function's answer.
fn invoke(
    function: Function,
    payload: Option<Value>,
    timeout_seconds: u32,
    catch: Vec<Catcher>,
    next: Transition,
) -> Task {
    let arn = function.arn_placeholder().unwrap_or_else(|| panic!("{function} is no step of the workflow"));
    let mut parameters = json!({ "FunctionName": Workflow::placeholder(arn) });
    match payload {
        Some(p) => parameters["Payload"] = p,
        None => parameters["Payload.$"] = json!("$"),
    }
    Task {
        comment: None,
        resource: "arn:aws:states:::lambda:invoke".into(),
        io: Io { parameters: Some(parameters), output_path: Some("$.Payload".into()), ..Io::default() },
        timeout_seconds: Some(timeout_seconds),
        retry: lambda_retries(),
        catch,
        transition: next,
    }
}

/// Adds one to `metric` of this state machine (its answer is discarded).
fn record(metric: &str, catch: Vec<Catcher>, next: &str) -> Task {
    Task {
        comment: None,
        resource: "arn:aws:states:::aws-sdk:cloudwatch:putMetricData".into(),
        io: Io {
            parameters: Some(json!({
                "Namespace": METRICS_NAMESPACE,
                "MetricData": [{
                    "MetricName": metric,
                    "Dimensions": [{ "Name": METRIC_DIMENSION, "Value.$": "$$.StateMachine.Id" }],
                    "Value": 1,
                    "Unit": "Count",
                }],
            })),
            result_path: Some(ResultPath::Discard),
            ..Io::default()
        },
        timeout_seconds: Some(60),
        retry: vec![Retrier::new(&["States.ALL"], 5, 3, 2.0)],
        catch,
        transition: Transition::next(next),
    }
}

/// Where a publish that failed after its retries goes: the run fails as `AlertNotSent`,
/// counted for the alarm that says so by CloudWatch's own way to the topic.
fn to_alert_not_sent() -> Vec<Catcher> {
    vec![Catcher::new(&["States.ALL"], "$.alert_error", "CountAlertNotSent")]
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
        catch: to_alert_not_sent(),
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

fn status_is(status: Status, next: &str) -> ChoiceRule {
    ChoiceRule { condition: Condition::StringEquals(path(&[TableState::status]), status.as_json()), next: next.into() }
}

/// The errors a table's call can end with, recorded at `$.error` (the named ones first, so
/// the definition shows what the handlers raise; then timeouts and anything else).
fn to_table_failed() -> Vec<Catcher> {
    let error_path = path(&[TableState::error]);
    vec![
        Catcher::new(&ErrorName::permanent(), &error_path, TABLE_FAILED),
        Catcher::new(&["States.ALL"], &error_path, TABLE_FAILED),
    ]
}

/// The state a table's iteration ends in when it is replicated: its output is the table's
/// last [`TableState`], which the Map's `ResultWriter` keeps.
pub const TABLE_DONE: &str = "TableDone";
/// The state a table's iteration ends in when a call failed: its output is the table's
/// [`TableState`] with the error Step Functions caught.
pub const TABLE_FAILED: &str = "TableFailed";

/// One table: sync, or init when new, calling again while `in_progress`.
fn table_graph(props: &PipelineProps) -> Graph {
    let task_timeout = props.replicate_timeout_seconds + 60;
    Graph::new("SyncTable")
        .state(
            "SyncTable",
            invoke(Function::SyncTable, None, task_timeout, to_table_failed(), Transition::next("AfterSync")),
        )
        .state(
            "AfterSync",
            Choice {
                comment: Some(
                    "init_needed: the table is not in the replica yet; in_progress: call again with the state".into(),
                ),
                choices: vec![status_is(Status::InitNeeded, "InitTable"), status_is(Status::InProgress, "SyncTable")],
                default: Some(TABLE_DONE.into()),
            },
        )
        .state(
            "InitTable",
            invoke(Function::InitTable, None, task_timeout, to_table_failed(), Transition::next("AfterInit")),
        )
        .state(
            "AfterInit",
            Choice {
                comment: Some("in_progress: the snapshot is partly loaded; call again with the state".into()),
                choices: vec![status_is(Status::InProgress, "InitTable")],
                default: Some(TABLE_DONE.into()),
            },
        )
        .state(TABLE_DONE, Succeed::default())
        .state(
            TABLE_FAILED,
            Pass {
                comment: Some("Record the failure in the table's state and let the other tables go on".into()),
                io: Io { result_path: Some(ResultPath::Path(path(&[TableState::status]))), ..Io::default() },
                result: Some(json!(Status::Failed.as_json())),
                transition: Transition::End,
            },
        )
}

/// The whole run: list, replicate each table, summarize, alert on failure.
pub fn definition(props: &PipelineProps) -> StateMachine {
    let done_or_report = if props.notify_on_success { "PublishReport" } else { "Done" };
    let run_error = path(&[RunResults::run_error]);
    let start = if props.on_demand_nats > 0 { "WakeNat" } else { "ListTables" };
    let mut graph = Graph::new(start)
        .state(
            "ListTables",
            Task {
                comment: Some(
                    "The preflight too: DAP takes the key and the database the functions' connection, or the run ends here with one alert".into(),
                ),
                ..invoke(
                    Function::ListTables,
                    Some(selector(&[
                        (ListRequest::execution, "$$.Execution.Id"),
                        (ListRequest::state_machine, "$$.StateMachine.Id"),
                        (ListRequest::input, "$"),
                    ])),
                    props.list_timeout_seconds + 30,
                    vec![Catcher::new(&["States.ALL"], &run_error, "NoResults")],
                    Transition::next("IsSkipped"),
                )
            },
        )
        .state(
            "IsSkipped",
            Choice {
                comment: Some(
                    "An earlier run still holds the tables: end now, touching nothing; or there is no table".into(),
                ),
                choices: vec![
                    ChoiceRule {
                        condition: Condition::IsPresent(path(&[TableList::skipped_because]), true),
                        next: "Skipped".into(),
                    },
                    // A Map over no items may write no results: nothing to replicate.
                    ChoiceRule {
                        condition: Condition::IsPresent(format!("{}[0]", path(&[TableList::tables])), false),
                        next: "NothingListed".into(),
                    },
                ],
                default: Some("ReplicateTables".into()),
            },
        )
        .state("Skipped", Succeed { comment: Some("The run that holds the tables reports for both".into()) })
        .state(
            "NothingListed",
            Pass {
                comment: Some("No table to replicate: summarize an empty run".into()),
                io: Io { parameters: Some(json!({ RunResults::results: [] })), ..Io::default() },
                result: None,
                transition: Transition::next("Summarize"),
            },
        )
        .state(
            "NoResults",
            Pass {
                comment: Some("No table list (or the Map itself failed): summarize with the error".into()),
                io: Io {
                    parameters: Some({
                        let mut p = selector(&[(RunResults::run_error, &run_error)]);
                        p[RunResults::results] = json!([]);
                        p
                    }),
                    ..Io::default()
                },
                result: None,
                transition: Transition::next("Summarize"),
            },
        )
        .state(
            "ReplicateTables",
            MapState {
                comment: Some("One child execution a table; failures are caught inside, so the others go on".into()),
                items_path: path(&[TableList::tables]),
                item_selector: None,
                max_concurrency: props.map_concurrency,
                mode: props.map_mode,
                processor: table_graph(props),
                // Every table's result goes to S3, and the state keeps only where: no state
                // of the run grows with the number of tables.
                result_writer: Some(Box::new(ResultWriter {
                    bucket: Workflow::placeholder(RESULTS_BUCKET),
                    prefix: RESULTS_PREFIX.into(),
                })),
                // A child that fails as a whole (no state of its own caught it) is one
                // table's failure, in the results with its error: the others' results stay.
                // Every item may fail: the listing holds at most MAX_TABLES.
                tolerated_failure_count: Some(u32::try_from(contract::MAX_TABLES).expect("MAX_TABLES fits a u32")),
                io: Io {
                    result_selector: Some({
                        let mut p = selector(&[(RunResults::written, "$.ResultWriterDetails")]);
                        p[RunResults::results] = json!([]);
                        p
                    }),
                    result_path: Some(ResultPath::Path("$".into())),
                    ..Io::default()
                },
                retry: vec![],
                catch: vec![Catcher::new(&["States.ALL"], &run_error, "NoResults")],
                transition: Transition::next("Summarize"),
            },
        )
        .state(
            "Summarize",
            invoke(
                Function::Summarize,
                Some(selector(&[
                    (SummaryRequest::execution, "$$.Execution.Id"),
                    (SummaryRequest::state_machine, "$$.StateMachine.Id"),
                    (SummaryRequest::run, "$"),
                ])),
                120,
                vec![Catcher::new(&["States.ALL"], "$.summary_error", "SummaryFailed")],
                Transition::next("AnyFailed"),
            ),
        )
        .state(
            "AnyFailed",
            Choice {
                comment: None,
                choices: vec![
                    ChoiceRule {
                        condition: Condition::NumericGreaterThan(path(&[Summary::failed]), 0.0),
                        next: "PublishAlert".into(),
                    },
                    // A run with no table (all skipped, or none named) replicated nothing:
                    // no success for the no-success alarm.
                    ChoiceRule {
                        condition: Condition::NumericEquals(path(&[Summary::succeeded]), 0.0),
                        next: done_or_report.into(),
                    },
                ],
                default: Some("CountSuccess".into()),
            },
        )
        .state(
            "CountSuccess",
            Task {
                comment: Some(
                    "Every table replicated: one more success for the no-success alarm (a skipped run is none); a failure to count it is said by that alarm"
                        .into(),
                ),
                ..record(RUNS_SUCCEEDED, vec![Catcher::new(&["States.ALL"], "$.count_error", done_or_report)], done_or_report)
            },
        )
        .state("PublishAlert", publish(json!(path(&[Summary::subject])), json!(path(&[Summary::message])), "RunFailed"))
        .state(
            "SummaryFailed",
            publish(
                json!("Canvas Data 2 replication: the summary step failed"),
                json!("States.JsonToString($.summary_error)"),
                "RunFailed",
            ),
        )
        .state(
            "CountAlertNotSent",
            record(ALERTS_NOT_SENT, vec![Catcher::new(&["States.ALL"], "$.count_error", "AlertNotSent")], "AlertNotSent"),
        )
        .state(
            "AlertNotSent",
            Fail {
                comment: None,
                error: ALERT_NOT_SENT.into(),
                cause: "The run's alert could not be published to the alerts topic (SNS or KMS refused it: see the publish step's error); the AlertsNotSent alarm reports it"
                    .into(),
            },
        )
        .state(
            "RunFailed",
            Fail {
                comment: None,
                error: RUN_FAILED.into(),
                cause: "One or more tables failed; the alert email and the Summarize step's output say which and why"
                    .into(),
            },
        )
        .state("Done", Succeed::default());
    if props.on_demand_nats > 0 {
        graph = graph.state(
            "WakeNat",
            Parallel {
                comment: Some(
                    "Start the on-demand NAT instances and wait until they forward: the functions reach DAP through them".into(),
                ),
                branches: vec![wake_nats(props.on_demand_nats)],
                io: Io { result_path: Some(ResultPath::Discard), ..Io::default() },
                retry: vec![],
                catch: vec![Catcher::new(&["States.ALL"], &run_error, "NoResults")],
                transition: Transition::next("ListTables"),
            },
        );
    }
    if props.notify_on_success {
        graph = graph.state(
            "PublishReport",
            publish(json!(path(&[Summary::subject])), json!(path(&[Summary::message])), "Done"),
        );
    }
    StateMachine {
        comment: "Canvas Data 2 replica: list the DAP tables, init or sync each, summarize, alert on failure".into(),
        timeout_seconds: Some(props.run_timeout_seconds),
        graph,
    }
}
