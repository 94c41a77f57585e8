//! Replicates DAP tables into PostgreSQL with the official client's layout, so a database
//! moves freely between this tool and `dap`, and without its weaknesses:
//!
//! - **Init** loads each object in its own transaction, together with a row that records
//!   it as loaded, into a staging table; the table appears in its namespace, with its
//!   `instructure_dap.table_sync` row, in one final transaction. A crash leaves either no
//!   table or a state the next call resumes exactly; users never see half a table.
//! - **Sync** applies each object's upserts then deletes in one transaction, and advances
//!   `table_sync` in the transaction of the last object.
//! - Both stop when a time budget is spent and answer `in_progress`; the next call (in
//!   another process, in another Lambda) resumes from what the database records.
//! - Memory stays bounded: objects stream from HTTP through gunzip into `COPY`.

pub mod connect;
pub mod ddl;
pub mod error;
mod init;
mod load;
pub mod migrate;
pub mod model;
mod progress;
mod sync;
pub mod tsv;
pub mod views;

pub use connect::{ConnectOptions, TlsMode, parse_connection_string};
pub use error::ReplicaError;
pub use model::TableModel;

use chrono::{DateTime, NaiveDateTime, Utc};
use dap::DapClient;
use error::DbContext;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Where a table stands after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    /// Not in the replica yet: call init.
    InitNeeded,
    /// The time budget ran out: call again (the database records where to resume).
    InProgress,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub counts: Counts,
    /// The DAP job being loaded, when `in_progress`.
    pub cursor: Option<String>,
    /// Schema changes applied or noticed, for the run report.
    pub notes: Vec<String>,
}

impl Outcome {
    fn new(status: Status) -> Self {
        Self { status, counts: Counts::default(), cursor: None, notes: Vec::new() }
    }

    /// The budget ran out while loading from job `cursor`.
    fn in_progress(mut self, cursor: &str) -> Self {
        self.status = Status::InProgress;
        self.cursor = Some(cursor.to_owned());
        self
    }
}

/// When to stop starting new objects.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    deadline: Option<Instant>,
}

impl Budget {
    pub fn unlimited() -> Self {
        Self { deadline: None }
    }

    pub fn of(d: Duration) -> Self {
        Self { deadline: Some(Instant::now() + d) }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn spent(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// One database connection, replicating one table at a time.
pub struct Replicator {
    db: Client,
    dap: DapClient,
    progress: Option<ProgressFn>,
    _connection: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator").field("dap", &self.dap).finish_non_exhaustive()
    }
}

/// Called after each object: (table, objects done, objects in the job, rows of this object).
pub type ProgressFn = std::sync::Arc<dyn Fn(&str, usize, usize, u64) + Send + Sync>;

impl Replicator {
    pub async fn connect(options: &ConnectOptions, dap: DapClient) -> Result<Self, ReplicaError> {
        let (db, task) = connect::connect(options).await?;
        db.batch_execute(&ddl::metadata()).await.doing("instructure_dap", "creating the metadata tables")?;
        Ok(Self { db, dap, progress: None, _connection: task })
    }

    /// Reports each loaded object to `f` (for progress displays).
    pub fn on_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    fn report(&self, table: &str, done: usize, total: usize, rows: u64) {
        if let Some(f) = &self.progress {
            f(table, done, total, rows);
        }
    }

    /// Sync when the table is in the replica; otherwise init it.
    pub async fn replicate(&mut self, namespace: &str, table: &str, budget: Budget) -> Result<Outcome, ReplicaError> {
        let outcome = self.sync(namespace, table, budget).await?;
        if outcome.status == Status::InitNeeded {
            return self.init(namespace, table, budget).await;
        }
        Ok(outcome)
    }

    /// Runs `f` holding the table's advisory lock, so two runs never load one table at once.
    async fn locked<F, T>(&mut self, namespace: &str, table: &str, f: F) -> Result<T, ReplicaError>
    where
        F: AsyncFnOnce(&mut Self) -> Result<T, ReplicaError>,
    {
        let name = format!("{namespace}.{table}");
        let key = format!("cd2_aws:{name}");
        let got: bool = self
            .db
            .query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .doing(&name, "taking the table lock")?
            .get(0);
        if !got {
            return Err(ReplicaError::Busy { table: name });
        }
        let result = f(self).await;
        let _ = self.db.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", &[&key]).await;
        result
    }

    /// The `table_sync` timestamp of a replicated table: where its next sync starts.
    pub async fn last_timestamp(&self, namespace: &str, table: &str) -> Result<Option<DateTime<Utc>>, ReplicaError> {
        let row = self
            .db
            .query_opt(
                r#"SELECT "timestamp" FROM "instructure_dap"."table_sync" WHERE "source_namespace" = $1 AND "source_table" = $2 ORDER BY "id" LIMIT 1"#,
                &[&namespace, &table],
            )
            .await
            .doing(&format!("{namespace}.{table}"), "reading instructure_dap.table_sync")?;
        Ok(row.map(|r| r.get::<_, NaiveDateTime>(0).and_utc()))
    }
}
