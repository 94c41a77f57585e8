//! The raw zone's bucket in moto, and what a test checks of it.

use super::Aws;
use emulator::Emulator;

/// An archive bucket of its own for a test.
pub async fn bucket(aws: &Aws) -> (aws_sdk_s3::Client, String) {
    let s3 = functions::results::s3_client(&aws.sdk);
    let bucket = format!("cd2-archive-{}", super::uuid_like());
    make(&s3, &bucket).await;
    (s3, bucket)
}

/// Makes bucket `name`, versioned as the stack's is, so that every write of a key shows.
pub async fn make(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket().bucket(name).send().await.unwrap();
    let on = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning().bucket(name).versioning_configuration(on).send().await.unwrap();
}

/// Makes Glue database `name`, as the stack does.
pub async fn make_catalog(aws: &Aws, name: &str) -> s3_archive::aws_sdk_glue::Client {
    let glue = s3_archive::aws_sdk_glue::Client::new(&aws.sdk);
    let input = s3_archive::aws_sdk_glue::types::DatabaseInput::builder().name(name).build().unwrap();
    glue.create_database().database_input(input).send().await.unwrap();
    glue
}

/// An archive bucket and a catalog of their own for a test: the archive, and the catalog's
/// client and name.
pub async fn with_catalog(aws: &Aws) -> (s3_archive::S3Archive, aws_sdk_s3::Client, String, Catalog) {
    let (s3, bucket) = self::bucket(aws).await;
    let name = format!("cd2_archive_{}", super::uuid_like().replace('-', "_"));
    let glue = make_catalog(aws, &name).await;
    let archive = s3_archive::S3Archive::new(s3.clone(), bucket.clone())
        .with_catalog(s3_archive::Catalog::new(glue.clone(), name.clone()));
    (archive, s3, bucket, Catalog { glue, name })
}

/// A test's Glue database.
pub struct Catalog {
    pub glue: s3_archive::aws_sdk_glue::Client,
    pub name: String,
}

/// A catalog table as a query engine reads it.
#[derive(Debug, PartialEq)]
pub struct Described {
    /// `(name, type)` in the files' order.
    pub columns: Vec<(String, String)>,
    pub location: String,
    pub parameters: std::collections::BTreeMap<String, String>,
    pub partition_keys: Vec<String>,
}

impl Catalog {
    /// The catalog's table names, sorted.
    pub async fn tables(&self) -> Vec<String> {
        let listed = self.glue.get_tables().database_name(&self.name).send().await.unwrap();
        let mut names: Vec<String> = listed.table_list().iter().map(|t| t.name().to_owned()).collect();
        names.sort();
        names
    }

    pub async fn table(&self, name: &str) -> Described {
        let found = self.glue.get_table().database_name(&self.name).name(name).send().await.unwrap();
        let table = found.table.unwrap();
        let storage = table.storage_descriptor().unwrap();
        Described {
            columns: storage
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.r#type().unwrap_or("").to_owned()))
                .collect(),
            location: storage.location().unwrap_or("").to_owned(),
            parameters: table.parameters().cloned().unwrap_or_default().into_iter().collect(),
            partition_keys: table.partition_keys().iter().map(|c| c.name().to_owned()).collect(),
        }
    }
}

/// The header line of an archived object, as the columns a catalog table must list in
/// order (`meta.ts` as `meta_ts`, `key.id` as `id`).
pub async fn header_columns(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let gz = get(s3, bucket, key).await;
    let mut header = String::new();
    dap::gunzip(std::io::Cursor::new(gz)).read_line(&mut header).await.unwrap();
    header
        .trim_end()
        .split('\t')
        .map(|label| match label.split_once('.') {
            Some(("key" | "value", name)) => name.to_owned(),
            _ => label.replace('.', "_"),
        })
        .collect()
}

/// Every key of the bucket with how many times it was written.
pub async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> std::collections::BTreeMap<String, usize> {
    let listed = s3.list_object_versions().bucket(bucket).send().await.unwrap();
    assert!(!listed.is_truncated.unwrap_or_default());
    let mut keys = std::collections::BTreeMap::new();
    for v in listed.versions() {
        *keys.entry(v.key().unwrap().to_owned()).or_default() += 1;
    }
    keys
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The archive's jobs, oldest first, each checked against what DAP served: every object of
/// a manifest is there with the bytes the emulator served, and nothing else is.
pub async fn jobs(
    emulator: &Emulator,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Vec<(contract::archive::JobFolder, contract::archive::JobManifest)> {
    let keys = versions(s3, bucket).await;
    let mut jobs = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for key in keys.keys().filter(|k| k.ends_with(contract::archive::MANIFEST)) {
        let folder = contract::archive::JobFolder::from_manifest_key(key).unwrap();
        let manifest: contract::archive::JobManifest = serde_json::from_slice(&get(s3, bucket, key).await).unwrap();
        for object in &manifest.objects {
            let file = object.rsplit('/').next().unwrap();
            let served = emulator.object_bytes(&format!("{}/{file}", manifest.job_id)).expect("an object DAP served");
            assert!(get(s3, bucket, object).await == served, "{object} holds the bytes DAP served");
            assert!(object.starts_with(&folder.prefix()), "{object} is in its job's folder");
            listed.insert(object.clone());
        }
        jobs.push((folder, manifest));
    }
    let data: std::collections::BTreeSet<String> =
        keys.keys().filter(|k| !k.ends_with(contract::archive::MANIFEST)).cloned().collect();
    assert_eq!(data, listed, "every object in the bucket is a job's");
    jobs.sort_by_key(|(folder, _)| folder.until);
    jobs
}
