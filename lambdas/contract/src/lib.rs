//! The JSON the replication state machine and its Lambdas pass each other.
//!
//! One set of serde types, used by the handlers (to read and answer) and by the state
//! machine definition in `stack/` (for every `$.field` path and every value a Choice
//! compares), so that a field is named once: [`payload!`] makes each field's JSON name an
//! associated constant of its type (`TableState::status == "status"`).
//!
//! ```text
//! execution input   RunInput        {"tables"?: [{"namespace", "table"}]}
//! list_tables       ListRequest  -> TableList {"tables": [TableState], "skipped_because"?}
//! sync_table,       TableState   -> TableState (status, cursor, calls, counts, ...)
//! init_table
//! summarize         SummaryRequest -> Summary {"failed", "succeeded", "subject", "message"}
//! ```
//!
//! A table whose Lambda raised an error is recorded by the workflow itself: its last
//! [`TableState`] with `status: "failed"` and the `error` Step Functions caught.

pub mod archive;
mod bootstrap;
pub mod env;
mod error;
pub mod freshness;
mod retry;

pub use bootstrap::{BootstrapProperties, PasswordReader};
pub use error::{ErrorDetail, ErrorName};
pub use retry::{Backoff, Pauses};

use serde::{Deserialize, Serialize};

/// Declares a payload struct and, for each field, an associated constant holding its JSON
/// name, so that the state machine's paths are built from the same token as the field.
/// Fields keep their Rust names in JSON (no `rename`).
macro_rules! payload {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty ),*
        }

        #[allow(non_upper_case_globals)]
        impl $name {
            $(
                #[doc = concat!("The JSON name of `", stringify!($field), "`.")]
                pub const $field: &'static str = stringify!($field);
            )*
        }
    };
}

/// A JSONPath into the state: `path(&[TableState::counts, Counts::inserted])` is `$.counts.inserted`.
pub fn path(fields: &[&str]) -> String {
    fields.iter().fold(String::from("$"), |p, f| p + "." + f)
}

payload! {
    /// A table of a DAP namespace.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct TableRef {
        pub namespace: String,
        pub table: String,
    }
}

impl TableRef {
    /// A table from its two names, for callers that hold them apart (a test fixture, a
    /// constant, a command-line argument): the struct literal would need an owned `String`
    /// for each.
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), table: table.into() }
    }
}

/// `namespace.table`, as a command line names a table.
impl std::str::FromStr for TableRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('.') {
            Some((namespace, table)) if !namespace.is_empty() && !table.is_empty() && !table.contains('.') => {
                Ok(Self::new(namespace, table))
            }
            _ => Err(format!("`{s}` is not NAMESPACE.TABLE, e.g. canvas.accounts")),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace, self.table)
    }
}

/// A DAP namespace: the one list of them, which the configuration, the replicator and the
/// stack's logs-retention rules share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    Canvas,
    /// The logs DAP keeps only 30 days.
    CanvasLogs,
    Catalog,
    NewQuizzes,
}

impl Namespace {
    pub const ALL: [Namespace; 4] =
        [Namespace::Canvas, Namespace::CanvasLogs, Namespace::Catalog, Namespace::NewQuizzes];

    /// DAP's name, which is also the replica's schema.
    pub const fn as_str(self) -> &'static str {
        match self {
            Namespace::Canvas => "canvas",
            Namespace::CanvasLogs => "canvas_logs",
            Namespace::Catalog => "catalog",
            Namespace::NewQuizzes => "new_quizzes",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// Every name, for messages: `canvas, canvas_logs, catalog, new_quizzes`.
    pub fn names() -> String {
        Self::ALL.map(Namespace::as_str).join(", ")
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

payload! {
    /// The DAP credential as its Secrets Manager secret holds it (JSON): `set-key` writes
    /// it, the functions read each field by these names. Its `Debug` hides the secret.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct DapCredential {
        pub client_id: String,
        pub client_secret: String,
    }
}

impl std::fmt::Debug for DapCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DapCredential").field("client_id", &self.client_id).field("client_secret", &"(hidden)").finish()
    }
}

payload! {
    /// The execution's input: `{}` from the schedule; `tables` replicates only those
    /// (`cargo xtask run --table canvas.accounts`).
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RunInput {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tables: Option<Vec<TableRef>>,
    }
}

