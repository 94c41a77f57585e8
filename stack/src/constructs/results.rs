//! The bucket a run's Distributed Map writes every table's result to (its `ResultWriter`),
//! and `summarize` reads them from: the results of 500 tables, their schema notes and
//! errors included, would pass the 256 KiB a state may hold, and a state that does fails
//! the run with `States.DataLimitExceeded`, which no `Catch` can catch (so no summary and
//! no email). Private, encrypted with the stack's key, TLS only; results expire. It also
//! keeps the tables' freshness, which `summarize` rewrites after every run.

use super::bucket::{Holds, objects_of, private_bucket};
use super::grants::Grantee;
use super::key::EncryptionKey;
use crate::intrinsics::Expr;
use crate::resources::iam::Statement;
use crate::resources::s3::{AbortIncompleteMultipartUpload, Bucket, LifecycleRule};
use crate::template::{Attributes, Handle, Template};

#[derive(Clone, Debug)]
pub struct ResultsBucket {
    pub bucket: Handle<Bucket>,
    key: EncryptionKey,
}

impl ResultsBucket {
    /// Results (under `results_prefix`) are kept `expire_days` (a run's report quotes them;
    /// nothing else reads them).
    pub fn new(t: &mut Template, id: &str, key: &EncryptionKey, expire_days: u32, results_prefix: &str) -> Self {
        // The runs' results expire; the tables' freshness, rewritten by each run, is kept
        // however long the runs pause.
        let expire_results = LifecycleRule {
            id: "ExpireRunResults".into(),
            status: "Enabled",
            prefix: Some(format!("{results_prefix}/")),
            expiration_in_days: Some(expire_days),
            transitions: vec![],
            noncurrent_version_expiration: None,
            abort_incomplete_multipart_upload: AbortIncompleteMultipartUpload { days_after_initiation: 1 },
        };
        let bucket = private_bucket(
            t,
            id,
            key,
            vec![expire_results],
            Holds::Working,
            Attributes::default()
                .skip_check("CKV_AWS_18", "run results are written once by Step Functions and expire; CloudTrail data events can log access where wanted")
                .skip_check("CKV_AWS_21", "run results are written once and never changed; versions would only keep expired results longer"),
        );
        Self { bucket, key: key.clone() }
    }

    pub fn name(&self) -> Expr {
        self.bucket.name()
    }

    fn objects(&self) -> Expr {
        objects_of(&self.bucket)
    }

    /// What a Distributed Map's `ResultWriter` needs: write (in parts, for large results),
    /// and the encryption key.
    pub fn grant_write(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(
            &["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            vec![self.objects()],
        ));
        grantee.add_to_policy(Statement::allow(&["kms:GenerateDataKey", "kms:Decrypt"], vec![self.key.arn()]));
    }

    /// Writing the tables' freshness ([`contract::freshness::FRESHNESS_KEY`]), and that
    /// object alone.
    pub fn grant_write_freshness(&self, grantee: &mut dyn Grantee) {
        let key = contract::freshness::FRESHNESS_KEY;
        let object = Expr::join("", [self.bucket.arn(), Expr::str(format!("/{key}"))]);
        grantee.add_to_policy(Statement::allow(&["s3:PutObject"], vec![object]));
        // Without ListBucket S3 answers a key that is not there yet (a new stack's first
        // run) with AccessDenied rather than NoSuchKey: listing that one key is enough.
        grantee.add_to_policy(Statement::allow(&["s3:ListBucket"], vec![self.bucket.arn()]).with_condition(
            "StringEquals",
            "s3:prefix",
            Expr::str(key),
        ));
        grantee.add_to_policy(Statement::allow(&["kms:GenerateDataKey"], vec![self.key.arn()]).with_condition(
            "StringEquals",
            "kms:ViaService",
            Expr::sub("s3.${AWS::Region}.amazonaws.com"),
        ));
    }

    /// Reading results, and decrypting them.
    pub fn grant_read(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(&["s3:GetObject"], vec![self.objects()]));
        grantee.add_to_policy(Statement::allow(&["kms:Decrypt"], vec![self.key.arn()]).with_condition(
            "StringEquals",
            "kms:ViaService",
            Expr::sub("s3.${AWS::Region}.amazonaws.com"),
        ));
    }
}
