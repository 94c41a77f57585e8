//! A typed Amazon States Language (JSONPath flavour) and its checks.
//!
//! The shapes make some mistakes impossible (a Choice cannot `End`, a state either has a
//! `Next` or ends); [`check`] catches the rest before emit: dangling `Next`s, unreachable
//! states, graphs that never end, misplaced `States.ALL`.

mod check;
mod mermaid;

pub use check::{AslError, check};
pub use mermaid::to_mermaid;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

/// A whole state machine definition.
#[derive(Clone, Debug)]
pub struct StateMachine {
    pub comment: String,
    pub timeout_seconds: Option<u32>,
    pub graph: Graph,
}

impl StateMachine {
    /// Whether a Map state anywhere runs its items as child executions.
    pub fn has_distributed_map(&self) -> bool {
        fn any(g: &Graph) -> bool {
            g.states.values().any(|s| match s {
                State::Map(m) => m.mode == MapMode::Distributed || any(&m.processor),
                State::Parallel(p) => p.branches.iter().any(any),
                _ => false,
            })
        }
        any(&self.graph)
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("Comment".into(), json!(self.comment));
        if let Some(t) = self.timeout_seconds {
            out.insert("TimeoutSeconds".into(), json!(t));
        }
        self.graph.write(&mut out);
        Value::Object(out)
    }
}

/// A set of states with a start: the machine itself, a Map's processor, a Parallel branch.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub start_at: String,
    pub states: IndexMap<String, State>,
}

impl Graph {
    pub fn new(start_at: &str) -> Self {
        Self { start_at: start_at.into(), states: IndexMap::new() }
    }

    pub fn state(mut self, name: &str, state: impl Into<State>) -> Self {
        self.states.insert(name.into(), state.into());
        self
    }

    fn write(&self, out: &mut Map<String, Value>) {
        out.insert("StartAt".into(), json!(self.start_at));
        let states: Map<String, Value> = self.states.iter().map(|(name, s)| (name.clone(), s.to_json())).collect();
        out.insert("States".into(), Value::Object(states));
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        self.write(&mut out);
        Value::Object(out)
    }
}

/// Where a state goes when it finishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Next(String),
    End,
}

impl Transition {
    pub fn next(name: &str) -> Self {
        Transition::Next(name.into())
    }

    fn write(&self, out: &mut Map<String, Value>) {
        match self {
            Transition::Next(n) => out.insert("Next".into(), json!(n)),
            Transition::End => out.insert("End".into(), json!(true)),
        };
    }
}

/// `ResultPath`: where a state's result goes in its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultPath {
    Path(String),
    /// `null`: keep the input, drop the result.
    Discard,
}

