//! The raw zone: each object's bytes as DAP served them, written to an archive while the
//! same download loads into the database, and a manifest for each job once all of its
//! objects are in. The archive itself (an S3 bucket) is the caller's: this crate knows no
//! AWS.
//!
//! The order is what makes a crash harmless: an object's copy is complete before the
//! transaction that records it as loaded commits, and a job's manifest is written before
//! the transaction that records the job as loaded. A crash in between loads the object
//! again and writes the same key with the same bytes.

use crate::ReplicaError;
use contract::archive::{JobFolder, JobManifest};
use dap::{ObjectId, Received, Tee};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
}

/// Chunks of a download in flight to the archive: a few HTTP chunks.
const IN_FLIGHT: usize = 16;

/// A job's folder in the archive, while the job loads.
pub(crate) struct JobArchive {
    archive: Arc<dyn Archive>,
    folder: JobFolder,
}

impl JobArchive {
    pub(crate) fn new(archive: Arc<dyn Archive>, folder: JobFolder) -> Self {
        Self { archive, folder }
    }

    /// Starts an object's copy: the tee its download sends to, and the write to wait for.
    pub(crate) fn start(&self, object: &ObjectId) -> (Tee, Upload) {
        let (tee, received) = tokio::sync::mpsc::channel(IN_FLIGHT);
        let key = self.folder.object_key(&object.id);
        // Not aborted when dropped: a write given up on ends itself when its sender goes,
        // and cleans up what it started.
        let handle = tokio::spawn(self.archive.write(key.clone(), received));
        (tee, Upload { handle, key })
    }

    /// Writes the job's manifest: every object of `objects` is in the archive.
    pub(crate) async fn finish(
        &self,
        table: &str,
        job_id: &str,
        schema: &dap::VersionedSchema,
        objects: &[ObjectId],
    ) -> Result<(), ReplicaError> {
        let mut sorted: Vec<&ObjectId> = objects.iter().collect();
        sorted.sort();
        let manifest = JobManifest {
            job_id: job_id.to_owned(),
            schema_version: schema.version,
            schema: schema.schema.clone(),
            objects: sorted.iter().map(|o| self.folder.object_key(&o.id)).collect(),
        };
        let key = self.folder.manifest_key();
        let body = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        self.archive.put(key.clone(), body).await.map_err(|e| archive_error(table, &key, e))
    }
}

/// An object's copy on its way to the archive.
pub(crate) struct Upload {
    handle: tokio::task::JoinHandle<Result<(), ArchiveError>>,
    key: String,
}

impl Upload {
    /// Waits for the copy to be complete, within the budget.
    pub(crate) async fn finished(self, table: &str, object: &str, budget: crate::Budget) -> Result<(), ReplicaError> {
        let key = self.key;
        match budget.within(self.handle).await {
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
