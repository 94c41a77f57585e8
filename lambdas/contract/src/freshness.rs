//! How fresh each table is: `freshness.json` in the results bucket, rewritten by
//! `summarize` after every run and read by `cargo xtask status --tables`; and the metrics
//! `summarize` publishes (CloudWatch's embedded metric format, in its log, so no IAM
//! action), which the stack's alarms and dashboard watch.

use serde::{Deserialize, Serialize};

/// Now, in Unix seconds: the clock every age in the file is measured against (summarize's
/// and `status --tables`').
pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// The object's key in the results bucket.
pub const FRESHNESS_KEY: &str = "freshness.json";

/// Every table a run has had, oldest knowledge kept: a table a run did not have (skipped,
/// or a run of chosen tables) keeps what the last run that had it said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// When `summarize` wrote it (Unix seconds).
    pub written_s: i64,
    pub tables: Vec<TableFreshness>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFreshness {
    pub namespace: String,
    pub table: String,
    /// The DAP timestamp the replica's table is current to (Unix seconds); none before its
    /// first success.
    #[serde(default)]
    pub current_to_s: Option<i64>,
    /// When a run first had it (Unix seconds; 0 in files written before it was kept): the
    /// age of a table never replicated counts from then.
    #[serde(default)]
    pub first_seen_s: i64,
    /// About how many rows it held at its last success (PostgreSQL's statistics).
    #[serde(default)]
    pub rows: Option<u64>,
    /// The last run that had it: its execution's name, when it ended (Unix seconds), and
    /// how it went for this table: `success`, or the error's name.
    pub last_run: String,
    pub last_run_s: i64,
    pub last_outcome: String,
}

impl TableFreshness {
    /// Hours from the DAP timestamp it is current to until `now_s`; for a table never
    /// replicated, from when a run first had it.
    pub fn age_hours(&self, now_s: i64) -> Option<f64> {
        self.current_to_s.or(Some(self.first_seen_s).filter(|s| *s > 0)).map(|t| (now_s - t).max(0) as f64 / 3600.0)
    }
}

/// The runs' own CloudWatch metrics: one namespace, watched by the stack's alarms and
/// dashboard, written by the workflow (runs counted) and by `summarize`.
pub mod metrics {
    pub const NAMESPACE: &str = "cd2-aws";
    /// The dimension every metric carries: the state machine's ARN.
    pub const STATE_MACHINE: &str = "StateMachineArn";
    /// The dimension of a table's own metrics (`canvas_logs.web_logs`).
    pub const TABLE: &str = "Table";
    pub const TABLES_SUCCEEDED: &str = "TablesSucceeded";
    pub const TABLES_FAILED: &str = "TablesFailed";
    pub const ROWS_INSERTED: &str = "RowsInserted";
    pub const ROWS_UPDATED: &str = "RowsUpdated";
    pub const ROWS_DELETED: &str = "RowsDeleted";
    /// Hours since the DAP timestamp of the table least current (of those runs still have).
    pub const OLDEST_TABLE_AGE_HOURS: &str = "OldestTableAgeHours";
    /// Hours since a table's DAP timestamp, for the tables whose data DAP keeps only a while
    /// (the `canvas_logs` namespace), each under its [`TABLE`] dimension.
    pub const TABLE_AGE_HOURS: &str = "TableAgeHours";
}