payload! {
    /// What the workflow sends `list_tables`: the execution input and who is asking, for
    /// the overlap check.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ListRequest {
        /// `$$.Execution.Id`: this execution's ARN.
        pub execution: String,
        /// `$$.StateMachine.Id`: the state machine's ARN.
        pub state_machine: String,
        pub input: RunInput,
    }
}

/// The most tables one run replicates: `list_tables`' answer names them all in one state,
/// which Step Functions caps at 256 KiB; at this many, with the longest names, it stays
/// under half of that (`tests::the_longest_table_list_fits_in_half_a_state`).
pub const MAX_TABLES: usize = 1000;

/// Step Functions' limit on a state's input or output, in bytes.
pub const STATE_LIMIT: usize = 256 * 1024;

/// The longest DAP job id (or error type or uuid) carried: DAP's are uuids; the DAP client
/// refuses longer job ids, and error lines cut longer types and uuids.
pub const MAX_DAP_ID: usize = 64;

payload! {
    /// `list_tables`' answer: the tables, each the input of one Map item (a [`TableRef`]
    /// is a [`TableState`] not yet called: its other fields have defaults). At most
    /// [`MAX_TABLES`].
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TableList {
        pub tables: Vec<TableRef>,
        /// Set when an earlier execution still runs: this run touches nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub skipped_because: Option<String>,
    }
}

/// Where a table stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Listed, not called yet.
    #[default]
    Pending,
    Success,
    /// Not in the replica yet: call `init_table`.
    InitNeeded,
    /// The call's time budget ran out: call again with the state it answered.
    InProgress,
    /// Set by the workflow when a call raised an error (see [`TableState::error`]).
    Failed,
}

impl Status {
    /// The JSON string, as a Choice compares it.
    pub fn as_json(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

payload! {
    /// Rows changed in the replica.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Counts {
        pub inserted: u64,
        pub updated: u64,
        pub deleted: u64,
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
    }
}

payload! {
    /// One table's progress through the run: the input and the answer of `sync_table` and
    /// `init_table`, carried from call to call, and the table's line in the summary.
    /// Kept small: 500 of them must fit in one 256 KB state.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TableState {
        pub namespace: String,
        pub table: String,
        #[serde(default)]
        pub status: Status,
        /// The DAP job being loaded, while `in_progress`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cursor: Option<String>,
        /// Calls made for this table in this run.
        #[serde(default)]
        pub calls: u32,
        /// Calls in a row that loaded nothing (a DAP job still running, a table busy).
        #[serde(default)]
        pub idle_calls: u32,
        #[serde(default)]
        pub counts: Counts,
        /// When the first call started (Unix milliseconds).
        #[serde(default)]
        pub started_ms: u64,
        /// From the first call's start to the last call's end.
        #[serde(default)]
        pub duration_ms: u64,
        /// Schema changes applied, for the report.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub notes: Vec<String>,
        /// What Step Functions caught when a call failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error: Option<CaughtError>,
        /// On success: the DAP timestamp the replica's table is now current to (Unix seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub current_to_s: Option<i64>,
        /// On success: about how many rows the table holds (PostgreSQL's statistics, not a count).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rows: Option<u64>,
        /// Rebuild the table from the archive rather than from DAP (`cargo xtask restore`
        /// asks `init_table` so, from inside the stack's network); the workflow never sets it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub restore: bool,
    }
}

impl TableState {
    /// One line for a table whose part of a run has ended (its error, or what it loaded),
    /// as `cargo xtask run` and the demo print each table when it finishes.
    pub fn finished_line(&self) -> String {
        let outcome = match &self.error {
            Some(e) => {
                // DAP's error type and uuid stay: they are what Instructure support asks for.
                let detail = ErrorDetail::parse(&e.message());
                let dap = match (&detail.dap_type, &detail.dap_uuid) {
                    (Some(kind), Some(uuid)) => format!(" (DAP error type {kind}, uuid {uuid})"),
                    (Some(kind), None) => format!(" (DAP error type {kind})"),
                    _ => String::new(),
                };
                format!("failed  {}: {}{dap}", e.Error, detail.message)
            }
            None => format!(
                "{}  +{} ~{} -{} rows, {} calls, {:.1} s",
                self.status.as_json(),
                self.counts.inserted,
                self.counts.updated,
                self.counts.deleted,
                self.calls,
                self.duration_ms as f64 / 1000.0
            ),
        };
        self.line(&outcome)
    }

