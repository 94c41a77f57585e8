//! The raw zone on S3: [`S3Archive`] is the writer the replication functions tee DAP's
//! objects into ([`replica::Archive`]: each object's bytes as they arrive, in parts of
//! [`PART`] through S3's multipart upload so memory stays bounded whatever the object's
//! size, or whole when smaller), and the reader a restore replays them from
//! ([`replica::ArchiveReader`]). The bucket's own key encrypts them. The layout is
//! [`contract::archive`]'s. With a [`Catalog`], each job's files are described to Athena
//! in a Glue database as the job completes.

pub mod catalog;

pub use aws_sdk_glue;
pub use catalog::Catalog;

use contract::archive::{JobFolder, JobManifest, MANIFEST};
use dap::Received;
use replica::archive::BoxFuture;
use replica::{ArchiveError, ArchiveFuture, ArchivedJob, TableRef};
use std::time::Duration;

/// The part size: S3 takes parts of 5 MiB and more (but the last), 10,000 at most, so
/// objects up to 80 GiB; DAP's objects are far smaller.
pub const PART: usize = 8 * 1024 * 1024;

/// DAP's objects are gzip TSV; the type (not an encoding) keeps them bytes for every reader.
const GZIP: &str = "application/gzip";

#[derive(Clone, Debug)]
pub struct S3Archive {
    s3: aws_sdk_s3::Client,
    bucket: String,
    catalog: Option<Catalog>,
}

/// How long one S3 request may take (a part of [`PART`] among them) before it is tried
/// again, and all of its tries: a write outlives a call only by this, even in a warm
/// container that goes on after the call gave up on it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(180);

impl S3Archive {
    /// The archive in `bucket`, through `s3` with the timeouts above.
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(s3.config().to_builder().timeout_config(timeouts).build());
        Self { s3, bucket, catalog: None }
    }

    /// Describes each job's files in `catalog` as the job completes.
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl replica::Archive for S3Archive {
    fn write(&self, key: String, received: tokio::sync::mpsc::Receiver<Received>) -> ArchiveFuture {
        let this = self.clone();
        Box::pin(async move { this.write_object(&key, received).await })
    }

    fn put(&self, key: String, body: Vec<u8>) -> ArchiveFuture {
        let this = self.clone();
        Box::pin(async move {
            let put = this.s3.put_object().bucket(&this.bucket).key(&key).content_type("application/json");
            put.body(body.into()).send().await.map_err(|e| this.failed("PutObject", e))?;
            Ok(())
        })
    }

    fn describe(&self, table: replica::CatalogTable) -> ArchiveFuture {
        let this = self.clone();
        Box::pin(async move {
            match &this.catalog {
                Some(catalog) => catalog.describe(&this.bucket, &table).await,
                None => Ok(()),
            }
        })
    }

    fn keys(&self, prefix: String) -> BoxFuture<'_, Result<Vec<String>, ArchiveError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.failed("ListObjectsV2", e))?;
                keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
            }
            Ok(keys)
        })
    }
}

impl S3Archive {
    async fn write_object(
        &self,
        key: &str,
        mut received: tokio::sync::mpsc::Receiver<Received>,
    ) -> Result<(), ArchiveError> {
        let mut part = Vec::with_capacity(PART);
        let mut multipart: Option<Multipart> = None;
        let written = 'receiving: loop {
            match received.recv().await {
                Some(Received::Chunk(bytes)) => {
                    // Parts are cut at PART exactly, so a part's buffer never grows past it.
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let (now, later) = rest.split_at(rest.len().min(PART - part.len()));
                        part.extend_from_slice(now);
                        rest = later;
                        if part.len() < PART {
                            continue;
                        }
                        let full = std::mem::replace(&mut part, Vec::with_capacity(PART));
                        let upload = match &mut multipart {
                            Some(m) => m,
                            None => match self.start(key).await {
                                Ok(started) => multipart.insert(started),
                                Err(e) => break 'receiving Err(e),
                            },
                        };
                        if let Err(e) = self.upload_part(upload, key, full).await {
                            break 'receiving Err(e);
                        }
                    }
                }
                Some(Received::End) => break self.end(multipart.as_mut(), key, part).await,
                None => {
                    break Err(ArchiveError {
                        message: "the object was not loaded whole, so its copy is not kept".into(),
                        transient: true,
                    });
                }
            }
        };
        if let (Err(_), Some(upload)) = (&written, multipart) {
            if let Some(part) = upload.in_flight {
                part.abort();
            }
            // The parts stored so far would be billed until the bucket's rule removes them.
            let abort = self.s3.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload.id);
            if let Err(e) = abort.send().await {
                tracing::warn!(key, error = %self.failed("AbortMultipartUpload", e), "an upload given up on stays until the bucket's rule removes it");
            }
        }
        written
    }

    async fn start(&self, key: &str) -> Result<Multipart, ArchiveError> {
        // Each part carries its CRC32 (the SDK's default), so the upload is made to expect them.
        let created = self.s3.create_multipart_upload().bucket(&self.bucket).key(key).content_type(GZIP);
        let created = created.checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32);
        let created = created.send().await.map_err(|e| self.failed("CreateMultipartUpload", e))?;
        let id = created.upload_id.ok_or_else(|| ArchiveError {
            message: format!(
                "S3 started an upload to bucket {} without an upload id; is the endpoint S3?",
                self.bucket
            ),
            transient: false,
        })?;
        Ok(Multipart { id, parts: Vec::new(), in_flight: None })
    }

    /// Sends a part while the next one fills: the part before it must be stored first, so
    /// at most two parts are held.
    async fn upload_part(&self, upload: &mut Multipart, key: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        upload.settle().await?;
        let number = upload.parts.len() as i32 + 1;
        let (this, key, id) = (self.clone(), key.to_owned(), upload.id.clone());
        upload.in_flight = Some(tokio::spawn(async move {
            let sent = this.s3.upload_part().bucket(&this.bucket).key(&key).upload_id(&id).part_number(number);
            let answer = sent.body(bytes.into()).send().await.map_err(|e| this.failed("UploadPart", e))?;
            Ok(aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(answer.e_tag)
                .set_checksum_crc32(answer.checksum_crc32)
                .build())
        }));
        Ok(())
    }

    /// The whole object has arrived: the last part and the upload's completion, or the
    /// object in one request.
    async fn end(&self, multipart: Option<&mut Multipart>, key: &str, rest: Vec<u8>) -> Result<(), ArchiveError> {
        let Some(upload) = multipart else {
            let put = self.s3.put_object().bucket(&self.bucket).key(key).content_type(GZIP).body(rest.into());
            put.send().await.map_err(|e| self.failed("PutObject", e))?;
            return Ok(());
        };
        if !rest.is_empty() {
            self.upload_part(upload, key, rest).await?;
        }
        upload.settle().await?;
        let parts = std::mem::take(&mut upload.parts);
        let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        let complete = self.s3.complete_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload.id);
        complete.multipart_upload(parts).send().await.map_err(|e| self.failed("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// An S3 failure ([`failed`]).
    fn failed<E>(&self, call: &str, e: aws_sdk_s3::error::SdkError<E>) -> ArchiveError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        failed(format!("{call} on bucket {}", self.bucket), "the bucket, its KMS key", e)
    }
}

