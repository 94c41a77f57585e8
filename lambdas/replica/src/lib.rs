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

pub mod archive;
pub mod connect;
mod dap_limit;
pub mod ddl;
pub mod error;
mod init;
mod load;
pub mod migrate;
pub mod model;
mod progress;
mod retype;
pub mod scram;
pub mod setup;
mod sync;
pub mod tsv;
pub mod views;

pub use archive::{Archive, ArchiveError, ArchiveFuture, ArchiveReader, ArchivedJob, CatalogTable};
pub use connect::{ConnectOptions, RootCert, TlsMode, parse_connection_string};
pub use error::ReplicaError;
pub use model::TableModel;
pub use retype::RetypeSettings;

use chrono::{DateTime, NaiveDateTime, Utc};
use dap::DapClient;
use error::DbContext;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnection, Postgres};
use sqlx::{Connection as _, Transaction};
use std::time::{Duration, Instant};

/// SQL text built with every identifier quoted and every literal quoted (DDL takes no
/// parameters); run unprepared, one or more statements.
pub fn batch(sql: &str) -> sqlx::RawSql {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
}

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

/// Rows inserted, updated and deleted: the workflow's type, so a call's counts go into a
/// table's state as they are.
pub use contract::Counts;

/// A DAP table by namespace and name: the workflow's type, so the table a state names is
/// passed as it is, and its `namespace.table` for messages is written in one place.
pub use contract::TableRef;

/// How fresh a replicated table is ([`Replicator::freshness`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freshness {
    /// The DAP timestamp the table is current to (Unix seconds).
    pub current_to_s: Option<i64>,
    /// About how many rows it holds.
    pub rows: Option<u64>,
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

    /// The budget ran out while loading from job `cursor`, or (`None`) before DAP's shared
    /// rate limit let this call create its job.
    fn in_progress(mut self, cursor: Option<&str>) -> Self {
        self.status = Status::InProgress;
        self.cursor = cursor.map(str::to_owned);
        self
    }
}

/// A call's time: objects are not started once it is spent, an object in flight is
/// abandoned (rolled back) when it runs out between COPY chunks, and every statement gets a
/// `statement_timeout` and a shorter `lock_timeout` from what is left, so that nothing,
/// not even an `ALTER TABLE` queued behind an analyst's long query, outlasts it by more
/// than [`Budget::MIN_STATEMENT`].
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    deadline: Option<Instant>,
}

impl Budget {
    /// The least time a statement gets, so that a call whose budget is spent can still
    /// record where it stopped.
    pub const MIN_STATEMENT: Duration = Duration::from_secs(1);

    pub fn unlimited() -> Self {
        Self { deadline: None }
    }

    pub fn of(d: Duration) -> Self {
        Self { deadline: Some(Instant::now() + d) }
    }

    pub fn until(deadline: Instant) -> Self {
        Self { deadline: Some(deadline) }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn spent(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// `statement_timeout` and `lock_timeout` in milliseconds (`0`: none), from what is left.
    /// Locks give up first, with the transient `55P03 lock_not_available`, and after at most
    /// [`Budget::MAX_LOCK_WAIT`]: an `ALTER TABLE` waiting for a lock holds up every reader
    /// that comes after it.
    fn timeouts(&self) -> (String, String) {
        match self.deadline {
            None => ("0".into(), "0".into()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).max(Self::MIN_STATEMENT);
                // A statement may end up to MIN_STATEMENT after the deadline, so that the
                // call itself notices the deadline first and ends a COPY cleanly, rather
                // than the server cancelling it in the same instant.
                let statement = left + Self::MIN_STATEMENT;
                (statement.as_millis().to_string(), (left * 3 / 4).min(Self::MAX_LOCK_WAIT).as_millis().to_string())
            }
        }
    }

    /// The longest a statement waits for a lock when the call has a budget.
    pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(30);

    /// Sets the transaction's statement and lock timeouts to what is left now; called when a
    /// transaction starts and again before each long statement in it.
    async fn limit(&self, db: &mut PgConnection, table: &str) -> Result<(), ReplicaError> {
        self.set_timeouts(db, table, true).await
    }

    /// Sets the statement and lock timeouts to what is left now, for the transaction
    /// (`local`) or for the session (the statements a call runs outside transactions).
    async fn set_timeouts(&self, db: &mut PgConnection, table: &str, local: bool) -> Result<(), ReplicaError> {
        let (statement, lock) = self.timeouts();
        sqlx::query("SELECT set_config('statement_timeout', $1, $3), set_config('lock_timeout', $2, $3)")
            .bind(statement)
            .bind(lock)
            .bind(local)
            .execute(db)
            .await
            .doing(table, "setting the statement and lock timeouts")?;
        Ok(())
    }

    /// Whether `error` means this budget ran out: our own marker, or a statement the
    /// deadline's `statement_timeout` cancelled.
    fn ran_out(&self, error: &ReplicaError) -> bool {
        matches!(error, ReplicaError::OutOfTime { .. })
            || (self.spent() && error.sqlstate().as_deref() == Some("57014"))
    }

    /// Runs `f` (no database I/O: an HTTP read, a channel) until the deadline.
    async fn within<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        match self.deadline {
            None => Some(f.await),
            Some(d) => tokio::time::timeout_at(d.into(), f).await.ok(),
        }
    }
}

