//! Our bookkeeping in the `cd2_aws` schema: the job a table is loading from and the
//! objects already loaded, each written in the transaction of the data it describes, so
//! any later call (in any process) knows exactly where to resume.

use crate::error::{DbContext, ReplicaError};
use crate::model::TableModel;
use crate::{Budget, Replicator, TableRef};
use chrono::{DateTime, Utc};
use contract::{Backoff, Pauses};
use dap::{CompletedJob, DapError, Query};
use serde::{Deserialize, Serialize};
use sqlx::Transaction;
use sqlx::postgres::{PgConnection, Postgres};
use std::collections::HashSet;
use std::time::Duration;

/// Jobs whose objects expire sooner than this are not resumed while objects remain: each
/// object's URL is resolved just before its download, so a few minutes are enough.
const JOB_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

/// The job a table is loading from, as saved in `cd2_aws.job`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum SavedJob {
    /// DAP was still preparing it when a call's budget ran out.
    Pending {
        id: String,
        since: Option<DateTime<Utc>>,
    },
    Complete(CompletedJob),
    /// An archived job a restore is replaying (its objects are archive keys, which DAP
    /// knows nothing of): resumed only by a restore, and never by replication, which
    /// starts a job of its own instead.
    Replayed(CompletedJob),
}

#[derive(Debug)]
pub(crate) struct JobRow {
    pub(crate) job: SavedJob,
    pub(crate) schema_version: i64,
}

/// Where the job for a call stands.
#[derive(Debug)]
pub(crate) enum Obtained {
    /// A complete job, saved: load its objects not yet done.
    Ready(CompletedJob),
    /// DAP is still preparing the job (its id, saved) at the end of the budget, or (`None`)
    /// DAP's rate limit, shared with the other runs, had no slot for a new job before it.
    Pending(Option<String>),
}

/// What job a call needs.
#[derive(Debug)]
pub(crate) struct JobWanted {
    /// `init` or `sync`.
    pub(crate) kind: &'static str,
    /// `None` for a snapshot.
    pub(crate) since: Option<DateTime<Utc>>,
    pub(crate) schema_version: i64,
    /// Whether a saved complete job can be resumed (init: its staging table exists).
    pub(crate) resumable: bool,
    /// SQL run in the transaction that saves a newly completed job (init: a fresh staging table).
    pub(crate) prepare: String,
}

impl Replicator {
    pub(crate) async fn saved_job(&mut self, table: &TableRef, kind: &str) -> Result<Option<JobRow>, ReplicaError> {
        let row: Option<(serde_json::Value, i64)> = sqlx::query_as(
            r#"SELECT "job", "schema_version" FROM "cd2_aws"."job" WHERE "namespace" = $1 AND "table" = $2 AND "kind" = $3"#,
        )
        .bind(&table.namespace)
        .bind(&table.table)
        .bind(kind)
        .fetch_optional(&mut self.db)
        .await
        .doing(&table.to_string(), "reading the saved job")?;
        // A row this version cannot read is treated as no row: a new job is started.
        Ok(row
            .and_then(|(job, schema_version)| Some(JobRow { job: serde_json::from_value(job).ok()?, schema_version })))
    }

