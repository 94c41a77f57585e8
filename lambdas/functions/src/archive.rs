//! The raw zone's writer ([`replica::Archive`]) on the archive bucket: each object's bytes
//! as they arrive, in parts of [`PART`] (S3's multipart upload, so memory stays bounded
//! whatever the object's size) or whole when smaller. The bucket's own key encrypts them.

use crate::error::FunctionError;
use contract::ErrorName;
use dap::Received;
use replica::{ArchiveError, ArchiveFuture};

/// The part size: S3 takes parts of 5 MiB and more (but the last), 10,000 at most, so
/// objects up to 80 GiB; DAP's objects are far smaller.
pub const PART: usize = 8 * 1024 * 1024;

/// DAP's objects are gzip TSV; the type (not an encoding) keeps them bytes for every reader.
const GZIP: &str = "application/gzip";

#[derive(Clone, Debug)]
pub struct S3Archive {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { s3, bucket }
    }

    /// The archive the environment names ([`contract::env::archive`]), if any.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Option<Self>, FunctionError> {
        let vars: contract::env::archive::Vars<String> = crate::settings::read()?;
        Ok(vars.bucket.map(|bucket| Self::new(crate::results::s3_client(sdk), bucket)))
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
}

impl S3Archive {
    async fn write_object(
        &self,
        key: &str,
        mut received: tokio::sync::mpsc::Receiver<Received>,
    ) -> Result<(), ArchiveError> {
        let mut part = Vec::with_capacity(PART);
        let mut multipart: Option<Multipart> = None;
        let written = loop {
            match received.recv().await {
                Some(Received::Chunk(bytes)) => {
                    part.extend_from_slice(&bytes);
                    if part.len() >= PART {
                        let full = std::mem::replace(&mut part, Vec::with_capacity(PART));
                        let upload = match &mut multipart {
                            Some(m) => m,
                            None => multipart.insert(self.start(key).await?),
                        };
                        if let Err(e) = self.upload_part(upload, key, full).await {
                            break Err(e);
                        }
                    }
                }
                Some(Received::End) => break self.end(multipart.take(), key, part).await,
                None => {
                    break Err(ArchiveError {
                        message: "the download ended before the whole object arrived".into(),
                        transient: true,
                    });
                }
            }
        };
        if let (Err(_), Some(upload)) = (&written, multipart) {
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
            message: format!("S3 started an upload to bucket {} without an upload id", self.bucket),
            transient: true,
        })?;
        Ok(Multipart { id, parts: Vec::new() })
    }

    async fn upload_part(&self, upload: &mut Multipart, key: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        let number = upload.parts.len() as i32 + 1;
        let sent = self.s3.upload_part().bucket(&self.bucket).key(key).upload_id(&upload.id).part_number(number);
        let answer = sent.body(bytes.into()).send().await.map_err(|e| self.failed("UploadPart", e))?;
        upload.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(answer.e_tag)
                .set_checksum_crc32(answer.checksum_crc32)
                .build(),
        );
        Ok(())
    }

    /// The whole object has arrived: the last part and the upload's completion, or the
    /// object in one request.
    async fn end(&self, multipart: Option<Multipart>, key: &str, rest: Vec<u8>) -> Result<(), ArchiveError> {
        let Some(mut upload) = multipart else {
            let put = self.s3.put_object().bucket(&self.bucket).key(key).content_type(GZIP).body(rest.into());
            put.send().await.map_err(|e| self.failed("PutObject", e))?;
            return Ok(());
        };
        if !rest.is_empty() {
            self.upload_part(&mut upload, key, rest).await?;
        }
        let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(upload.parts)).build();
        let complete = self.s3.complete_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload.id);
        complete.multipart_upload(parts).send().await.map_err(|e| self.failed("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// An S3 failure, classified as every SDK failure is ([`crate::aws::sdk_error`]).
    fn failed<E>(&self, call: &str, e: aws_sdk_s3::error::SdkError<E>) -> ArchiveError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let error = crate::aws::sdk_error(&format!("{call} to bucket {}", self.bucket), e);
        ArchiveError { transient: error.name == ErrorName::Transient, message: error.detail.message }
    }
}

/// A multipart upload under way: its id and the parts stored.
struct Multipart {
    id: String,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
}
