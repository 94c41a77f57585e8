//! The tool's own assets bucket, made on first use (no separate bootstrap step): private,
//! encrypted, versioned and TLS-only. The Lambda zips go in under `<stack>/`, named by
//! content hash, so an unchanged function is neither uploaded nor updated.

use crate::aws::{Aws, Explain, is_code};
use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectIdentifier, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use stack::app::{Function, Manifest};
use std::collections::BTreeMap;
use std::path::Path;

/// One bucket per account and region, shared by the environments there.
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("cd2-aws-assets-{account}-{region}")
}

/// Makes sure the bucket exists; answers whether it was made now.
pub async fn ensure_bucket(aws: &Aws, bucket: &str, account: &str) -> Result<bool> {
    let s3 = aws.s3();
    match s3.head_bucket().bucket(bucket).expected_bucket_owner(account).send().await {
        // Set up completely (the tag is put last)? Else finish what an earlier run began.
        Ok(_) if configured(aws, bucket).await => return Ok(false),
        Ok(_) => return configure(aws, bucket).await.map(|()| true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            bail!("the assets bucket name {bucket} belongs to another account, or these credentials may not use it")
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(e).doing(format!("looking for the assets bucket {bucket}")),
    }
    let mut create = s3.create_bucket().bucket(bucket).object_ownership(ObjectOwnership::BucketOwnerEnforced);
    if aws.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(aws.region.as_str()))
                .build(),
        );
    }
    create.send().await.doing(format!("creating the assets bucket {bucket}"))?;
    configure(aws, bucket).await?;
    Ok(true)
}

/// The tag that says every setting below is in place.
const CONFIGURED_TAG: &str = "cd2-aws:configured";

async fn configured(aws: &Aws, bucket: &str) -> bool {
    aws.s3()
        .get_bucket_tagging()
        .bucket(bucket)
        .send()
        .await
        .is_ok_and(|t| t.tag_set().iter().any(|tag| tag.key() == CONFIGURED_TAG))
}

/// Private, encrypted, versioned, old versions expired, TLS only; each call idempotent.
async fn configure(aws: &Aws, bucket: &str) -> Result<()> {
    let s3 = aws.s3();
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .doing("blocking public access to the assets bucket")?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build()?,
        )
        .build();
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(ServerSideEncryptionConfiguration::builder().rules(rule).build()?)
        .send()
        .await
        .doing("encrypting the assets bucket")?;
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
        )
        .send()
        .await
        .doing("turning on versioning of the assets bucket")?;
    // Old versions of zips go after a month; a half-finished upload after a day.
    let lifecycle = LifecycleRule::builder()
        .id("expire-old-versions")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(30).build())
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build())
        .build()?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(BucketLifecycleConfiguration::builder().rules(lifecycle).build()?)
        .send()
        .await
        .doing("setting the assets bucket's lifecycle")?;
    // A local AWS API server over plain http (moto) enforces the policy too, which would
    // lock this tool out of its own bucket there.
    if aws.s3_endpoint().is_some_and(|u| u.starts_with("http://")) {
        eprintln!("note: {bucket} gets no TLS-only policy: the AWS endpoint is plain http");
    } else {
        s3.put_bucket_policy()
            .bucket(bucket)
            .policy(tls_only_policy(bucket))
            .send()
            .await
            .doing("setting the assets bucket's TLS-only policy")?;
    }
    // Owner-enforced already disables ACLs; say it once more for regions that predate it.
    let _ = s3
        .put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(
            OwnershipControls::builder()
                .rules(OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerEnforced).build()?)
                .build()?,
        )
        .send()
        .await;
    let tag = aws_sdk_s3::types::Tag::builder().key(CONFIGURED_TAG).value("1").build()?;
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(aws_sdk_s3::types::Tagging::builder().tag_set(tag).build()?)
        .send()
        .await
        .doing("tagging the assets bucket")?;
    Ok(())
}

/// Denies every request that does not use TLS.
pub fn tls_only_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}

/// What an upload did, for the report.
#[derive(Debug)]
pub struct Uploaded {
    /// Each function's S3 key.
    pub keys: BTreeMap<Function, String>,
    pub uploaded: Vec<String>,
    pub unchanged: Vec<String>,
}

