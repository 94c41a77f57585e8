//! The raw zone: each object's bytes as DAP served them, written to an archive while the
//! same download loads into the database, and a manifest for each job once all of its
//! objects are in. The archive itself (an S3 bucket) is the caller's: this crate knows no
//! AWS.
//!
//! The order is what makes a crash harmless: an object's copy is complete before the
//! transaction that records it as loaded commits, and a job's manifest is written before
//! the transaction that records the job as loaded. A crash in between loads the object
//! again and writes the same key with the same bytes.

use crate::{ReplicaError, TableRef};
use chrono::{DateTime, Utc};
use contract::archive::{JobFolder, JobKind, JobManifest};
use dap::{ObjectId, ObjectReader, Received, Tee};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A write to the archive.
pub type ArchiveFuture = Pin<Box<dyn Future<Output = Result<(), ArchiveError>> + Send>>;

/// A write to the archive that failed: what and why (the caller adds the table and object).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ArchiveError {
    pub message: String,
    /// Worth a retry (throttling, a 5xx, a lost connection); otherwise the archive's setup
    /// needs fixing (the bucket, its key, the function's permissions).
    pub transient: bool,
}

/// Where the raw zone is written.
pub trait Archive: Send + Sync + std::fmt::Debug {
    /// Writes what `received` brings under `key` once [`Received::End`] arrives, in bounded
    /// memory; keeps nothing when the sender goes without `End` (a download that failed or
    /// was given up).
    fn write(&self, key: String, received: tokio::sync::mpsc::Receiver<Received>) -> ArchiveFuture;

    /// Writes a small object whole (a job's manifest).
    fn put(&self, key: String, body: Vec<u8>) -> ArchiveFuture;

    /// The keys stored under `prefix` (a job's folder), to find what a job's manifest
    /// would promise but the archive lacks.
    fn keys(&self, prefix: String) -> BoxFuture<'_, Result<Vec<String>, ArchiveError>>;
}

/// Where a restore reads the raw zone from.
pub trait ArchiveReader: Send + Sync + std::fmt::Debug {
    /// The table's jobs that have a manifest (complete ones), in any order.
    fn jobs(&self, table: &TableRef) -> BoxFuture<'_, Result<Vec<ArchivedJob>, ArchiveError>>;

    /// An object's rows: its bytes as archived, decoded ([`dap::gunzip`]).
    fn open(&self, key: &str) -> BoxFuture<'_, Result<ObjectReader, ArchiveError>>;
}

/// A boxed future that borrows its reader.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A job of the archive: its folder (table, kind, timestamps) and its manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedJob {
    pub folder: JobFolder,
    pub manifest: JobManifest,
}

impl ArchivedJob {
    /// The job as DAP answered it, its objects named by their keys in the archive.
    pub(crate) fn completed(&self) -> dap::CompletedJob {
        dap::CompletedJob {
            id: self.manifest.job_id.clone(),
            objects: self.manifest.objects.iter().map(|key| ObjectId { id: key.clone() }).collect(),
            schema_version: Some(self.manifest.schema_version),
            until: self.folder.until,
            since: self.folder.since,
            expires_at: None,
        }
    }

    pub(crate) fn schema(&self) -> dap::VersionedSchema {
        dap::VersionedSchema { schema: self.manifest.schema.clone(), version: self.manifest.schema_version }
    }
}

/// The jobs that bring a table from where it is (`current`: its `table_sync` timestamp,
/// `None` when it is not in the database) to the newest the archive holds, in order: the
/// newest snapshot when the table is new, then each incremental job that starts where the
/// last ended (of two from one point, the one that ends later: the replication abandoned
/// the other when DAP deleted it mid-load). A job that ends where it starts (a table
/// without changes) moves nothing and is passed over.
pub fn plan(
    table: &str,
    mut jobs: Vec<ArchivedJob>,
    current: Option<DateTime<Utc>>,
) -> Result<Vec<ArchivedJob>, ReplicaError> {
    let refuse = |message: String| ReplicaError::Restore { table: table.into(), message };
    jobs.sort_by_key(|j| j.folder.until);
    let mut plan = Vec::new();
    let mut at = match current {
        Some(at) => at,
        None => {
            let snapshot = jobs
                .iter()
                .rev()
                .find(|j| j.folder.kind == JobKind::Snapshot)
                .ok_or_else(|| refuse("the archive holds no complete snapshot of it".into()))?;
            plan.push(snapshot.clone());
            snapshot.folder.until
        }
    };
    // Each step moves `at` forward, so the chain ends.
    while let Some(next) = jobs
        .iter()
        .rev()
        .find(|j| j.folder.kind == JobKind::Incremental && j.folder.since == Some(at) && j.folder.until > at)
    {
        plan.push(next.clone());
        at = next.folder.until;
    }
    if let Some(later) = jobs.iter().rfind(|j| j.folder.until > at) {
        return Err(refuse(format!(
            "the archive holds changes up to {}, but none that start at {at}, where the table is: the archive misses changes in between",
            later.folder.until
        )));
    }
    Ok(plan)
}