impl ResultPath {
    fn to_json(&self) -> Value {
        match self {
            ResultPath::Path(p) => json!(p),
            ResultPath::Discard => Value::Null,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u32,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u32>,
}

impl Retrier {
    pub fn new(errors: &[&str], interval_seconds: u32, max_attempts: u32, backoff_rate: f64) -> Self {
        Self {
            error_equals: errors.iter().map(|e| (*e).to_owned()).collect(),
            interval_seconds,
            max_attempts,
            backoff_rate,
            max_delay_seconds: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "ErrorEquals": self.error_equals,
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
        });
        if let Some(d) = self.max_delay_seconds {
            v["MaxDelaySeconds"] = json!(d);
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub result_path: Option<ResultPath>,
    pub next: String,
}

impl Catcher {
    pub fn new(errors: &[&str], result_path: &str, next: &str) -> Self {
        Self {
            error_equals: errors.iter().map(|e| (*e).to_owned()).collect(),
            result_path: Some(ResultPath::Path(result_path.into())),
            next: next.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "ErrorEquals": self.error_equals, "Next": self.next });
        if let Some(r) = &self.result_path {
            v["ResultPath"] = r.to_json();
        }
        v
    }
}

/// The input/output processing fields that most state types share.
#[derive(Clone, Debug, Default)]
pub struct Io {
    pub input_path: Option<String>,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub result_path: Option<ResultPath>,
    pub output_path: Option<String>,
}

impl Io {
    fn write(&self, out: &mut Map<String, Value>, parameters_key: &str) {
        if let Some(p) = &self.input_path {
            out.insert("InputPath".into(), json!(p));
        }
        if let Some(p) = &self.parameters {
            out.insert(parameters_key.into(), p.clone());
        }
        if let Some(p) = &self.result_selector {
            out.insert("ResultSelector".into(), p.clone());
        }
        if let Some(p) = &self.result_path {
            out.insert("ResultPath".into(), p.to_json());
        }
        if let Some(p) = &self.output_path {
            out.insert("OutputPath".into(), json!(p));
        }
    }
}

#[derive(Clone, Debug)]
pub struct Task {
    pub comment: Option<String>,
    pub resource: String,
    pub io: Io,
    pub timeout_seconds: Option<u32>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

#[derive(Clone, Debug)]
pub struct MapState {
    pub comment: Option<String>,
    pub items_path: String,
    /// Built from each item (`ItemSelector`); `io.parameters` is not used by Map.
    pub item_selector: Option<Value>,
    pub max_concurrency: u32,
    pub mode: MapMode,
    pub processor: Graph,
    /// A Distributed Map's results written to S3 instead of returned as its output, which
    /// then only says where they are (`ResultWriterDetails`): the way past the 256 KiB a
    /// state may hold, whatever the number of items.
    pub result_writer: Option<Box<ResultWriter>>,
    /// A Distributed Map's `ToleratedFailureCount`: at the most items the Map is given,
    /// children that fail as a whole are recorded in the results, and the Map (with every
    /// other result) goes on. (A count rather than `ToleratedFailurePercentage`: statelint
    /// wants that one an integer, moto's parser a decimal.)
    pub tolerated_failure_count: Option<u32>,
    pub io: Io,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

/// `ResultWriter`: the bucket and key prefix a Distributed Map writes its children's
/// results under (`<prefix>/<map run id>/manifest.json` and `SUCCEEDED_0.json`, ...).
#[derive(Clone, Debug)]
pub struct ResultWriter {
    /// A bucket name, or a `${Placeholder}` substituted by CloudFormation.
    pub bucket: String,
    pub prefix: String,
}

/// How a Map runs its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapMode {
    /// In the parent execution: every iteration's events count against its 25,000.
    Inline,
    /// Each item a child Standard execution with its own history (and its own quotas).
    Distributed,
}

#[derive(Clone, Debug)]
pub struct Parallel {
    pub comment: Option<String>,
    pub branches: Vec<Graph>,
    pub io: Io,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

/// A Choice rule's test (the subset of comparison operators the workflows use).
#[derive(Clone, Debug)]
pub enum Condition {
    StringEquals(String, String),
    NumericGreaterThan(String, f64),
    NumericEquals(String, f64),
    BooleanEquals(String, bool),
    IsPresent(String, bool),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    fn to_json(&self) -> Value {
        match self {
            Condition::StringEquals(v, s) => json!({ "Variable": v, "StringEquals": s }),
            Condition::NumericGreaterThan(v, n) => {
                json!({ "Variable": v, "NumericGreaterThan": n })
            }
            Condition::NumericEquals(v, n) => json!({ "Variable": v, "NumericEquals": n }),
            Condition::BooleanEquals(v, b) => json!({ "Variable": v, "BooleanEquals": b }),
            Condition::IsPresent(v, b) => json!({ "Variable": v, "IsPresent": b }),
            Condition::And(cs) => {
                json!({ "And": cs.iter().map(Condition::to_json).collect::<Vec<_>>() })
            }
            Condition::Or(cs) => {
                json!({ "Or": cs.iter().map(Condition::to_json).collect::<Vec<_>>() })
            }
            Condition::Not(c) => json!({ "Not": c.to_json() }),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
}

#[derive(Clone, Debug)]
pub struct Choice {
    pub comment: Option<String>,
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Pass {
    pub comment: Option<String>,
    pub io: Io,
    /// A fixed result, placed at `io.result_path`.
    pub result: Option<Value>,
    pub transition: Transition,
}

#[derive(Clone, Debug)]
pub struct Wait {
    pub comment: Option<String>,
    pub seconds: u32,
    pub transition: Transition,
}

#[derive(Clone, Debug, Default)]
pub struct Succeed {
    pub comment: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Fail {
    pub comment: Option<String>,
    pub error: String,
    pub cause: String,
}

#[derive(Clone, Debug)]
pub enum State {
    Task(Task),
    Map(MapState),
    Choice(Choice),
    Wait(Wait),
    Pass(Pass),
    Parallel(Parallel),
    Succeed(Succeed),
    Fail(Fail),
}

macro_rules! state_from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for State {
            fn from(s: $ty) -> Self {
                State::$variant(s)
            }
        }
    )*};
}
state_from!(
    Task(Task),
    Map(MapState),
    Choice(Choice),
    Wait(Wait),
    Pass(Pass),
    Parallel(Parallel),
    Succeed(Succeed),
    Fail(Fail)
);

fn write_errors(out: &mut Map<String, Value>, retry: &[Retrier], catch: &[Catcher]) {
    if !retry.is_empty() {
        out.insert("Retry".into(), Value::Array(retry.iter().map(Retrier::to_json).collect()));
    }
    if !catch.is_empty() {
        out.insert("Catch".into(), Value::Array(catch.iter().map(Catcher::to_json).collect()));
    }
}

impl State {
    pub fn type_name(&self) -> &'static str {
        match self {
            State::Task(_) => "Task",
            State::Map(_) => "Map",
            State::Choice(_) => "Choice",
            State::Wait(_) => "Wait",
            State::Pass(_) => "Pass",
            State::Parallel(_) => "Parallel",
            State::Succeed(_) => "Succeed",
            State::Fail(_) => "Fail",
        }
    }

    fn comment(&self) -> Option<&String> {
        match self {
            State::Task(s) => s.comment.as_ref(),
            State::Map(s) => s.comment.as_ref(),
            State::Choice(s) => s.comment.as_ref(),
            State::Wait(s) => s.comment.as_ref(),
            State::Pass(s) => s.comment.as_ref(),
            State::Parallel(s) => s.comment.as_ref(),
            State::Succeed(s) => s.comment.as_ref(),
            State::Fail(s) => s.comment.as_ref(),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("Type".into(), json!(self.type_name()));
        if let Some(c) = self.comment() {
            out.insert("Comment".into(), json!(c));
        }
        match self {
            State::Task(t) => {
                out.insert("Resource".into(), json!(t.resource));
                t.io.write(&mut out, "Parameters");
                if let Some(s) = t.timeout_seconds {
                    out.insert("TimeoutSeconds".into(), json!(s));
                }
                write_errors(&mut out, &t.retry, &t.catch);
                t.transition.write(&mut out);
            }
            State::Map(m) => {
                out.insert("ItemsPath".into(), json!(m.items_path));
                if let Some(s) = &m.item_selector {
                    out.insert("ItemSelector".into(), s.clone());
                }
                out.insert("MaxConcurrency".into(), json!(m.max_concurrency));
                let mut processor = m.processor.to_json();
                processor["ProcessorConfig"] = match m.mode {
                    MapMode::Inline => json!({ "Mode": "INLINE" }),
                    MapMode::Distributed => json!({ "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" }),
                };
                out.insert("ItemProcessor".into(), processor);
                if let Some(n) = m.tolerated_failure_count {
                    out.insert("ToleratedFailureCount".into(), json!(n));
                }
                if let Some(w) = &m.result_writer {
                    out.insert(
                        "ResultWriter".into(),
                        json!({
                            "Resource": "arn:aws:states:::s3:putObject",
                            "Parameters": { "Bucket": w.bucket, "Prefix": w.prefix },
                        }),
                    );
                }
                m.io.write(&mut out, "Parameters");
                write_errors(&mut out, &m.retry, &m.catch);
                m.transition.write(&mut out);
            }
            State::Choice(c) => {
                let rules: Vec<Value> = c
                    .choices
                    .iter()
                    .map(|r| {
                        let mut v = r.condition.to_json();
                        v["Next"] = json!(r.next);
                        v
                    })
                    .collect();
                out.insert("Choices".into(), Value::Array(rules));
                if let Some(d) = &c.default {
                    out.insert("Default".into(), json!(d));
                }
            }
            State::Wait(w) => {
                out.insert("Seconds".into(), json!(w.seconds));
                w.transition.write(&mut out);
            }
            State::Pass(p) => {
                if let Some(r) = &p.result {
                    out.insert("Result".into(), r.clone());
                }
                p.io.write(&mut out, "Parameters");
                p.transition.write(&mut out);
            }
            State::Parallel(p) => {
                out.insert("Branches".into(), Value::Array(p.branches.iter().map(Graph::to_json).collect()));
                p.io.write(&mut out, "Parameters");
                write_errors(&mut out, &p.retry, &p.catch);
                p.transition.write(&mut out);
            }
            State::Succeed(_) => {}
            State::Fail(f) => {
                out.insert("Error".into(), json!(f.error));
                out.insert("Cause".into(), json!(f.cause));
            }
        }
        Value::Object(out)
    }
}
