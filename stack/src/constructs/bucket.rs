//! What every bucket of the stack is: private (public access blocked, ACLs off), encrypted
//! with the stack's key (with a bucket key, for fewer KMS calls), and reachable over TLS only.
//! The buckets differ in their lifecycle, versioning and deletion policy.

use super::key::EncryptionKey;
use crate::intrinsics::Expr;
use crate::resources::Tag;
use crate::resources::iam::{PolicyDocument, Principal, Statement};
use crate::resources::s3::{
    Bucket, BucketEncryption, BucketPolicy, LifecycleConfiguration, LifecycleRule, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryptionByDefault, ServerSideEncryptionRule,
    VersioningConfiguration,
};
use crate::template::{Attributes, Handle, Template};

/// What a bucket holds, and so whether it outlives the stack.
#[derive(Clone, Debug)]
pub(crate) enum Holds {
    /// Working data (run results): unversioned, deleted with the stack.
    Working,
    /// Data to keep (the archive): versioned, kept with its TLS-only policy when the stack
    /// goes, and tagged so that it is found by them afterwards.
    Kept(Vec<Tag>),
}

/// Adds a private bucket encrypted with `key`, with `rules`, and its TLS-only policy
/// (`<id>Policy`), which stays as long as the bucket does.
pub(crate) fn private_bucket(
    t: &mut Template,
    id: &str,
    key: &EncryptionKey,
    rules: Vec<LifecycleRule>,
    holds: Holds,
    attributes: Attributes,
) -> Handle<Bucket> {
    let (attributes, policy_attributes, versioned, tags) = match holds {
        Holds::Working => (attributes, Attributes::default(), false, vec![]),
        Holds::Kept(tags) => (attributes.retain(), Attributes::default().retain(), true, tags),
    };
    let bucket = t.add_with(
        id,
        Bucket {
            bucket_encryption: BucketEncryption {
                server_side_encryption_configuration: vec![ServerSideEncryptionRule {
                    server_side_encryption_by_default: ServerSideEncryptionByDefault {
                        sse_algorithm: "aws:kms",
                        kms_master_key_id: key.arn(),
                    },
                    bucket_key_enabled: true,
                }],
            },
            public_access_block_configuration: PublicAccessBlockConfiguration::ALL,
            ownership_controls: OwnershipControls {
                rules: vec![OwnershipControlsRule { object_ownership: "BucketOwnerEnforced" }],
            },
            lifecycle_configuration: LifecycleConfiguration { rules },
            versioning_configuration: versioned.then_some(VersioningConfiguration { status: "Enabled" }),
            tags,
        },
        attributes,
    );
    let objects = objects_of(&bucket);
    t.add_with(
        &format!("{id}Policy"),
        BucketPolicy {
            bucket: bucket.name(),
            policy_document: PolicyDocument::new(vec![
                Statement::deny(&["s3:*"], vec![bucket.arn(), objects])
                    .with_sid("TlsOnly")
                    .for_principal(Principal::Aws(vec![Expr::str("*")]))
                    .with_condition("Bool", "aws:SecureTransport", Expr::str("false")),
            ]),
        },
        policy_attributes,
    );
    bucket
}

/// Every object of the bucket, as an ARN.
pub(crate) fn objects_of(bucket: &Handle<Bucket>) -> Expr {
    Expr::join("", [bucket.arn(), Expr::str("/*")])
}