/// One database connection, replicating one table at a time; connects again when the
/// connection was lost (Aurora drops connections when it pauses).
pub struct Replicator {
    db: PgConnection,
    options: ConnectOptions,
    /// The last call lost the connection: the next one connects again first.
    lost: bool,
    dap: DapClient,
    progress: Option<ProgressFn>,
    retype: RetypeSettings,
    /// The raw zone, when objects are archived as they load.
    archive: Option<std::sync::Arc<dyn Archive>>,
    /// The archived job a restore is replaying, in DAP's place.
    replay: Option<archive::Replay>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator").field("options", &self.options).field("dap", &self.dap).finish_non_exhaustive()
    }
}

/// What a call has just done: for progress displays, and for the workflow, which counts a
/// call that reported something as one that made progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// An object loaded: objects done of the job's, and the object's rows.
    Object { table: &'a str, done: usize, total: usize, rows: u64 },
    /// A batch of a resumable column type change.
    Converted { table: &'a str, column: &'a str, rows: u64 },
    /// A resumable type change's converted column put in the old one's place.
    Swapped { table: &'a str, column: &'a str },
}

impl std::fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Object { table, done, total, rows } => {
                write!(f, "{table:<40} object {done}/{total} ({rows} rows)")
            }
            Progress::Converted { table, column, rows } => {
                write!(f, "{table:<40} column {column}: {rows} rows converted to its new type")
            }
            Progress::Swapped { table, column } => write!(f, "{table:<40} column {column}: now of its new type"),
        }
    }
}

/// Called after each object or conversion batch.
pub type ProgressFn = std::sync::Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

impl Replicator {
    pub async fn connect(options: &ConnectOptions, dap: DapClient) -> Result<Self, ReplicaError> {
        let db = Self::open(options).await?;
        Ok(Self {
            db,
            options: options.clone(),
            lost: false,
            dap,
            progress: None,
            retype: RetypeSettings::default(),
            archive: None,
            replay: None,
        })
    }

    /// What every call's connection needs, tried once and closed: the login (TLS as
    /// configured, the credential) and the metadata tables, made or there. A run checks
    /// this before its tables, so that a setting to fix is said once rather than per table.
    pub async fn check_access(options: &ConnectOptions) -> Result<(), ReplicaError> {
        let db = Self::open(options).await?;
        // Closing tells the server at once; a failure to say goodbye changes nothing.
        let _ = db.close().await;
        Ok(())
    }

    /// Ends the session at once (the server frees its backend), rather than when the
    /// process ends: a warm Lambda holding a connection keeps Aurora from pausing.
    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    async fn open(options: &ConnectOptions) -> Result<PgConnection, ReplicaError> {
        let mut db = connect::connect(options).await?;
        crate::batch(&ddl::metadata())
            .execute(&mut db)
            .await
            .doing("instructure_dap", "creating the metadata tables")?;
        Ok(db)
    }

    /// Reports each loaded object to `f` (for progress displays).
    pub fn on_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    fn report(&self, progress: &Progress<'_>) {
        if let Some(f) = &self.progress {
            f(progress);
        }
    }

    /// Writes every object to `archive` as it loads, and each job's manifest once it is
    /// in ([`archive`]).
    pub fn set_archive(&mut self, archive: std::sync::Arc<dyn Archive>) {
        self.archive = Some(archive);
    }

    /// When a column's type changes in place and how a resumable change proceeds.
    pub fn set_retype(&mut self, settings: RetypeSettings) {
        self.retype = settings;
    }