    pub(crate) async fn done_objects(
        &mut self,
        table: &TableRef,
        job_id: &str,
    ) -> Result<(HashSet<String>, u64), ReplicaError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            r#"SELECT "object_id", "rows" FROM "cd2_aws"."object_done" WHERE "namespace" = $1 AND "table" = $2 AND "job_id" = $3"#,
        )
        .bind(&table.namespace)
        .bind(&table.table)
        .bind(job_id)
        .fetch_all(&mut self.db)
        .await
        .doing(&table.to_string(), "reading load progress")?;
        let total = rows.iter().map(|(_, n)| *n as u64).sum();
        Ok((rows.into_iter().map(|(id, _)| id).collect(), total))
    }

    /// The job to load from: a saved complete one when resumable and not about to expire,
    /// a saved pending one polled within the budget, or a new one (saved as pending first,
    /// so that a call whose budget ends while DAP prepares it does not start another).
    pub(crate) async fn obtain_job(
        &mut self,
        table: &TableRef,
        wanted: &JobWanted,
        budget: Budget,
    ) -> Result<Obtained, ReplicaError> {
        let name = table.to_string();
        let (kind, since, version) = (wanted.kind, wanted.since, wanted.schema_version);
        let saved = self.saved_job(table, kind).await?.filter(|s| s.schema_version == version).map(|s| s.job);
        if let Some(replay) = &self.replay {
            // A restore: the archived job stands in for DAP's, saved as such, so that a call
            // that runs out of budget resumes it as any other.
            let job = replay.job.completed();
            if job.since != since {
                // The plan was made before the table's lock was taken.
                return Err(ReplicaError::Restore {
                    table: name,
                    message: format!(
                        "the table is now current to {}, not to {}, where the archived job starts: a replication ran meanwhile; run restore again to go on from where the table is",
                        since.map_or_else(|| "nothing".into(), |s| s.to_string()),
                        job.since.map_or_else(|| "nothing".into(), |s| s.to_string()),
                    ),
                });
            }
            if let Some(SavedJob::Replayed(saved)) = saved.filter(|_| wanted.resumable)
                && saved.id == job.id
                && saved.since == since
            {
                return Ok(Obtained::Ready(saved));
            }
            let mut tx = self.begin(&name, budget).await?;
            if !wanted.prepare.is_empty() {
                crate::batch(&wanted.prepare).execute(&mut *tx).await.doing(&name, "preparing for the job")?;
            }
            save_job(&mut tx, table, kind, &SavedJob::Replayed(job.clone()), version).await?;
            tx.commit().await.doing(&name, "committing the archived job")?;
            return Ok(Obtained::Ready(job));
        }
        let pending = match saved {
            Some(SavedJob::Complete(job)) if wanted.resumable && job.since == since => {
                // With every object loaded, only publishing is left, which needs no download.
                let (done, _) = self.done_objects(table, &job.id).await?;
                let all_loaded = job.objects.iter().all(|o| done.contains(&o.id));
                if all_loaded || job.expires_at.is_none_or(|e| e > Utc::now() + JOB_MARGIN) {
                    tracing::info!(table = %name, job = %job.id, "resuming the saved job");
                    return Ok(Obtained::Ready(job));
                }
                // DAP deletes the job (its objects with it) soon: what is left of it cannot be
                // loaded, so a new job starts over. Counted, so that a table whose load always
                // outlasts DAP's 24 hours fails loudly instead of starting over for ever.
                let times = self.job_expired(table, budget).await?;
                tracing::warn!(table = %name, job = %job.id, loaded = done.len(), total = job.objects.len(), times, "the saved job expires before its objects are all loaded; starting a new one");
                if times >= MAX_EXPIRED_JOBS {
                    let mut tx = self.begin(&name, budget).await?;
                    clear_expired(&mut tx, table).await?;
                    tx.commit().await.doing(&name, "forgetting the expired job")?;
                    return Err(ReplicaError::JobExpired {
                        table: name,
                        kind: if since.is_some() { "incremental" } else { "snapshot" }.into(),
                        loaded: done.len(),
                        total: job.objects.len(),
                        times,
                    });
                }
                None
            }
            Some(SavedJob::Pending { id, since: s }) if s == since => Some(id),
            _ => None,
        };
        let id = match &pending {
            Some(id) => id.clone(),
            None => {
                let query = match since {
                    Some(s) => Query::incremental(s),
                    None => Query::snapshot(),
                };
                let deadline = budget.deadline();
                let Some(job) = crate::dap_limit::create_job(&mut self.db, &self.dap, table, &query, deadline).await?
                else {
                    return Ok(Obtained::Pending(None));
                };
                let row = SavedJob::Pending { id: job.id.clone(), since };
                let mut tx = self.begin(&name, budget).await?;
                save_job(&mut tx, table, kind, &row, version).await?;
                tx.commit().await.doing(&name, "saving the new job")?;
                job.id
            }
        };
        match self.dap.resume_job(&table.namespace, &table.table, &id, since.is_some(), budget.deadline()).await {
            Ok(Some(job)) => {
                let mut tx = self.begin(&name, budget).await?;
                if !wanted.prepare.is_empty() {
                    crate::batch(&wanted.prepare).execute(&mut *tx).await.doing(&name, "preparing for the new job")?;
                }
                save_job(&mut tx, table, kind, &SavedJob::Complete(job.clone()), version).await?;
                tx.commit().await.doing(&name, "committing the new job")?;
                Ok(Obtained::Ready(job))
            }
            Ok(None) => Ok(Obtained::Pending(Some(id))),
            Err(e) if matches!(e, DapError::JobFailed { .. } | DapError::NotFound { .. }) || !e.is_transient() => {
                // A failed or vanished job is no use to the next call either.
                let mut tx = self.begin(&name, budget).await?;
                forget_job(&mut tx, table).await?;
                tx.commit().await.doing(&name, "forgetting the job")?;
                Err(e.into())
            }
            // A passing fault: the job may still be fine; the next call polls it again.
            Err(e) => Err(e.into()),
        }
    }
}

