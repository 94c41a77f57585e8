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
mod load;
pub mod migrate;
pub mod model;
pub mod tsv;
pub mod views;

pub use connect::{ConnectOptions, TlsMode, parse_connection_string};
pub use error::ReplicaError;
pub use model::TableModel;

use chrono::{DateTime, NaiveDateTime, Utc};
use dap::{CompletedJob, DapClient, Query};
use error::DbContext;
use model::quote_ident;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
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

/// Jobs whose objects expire sooner than this are not resumed: a new job is cheaper than
/// a load that fails halfway.
const JOB_MARGIN: chrono::Duration = chrono::Duration::hours(2);

#[derive(Debug, Serialize, Deserialize)]
struct JobRow {
    job: CompletedJob,
    schema_version: i64,
}

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
        self.registered(namespace, table).await
    }

    async fn registered(&self, namespace: &str, table: &str) -> Result<Option<DateTime<Utc>>, ReplicaError> {
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

    async fn saved_job(&self, namespace: &str, table: &str, kind: &str) -> Result<Option<JobRow>, ReplicaError> {
        let row = self
            .db
            .query_opt(
                r#"SELECT "job", "schema_version" FROM "cd2_aws"."job" WHERE "namespace" = $1 AND "table" = $2 AND "kind" = $3"#,
                &[&namespace, &table, &kind],
            )
            .await
            .doing(&format!("{namespace}.{table}"), "reading the saved job")?;
        Ok(row.and_then(|r| {
            let job: serde_json::Value = r.get(0);
            Some(JobRow { job: serde_json::from_value(job).ok()?, schema_version: r.get(1) })
        }))
    }

    async fn done_objects(
        &self,
        namespace: &str,
        table: &str,
        job_id: &str,
    ) -> Result<(HashSet<String>, u64), ReplicaError> {
        let rows = self
            .db
            .query(
                r#"SELECT "object_id", "rows" FROM "cd2_aws"."object_done" WHERE "namespace" = $1 AND "table" = $2 AND "job_id" = $3"#,
                &[&namespace, &table, &job_id],
            )
            .await
            .doing(&format!("{namespace}.{table}"), "reading load progress")?;
        let total = rows.iter().map(|r| r.get::<_, i64>(1) as u64).sum();
        Ok((rows.iter().map(|r| r.get(0)).collect(), total))
    }

    /// A job worth resuming: same schema version, objects not about to expire.
    fn resumable(saved: &Option<JobRow>, version: i64) -> Option<CompletedJob> {
        saved
            .as_ref()
            .filter(|s| s.schema_version == version)
            .filter(|s| s.job.expires_at.is_none_or(|e| e > Utc::now() + JOB_MARGIN))
            .map(|s| s.job.clone())
    }

    /// Loads a table that is not in the replica yet; see the crate docs.
    pub async fn init(&mut self, namespace: &str, table: &str, budget: Budget) -> Result<Outcome, ReplicaError> {
        self.locked(namespace, table, async |r: &mut Self| r.init_locked(namespace, table, budget).await).await
    }

    async fn init_locked(&mut self, namespace: &str, table: &str, budget: Budget) -> Result<Outcome, ReplicaError> {
        let name = format!("{namespace}.{table}");
        if self.registered(namespace, table).await?.is_some() {
            return Err(ReplicaError::AlreadyInitialized { table: name });
        }
        if migrate::table_exists(&self.db, namespace, table).await.doing(&name, "looking for the table")? {
            return Err(ReplicaError::Unregistered { table: name });
        }
        let schema = self.dap.schema(namespace, table).await?;
        let model = TableModel::from_schema(namespace, table, &schema.schema)?;
        let staging = ddl::staging_schema(namespace);
        let mut outcome = Outcome::new(Status::Success);
        let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
        tx.batch_execute(ddl::DDL_LOCK).await.doing(&name, "waiting for other schema changes")?;
        outcome.notes = migrate::ensure_enums(&tx, &model).await?;
        tx.commit().await.doing(&name, "committing enum types")?;

        let saved = self.saved_job(namespace, table, "init").await?;
        let staged =
            migrate::table_exists(&self.db, &staging, table).await.doing(&name, "looking for the staging table")?;
        let job = match Self::resumable(&saved, schema.version).filter(|_| staged) {
            Some(job) => {
                tracing::info!(table = %name, job = %job.id, "resuming init");
                job
            }
            None => {
                let job = self.dap.run_job(namespace, table, &Query::snapshot()).await?;
                let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
                let sql = format!(
                    "{lock}\nDROP TABLE IF EXISTS {staged};\n{create}",
                    lock = ddl::DDL_LOCK,
                    staged = ddl::qualified(&staging, table),
                    create = ddl::create_table(&model, &staging)
                );
                tx.batch_execute(&sql).await.doing(&name, "creating the staging table")?;
                save_job(&tx, namespace, table, "init", &job, schema.version).await?;
                tx.commit().await.doing(&name, "committing the new job")?;
                job
            }
        };

        let target = ddl::qualified(&staging, table);
        let (done, _) = self.done_objects(namespace, table, &job.id).await?;
        let mut objects: Vec<_> = job.objects.iter().filter(|o| !done.contains(&o.id)).cloned().collect();
        objects.sort();
        for (n, object) in objects.iter().enumerate() {
            if budget.spent() {
                outcome.status = Status::InProgress;
                outcome.cursor = Some(job.id.clone());
                return Ok(outcome);
            }
            let mut attempt = 1;
            loop {
                let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
                let loaded = if model.repeats_keys() {
                    upsert_object(&tx, &self.dap, &model, object, &target, false).await.map(|c| c.inserted)
                } else {
                    load::copy_object(&tx, &self.dap, &model, object, false, &target).await.map(|l| l.0.rows)
                };
                match loaded {
                    Ok(rows) => {
                        mark_done(&tx, namespace, table, &job.id, &object.id, rows).await?;
                        tx.commit().await.doing(&name, "committing an object")?;
                        tracing::info!(table = %name, object = %object.id, rows, "object loaded");
                        self.report(&name, job.objects.len() - objects.len() + n + 1, job.objects.len(), rows);
                        break;
                    }
                    Err(e) => retry_or_fail(&name, &object.id, e, &mut attempt).await?,
                }
            }
        }

        // Everything is staged: publish the table and its metadata at once.
        let (_, total) = self.done_objects(namespace, table, &job.id).await?;
        let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
        tx.batch_execute(&format!(
            "{lock}\nCREATE SCHEMA IF NOT EXISTS {ns};\nALTER TABLE {target} SET SCHEMA {ns};",
            lock = ddl::DDL_LOCK,
            ns = quote_ident(namespace)
        ))
        .await
        .doing(&name, "moving the loaded table into its schema")?;
        tx.execute(
            r#"INSERT INTO "instructure_dap"."table_sync"
               ("source_namespace", "source_table", "timestamp", "schema_version", "target_schema", "target_table",
                "schema_description_format", "schema_description")
               VALUES ($1, $2, $3, $4, $1, $2, 'json', $5)"#,
            &[&namespace, &table, &job.until.naive_utc(), &schema.version, &model.description.to_string()],
        )
        .await
        .doing(&name, "registering the table in instructure_dap.table_sync")?;
        forget_job(&tx, namespace, table).await?;
        tx.commit().await.doing(&name, "committing the initialized table")?;
        outcome.counts.inserted = total;
        Ok(outcome)
    }

    /// Applies the changes since the last load; `init_needed` for a table not in the replica.
    pub async fn sync(&mut self, namespace: &str, table: &str, budget: Budget) -> Result<Outcome, ReplicaError> {
        self.locked(namespace, table, async |r: &mut Self| r.sync_locked(namespace, table, budget).await).await
    }

    async fn sync_locked(&mut self, namespace: &str, table: &str, budget: Budget) -> Result<Outcome, ReplicaError> {
        let name = format!("{namespace}.{table}");
        let Some(since) = self.registered(namespace, table).await? else {
            return Ok(Outcome::new(Status::InitNeeded));
        };
        let schema = self.dap.schema(namespace, table).await?;
        let model = TableModel::from_schema(namespace, table, &schema.schema)?;
        let mut outcome = Outcome::new(Status::Success);
        let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
        outcome.notes = migrate::migrate(&tx, &model, namespace).await?;
        tx.commit().await.doing(&name, "committing schema changes")?;

        let saved = self.saved_job(namespace, table, "sync").await?;
        let job = match Self::resumable(&saved, schema.version).filter(|j| j.since == Some(since)) {
            Some(job) => job,
            None => {
                let job = self.dap.run_job(namespace, table, &Query::incremental(since)).await?;
                let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
                save_job(&tx, namespace, table, "sync", &job, schema.version).await?;
                tx.commit().await.doing(&name, "committing the new job")?;
                job
            }
        };
        let target = ddl::qualified(namespace, table);
        let (done, _) = self.done_objects(namespace, table, &job.id).await?;
        let mut objects: Vec<_> = job.objects.iter().filter(|o| !done.contains(&o.id)).cloned().collect();
        objects.sort();
        if objects.is_empty() {
            let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
            advance(&tx, namespace, table, &job, schema.version, &model).await?;
            tx.commit().await.doing(&name, "committing the sync")?;
            return Ok(outcome);
        }
        let last = objects.len() - 1;
        for (i, object) in objects.iter().enumerate() {
            if budget.spent() {
                outcome.status = Status::InProgress;
                outcome.cursor = Some(job.id.clone());
                return Ok(outcome);
            }
            let mut attempt = 1;
            let counts = loop {
                let tx = self.db.transaction().await.doing(&name, "starting a transaction")?;
                match upsert_object(&tx, &self.dap, &model, object, &target, true).await {
                    Ok(counts) => {
                        if i == last {
                            advance(&tx, namespace, table, &job, schema.version, &model).await?;
                        } else {
                            mark_done(&tx, namespace, table, &job.id, &object.id, counts.inserted + counts.updated)
                                .await?;
                        }
                        tx.commit().await.doing(&name, "committing an object")?;
                        break counts;
                    }
                    Err(e) => retry_or_fail(&name, &object.id, e, &mut attempt).await?,
                }
            };
            tracing::info!(table = %name, object = %object.id, ?counts, "object applied");
            let rows = counts.inserted + counts.updated + counts.deleted;
            self.report(&name, job.objects.len() - objects.len() + i + 1, job.objects.len(), rows);
            outcome.counts.add(counts);
        }
        Ok(outcome)
    }
}

