//! The raw zone's bucket: private, under the stack's key, TLS only, versioned, aging into
//! classes Athena still reads, kept when the stack goes, and grants that write only (the
//! functions) or read only (a restore).

use serde_json::{Value, json};
use stack::Template;
use stack::constructs::Grantee;
use stack::constructs::archive::{ArchiveBucket, MIN_ARCHIVE_AFTER_DAYS};
use stack::constructs::key::EncryptionKey;
use stack::resources::iam::Statement;

/// Collects what a grant adds.
#[derive(Default)]
struct Granted(Vec<Value>);

impl Grantee for Granted {
    fn add_to_policy(&mut self, statement: Statement) {
        self.0.push(serde_json::to_value(statement).unwrap());
    }
}

fn archive(days: u32) -> (Value, ArchiveBucket) {
    let mut t = Template::new("archive");
    let key = EncryptionKey::new(&mut t, "DataKey", "cd2-test");
    let archive = ArchiveBucket::new(&mut t, "RawArchive", &key, days);
    t.validate().unwrap();
    (t.to_json(), archive)
}

#[test]
fn the_archive_is_private_encrypted_tls_only_versioned_and_kept() {
    let (doc, _) = archive(180);
    let bucket = &doc["Resources"]["RawArchive"];
    assert_eq!(bucket["DeletionPolicy"], "Retain", "it outlives the stack, as the snapshot does");
    assert_eq!(bucket["UpdateReplacePolicy"], "Retain");
    let p = &bucket["Properties"];
    let sse = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms");
    assert_eq!(sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    assert_eq!(p["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"], true);
    assert_eq!(p["OwnershipControls"]["Rules"][0]["ObjectOwnership"], "BucketOwnerEnforced");
    assert_eq!(p["VersioningConfiguration"]["Status"], "Enabled");
    assert_eq!(doc["Resources"]["RawArchivePolicy"]["DeletionPolicy"], "Retain", "a kept bucket stays TLS only");
    let policy = &doc["Resources"]["RawArchivePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Effect"], "Deny");
    assert_eq!(policy["Condition"], json!({"Bool": {"aws:SecureTransport": "false"}}));
}

#[test]
fn objects_age_into_classes_athena_reads_and_nothing_expires() {
    let (doc, _) = archive(MIN_ARCHIVE_AFTER_DAYS);
    let rule = &doc["Resources"]["RawArchive"]["Properties"]["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(
        rule["Transitions"],
        json!([
            {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
            {"StorageClass": "GLACIER_IR", "TransitionInDays": 60}
        ])
    );
    assert_eq!(rule.get("ExpirationInDays"), None, "the raw zone keeps what DAP no longer has");
    assert_eq!(rule["NoncurrentVersionExpiration"], json!({"NoncurrentDays": 30}));
    assert_eq!(rule["AbortIncompleteMultipartUpload"], json!({"DaysAfterInitiation": 1}));
}

#[test]
fn writers_only_write_and_readers_only_read() {
    let (_, archive) = archive(180);
    let objects = json!({"Fn::Join": ["", [{"Fn::GetAtt": ["RawArchive", "Arn"]}, "/*"]]});
    let mut writer = Granted::default();
    archive.grant_write(&mut writer);
    let actions: Vec<&Value> = writer.0.iter().map(|s| &s["Action"]).collect();
    assert_eq!(
        actions,
        [
            &json!(["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]),
            &json!(["kms:GenerateDataKey", "kms:Decrypt"])
        ]
    );
    assert_eq!(writer.0[0]["Resource"], json!([objects]));
    assert_eq!(
        writer.0[1]["Condition"]["StringEquals"]["kms:ViaService"],
        json!({"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"})
    );
    let mut reader = Granted::default();
    archive.grant_read(&mut reader);
    let actions: Vec<&Value> = reader.0.iter().map(|s| &s["Action"]).collect();
    assert_eq!(actions, [&json!(["s3:GetObject"]), &json!(["s3:ListBucket"]), &json!(["kms:Decrypt"])]);
}

#[test]
#[should_panic(expected = "S3 needs 60 at least")]
fn an_archive_sooner_than_s3_allows_is_refused() {
    archive(MIN_ARCHIVE_AFTER_DAYS - 1);
}