/// The zips `cargo xtask build-lambdas` made, as its manifest in `zips` names them.
pub fn read_manifest(zips: &Path) -> Result<Manifest> {
    let path = zips.join(Manifest::FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run cargo xtask build-lambdas)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a function -> zip map", path.display()))
}

/// Each of `needed`'s zip file, as the manifest in `zips` names it.
pub fn needed_zips(zips: &Path, needed: &[Function]) -> Result<Vec<(Function, String)>> {
    let manifest = read_manifest(zips)?;
    needed
        .iter()
        .map(|f| match manifest.zip(*f) {
            Some(file) => Ok((*f, file.to_owned())),
            None => bail!("{} names no {f} zip: run cargo xtask build-lambdas", zips.join(Manifest::FILE).display()),
        })
        .collect()
}

/// Where zip `file` of `stack` goes in the bucket.
pub fn zip_key(stack: &str, file: &str) -> String {
    format!("{stack}/{file}")
}

/// Uploads the zips of the `needed` functions, as `manifest.json` in `zips` names them,
/// under `<stack>/`, skipping those already there.
pub async fn upload_zips(aws: &Aws, bucket: &str, stack: &str, zips: &Path, needed: &[Function]) -> Result<Uploaded> {
    let s3 = aws.s3();
    let mut done = Uploaded { keys: BTreeMap::new(), uploaded: vec![], unchanged: vec![] };
    for (function, file) in needed_zips(zips, needed)? {
        let key = zip_key(stack, &file);
        match s3.head_object().bucket(bucket).key(&key).send().await {
            Ok(_) => done.unchanged.push(file),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                let path = zips.join(&file);
                let body = ByteStream::from_path(&path)
                    .await
                    .map_err(|e| anyhow!("reading {}: {e} (run cargo xtask build-lambdas)", path.display()))?;
                s3.put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(body)
                    .content_type("application/zip")
                    .send()
                    .await
                    .doing(format!("uploading {file} to s3://{bucket}/{key}"))?;
                done.uploaded.push(file);
            }
            Err(e) => return Err(e).doing(format!("looking for s3://{bucket}/{key}")),
        }
        done.keys.insert(function, key);
    }
    Ok(done)
}

/// Puts `body` at `key` (a template too large to send inline); answers its URL.
pub async fn upload_template(aws: &Aws, bucket: &str, key: &str, body: String) -> Result<String> {
    aws.s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.into_bytes()))
        .content_type("application/json")
        .send()
        .await
        .doing(format!("uploading the template to s3://{bucket}/{key}"))?;
    Ok(format!("https://{bucket}.s3.{}.amazonaws.com/{key}", aws.region))
}

/// Deletes every version of every object under `prefix`; answers how many went.
pub async fn remove_prefix(aws: &Aws, bucket: &str, prefix: &str) -> Result<usize> {
    let s3 = aws.s3();
    let mut removed = 0;
    loop {
        let page = match s3.list_object_versions().bucket(bucket).prefix(prefix).send().await {
            Ok(page) => page,
            Err(e) if is_code(&e, &["NoSuchBucket"]) => return Ok(removed),
            Err(e) => return Err(e).doing(format!("listing s3://{bucket}/{prefix}")),
        };
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(page.delete_markers().iter().map(|m| (m.key(), m.version_id())))
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder().key(key?).set_version_id(version.map(str::to_owned)).build().ok()
            })
            .take(1000)
            .collect();
        if ids.is_empty() {
            return Ok(removed);
        }
        let n = ids.len();
        let answer = s3
            .delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(ids)).quiet(true).build()?)
            .send()
            .await
            .doing(format!("deleting s3://{bucket}/{prefix}"))?;
        // Quiet mode answers only the failures; listing them again would loop for ever.
        if let Some(e) = answer.errors().first() {
            bail!(
                "deleting s3://{bucket}/{}: {}: {} ({} objects not deleted)",
                e.key().unwrap_or_default(),
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default(),
                answer.errors().len()
            );
        }
        removed += n;
    }
}
