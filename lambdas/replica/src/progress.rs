//! Our bookkeeping in the `cd2_aws` schema: the job a table is loading from and the
//! objects already loaded, each written in the transaction of the data it describes, so
//! any later call (in any process) knows exactly where to resume.

use crate::Replicator;
use crate::error::{DbContext, ReplicaError};
use crate::model::TableModel;
use chrono::Utc;
use dap::CompletedJob;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// Jobs whose objects expire sooner than this are not resumed: a new job is cheaper than
/// a load that fails halfway.
const JOB_MARGIN: chrono::Duration = chrono::Duration::hours(2);

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobRow {
    pub(crate) job: CompletedJob,
    pub(crate) schema_version: i64,
}

impl Replicator {
    pub(crate) async fn saved_job(
        &self,
        namespace: &str,
        table: &str,
        kind: &str,
    ) -> Result<Option<JobRow>, ReplicaError> {
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

    pub(crate) async fn done_objects(
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
    pub(crate) fn resumable(saved: &Option<JobRow>, version: i64) -> Option<CompletedJob> {
        saved
            .as_ref()
            .filter(|s| s.schema_version == version)
            .filter(|s| s.job.expires_at.is_none_or(|e| e > Utc::now() + JOB_MARGIN))
            .map(|s| s.job.clone())
    }
}

/// Attempts per object for transient failures (a download cut off, a lost connection);
/// each attempt's transaction is rolled back before the next.
pub(crate) const OBJECT_ATTEMPTS: u32 = 3;

pub(crate) async fn retry_or_fail(
    table: &str,
    object: &str,
    error: ReplicaError,
    attempt: &mut u32,
) -> Result<(), ReplicaError> {
    if !error.is_transient() || *attempt >= OBJECT_ATTEMPTS {
        return Err(error);
    }
    tracing::warn!(%table, %object, attempt = *attempt, error = %error, "object failed; retrying it");
    tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(*attempt)).await;
    *attempt += 1;
    Ok(())
}

pub(crate) async fn save_job(
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

pub(crate) async fn forget_job(
    tx: &tokio_postgres::Transaction<'_>,
    namespace: &str,
    table: &str,
) -> Result<(), ReplicaError> {
    let name = format!("{namespace}.{table}");
    tx.execute(r#"DELETE FROM "cd2_aws"."job" WHERE "namespace" = $1 AND "table" = $2"#, &[&namespace, &table])
        .await
        .doing(&name, "clearing the saved job")?;
    tx.execute(r#"DELETE FROM "cd2_aws"."object_done" WHERE "namespace" = $1 AND "table" = $2"#, &[&namespace, &table])
        .await
        .doing(&name, "clearing load progress")?;
    Ok(())
}

pub(crate) async fn mark_done(
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
pub(crate) async fn advance(
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
