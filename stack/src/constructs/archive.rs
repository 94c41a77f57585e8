//! The raw zone: a bucket that keeps every file DAP serves as received (the gzip bytes), so
//! that nothing is lost when a later step fails, the data stays queryable (Athena), and a
//! replica can be rebuilt from it. DAP keeps `canvas_logs` 30 days and offers no time
//! travel: what this bucket holds of them exists nowhere else. So it outlives the stack, as
//! the database's final snapshot does (its key is kept too), and versions keep what an
//! overwrite or a delete would take for 30 days.
//!
//! A Glue database beside it describes the files to Athena: the replication functions
//! make a table in it for each DAP table, kind and schema version as they write a job.
//!
//! Objects age through cheaper classes that Athena still reads: Standard, then Standard-IA
//! after 30 days, then Glacier Instant Retrieval after the configured days (millisecond
//! reads; Glacier Flexible Retrieval and Deep Archive would need a restore before a query).

use super::bucket::{Holds, objects_of, private_bucket};
use super::grants::Grantee;
use super::key::EncryptionKey;
use crate::intrinsics::Expr;
use crate::resources::Tag;
use crate::resources::glue::{Database, DatabaseInput};
use crate::resources::iam::Statement;
use crate::resources::s3::{
    AbortIncompleteMultipartUpload, Bucket, LifecycleRule, LifecycleTransition, NoncurrentVersionExpiration,
};
use crate::template::{Attributes, Handle, Template};

/// Days in S3 Standard before an object moves to Standard-IA (S3's least).
pub const INFREQUENT_ACCESS_AFTER_DAYS: u32 = 30;
/// The fewest days before Glacier Instant Retrieval: S3 moves an object out of Standard-IA
/// only after 30 days there.
pub const MIN_ARCHIVE_AFTER_DAYS: u32 = INFREQUENT_ACCESS_AFTER_DAYS + 30;
/// The tag whose value names the stack an archive bucket is (or was) of: a bucket kept
/// after its stack is found by it, and one merely named alike is not taken for it.
pub const ARCHIVE_TAG: &str = "cd2-aws:archive-of";

/// How long a replaced or deleted version is kept: as long as Glacier Instant Retrieval
/// bills an object at least, so that undoing a deletion stays possible for three months
/// and the early removal costs nothing extra.
pub const NONCURRENT_VERSION_DAYS: u32 = 90;

/// The Glue database of stack `stack_name`'s archive: `<stack>_archive`, in the letters
/// Athena takes unquoted.
pub fn catalog_name(stack_name: &str) -> String {
    let name: String =
        stack_name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{name}_archive")
}

#[derive(Clone, Debug)]
pub struct ArchiveBucket {
    pub bucket: Handle<Bucket>,
    key: EncryptionKey,
    /// The Glue database's name ([`catalog_name`]).
    catalog: String,
}

impl ArchiveBucket {
    /// The bucket, its objects in Glacier Instant Retrieval from `archive_after_days`, at
    /// least [`MIN_ARCHIVE_AFTER_DAYS`] (S3 refuses a sooner move at deploy; a configuration
    /// that sets the days checks them first, with the key's name).
    /// Its Glue database is `<id>Catalog`, named [`catalog_name`] of `stack_name`.
    pub fn new(t: &mut Template, id: &str, key: &EncryptionKey, archive_after_days: u32, stack_name: &str) -> Self {
        assert!(
            archive_after_days >= MIN_ARCHIVE_AFTER_DAYS,
            "the archive moves to Glacier Instant Retrieval after {archive_after_days} days: S3 needs {MIN_ARCHIVE_AFTER_DAYS} at least"
        );
        let age = LifecycleRule {
            id: "AgeIntoCheaperClasses".into(),
            status: "Enabled",
            prefix: None,
            expiration_in_days: None,
            transitions: vec![
                LifecycleTransition { storage_class: "STANDARD_IA", transition_in_days: INFREQUENT_ACCESS_AFTER_DAYS },
                LifecycleTransition { storage_class: "GLACIER_IR", transition_in_days: archive_after_days },
            ],
            noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
                noncurrent_days: NONCURRENT_VERSION_DAYS,
            }),
            abort_incomplete_multipart_upload: AbortIncompleteMultipartUpload { days_after_initiation: 1 },
        };
        let bucket = private_bucket(
            t,
            id,
            key,
            vec![age],
            Holds::Kept(vec![Tag::new(ARCHIVE_TAG, Expr::sub("${AWS::StackName}"))]),
            Attributes::default().skip_check(
                "CKV_AWS_18",
                "the functions write each object once; CloudTrail data events can log access where wanted",
            ),
        );
        let catalog = catalog_name(stack_name);
        t.add(
            &format!("{id}Catalog"),
            Database {
                catalog_id: Expr::sub("${AWS::AccountId}"),
                database_input: DatabaseInput {
                    name: catalog.clone(),
                    description: "cd2-aws: the raw zone's files, a table per DAP table, kind and schema version".into(),
                },
            },
        );
        Self { bucket, key: key.clone(), catalog }
    }

    pub fn name(&self) -> Expr {
        self.bucket.name()
    }

    /// The Glue database's name.
    pub fn catalog(&self) -> &str {
        &self.catalog
    }

    /// Writing objects (in parts, for large ones) under the stack's key, and listing keys
    /// (a job's manifest names only objects found there); no reading or deleting.
    pub fn grant_write(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(
            &["s3:PutObject", "s3:AbortMultipartUpload"],
            vec![objects_of(&self.bucket)],
        ));
        grantee.add_to_policy(Statement::allow(&["s3:ListBucket"], vec![self.bucket.arn()]));
        // The catalog's tables, in this database alone (Glue checks the catalog and the
        // database too).
        let glue =
            |rest: &str| Expr::sub(format!("arn:${{AWS::Partition}}:glue:${{AWS::Region}}:${{AWS::AccountId}}:{rest}"));
        grantee.add_to_policy(Statement::allow(
            &["glue:GetTable", "glue:CreateTable", "glue:UpdateTable"],
            vec![
                glue("catalog"),
                glue(&format!("database/{}", self.catalog)),
                glue(&format!("table/{}/*", self.catalog)),
            ],
        ));
        grantee.add_to_policy(
            Statement::allow(&["kms:GenerateDataKey", "kms:Decrypt"], vec![self.key.arn()]).with_condition(
                "StringEquals",
                "kms:ViaService",
                Expr::sub("s3.${AWS::Region}.amazonaws.com"),
            ),
        );
    }

    /// Reading and listing objects (a restore, a query), and decrypting them.
    pub fn grant_read(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(&["s3:GetObject"], vec![objects_of(&self.bucket)]));
        grantee.add_to_policy(Statement::allow(&["s3:ListBucket"], vec![self.bucket.arn()]));
        grantee.add_to_policy(Statement::allow(&["kms:Decrypt"], vec![self.key.arn()]).with_condition(
            "StringEquals",
            "kms:ViaService",
            Expr::sub("s3.${AWS::Region}.amazonaws.com"),
        ));
    }
}