/// Attempts per object for transient failures (a download cut off, a lost connection);
/// each attempt's transaction is rolled back before the next.
const OBJECT_ATTEMPTS: u32 = 3;

async fn retry_or_fail(table: &str, object: &str, error: ReplicaError, attempt: &mut u32) -> Result<(), ReplicaError> {
    if !error.is_transient() || *attempt >= OBJECT_ATTEMPTS {
        return Err(error);
    }
    tracing::warn!(%table, %object, attempt = *attempt, error = %error, "object failed; retrying it");
    tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(*attempt)).await;
    *attempt += 1;
    Ok(())
}

async fn save_job(
    tx: &tokio_postgres::Transaction<'_>,
    namespace: &str,
    table: &str,
    kind: &str,
    job: &CompletedJob,
    schema_version: i64,
) -> Result<(), ReplicaError> {
    let name = format!("{namespace}.{table}");
    forget_job(tx, namespace, table).await?;
    let job_json = serde_json::to_value(job).expect("jobs serialize");
    tx.execute(
        r#"INSERT INTO "cd2_aws"."job" ("namespace", "table", "kind", "job", "schema_version") VALUES ($1, $2, $3, $4, $5)"#,
        &[&namespace, &table, &kind, &job_json, &schema_version],
    )
    .await
    .doing(&name, "saving the job")?;
    Ok(())
}