/// An AWS failure while `doing`: throttling, a 5xx answer, a conflicting or corrupted
/// request, expired credentials (renewed at the next try) and failures to reach the
/// service are transient; a request that could not be built and the rest (access denied,
/// a resource that is not there) need the operator, who checks `what`.
pub(crate) fn failed<E>(doing: String, what: &str, e: aws_sdk_s3::error::SdkError<E>) -> ArchiveError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    {
        use aws_sdk_s3::error::SdkError;
        match &e {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("unknown");
                let message = format!("{doing} failed: {code}: {}", err.message().unwrap_or_default());
                let busy = [
                    "SlowDown",
                    "Throttl",
                    "RequestTimeout",
                    "ServiceUnavailable",
                    "InternalError",
                    "OperationAborted",
                    "BadDigest",
                    "ExpiredToken",
                    "ConcurrentModification",
                    "OperationTimeout",
                ]
                .iter()
                .any(|c| code.contains(c));
                if busy || service.raw().status().is_server_error() {
                    ArchiveError { message, transient: true }
                } else {
                    ArchiveError {
                        message: format!("{message}; check {what} and the permissions of the role in use"),
                        transient: false,
                    }
                }
            }
            SdkError::ConstructionFailure(_) => {
                ArchiveError { message: format!("{doing} could not be made: {}", dap::chain(&e)), transient: false }
            }
            _ => ArchiveError { message: format!("{doing} failed: {}", dap::chain(&e)), transient: true },
        }
    }
}

impl replica::ArchiveReader for S3Archive {
    fn jobs(&self, table: &TableRef) -> BoxFuture<'_, Result<Vec<ArchivedJob>, ArchiveError>> {
        let prefix = format!("{}/{}/", table.namespace, table.table);
        Box::pin(async move {
            let mut manifests = Vec::new();
            let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.failed("ListObjectsV2", e))?;
                manifests.extend(
                    page.contents().iter().filter_map(|o| o.key()).filter(|k| k.ends_with(MANIFEST)).map(str::to_owned),
                );
            }
            let mut jobs = Vec::with_capacity(manifests.len());
            for key in manifests {
                let folder = JobFolder::from_manifest_key(&key)
                    .map_err(|e| ArchiveError { message: e.to_string(), transient: false })?;
                let object = self.s3.get_object().bucket(&self.bucket).key(&key).send().await;
                let object = object.map_err(|e| self.failed("GetObject", e))?;
                let body = object.body.collect().await.map_err(|e| ArchiveError {
                    message: format!("reading s3://{}/{key}: {}", self.bucket, dap::chain(&e)),
                    transient: true,
                })?;
                let manifest: JobManifest = serde_json::from_slice(&body.into_bytes()).map_err(|e| ArchiveError {
                    message: format!("s3://{}/{key} is not a job manifest: {e}", self.bucket),
                    transient: false,
                })?;
                jobs.push(ArchivedJob { folder, manifest });
            }
            Ok(jobs)
        })
    }

    fn open(&self, key: &str) -> BoxFuture<'_, Result<dap::ObjectReader, ArchiveError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let object = self.s3.get_object().bucket(&self.bucket).key(&key).send().await;
            let object = object.map_err(|e| self.failed("GetObject", e))?;
            Ok(dap::gunzip(object.body.into_async_read()))
        })
    }
}

/// A multipart upload under way: its id, the parts stored, and the one being sent.
struct Multipart {
    id: String,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    in_flight: Option<tokio::task::JoinHandle<Result<aws_sdk_s3::types::CompletedPart, ArchiveError>>>,
}

impl Multipart {
    /// Waits for the part being sent, and counts it stored.
    async fn settle(&mut self) -> Result<(), ArchiveError> {
        if let Some(part) = self.in_flight.take() {
            let stored = part
                .await
                .map_err(|e| ArchiveError { message: format!("a part's upload failed: {e}"), transient: false })??;
            self.parts.push(stored);
        }
        Ok(())
    }
}
