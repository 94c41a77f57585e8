//! Init: a snapshot into a staging table, one object per transaction, published whole.

use crate::archive::JobArchive;
use crate::error::{DbContext, ReplicaError};
use crate::load::{self, Load, upsert_object};
use crate::model::quote_ident;
use crate::progress::{
    AfterFailure, JobWanted, OBJECT_RETRY, Obtained, clear_expired, forget_job, mark_done, object_failed,
};
use crate::{Budget, Outcome, Progress, Replicator, Status, TableModel, TableRef, ddl, migrate};
use contract::archive::JobFolder;

impl Replicator {
    /// Loads a table that is not in the replica yet; see the crate docs.
    pub async fn init(&mut self, table: &TableRef, budget: Budget) -> Result<Outcome, ReplicaError> {
        self.locked(table, budget, async |r: &mut Self| r.init_locked(table, budget).await).await
    }

    async fn init_locked(&mut self, table: &TableRef, budget: Budget) -> Result<Outcome, ReplicaError> {
        let name = table.to_string();
        let namespace = table.namespace.as_str();
        if self.last_timestamp(table).await?.is_some() {
            return Err(ReplicaError::AlreadyInitialized { table: name });
        }
        if migrate::table_exists(&mut self.db, namespace, &table.table).await.doing(&name, "looking for the table")? {
            return Err(ReplicaError::Unregistered { table: name });
        }
        let schema = self.schema(table).await?;
        let model = TableModel::from_schema(table, &schema.schema)?;
        let staging = ddl::staging_schema(namespace);
        let mut outcome = Outcome::new(Status::Success);
        let mut tx = self.begin(&name, budget).await?;
        crate::batch(ddl::DDL_LOCK).execute(&mut *tx).await.doing(&name, "waiting for other schema changes")?;
        outcome.notes = migrate::ensure_enums(&mut tx, &model, None).await?;
        tx.commit().await.doing(&name, "committing enum types")?;

        let staged = migrate::table_exists(&mut self.db, &staging, &table.table)
            .await
            .doing(&name, "looking for the staging table")?;
        let wanted = JobWanted {
            kind: "init",
            since: None,
            schema_version: schema.version,
            resumable: staged,
            prepare: format!(
                "{lock}\nDROP TABLE IF EXISTS {staged};\n{create}",
                lock = ddl::DDL_LOCK,
                staged = ddl::qualified(&staging, &table.table),
                create = ddl::create_table(&model, &staging)
            ),
        };
        let job = match self.obtain_job(table, &wanted, budget).await? {
            Obtained::Ready(job) => job,
            Obtained::Pending(id) => return Ok(outcome.in_progress(id.as_deref())),
        };

        let target = ddl::qualified(&staging, &table.table);
        let archive = self
            .archive
            .clone()
            .map(|a| JobArchive::new(a, JobFolder::snapshot(table.clone(), schema.version, job.until)));
        let (dap, reader) = self.sources();
        let load = Load {
            source: load::source(&dap, &reader),
            model: &model,
            target: &target,
            archive: archive.as_ref(),
            budget,
        };
        let (done, _) = self.done_objects(table, &job.id).await?;
        if let Some(archive) = &archive {
            match archive.fill(&load, &done, &job).await {
                Err(e) if budget.ran_out(&e) => return Ok(outcome.in_progress(Some(&job.id))),
                filled => filled?,
            }
        }
        let mut objects: Vec<_> = job.objects.iter().filter(|o| !done.contains(&o.id)).cloned().collect();
        objects.sort();
        for (n, object) in objects.iter().enumerate() {
            if budget.spent() {
                return Ok(outcome.in_progress(Some(&job.id)));
            }
            let mut pauses = OBJECT_RETRY.pauses();
            loop {
                let mut tx = self.begin(&name, budget).await?;
                let loaded = if model.repeats_keys() {
                    upsert_object(&mut tx, &load, object, false).await.map(|c| c.inserted)
                } else {
                    match load::copy_object(&mut tx, &load, object, false).await {
                        Ok(copied) => copied.keep(&load, object).await.map(|(l, _)| l.rows),
                        Err(e) => Err(e),
                    }
                };
                match loaded {
                    Ok(rows) => {
                        mark_done(&mut tx, table, &job.id, &object.id, rows).await?;
                        tx.commit().await.doing(&name, "committing an object")?;
                        tracing::info!(table = %name, object = %object.id, rows, "object loaded");
                        self.report(&Progress::Object {
                            table: &name,
                            done: job.objects.len() - objects.len() + n + 1,
                            total: job.objects.len(),
                            rows,
                        });
                        break;
                    }
                    Err(e) => {
                        if object_failed(tx, &name, &object.id, e, budget, &mut pauses).await?
                            == AfterFailure::OutOfTime
                        {
                            return Ok(outcome.in_progress(Some(&job.id)));
                        }
                    }
                }
            }
        }

        // Everything is staged (and archived): publish the table and its metadata at once.
        if let Some(archive) = &archive {
            match archive.finish(&load, &job, &schema).await {
                Err(e) if budget.ran_out(&e) => return Ok(outcome.in_progress(Some(&job.id))),
                finished => outcome.notes.extend(finished?),
            }
        }
        let (_, total) = self.done_objects(table, &job.id).await?;
        let mut tx = self.begin(&name, budget).await?;
        crate::batch(&format!(
            "{lock}\n{ensure}\nALTER TABLE {target} SET SCHEMA {ns};",
            lock = ddl::DDL_LOCK,
            ensure = ddl::ensure_schema(namespace),
            ns = quote_ident(namespace)
        ))
        .execute(&mut *tx)
        .await
        .doing(&name, "moving the loaded table into its schema")?;
        sqlx::query(
            r#"INSERT INTO "instructure_dap"."table_sync"
               ("source_namespace", "source_table", "timestamp", "schema_version", "target_schema", "target_table",
                "schema_description_format", "schema_description")
               VALUES ($1, $2, $3, $4, $1, $2, 'json', $5)"#,
        )
        .bind(&table.namespace)
        .bind(&table.table)
        .bind(job.until.naive_utc())
        .bind(schema.version)
        .bind(model.description.to_string())
        .execute(&mut *tx)
        .await
        .doing(&name, "registering the table in instructure_dap.table_sync")?;
        forget_job(&mut tx, table).await?;
        clear_expired(&mut tx, table).await?;
        crate::retype::forget_table(&mut tx, table).await?;
        tx.commit().await.doing(&name, "committing the initialized table")?;
        outcome.counts.inserted = total;
        Ok(outcome)
    }
}