    /// `outcome` after the table's name, in a column.
    pub fn line(&self, outcome: &str) -> String {
        format!("  {:<40} {outcome}", self.table_ref().to_string())
    }

    /// Schema notes kept (the latest), and the characters kept of each: with the caps of
    /// the other fields they bound a table's state (`tests::a_table_state_at_every_cap_is_small`).
    pub const MAX_NOTES: usize = 5;
    pub const MAX_NOTE_CHARS: usize = 200;

    pub fn new(table: &TableRef) -> Self {
        Self { namespace: table.namespace.clone(), table: table.table.clone(), ..Self::default() }
    }

    /// Adds a schema note for the report: on one line, cut at [`Self::MAX_NOTE_CHARS`],
    /// once (a call after an `in_progress` one notes the same change again, since the table
    /// counts as loaded with the new schema only when its load completes), keeping the
    /// latest [`Self::MAX_NOTES`].
    pub fn add_note(&mut self, note: &str) {
        let note: String =
            note.chars().map(|c| if c.is_control() { ' ' } else { c }).take(Self::MAX_NOTE_CHARS).collect();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
        let excess = self.notes.len().saturating_sub(Self::MAX_NOTES);
        self.notes.drain(..excess);
    }

    pub fn table_ref(&self) -> TableRef {
        TableRef { namespace: self.namespace.clone(), table: self.table.clone() }
    }
}

payload! {
    /// An error as a Catch records it (`ResultPath`); the names are Step Functions'.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[allow(non_snake_case)]
    pub struct CaughtError {
        /// The error name: a Lambda's `errorType`, or `States.Timeout` and friends.
        #[serde(default)]
        pub Error: String,
        /// For a Lambda error, a JSON object with `errorType` and `errorMessage`.
        #[serde(default)]
        pub Cause: String,
    }
}

impl CaughtError {
    /// The Lambda's `errorMessage` when `Cause` holds one, else `Cause` itself.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.Cause)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| self.Cause.clone())
    }
}

payload! {
    /// The state the Map hands on: where its `ResultWriter` put every table's last state
    /// (or, given directly, the states themselves), or why there are none.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RunResults {
        #[serde(default)]
        pub results: Vec<TableState>,
        /// The manifest of the results a Distributed Map wrote to S3.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub written: Option<ResultWriterDetails>,
        /// Listing the tables (or running the Map) failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub run_error: Option<CaughtError>,
    }
}

payload! {
    /// Where a Distributed Map's `ResultWriter` wrote the manifest of its results
    /// (Step Functions' `ResultWriterDetails`; the names are Step Functions').
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[allow(non_snake_case)]
    pub struct ResultWriterDetails {
        pub Bucket: String,
        pub Key: String,
    }
}

/// The manifest a `ResultWriter` writes: which result files hold which children.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultManifest {
    pub result_files: ResultFiles,
}

/// The result files by how the children ended (Step Functions' names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub struct ResultFiles {
    #[serde(default)]
    pub succeeded: Vec<ResultFile>,
    #[serde(default)]
    pub failed: Vec<ResultFile>,
    #[serde(default)]
    pub pending: Vec<ResultFile>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultFile {
    pub key: String,
    #[serde(default)]
    pub size: u64,
}

/// One child execution in a result file (a JSON array of them): its input and output as
/// JSON text, or for a failed one the error and cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildResult {
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

payload! {
    /// What the workflow sends `summarize`.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SummaryRequest {
        /// `$$.Execution.Id`.
        pub execution: String,
        /// `$$.StateMachine.Id`: the dimension of the run's metrics.
        #[serde(default)]
        pub state_machine: String,
        pub run: RunResults,
    }
}

