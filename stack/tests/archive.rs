//! The raw zone's bucket: private, under the stack's key, TLS only, versioned, aging into
//! classes Athena still reads, kept when the stack goes, and grants that write only (the
//! functions) or read only (a restore).

mod common;

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
    let archive = ArchiveBucket::new(&mut t, "RawArchive", &key, days, "cd2-Test");
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
    assert_eq!(rule["NoncurrentVersionExpiration"], json!({"NoncurrentDays": 90}));
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
            &json!(["s3:PutObject", "s3:AbortMultipartUpload"]),
            &json!(["s3:ListBucket"]),
            &json!(["glue:GetTable", "glue:CreateTable", "glue:UpdateTable"]),
            &json!(["kms:GenerateDataKey", "kms:Decrypt"])
        ]
    );
    assert_eq!(writer.0[0]["Resource"], json!([objects]));
    assert_eq!(writer.0[1]["Resource"], json!([{"Fn::GetAtt": ["RawArchive", "Arn"]}]));
    let glue = |rest: &str| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:glue:${{AWS::Region}}:${{AWS::AccountId}}:{rest}")});
    assert_eq!(
        writer.0[2]["Resource"],
        json!([glue("catalog"), glue("database/cd2_test_archive"), glue("table/cd2_test_archive/*")]),
        "the catalog's tables, in its own database alone"
    );
    assert_eq!(
        writer.0[3]["Condition"]["StringEquals"]["kms:ViaService"],
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

/// The replication functions' environment variable and role policy statements.
fn replicate_functions(doc: &Value) -> Vec<(Value, Vec<Value>)> {
    let resources = doc["Resources"].as_object().unwrap();
    [stack::app::Function::SyncTable, stack::app::Function::InitTable]
        .iter()
        .map(|f| {
            let function = &resources[f.logical_id()];
            let var = function["Properties"]["Environment"]["Variables"]
                .get(contract::env::archive::BUCKET)
                .cloned()
                .unwrap_or(Value::Null);
            let role = function["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
            let statements: Vec<Value> = resources[role]["Properties"]["Policies"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
                .collect();
            (var, statements)
        })
        .collect()
}

#[test]
fn with_the_archive_on_the_replication_functions_write_to_it_and_nothing_else_does() {
    let doc = common::synth("prod", &[]).template.to_json();
    let id = stack::app::ARCHIVE_BUCKET_ID;
    assert_eq!(doc["Resources"][id]["Type"], "AWS::S3::Bucket");
    let days = &doc["Resources"][id]["Properties"]["LifecycleConfiguration"]["Rules"][0]["Transitions"][1];
    assert_eq!(days["TransitionInDays"], 90, "prod's glacier_after_days");
    assert_eq!(doc["Outputs"][id]["Value"], json!({"Ref": id}));
    assert_eq!(
        doc["Resources"][id]["Properties"]["Tags"],
        json!([{"Key": stack::constructs::archive::ARCHIVE_TAG, "Value": {"Fn::Sub": "${AWS::StackName}"}}]),
        "destroy and restore find a kept archive by it"
    );
    let writes = [json!(["s3:PutObject", "s3:AbortMultipartUpload"]), json!(["s3:ListBucket"])];
    // Its ListBucket is the writer's already: one statement says it.
    let reads = [json!(["s3:GetObject"])];
    for ((var, statements), expected) in replicate_functions(&doc).into_iter().zip([
        writes.iter().collect::<Vec<_>>(),
        // init_table replays the archive for `cargo xtask restore` into the stack's database.
        writes.iter().chain(&reads).collect(),
    ]) {
        assert_eq!(var, json!({"Ref": id}));
        let granted: Vec<&Value> = statements.iter().filter(|s| s.to_string().contains(&format!("\"{id}\""))).collect();
        let actions: Vec<&Value> = granted.iter().map(|s| &s["Action"]).collect();
        assert_eq!(actions, expected);
    }
    let mentions = doc["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::IAM::Role" && r.to_string().contains(&format!("\"{id}\"")))
        .count();
    assert_eq!(mentions, 2, "only sync_table and init_table are granted the archive");

    // Its Glue database, named for Athena, which the functions are told of.
    let name = stack::constructs::archive::catalog_name(&common::config("prod", &[]).stack_name);
    let catalog = &doc["Resources"][format!("{id}Catalog")];
    assert_eq!(catalog["Type"], "AWS::Glue::Database");
    assert_eq!(catalog["Properties"]["DatabaseInput"]["Name"], name.as_str());
    assert!(name.ends_with("_archive") && !name.contains('-'), "{name}");
    assert_eq!(doc["Outputs"][stack::app::ARCHIVE_CATALOG_OUTPUT]["Value"], name.as_str());
    let resources = doc["Resources"].as_object().unwrap();
    for f in [stack::app::Function::SyncTable, stack::app::Function::InitTable] {
        let vars = &resources[f.logical_id()]["Properties"]["Environment"]["Variables"];
        assert_eq!(vars[contract::env::archive::CATALOG], name.as_str());
    }

    let off = common::synth("prod", &["archive.enabled=false"]).template.to_json();
    assert!(off["Resources"].get(id).is_none() && off["Outputs"].get(id).is_none());
    assert!(replicate_functions(&off).iter().all(|(var, _)| var.is_null()));
    assert!(common::synth("dev", &[]).template.to_json()["Resources"].get(id).is_none(), "dev leaves it off");
}

#[test]
fn an_archive_tier_sooner_than_s3_allows_is_refused_by_name() {
    let e = common::config_error("prod", &["archive.glacier_after_days=45"]);
    assert!(e.contains("`archive.glacier_after_days`: 45 is too soon"), "{e}");
    let e = common::config_error("dev", &["archive.enable=true"]);
    assert!(e.contains("enable"), "{e}");
}