/// Chunks of a download in flight to the archive: a few HTTP chunks.
const IN_FLIGHT: usize = 16;

/// A job's folder in the archive, while the job loads.
pub(crate) struct JobArchive {
    archive: Arc<dyn Archive>,
    folder: JobFolder,
    /// Objects this call has stored: the others may have loaded before the archive was
    /// turned on, and are looked for before the manifest promises them.
    stored: Mutex<HashSet<String>>,
}

impl JobArchive {
    pub(crate) fn new(archive: Arc<dyn Archive>, folder: JobFolder) -> Self {
        Self { archive, folder, stored: Mutex::default() }
    }

    /// Starts an object's copy: the tee its download sends to, and the write to end once
    /// the object has loaded.
    pub(crate) fn start(&self, object: &ObjectId) -> (Tee, Upload) {
        let (tee, received) = tokio::sync::mpsc::channel(IN_FLIGHT);
        let key = self.folder.object_key(&object.id);
        // Not aborted when dropped: a write given up on ends itself when its senders go,
        // and cleans up what it started.
        let handle = tokio::spawn(self.archive.write(key.clone(), received));
        (tee.clone(), Upload { handle, key, end: tee })
    }

    /// Counts `object` in the archive: its copy is stored.
    pub(crate) fn stored(&self, object: &ObjectId) {
        self.stored.lock().expect("never poisoned").insert(object.id.clone());
    }

    /// Writes the job's manifest once every object of `objects` is in the archive: those
    /// not stored by this call and not found in the job's folder (loaded before the archive
    /// was turned on) are downloaded again, into the archive alone.
    pub(crate) async fn finish(
        &self,
        load: &crate::load::Load<'_>,
        job_id: &str,
        schema: &dap::VersionedSchema,
        objects: &[ObjectId],
    ) -> Result<(), ReplicaError> {
        let table = load.model.table_ref().to_string();
        let unseen: Vec<&ObjectId> = {
            let stored = self.stored.lock().expect("never poisoned");
            objects.iter().filter(|o| !stored.contains(&o.id)).collect()
        };
        if !unseen.is_empty() {
            let prefix = self.folder.prefix();
            let found = self.archive.keys(prefix.clone()).await.map_err(|e| archive_error(&table, &prefix, e))?;
            let found: HashSet<String> = found.into_iter().collect();
            for object in unseen.into_iter().filter(|o| !found.contains(&self.folder.object_key(&o.id))) {
                tracing::info!(table = %table, object = %object.id, "the object loaded before the archive was on; archiving it now");
                crate::load::archive_object(load, self, object).await?;
            }
        }
        let mut keys: Vec<String> = objects.iter().map(|o| self.folder.object_key(&o.id)).collect();
        keys.sort();
        let manifest = JobManifest {
            job_id: job_id.to_owned(),
            schema_version: schema.version,
            schema: schema.schema.clone(),
            objects: keys,
        };
        let key = self.folder.manifest_key();
        let body = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        self.archive.put(key.clone(), body).await.map_err(|e| archive_error(&table, &key, e))
    }
}

/// An object's copy on its way to the archive. Dropped before [`Upload::finished`] (the
/// load failed), the copy is given up: nothing is kept of it.
pub(crate) struct Upload {
    handle: tokio::task::JoinHandle<Result<(), ArchiveError>>,
    key: String,
    /// Sends [`Received::End`]: the object loaded whole, so its copy is whole and good.
    end: Tee,
}

impl Upload {
    /// Called once the object has loaded (read whole, and taken by the database): ends the
    /// copy and waits for it to be stored, within the budget.
    pub(crate) async fn finished(self, table: &str, object: &str, budget: crate::Budget) -> Result<(), ReplicaError> {
        let Upload { handle, key, end } = self;
        let stored = budget
            .within(async move {
                // A write that stopped already says why when it is joined.
                let _ = end.send(Received::End).await;
                drop(end);
                handle.await
            })
            .await;
        match stored {
            None => Err(ReplicaError::OutOfTime { table: table.into(), object: object.into() }),
            Some(Ok(written)) => written.map_err(|e| archive_error(table, &key, e)),
            Some(Err(panic)) => Err(archive_error(
                table,
                &key,
                ArchiveError { message: format!("the write failed: {panic}"), transient: false },
            )),
        }
    }
}

fn archive_error(table: &str, key: &str, e: ArchiveError) -> ReplicaError {
    ReplicaError::Archive { table: table.into(), key: key.into(), message: e.message, transient: e.transient }
}

/// An archived job a restore replays in DAP's place.
#[derive(Debug)]
pub(crate) struct Replay {
    pub(crate) reader: Arc<dyn ArchiveReader>,
    pub(crate) job: ArchivedJob,
}

