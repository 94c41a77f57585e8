//! Sync: an incremental query applied object by object, `table_sync` advanced with the last.

use crate::archive::JobArchive;
use crate::error::{DbContext, ReplicaError};
use crate::load::{self, Load, upsert_object};
use crate::progress::{AfterFailure, JobWanted, OBJECT_RETRY, Obtained, advance, mark_done, object_failed};
use crate::{Budget, Outcome, Progress, Replicator, Status, TableModel, TableRef, ddl, migrate};
use contract::archive::JobFolder;

impl Replicator {
    /// Applies the changes since the last load; `init_needed` for a table not in the replica.
    pub async fn sync(&mut self, table: &TableRef, budget: Budget) -> Result<Outcome, ReplicaError> {
        self.locked(table, budget, async |r: &mut Self| r.sync_locked(table, budget).await).await
    }

    async fn sync_locked(&mut self, table: &TableRef, budget: Budget) -> Result<Outcome, ReplicaError> {
        let name = table.to_string();
        let namespace = table.namespace.as_str();
        let Some(crate::Loaded { since, model: previous }) = self.loaded(table).await? else {
            return Ok(Outcome::new(Status::InitNeeded));
        };
        let schema = self.schema(table).await?;
        let model = TableModel::from_schema(table, &schema.schema)?;
        let mut outcome = Outcome::new(Status::Success);
        let retype = self.retype;
        let mut tx = self.begin(&name, budget).await?;
        outcome.notes = migrate::migrate(&mut tx, &model, previous.as_ref(), namespace, budget, retype).await?;
        tx.commit().await.doing(&name, "committing schema changes")?;
        // A large table's type change goes first, over as many calls as it takes.
        if !self.finish_retypes(&model, namespace, budget, &mut outcome.notes).await? {
            return Ok(outcome.in_progress(None));
        }

        let wanted = JobWanted {
            kind: "sync",
            since: Some(since),
            schema_version: schema.version,
            resumable: true,
            prepare: String::new(),
        };
        let job = match self.obtain_job(table, &wanted, budget).await? {
            Obtained::Ready(job) => job,
            Obtained::Pending(id) => return Ok(outcome.in_progress(id.as_deref())),
        };
        let target = ddl::qualified(namespace, &table.table);
        let archive = self
            .archive
            .clone()
            // The `since` asked for, where the table was: a restore's chain links on it.
            .map(|a| JobArchive::new(a, JobFolder::incremental(table.clone(), schema.version, since, job.until)));
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
        if objects.is_empty() {
            // A job without changes is archived too: a restore follows the jobs' chain.
            if let Some(archive) = &archive {
                match archive.finish(&load, &job, &schema).await {
                    Err(e) if budget.ran_out(&e) => return Ok(outcome.in_progress(Some(&job.id))),
                    finished => outcome.notes.extend(finished?),
                }
            }
            let mut tx = self.begin(&name, budget).await?;
            advance(&mut tx, table, &job, schema.version, &model).await?;
            tx.commit().await.doing(&name, "committing the sync")?;
            return Ok(outcome);
        }
        let last = objects.len() - 1;
        for (i, object) in objects.iter().enumerate() {
            if budget.spent() {
                return Ok(outcome.in_progress(Some(&job.id)));
            }
            let mut pauses = OBJECT_RETRY.pauses();
            let counts = loop {
                let mut tx = self.begin(&name, budget).await?;
                let applied = async {
                    let counts = upsert_object(&mut tx, &load, object, true).await?;
                    // The last object completes the job: its manifest goes before the commit
                    // that records the job as loaded.
                    let mut note = None;
                    if let Some(archive) = archive.as_ref().filter(|_| i == last) {
                        note = archive.finish(&load, &job, &schema).await?;
                    }
                    Ok::<_, ReplicaError>((counts, note))
                }
                .await;
                match applied {
                    Ok((counts, note)) => {
                        outcome.notes.extend(note);
                        if i == last {
                            advance(&mut tx, table, &job, schema.version, &model).await?;
                        } else {
                            mark_done(&mut tx, table, &job.id, &object.id, counts.inserted + counts.updated).await?;
                        }
                        tx.commit().await.doing(&name, "committing an object")?;
                        break counts;
                    }
                    Err(e) => {
                        if object_failed(tx, &name, &object.id, e, budget, &mut pauses).await?
                            == AfterFailure::OutOfTime
                        {
                            return Ok(outcome.in_progress(Some(&job.id)));
                        }
                    }
                }
            };
            tracing::info!(table = %name, object = %object.id, ?counts, "object applied");
            let rows = counts.inserted + counts.updated + counts.deleted;
            self.report(&Progress::Object {
                table: &name,
                done: job.objects.len() - objects.len() + i + 1,
                total: job.objects.len(),
                rows,
            });
            outcome.counts += counts;
        }
        Ok(outcome)
    }
}