/// Jobs of one table that may expire in a row before its load fails (the first starts
/// over at once; the second is reported, and the next run starts over again).
pub(crate) const MAX_EXPIRED_JOBS: i32 = 2;

impl Replicator {
    /// Counts one more job of the table that expired before it was loaded, and forgets it
    /// in the same transaction (so that a call that then gets no new job does not count it
    /// again); answers how many in a row.
    async fn job_expired(&mut self, table: &TableRef, budget: Budget) -> Result<i32, ReplicaError> {
        let name = table.to_string();
        let mut tx = self.begin(&name, budget).await?;
        forget_job(&mut tx, table).await?;
        let times: i32 = sqlx::query_scalar(
            r#"INSERT INTO "cd2_aws"."job_expired" ("namespace", "table", "times") VALUES ($1, $2, 1)
               ON CONFLICT ("namespace", "table") DO UPDATE SET "times" = "job_expired"."times" + 1 RETURNING "times""#,
        )
        .bind(&table.namespace)
        .bind(&table.table)
        .fetch_one(&mut *tx)
        .await
        .doing(&name, "counting an expired job")?;
        tx.commit().await.doing(&name, "counting an expired job")?;
        Ok(times)
    }
}

/// The table's load completed: no expired job counts against it any more.
pub(crate) async fn clear_expired(tx: &mut PgConnection, table: &TableRef) -> Result<(), ReplicaError> {
    sqlx::query(r#"DELETE FROM "cd2_aws"."job_expired" WHERE "namespace" = $1 AND "table" = $2"#)
        .bind(&table.namespace)
        .bind(&table.table)
        .execute(&mut *tx)
        .await
        .doing(&table.to_string(), "clearing the expired-job count")?;
    Ok(())
}

/// Attempts per object for transient failures (a download cut off, a lost connection),
/// and the pauses between them; each attempt's transaction is rolled back before the next.
pub(crate) const OBJECT_RETRY: Backoff = Backoff::doubling(3, Duration::from_millis(400), Duration::from_secs(10));

/// What a failed object attempt leads to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Try the object again (its transaction was rolled back).
    Retry,
    /// The budget ran out: the call answers `in_progress`; the next one loads the object.
    OutOfTime,
}

