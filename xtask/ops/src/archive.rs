//! The raw zone's bucket as the operator meets it after the stack: it outlives the stack
//! (`Retain`), so destroy finds it by the name CloudFormation gave it, and says what it
//! holds and costs.

use crate::aws::{Aws, Explain};
use anyhow::Result;
use stack::app::cost::usd;
use stack::constructs::archive::ARCHIVE_TAG;
use std::collections::BTreeMap;

/// Pages of a bucket's listing (1,000 objects each) read for its size: a year of a large
/// institution's daily jobs fits; beyond it the size is a lower bound.
const MAX_PAGES: usize = 200;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The fewest leading letters of a stack's name its generated bucket names keep, as far as
/// we know: CloudFormation names a bucket without a `BucketName` `<stack>-<logical id>-<suffix>`
/// in lower case, and shortens the first two parts when the whole passes S3's 63 letters
/// (from stack names of 43 letters on). The tag, not the name, decides.
const NAME_STEM: usize = 8;

/// What a bucket's tags say of it.
enum Tagged {
    /// Tagged [`ARCHIVE_TAG`] with the stack's name.
    Archive,
    /// Tags read without it, no tags, or a bucket of another region (or gone).
    Other,
    /// The tags could not be read (denied, throttled, timed out).
    Unknown,
}

async fn tagged(aws: &Aws, bucket: &str, stack_name: &str) -> Tagged {
    match aws.s3().get_bucket_tagging().bucket(bucket).send().await {
        Ok(t) if t.tag_set().iter().any(|t| t.key() == ARCHIVE_TAG && t.value() == stack_name) => Tagged::Archive,
        Ok(_) => Tagged::Other,
        Err(e)
            if crate::aws::is_code(
                &e,
                &["NoSuchTagSet", "NoSuchBucket", "PermanentRedirect", "AuthorizationHeaderMalformed"],
            ) =>
        {
            Tagged::Other
        }
        Err(_) => Tagged::Unknown,
    }
}

/// The buckets named as the stack's buckets are, even shortened.
async fn stem_matches(aws: &Aws, stack_name: &str) -> Result<Vec<String>> {
    let stem: String = stack_name.to_lowercase().chars().take(NAME_STEM).collect();
    Ok(listed(aws).await?.into_iter().filter(|n| n.starts_with(&stem)).collect())
}

/// The archive buckets of stack `stack_name`, kept or not: of the buckets whose name
/// begins as CloudFormation's names for the stack's buckets do (shortened or not), those
/// the stack tagged [`ARCHIVE_TAG`] with its name; a bucket merely named alike is not one.
pub async fn buckets_of(aws: &Aws, stack_name: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for name in stem_matches(aws, stack_name).await? {
        if let Tagged::Archive = tagged(aws, &name, stack_name).await {
            found.push(name);
        }
    }
    Ok(found)
}

/// The buckets that may be stack `stack_name`'s archives, tagged or not: named in full as
/// CloudFormation names its archive bucket, tagged as one, or named like the stack's
/// buckets with tags that could not be read. Before the key that may encrypt them goes,
/// each is checked: a doubt keeps the key.
pub async fn named_like(aws: &Aws, stack_name: &str) -> Result<Vec<String>> {
    let prefix = format!("{}-{}-", stack_name, stack::app::ARCHIVE_BUCKET_ID).to_lowercase();
    let mut found = Vec::new();
    for name in stem_matches(aws, stack_name).await? {
        if name.starts_with(&prefix) || !matches!(tagged(aws, &name, stack_name).await, Tagged::Other) {
            found.push(name);
        }
    }
    Ok(found)
}

/// The account's buckets.
async fn listed(aws: &Aws) -> Result<Vec<String>> {
    let listed = aws.s3().list_buckets().send().await.doing("listing the account's buckets")?;
    Ok(listed.buckets().iter().filter_map(|b| b.name()).map(str::to_owned).collect())
}

/// Whether `bucket` encrypts with KMS key `key` (an id or an ARN) by default. `None`
/// when that cannot be read (the caller then assumes it does).
pub async fn encrypts_with(aws: &Aws, bucket: &str, key: &str) -> Option<bool> {
    let id = |k: &str| k.rsplit('/').next().unwrap_or(k).to_owned();
    let answer = match aws.s3().get_bucket_encryption().bucket(bucket).send().await {
        Ok(answer) => answer,
        // No default encryption set: no KMS key of ours.
        Err(e) if crate::aws::is_code(&e, &["ServerSideEncryptionConfigurationNotFoundError"]) => return Some(false),
        Err(_) => return None,
    };
    let rules = answer.server_side_encryption_configuration()?.rules();
    Some(
        rules
            .iter()
            .filter_map(|r| r.apply_server_side_encryption_by_default()?.kms_master_key_id())
            .any(|k| id(k) == id(key)),
    )
}

/// What a bucket's current objects take, by storage class.
#[derive(Debug, Default)]
pub struct Size {
    pub objects: u64,
    pub bytes: BTreeMap<String, u64>,
    /// The whole bucket was listed (otherwise the figures are a lower bound).
    pub complete: bool,
}

impl Size {
    pub async fn of(aws: &Aws, bucket: &str) -> Result<Self> {
        let mut size = Size::default();
        let mut pages = aws.s3().list_objects_v2().bucket(bucket).into_paginator().send();
        for _ in 0..MAX_PAGES {
            let Some(page) = pages.next().await else {
                size.complete = true;
                return Ok(size);
            };
            let page = page.doing(format!("listing s3://{bucket}"))?;
            for object in page.contents() {
                size.objects += 1;
                let class = object.storage_class().map_or("STANDARD", |c| c.as_str()).to_owned();
                *size.bytes.entry(class).or_default() += object.size().unwrap_or(0).max(0) as u64;
            }
        }
        size.complete = pages.next().await.is_none();
        Ok(size)
    }

    pub fn gib(&self) -> f64 {
        self.bytes.values().sum::<u64>() as f64 / GIB
    }

    /// A month of storage at each class's price (a class without one at Standard's).
    pub fn monthly(&self) -> f64 {
        self.bytes
            .iter()
            .map(|(class, bytes)| {
                let price = match class.as_str() {
                    "STANDARD_IA" => usd::S3_STANDARD_IA_GB_MONTH,
                    "GLACIER_IR" => usd::S3_GLACIER_IR_GB_MONTH,
                    _ => usd::S3_STANDARD_GB_MONTH,
                };
                *bytes as f64 / GIB * price
            })
            .sum()
    }

    /// `1,234 objects, 12.3 GB` (`at least` when the listing was cut short).
    pub fn describe(&self) -> String {
        let at_least = if self.complete { "" } else { "at least " };
        format!("{at_least}{} objects, {at_least}{:.1} GB", self.objects, self.gib())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_priced_at_its_own_rate() {
        let size = Size {
            objects: 3,
            bytes: [("STANDARD", 10.0), ("STANDARD_IA", 20.0), ("GLACIER_IR", 100.0)]
                .into_iter()
                .map(|(c, gib)| (c.to_owned(), (gib * GIB) as u64))
                .collect(),
            complete: false,
        };
        assert!((size.monthly() - (10.0 * 0.023 + 20.0 * 0.0125 + 100.0 * 0.004)).abs() < 1e-9);
        assert_eq!(size.describe(), "at least 3 objects, at least 130.0 GB");
    }
}