impl crate::Replicator {
    /// Rebuilds `table` from the archive alone, through the same loads as replication: the
    /// newest snapshot when the table is not in the database, then every incremental job
    /// from where it is, so that it ends as replication left it (rows and `table_sync`)
    /// and replication goes on from it. Nothing is written to the archive meanwhile.
    /// `in_progress` when the budget runs out; a call again resumes.
    pub async fn restore(
        &mut self,
        table: &TableRef,
        reader: Arc<dyn ArchiveReader>,
        budget: crate::Budget,
    ) -> Result<crate::Outcome, ReplicaError> {
        let name = table.to_string();
        // Read before the table's lock: each job checks again, under it, that the table
        // is still where the plan expects.
        let current = self.last_timestamp(table).await?;
        let jobs = reader.jobs(table).await.map_err(|e| ReplicaError::ArchiveRead {
            table: name.clone(),
            key: format!("{}/{}/", table.namespace, table.table),
            message: e.message,
            transient: e.transient,
        })?;
        let plan = plan(&name, jobs, current)?;
        let archive = self.archive.take();
        let restored = self.replay_all(table, reader, plan, budget).await;
        self.replay = None;
        self.archive = archive;
        restored
    }

    async fn replay_all(
        &mut self,
        table: &TableRef,
        reader: Arc<dyn ArchiveReader>,
        plan: Vec<ArchivedJob>,
        budget: crate::Budget,
    ) -> Result<crate::Outcome, ReplicaError> {
        let mut total = crate::Outcome::new(crate::Status::Success);
        for job in plan {
            let kind = job.folder.kind;
            tracing::info!(table = %table, ?kind, until = %job.folder.until, objects = job.manifest.objects.len(), "replaying an archived job");
            self.replay = Some(Replay { reader: reader.clone(), job });
            let outcome = match kind {
                JobKind::Snapshot => self.init(table, budget).await?,
                JobKind::Incremental => self.sync(table, budget).await?,
            };
            total.counts += outcome.counts;
            total.notes.extend(outcome.notes);
            match outcome.status {
                crate::Status::Success => {}
                crate::Status::InProgress => return Ok(total.in_progress(outcome.cursor.as_deref())),
                crate::Status::InitNeeded => {
                    return Err(ReplicaError::Restore {
                        table: table.to_string(),
                        message: "the table left the database while it was restored".into(),
                    });
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, hour, 0, 0).unwrap()
    }

    fn job(since: Option<u32>, until: u32) -> ArchivedJob {
        let table = TableRef::new("canvas", "users");
        let folder = match since {
            Some(s) => JobFolder::incremental(table, at(s), at(until)),
            None => JobFolder::snapshot(table, at(until)),
        };
        let manifest = JobManifest {
            job_id: format!("j{until}"),
            schema_version: 1,
            schema: serde_json::json!({}),
            objects: vec![],
        };
        ArchivedJob { folder, manifest }
    }

    fn untils(plan: &[ArchivedJob]) -> Vec<u32> {
        use chrono::Timelike;
        plan.iter().map(|j| j.folder.until.hour()).collect()
    }

    #[test]
    fn a_new_table_takes_the_newest_snapshot_then_the_chain_from_it() {
        // A first snapshot at 1, a second one at 3 (a table loaded again), an incremental
        // job abandoned at 4 and the one that replaced it at 5, then 6.
        let jobs = vec![job(None, 1), job(Some(1), 2), job(None, 3), job(Some(3), 4), job(Some(3), 5), job(Some(5), 6)];
        assert_eq!(untils(&plan("t", jobs.clone(), None).unwrap()), [3, 5, 6]);
        assert_eq!(untils(&plan("t", jobs.clone(), Some(at(5))).unwrap()), [6], "a table already there catches up");
        assert!(plan("t", jobs, Some(at(6))).unwrap().is_empty());
    }

    #[test]
    fn a_job_without_changes_ends_where_it_starts_and_is_passed_over() {
        let jobs = vec![job(None, 1), job(Some(1), 1), job(Some(1), 2), job(Some(2), 2)];
        assert_eq!(untils(&plan("t", jobs, None).unwrap()), [1, 2]);
    }

    #[test]
    fn a_gap_or_no_snapshot_is_refused_with_where_it_is() {
        let e = plan("canvas.users", vec![job(None, 1), job(Some(2), 3)], None).unwrap_err().to_string();
        assert!(
            e.contains("changes up to 2026-12-04 03:00:00 UTC, but none that start at 2026-12-04 01:00:00 UTC"),
            "{e}"
        );
        let e = plan("canvas.users", vec![job(Some(1), 2)], None).unwrap_err().to_string();
        assert_eq!(e, "canvas.users: cannot restore from the archive: the archive holds no complete snapshot of it");
    }
}
