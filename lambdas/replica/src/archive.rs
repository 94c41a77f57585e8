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

    /// Makes the job's files queryable: the catalog's tables for them, made or brought
    /// up to date. Nothing by default (an archive without a catalog).
    fn describe(&self, table: CatalogTable) -> ArchiveFuture {
        let _ = table;
        Box::pin(async { Ok(()) })
    }
}

/// What a query engine needs to read the files of a table's kind and schema version, which
/// Athena reads by position: their columns in the files' order, with a type each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogTable {
    /// `<namespace>__<table>__<kind>`: the newest schema's; `..._v<version>` names each.
    pub name: String,
    pub schema_version: i64,
    /// The folder of the files ([`JobFolder::version_prefix`]), a partition a day below.
    pub prefix: String,
    /// `(name, Athena type)`, in the files' order: `meta.ts` is `meta_ts`, and a key or
    /// value column has its own name, in lower case.
    pub columns: Vec<(String, String)>,
    /// The order is the files' header's; otherwise the schema's stands in, which only
    /// makes a table that is not there yet.
    pub from_header: bool,
}

impl CatalogTable {
    /// The table for `folder`'s files, whose header is `header` (DAP's order, `meta.*`
    /// first, when no object was read: the schema's).
    pub fn new(folder: &JobFolder, model: &crate::TableModel, header: Option<&[String]>) -> Self {
        let labels: Vec<String> = match header {
            Some(header) => header.to_vec(),
            None => {
                let mut labels = vec!["meta.ts".to_owned()];
                if folder.kind == JobKind::Incremental {
                    labels.push("meta.action".into());
                }
                labels.push(format!("key.{}", model.primary_key));
                labels.extend(
                    model.columns.iter().filter(|c| c.name != model.primary_key).map(|c| format!("value.{}", c.name)),
                );
                labels
            }
        };
        let columns = labels
            .iter()
            .map(|label| match label.split_once('.') {
                Some(("key" | "value", name)) => {
                    let sql_type = model.column(name).map(|c| &c.sql_type);
                    (name.to_lowercase(), sql_type.map_or("string", athena_type).to_owned())
                }
                _ => (label.replace('.', "_").to_lowercase(), "string".to_owned()),
            })
            .collect();
        let t = &folder.table;
        CatalogTable {
            name: format!("{}__{}__{}", t.namespace, t.table, folder.kind.as_str()),
            schema_version: folder.schema_version,
            prefix: folder.version_prefix(),
            columns,
            from_header: header.is_some(),
        }
    }
}

/// A column's type as Athena reads it from DAP's TSV: numbers and booleans as such; DAP's
/// timestamps (`...Z`, which Athena's TSV reader does not take) and everything else as
/// text, for `from_iso8601_timestamp` and `json_parse` in queries.
fn athena_type(sql_type: &crate::model::SqlType) -> &'static str {
    use crate::model::SqlType::*;
    match sql_type {
        SmallInt => "smallint",
        Integer => "int",
        BigInt => "bigint",
        Real => "float",
        Double => "double",
        Boolean => "boolean",
        Date => "date",
        _ => "string",
    }
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
    /// The header of the first object this call loaded: the job's columns, in their order.
    header: Mutex<Option<Vec<String>>>,
    /// Why the job gets no manifest (objects the archive lacks and can no longer get).
    incomplete: Mutex<Option<String>>,
}

/// Objects of a job loaded before the archive was on are fetched again from DAP only
/// while the job lasts this much longer.
const FILL_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