payload! {
    /// `summarize`'s answer: the workflow publishes `subject` and `message` when
    /// `failed > 0` (or always, with `notify_on_success`), then fails the execution.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Summary {
        pub failed: u32,
        pub succeeded: u32,
        pub subject: String,
        pub message: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_constants_are_the_json_names() {
        let state = TableState {
            cursor: Some("job".into()),
            notes: vec!["n".into()],
            error: Some(CaughtError::default()),
            ..TableState::new(&TableRef { namespace: "canvas".into(), table: "accounts".into() })
        };
        let v = serde_json::to_value(&state).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                TableState::namespace,
                TableState::table,
                TableState::status,
                TableState::cursor,
                TableState::calls,
                TableState::idle_calls,
                TableState::counts,
                TableState::started_ms,
                TableState::duration_ms,
                TableState::notes,
                TableState::error,
            ]
        );
        assert_eq!(path(&[TableState::counts, Counts::inserted]), "$.counts.inserted");
        assert_eq!(Status::InitNeeded.as_json(), "init_needed");
    }

    #[test]
    fn a_first_call_needs_only_the_table() {
        let listed = TableRef { namespace: "canvas".into(), table: "users".into() };
        let state: TableState = serde_json::from_value(serde_json::to_value(&listed).unwrap()).unwrap();
        assert_eq!(state, TableState::new(&listed));
        assert_eq!(state.status, Status::Pending);
        assert_eq!(state.calls, 0);
    }

    /// DAP's longest namespace, and the longest table name the replica takes (PostgreSQL's
    /// 63-byte identifiers; the DAP client refuses longer ones).
    const LONGEST_NAMESPACE: &str = "new_quizzes";
    const LONGEST_TABLE: usize = 63;

    #[test]
    fn notes_are_kept_once_short_and_latest() {
        let mut state = TableState::default();
        for i in 0..8 {
            state.add_note(&format!("note {i}"));
            state.add_note(&format!("note {i}"));
        }
        assert_eq!(state.notes, ["note 3", "note 4", "note 5", "note 6", "note 7"]);
        state.add_note(&format!("a\nb{}", "x".repeat(500)));
        assert_eq!(state.notes.last().unwrap().chars().count(), TableState::MAX_NOTE_CHARS);
        assert!(state.notes.last().unwrap().starts_with("a b"));
    }

    /// One table's state with every field at its cap: the child execution's state, and its
    /// line in the results the Map writes to S3.
    #[test]
    fn a_table_state_at_every_cap_is_small() {
        let mut state = TableState {
            namespace: LONGEST_NAMESPACE.into(),
            table: "t".repeat(LONGEST_TABLE),
            status: Status::InitNeeded,
            cursor: Some("j".repeat(crate::MAX_DAP_ID)),
            calls: u32::MAX,
            idle_calls: u32::MAX,
            counts: Counts { inserted: u64::MAX, updated: u64::MAX, deleted: u64::MAX },
            started_ms: u64::MAX,
            duration_ms: u64::MAX,
            current_to_s: Some(i64::MIN),
            rows: Some(u64::MAX),
            restore: true,
            ..TableState::default()
        };
        // The widest character JSON writes: a control character would be `\u001f` (6
        // bytes), but notes have none; 4-byte characters are the widest left.
        for i in 0..TableState::MAX_NOTES {
            state.add_note(&format!("{i}{}", "\u{1F600}".repeat(TableState::MAX_NOTE_CHARS)));
        }
        let detail = ErrorDetail {
            message: "\u{1F600}".repeat(10_000),
            dap_type: Some("T".repeat(10_000)),
            dap_uuid: Some("u".repeat(10_000)),
        };
        let cause = serde_json::json!({"errorType": "TransientError", "errorMessage": detail.to_line()});
        state.error = Some(CaughtError { Error: "States.TaskFailed".into(), Cause: cause.to_string() });
        let bytes = serde_json::to_vec(&state).unwrap().len();
        assert!(bytes < 8 * 1024, "{bytes} bytes");
        // In the Map's results a state is JSON text inside JSON: quotes escaped, at most double.
        assert!(2 * bytes * MAX_TABLES > STATE_LIMIT, "the results could never be a state: they go to S3");
    }

    #[test]
    fn the_longest_table_list_fits_in_half_a_state() {
        let table = TableRef { namespace: LONGEST_NAMESPACE.into(), table: "t".repeat(LONGEST_TABLE) };
        let list = TableList { tables: vec![table; MAX_TABLES], skipped_because: None };
        let bytes = serde_json::to_vec(&list).unwrap().len();
        assert!(bytes < STATE_LIMIT / 2, "{MAX_TABLES} tables: {bytes} bytes");
    }

    #[test]
    fn a_caught_lambda_error_gives_its_message() {
        let caught = CaughtError {
            Error: "DapError".into(),
            Cause: json!({"errorType": "DapError", "errorMessage": "no such table"}).to_string(),
        };
        assert_eq!(caught.message(), "no such table");
        let timeout = CaughtError { Error: "States.Timeout".into(), Cause: "timed out".into() };
        assert_eq!(timeout.message(), "timed out");
    }
}