/// Ends a failed object attempt: rolls its transaction back (unless the connection is gone
/// already; a failed rollback is an error of its own), then stops the call when the budget
/// ran out, gives up on a permanent error, after the last attempt, and when the connection
/// is lost (the table's lock went with it: the next call starts over on a new connection),
/// and otherwise waits before the next attempt.
pub(crate) async fn object_failed(
    tx: Transaction<'_, Postgres>,
    table: &str,
    object: &str,
    error: ReplicaError,
    budget: Budget,
    pauses: &mut Pauses,
) -> Result<AfterFailure, ReplicaError> {
    if !error.connection_lost() {
        tx.rollback().await.doing(table, "rolling back an object")?;
    }
    if budget.ran_out(&error) {
        return Ok(AfterFailure::OutOfTime);
    }
    if !error.is_transient() || error.connection_lost() {
        return Err(error);
    }
    let Some(pause) = pauses.next() else { return Err(error) };
    tracing::warn!(%table, %object, error = %error, pause_ms = pause.as_millis() as u64, "object failed; retrying it");
    tokio::time::sleep(pause).await;
    Ok(AfterFailure::Retry)
}

pub(crate) async fn save_job(
    tx: &mut PgConnection,
    table: &TableRef,
    kind: &str,
    job: &SavedJob,
    schema_version: i64,
) -> Result<(), ReplicaError> {
    let name = table.to_string();
    forget_job(tx, table).await?;
    let job_json = serde_json::to_value(job).expect("jobs serialize");
    sqlx::query(
        r#"INSERT INTO "cd2_aws"."job" ("namespace", "table", "kind", "job", "schema_version") VALUES ($1, $2, $3, $4, $5)"#,
    )
    .bind(&table.namespace)
    .bind(&table.table)
    .bind(kind)
    .bind(job_json)
    .bind(schema_version)
    .execute(&mut *tx)
    .await
    .doing(&name, "saving the job")?;
    Ok(())
}

pub(crate) async fn forget_job(tx: &mut PgConnection, table: &TableRef) -> Result<(), ReplicaError> {
    let name = table.to_string();
    for (sql, doing) in [
        (r#"DELETE FROM "cd2_aws"."job" WHERE "namespace" = $1 AND "table" = $2"#, "clearing the saved job"),
        (r#"DELETE FROM "cd2_aws"."object_done" WHERE "namespace" = $1 AND "table" = $2"#, "clearing load progress"),
    ] {
        sqlx::query(sql).bind(&table.namespace).bind(&table.table).execute(&mut *tx).await.doing(&name, doing)?;
    }
    Ok(())
}

pub(crate) async fn mark_done(
    tx: &mut PgConnection,
    table: &TableRef,
    job_id: &str,
    object_id: &str,
    rows: u64,
) -> Result<(), ReplicaError> {
    sqlx::query(
        r#"INSERT INTO "cd2_aws"."object_done" ("namespace", "table", "job_id", "object_id", "rows") VALUES ($1, $2, $3, $4, $5)"#,
    )
    .bind(&table.namespace)
    .bind(&table.table)
    .bind(job_id)
    .bind(object_id)
    .bind(rows as i64)
    .execute(&mut *tx)
    .await
    .doing(&table.to_string(), "recording a loaded object")?;
    Ok(())
}

/// Moves `table_sync` to the job's `until`, in the transaction of the last object.
pub(crate) async fn advance(
    tx: &mut PgConnection,
    table: &TableRef,
    job: &CompletedJob,
    schema_version: i64,
    model: &TableModel,
) -> Result<(), ReplicaError> {
    sqlx::query(
        r#"UPDATE "instructure_dap"."table_sync" SET "timestamp" = $3, "schema_version" = $4, "schema_description" = $5
           WHERE "source_namespace" = $1 AND "source_table" = $2"#,
    )
    .bind(&table.namespace)
    .bind(&table.table)
    .bind(job.until.naive_utc())
    .bind(schema_version)
    .bind(model.description.to_string())
    .execute(&mut *tx)
    .await
    .doing(&table.to_string(), "advancing instructure_dap.table_sync")?;
    clear_expired(tx, table).await?;
    forget_job(tx, table).await
}