impl JobArchive {
    pub(crate) fn new(archive: Arc<dyn Archive>, folder: JobFolder) -> Self {
        Self { archive, folder, header: Mutex::default(), incomplete: Mutex::default() }
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

    /// An object's copy is stored; `header` is its header (`None`: an empty object, or one
    /// not read as rows).
    pub(crate) fn stored(&self, header: Option<&[String]>) {
        if let Some(header) = header {
            self.header.lock().expect("never poisoned").get_or_insert_with(|| header.to_vec());
        }
    }

    /// Before a call loads the rest of `job`: archives the objects loaded by earlier calls
    /// (`done`) that the job's folder lacks, loaded before the archive was turned on. When
    /// DAP's job is about to expire they cannot be fetched again, and the job gets no
    /// manifest ([`JobArchive::finish`] says so): a restore stops before it rather than
    /// replay part of it.
    pub(crate) async fn fill(
        &self,
        load: &crate::load::Load<'_>,
        done: &HashSet<String>,
        job: &dap::CompletedJob,
    ) -> Result<(), ReplicaError> {
        let earlier: Vec<&ObjectId> = job.objects.iter().filter(|o| done.contains(&o.id)).collect();
        if earlier.is_empty() {
            return Ok(());
        }
        let table = load.model.table_ref().to_string();
        let prefix = self.folder.prefix();
        let found = self.archive.keys(prefix.clone()).await.map_err(|e| archive_error(&table, &prefix, e))?;
        let found: HashSet<String> = found.into_iter().collect();
        let missing: Vec<&ObjectId> =
            earlier.into_iter().filter(|o| !found.contains(&self.folder.object_key(&o.id))).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if job.expires_at.is_some_and(|e| e <= chrono::Utc::now() + FILL_MARGIN) {
            *self.incomplete.lock().expect("never poisoned") = Some(format!(
                "archive: {} objects of DAP job {} loaded before it was on, and the job expires: no manifest, a restore stops before it",
                missing.len(),
                job.id
            ));
            return Ok(());
        }
        for object in missing {
            tracing::info!(table = %table, object = %object.id, "the object loaded before the archive was on; archiving it now");
            crate::load::archive_object(load, self, object).await?;
        }
        Ok(())
    }

    /// Once every object of `job` is stored: writes the job's manifest and describes its
    /// files in the archive's catalog. `Some(why)` for the run's report when the job gets
    /// no manifest (see [`JobArchive::fill`]) or the catalog could not describe it.
    pub(crate) async fn finish(
        &self,
        load: &crate::load::Load<'_>,
        job: &dap::CompletedJob,
        schema: &dap::VersionedSchema,
    ) -> Result<Option<String>, ReplicaError> {
        if let Some(why) = self.incomplete.lock().expect("never poisoned").clone() {
            tracing::warn!(job = %job.id, "{why}");
            return Ok(Some(why));
        }
        let table = load.model.table_ref().to_string();
        let mut keys: Vec<String> = job.objects.iter().map(|o| self.folder.object_key(&o.id)).collect();
        keys.sort();
        let manifest = JobManifest {
            job_id: job.id.clone(),
            schema_version: schema.version,
            schema: schema.schema.clone(),
            objects: keys,
            header: self.header.lock().expect("never poisoned").clone(),
        };
        let key = self.folder.manifest_key();
        let body = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        self.archive.put(key.clone(), body).await.map_err(|e| archive_error(&table, &key, e))?;
        // The catalog only describes the files: when it fails for a while (throttled, slow),
        // the job is archived and loaded all the same, the run's report says so, and the
        // table's next job tries again. A catalog that refuses (its database gone, no
        // permission) is a setting to fix, and fails the table so that its alert says so.
        let described = CatalogTable::new(&self.folder, load.model, manifest.header.as_deref());
        let name = described.name.clone();
        match load.budget.within(self.archive.describe(described)).await {
            Some(Ok(())) => Ok(None),
            Some(Err(e)) if !e.transient => Err(archive_error(&table, &format!("Glue table {name}"), e)),
            failed => {
                let why = failed.map_or_else(|| "the call's time ran out".to_owned(), |e| e.unwrap_err().message);
                // Notes are short in the run's report: the cause comes first.
                let note = format!("archive catalog {name} not updated, the next job tries again: {why}");
                tracing::warn!(job = %job.id, "{note}");
                Ok(Some(note))
            }
        }
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
            Some(s) => JobFolder::incremental(table, 1, at(s), at(until)),
            None => JobFolder::snapshot(table, 1, at(until)),
        };
        let manifest = JobManifest {
            job_id: format!("j{until}"),
            schema_version: 1,
            schema: serde_json::json!({}),
            objects: vec![],
            header: None,
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