    /// How fresh the replica's table is: the DAP timestamp it is current to (Unix seconds)
    /// and about how many rows it holds (the server's statistics: live rows counted as they
    /// are written, or the last ANALYZE's estimate, whichever is larger; a count of a
    /// billion-row table would take minutes). `None`s for a table not in the replica.
    pub async fn freshness(&mut self, table: &TableRef) -> Result<Freshness, ReplicaError> {
        let name = table.to_string();
        let found: Option<(i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT extract(epoch FROM s.\"timestamp\")::bigint,
                    greatest(c.reltuples::bigint, pg_catalog.pg_stat_get_live_tuples(c.oid))
             FROM {meta}.table_sync s
             LEFT JOIN pg_catalog.pg_class c ON c.oid = to_regclass(format('%I.%I', s.target_schema, s.target_table))
             WHERE s.source_namespace = $1 AND s.source_table = $2 ORDER BY s.id LIMIT 1",
            meta = model::quote_ident(ddl::META_SCHEMA)
        )))
        .bind(&table.namespace)
        .bind(&table.table)
        .fetch_optional(&mut self.db)
        .await
        .doing(&name, "reading how fresh the table is")?;
        Ok(match found {
            Some((current_to_s, rows)) => {
                Freshness { current_to_s: Some(current_to_s), rows: rows.map(|r| r.max(0) as u64) }
            }
            None => Freshness::default(),
        })
    }

    /// The table's schema: DAP's, or the archived job's when a restore replays one.
    async fn schema(&self, table: &TableRef) -> Result<dap::VersionedSchema, ReplicaError> {
        match &self.replay {
            Some(replay) => Ok(replay.job.schema()),
            None => Ok(self.dap.schema(&table.namespace, &table.table).await?),
        }
    }

    /// Where the call's objects come from (the archive's reader, when a restore replays a
    /// job): a DAP client and a reader the caller holds, so that loads can borrow them
    /// while a transaction borrows the connection.
    fn sources(&self) -> (DapClient, Option<std::sync::Arc<dyn ArchiveReader>>) {
        (self.dap.clone(), self.replay.as_ref().map(|r| r.reader.clone()))
    }

    /// Sync when the table is in the replica; otherwise init it.
    pub async fn replicate(&mut self, table: &TableRef, budget: Budget) -> Result<Outcome, ReplicaError> {
        let outcome = self.sync(table, budget).await?;
        if outcome.status == Status::InitNeeded {
            return self.init(table, budget).await;
        }
        Ok(outcome)
    }

    /// A transaction whose statements end by the budget's deadline.
    async fn begin(&mut self, table: &str, budget: Budget) -> Result<Transaction<'_, Postgres>, ReplicaError> {
        let mut tx = self.db.begin().await.doing(table, "starting a transaction")?;
        budget.limit(&mut tx, table).await?;
        Ok(tx)
    }

    /// Runs `f` holding the table's advisory lock, so two runs never load one table at once.
    /// Connects again first if the last call lost the connection (the lock went with it).
    async fn locked<F, T>(&mut self, table: &TableRef, budget: Budget, f: F) -> Result<T, ReplicaError>
    where
        F: AsyncFnOnce(&mut Self) -> Result<T, ReplicaError>,
    {
        let name = table.to_string();
        if self.lost {
            tracing::info!(table = %name, "connecting to the database again");
            self.db = Self::open(&self.options).await?;
            self.lost = false;
        }
        let result = async {
            budget.set_timeouts(&mut self.db, &name, false).await?;
            let key = format!("cd2_aws:{name}");
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(&key)
                .fetch_one(&mut self.db)
                .await
                .doing(&name, "taking the table lock")?;
            if !got {
                return Err(ReplicaError::Busy { table: name.clone() });
            }
            let result = f(self).await;
            if !result.as_ref().is_err_and(ReplicaError::connection_lost) {
                let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                    .bind(&key)
                    .execute(&mut self.db)
                    .await;
                if let Err(e) = unlocked {
                    // The lock must not outlive this call: dropping the connection releases it.
                    tracing::warn!(table = %name, error = %error::describe(&e), "releasing the table lock failed; reconnecting");
                    self.lost = true;
                }
            }
            result
        }
        .await;
        if result.as_ref().is_err_and(ReplicaError::connection_lost) {
            self.lost = true;
        }
        result
    }

    /// The `table_sync` timestamp of a replicated table: where its next sync starts.
    pub async fn last_timestamp(&mut self, table: &TableRef) -> Result<Option<DateTime<Utc>>, ReplicaError> {
        Ok(self.loaded(table).await?.map(|l| l.since))
    }

    /// The table's `table_sync` row, when it is replicated.
    pub(crate) async fn loaded(&mut self, table: &TableRef) -> Result<Option<Loaded>, ReplicaError> {
        let row: Option<(NaiveDateTime, Option<String>)> = sqlx::query_as(
            r#"SELECT "timestamp", "schema_description" FROM "instructure_dap"."table_sync" WHERE "source_namespace" = $1 AND "source_table" = $2 ORDER BY "id" LIMIT 1"#,
        )
        .bind(&table.namespace)
        .bind(&table.table)
        .fetch_optional(&mut self.db)
        .await
        .doing(&table.to_string(), "reading instructure_dap.table_sync")?;
        Ok(row.map(|(at, description)| {
            let schema = description.and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok());
            Loaded { since: at.and_utc(), model: schema.and_then(|s| TableModel::from_schema(table, &s).ok()) }
        }))
    }
}

/// What `table_sync` records of a replicated table.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Where the next sync starts.
    pub(crate) since: DateTime<Utc>,
    /// The schema it was last loaded with (`None` when its description does not read as one).
    pub(crate) model: Option<TableModel>,
}