async fn forget_job(tx: &tokio_postgres::Transaction<'_>, namespace: &str, table: &str) -> Result<(), ReplicaError> {
    let name = format!("{namespace}.{table}");
    tx.execute(r#"DELETE FROM "cd2_aws"."job" WHERE "namespace" = $1 AND "table" = $2"#, &[&namespace, &table])
        .await
        .doing(&name, "clearing the saved job")?;
    tx.execute(r#"DELETE FROM "cd2_aws"."object_done" WHERE "namespace" = $1 AND "table" = $2"#, &[&namespace, &table])
        .await
        .doing(&name, "clearing load progress")?;
    Ok(())
}

async fn mark_done(
    tx: &tokio_postgres::Transaction<'_>,
    namespace: &str,
    table: &str,
    job_id: &str,
    object_id: &str,
    rows: u64,
) -> Result<(), ReplicaError> {
    tx.execute(
        r#"INSERT INTO "cd2_aws"."object_done" ("namespace", "table", "job_id", "object_id", "rows") VALUES ($1, $2, $3, $4, $5)"#,
        &[&namespace, &table, &job_id, &object_id, &(rows as i64)],
    )
    .await
    .doing(&format!("{namespace}.{table}"), "recording a loaded object")?;
    Ok(())
}

/// Moves `table_sync` to the job's `until`, in the transaction of the last object.
async fn advance(
    tx: &tokio_postgres::Transaction<'_>,
    namespace: &str,
    table: &str,
    job: &CompletedJob,
    schema_version: i64,
    model: &TableModel,
) -> Result<(), ReplicaError> {
    tx.execute(
        r#"UPDATE "instructure_dap"."table_sync" SET "timestamp" = $3, "schema_version" = $4, "schema_description" = $5
           WHERE "source_namespace" = $1 AND "source_table" = $2"#,
        &[&namespace, &table, &job.until.naive_utc(), &schema_version, &model.description.to_string()],
    )
    .await
    .doing(&format!("{namespace}.{table}"), "advancing instructure_dap.table_sync")?;
    forget_job(tx, namespace, table).await
}

/// One object through a temporary table: upserts (`U`, or every row for a snapshot of a
/// table that repeats keys), then deletes (`D`). The last row of a repeated key wins.
async fn upsert_object(
    tx: &tokio_postgres::Transaction<'_>,
    dap: &DapClient,
    model: &TableModel,
    object: &dap::ObjectId,
    target: &str,
    incremental: bool,
) -> Result<Counts, ReplicaError> {
    let name = format!("{}.{}", model.namespace, model.name);
    let mut columns = vec![r#""action" text"#.to_owned(), r#""cd2_ord" bigserial"#.to_owned()];
    columns.extend(model.columns.iter().map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type.ddl())));
    tx.batch_execute(&format!(r#"CREATE TEMPORARY TABLE "cd2_incoming" ({}) ON COMMIT DROP"#, columns.join(", ")))
        .await
        .doing(&name, "creating the incoming table")?;
    let (_, layout) = load::copy_object(tx, dap, model, object, incremental, r#"pg_temp."cd2_incoming""#).await?;
    let Some(layout) = layout else {
        return Ok(Counts::default());
    };
    let pk = quote_ident(&model.primary_key);
    let cols: Vec<String> = layout.columns.iter().map(|c| quote_ident(c)).collect();
    let list = cols.join(", ");
    let updates: Vec<String> = layout
        .columns
        .iter()
        .filter(|c| **c != model.primary_key)
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
        .collect();
    let on_conflict = if updates.is_empty() {
        format!("ON CONFLICT ({pk}) DO NOTHING")
    } else {
        format!("ON CONFLICT ({pk}) DO UPDATE SET {}", updates.join(", "))
    };
    let filter = if incremental { r#"WHERE "action" = 'U'"# } else { "" };
    let upsert = format!(
        r#"WITH changed AS (
             INSERT INTO {target} ({list})
             SELECT DISTINCT ON ({pk}) {list} FROM pg_temp."cd2_incoming" {filter} ORDER BY {pk}, "cd2_ord" DESC
             {on_conflict}
             RETURNING (xmax = 0) AS inserted)
           SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM changed"#
    );
    let row = tx.query_one(&upsert, &[]).await.doing(&name, "applying upserts")?;
    let mut counts = Counts { inserted: row.get::<_, i64>(0) as u64, updated: row.get::<_, i64>(1) as u64, deleted: 0 };
    if incremental {
        let delete = format!(
            r#"DELETE FROM {target} t USING pg_temp."cd2_incoming" i WHERE i."action" = 'D' AND t.{pk} = i.{pk}"#
        );
        counts.deleted = tx.execute(&delete, &[]).await.doing(&name, "applying deletes")?;
    }
    Ok(counts)
}
