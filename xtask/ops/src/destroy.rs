//! `destroy`: deletes the stack with the same progress line as deploy. By default the data
//! outlives it: CloudFormation keeps a final snapshot of the cluster (its `Snapshot`
//! policy), the archive bucket and the key that encrypts them (`Retain`). `--delete-data`
//! then deletes that snapshot and the archive, and schedules the key for deletion. At the
//! end: exactly what is left, and what it costs a month.

use crate::archive;
use crate::assets;
use crate::aws::{Aws, Explain, explain, is_code};
use crate::events;
use crate::project::EnvFlags;
use crate::prompt;
use crate::stacks;
use anyhow::{Result, bail};
use stack::app::cost::usd;
use stack::constructs::database::DatabaseProps;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// Ask nothing.
    #[arg(long)]
    pub yes: bool,
    /// Keep no snapshot of the database and no archive, and schedule their KMS key for deletion.
    #[arg(long)]
    pub delete_data: bool,
}

/// The shortest wait KMS allows before a key is gone.
const KEY_DELETION_DAYS: i32 = 7;

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    let caller = aws.caller().await?;
    let name = config.stack_name.clone();
    let bucket = assets::bucket_name(&caller.account, &aws.region);

    let Some(stack) = stacks::describe(&aws, &name).await? else {
        println!("stack {name} does not exist in {}: nothing to delete", aws.region);
        let removed = assets::remove_prefix(&aws, &bucket, &format!("{name}/")).await?;
        if removed > 0 {
            println!("removed {removed} leftover object versions from s3://{bucket}/{name}/");
        }
        return leftovers(&aws, &config, None, None).await;
    };
    let resources = stacks::resources(&aws, &stack.id).await?;
    let key_id = resources.get(stack::app::DATA_KEY_ID).cloned();
    let cluster = resources.get(&stack::app::database_cluster_id()).cloned();
    let archive = resources.get(stack::app::ARCHIVE_BUCKET_ID).cloned();
    if let Some(cluster) = &cluster {
        let protected = aws
            .rds()
            .describe_db_clusters()
            .db_cluster_identifier(cluster)
            .send()
            .await
            .ok()
            .and_then(|d| d.db_clusters().first().and_then(|c| c.deletion_protection()))
            .unwrap_or(false);
        if protected {
            bail!(
                "the database cluster {cluster} has deletion protection on (database.deletion_protection): deploy with --set database.deletion_protection=false, then destroy"
            );
        }
    }

    println!("destroy stack {name} ({}) in account {}, region {}:", stack.status, caller.account, aws.region);
    match (&cluster, flags.delete_data) {
        (Some(c), false) => println!(
            "  keeps: a final snapshot of cluster {c} and the KMS key that encrypts it (restore with the snapshot id printed at the end)"
        ),
        (Some(c), true) => println!(
            "  DELETES THE DATA: cluster {c} with no snapshot kept; its KMS key is scheduled for deletion in {KEY_DELETION_DAYS} days"
        ),
        (None, _) => println!("  the database is not the stack's and is left as it is"),
    }
    match (&archive, flags.delete_data) {
        (Some(b), false) => println!(
            "  keeps: the archive bucket {b}, every DAP file as served (DAP keeps canvas_logs only 30 days), and the KMS key that encrypts it"
        ),
        (Some(b), true) => println!("  DELETES THE ARCHIVE: bucket {b} and every version in it"),
        (None, _) => {}
    }
    println!("  keeps: the DAP secret {} (./destroy.sh offers to delete it)", config.dap.secret_name);
    if !prompt::confirm(&format!("delete stack {name}?"), flags.yes)? {
        bail!("not destroyed: stack {name} is as it was");
    }

    // The final snapshot is the one that appears during the delete.
    let before: Vec<String> = match &cluster {
        Some(c) => snapshots_of(&aws, c).await?.into_iter().map(|s| s.id).collect(),
        None => vec![],
    };
    // CloudFormation deletes only an empty bucket: the runs' table results go first.
    if let Some(results) = resources.get(stack::app::RESULTS_BUCKET_ID) {
        let removed = assets::remove_prefix(&aws, results, "").await?;
        if removed > 0 {
            println!("removed {removed} run result objects from s3://{results}");
        }
    }
    let total = resources.len();
    let outcome = events::delete_stack(&aws, &stack.id, total).await?;
    if !outcome.succeeded() {
        bail!("destroy of {name} failed: {}; run destroy again once the cause is fixed", outcome.cause());
    }
    println!("deleted stack {name}");

    if flags.delete_data {
        let mut data_gone = true;
        if let Some(cluster) = &cluster {
            let fresh: Vec<Snapshot> =
                snapshots_of(&aws, cluster).await?.into_iter().filter(|s| !before.contains(&s.id)).collect();
            if fresh.is_empty() {
                data_gone = false;
                eprintln!(
                    "warning: no final snapshot of {cluster} was found; the KMS key is kept so that any snapshot stays readable"
                );
            }
            for snapshot in fresh {
                aws.rds()
                    .delete_db_cluster_snapshot()
                    .db_cluster_snapshot_identifier(&snapshot.id)
                    .send()
                    .await
                    .doing(format!("deleting snapshot {} (the KMS key is kept)", snapshot.id))?;
                println!("deleted snapshot {}", snapshot.id);
            }
        }
        if let Some(bucket) = &archive {
            match empty_and_delete(&aws, bucket).await {
                Ok(removed) => println!("deleted the archive bucket {bucket} ({removed} object versions)"),
                Err(e) => {
                    data_gone = false;
                    eprintln!("warning: {e:#}; the KMS key is kept so that the archive stays readable");
                }
            }
        }
        // An archive the stack kept before (turned off since) may need the key too.
        if let Some(key) = key_id.as_ref().filter(|_| data_gone) {
            let others = archive::named_like(&aws, &name).await.unwrap_or_else(|e| {
                data_gone = false;
                eprintln!("warning: {e:#}; the KMS key is kept, since an archive kept earlier may need it");
                vec![]
            });
            for other in others.iter().filter(|b| Some(*b) != archive.as_ref()) {
                if archive::encrypts_with(&aws, other, key).await != Some(false) {
                    data_gone = false;
                    eprintln!(
                        "warning: the archive bucket {other}, kept when the archive was turned off, is encrypted with KMS key {key} (or its encryption could not be read): the key is kept so that it stays readable; empty and delete the bucket (every version), then schedule the key for deletion"
                    );
                }
            }
        }
        // Only once nothing kept needs it: a snapshot or an archive whose key is gone is
        // billed and unreadable.
        if let Some(key) = key_id.as_ref().filter(|_| data_gone) {
            match aws.kms().schedule_key_deletion().key_id(key).pending_window_in_days(KEY_DELETION_DAYS).send().await {
                Ok(_) => println!("scheduled KMS key {key} for deletion in {KEY_DELETION_DAYS} days"),
                Err(e) if is_code(&e, &["NotFoundException", "KMSInvalidStateException"]) => {}
                Err(e) => return Err(e).doing(format!("scheduling KMS key {key} for deletion")),
            }
        }
    }
    let removed = assets::remove_prefix(&aws, &bucket, &format!("{name}/")).await?;
    println!("removed {removed} object versions from s3://{bucket}/{name}/");
    // A bucket --delete-data deleted is not listed: the listing answers NoSuchBucket.
    leftovers(&aws, &config, key_id.as_deref(), archive.as_deref().filter(|_| !flags.delete_data)).await
}

/// Deletes every version in `bucket`, then the bucket.
async fn empty_and_delete(aws: &Aws, bucket: &str) -> Result<usize> {
    let removed = assets::remove_prefix(aws, bucket, "").await?;
    match aws.s3().delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(removed),
        Err(e) if is_code(&e, &["NoSuchBucket"]) => Ok(removed),
        Err(e) => Err(e).doing(format!("deleting the archive bucket {bucket} (emptied)")),
    }
}

#[derive(Debug)]
struct Snapshot {
    id: String,
    gigabytes: i32,
    key: Option<String>,
}

/// The manual snapshots of cluster `cluster` (CloudFormation's final snapshot is manual).
/// Listed without the cluster filter, which RDS accepts only while the cluster exists.
async fn snapshots_of(aws: &Aws, cluster: &str) -> Result<Vec<Snapshot>> {
    let mut found = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .rds()
            .describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .set_marker(marker)
            .send()
            .await
            .doing("listing the database snapshots")?;
        found.extend(
            page.db_cluster_snapshots().iter().filter(|s| s.db_cluster_identifier() == Some(cluster)).filter_map(|s| {
                Some(Snapshot {
                    id: s.db_cluster_snapshot_identifier()?.to_owned(),
                    gigabytes: s.allocated_storage().unwrap_or(0),
                    key: s.kms_key_id().map(str::to_owned),
                })
            }),
        );
        marker = page.marker().map(str::to_owned);
        if marker.is_none() {
            return Ok(found);
        }
    }
}

/// What is left of the environment, and what it costs a month. `known_archive` is the bucket the
/// stack had, when known: CloudFormation shortens the names it generates for long stack
/// names, so the name's prefix alone may miss it.
async fn leftovers(
    aws: &Aws,
    config: &stack::app::Config,
    key_id: Option<&str>,
    known_archive: Option<&str>,
) -> Result<()> {
    use std::io::Write;
    let _ = std::io::stderr().flush();
    println!("\nleft behind:");
    let mut total = 0.0;
    let mut any = false;
    // The stack's key, and the key of every snapshot kept (from an earlier destroy too).
    // Key ids: a snapshot names its key by ARN (`.../key/<id>`).
    let key_of = |k: &str| k.rsplit('/').next().unwrap_or(k).to_owned();
    let mut keys: std::collections::BTreeSet<String> = key_id.map(key_of).into_iter().collect();
    if matches!(config.database, DatabaseProps::Create(_)) {
        let cluster = format!("{}-db", config.stack_name.to_lowercase());
        let snapshots = snapshots_of(aws, &cluster).await.unwrap_or_else(|e| {
            println!("  snapshots of {cluster} could not be listed ({e:#})");
            vec![]
        });
        for s in snapshots {
            any = true;
            keys.extend(s.key.as_deref().map(key_of));
            let monthly = f64::from(s.gigabytes) * usd::SNAPSHOT_GB_MONTH;
            total += monthly;
            println!(
                "  snapshot {:<40} {} GB, about ${monthly:.2}/month (${}/GB-month); restore it with RDS, or delete it",
                s.id,
                s.gigabytes,
                usd::SNAPSHOT_GB_MONTH
            );
        }
    }
    let mut archives: std::collections::BTreeSet<String> = known_archive.map(str::to_owned).into_iter().collect();
    match archive::buckets_of(aws, &config.stack_name).await {
        Ok(found) => archives.extend(found),
        Err(e) => println!("  the archive buckets could not be listed ({e:#})"),
    }
    for bucket in archives {
        any = true;
        match archive::Size::of(aws, &bucket).await {
            Ok(size) => {
                let monthly = size.monthly();
                total += monthly;
                println!(
                    "  archive {bucket:<39} {}, about ${monthly:.2}/month; every DAP file as served (empty it, every version, to delete it)",
                    size.describe()
                );
            }
            Err(e) => println!("  archive {bucket:<39} could not be listed ({e:#}); check it in the S3 console"),
        }
    }
    for key in &keys {
        match aws.kms().describe_key().key_id(key).send().await {
            Ok(d) => {
                let meta = d.key_metadata();
                let state = meta.and_then(|m| m.key_state()).map(|s| s.as_str().to_owned()).unwrap_or_default();
                any = true;
                if state == "PendingDeletion" {
                    println!("  KMS key {key:<36} pending deletion, no charge");
                } else {
                    total += usd::KMS_KEY_MONTH;
                    println!(
                        "  KMS key {key:<36} ${:.2}/month; it decrypts what is kept (destroy --delete-data schedules it for deletion)",
                        usd::KMS_KEY_MONTH
                    );
                }
            }
            Err(e) if is_code(&e, &["NotFoundException"]) => {}
            // The list is a report: what cannot be read is said, and destroy still succeeds.
            Err(e) => println!("  KMS key {key:<36} could not be read ({}); check it in the KMS console", explain(&e)),
        }
    }
    match aws.secrets().describe_secret().secret_id(&config.dap.secret_name).send().await {
        Ok(d) if d.deleted_date().is_none() => {
            any = true;
            total += usd::SECRET_MONTH;
            println!(
                "  secret {:<37} ${:.2}/month; the DAP credential (./destroy.sh deletes it)",
                config.dap.secret_name,
                usd::SECRET_MONTH
            );
        }
        Ok(_) => {}
        Err(e) if is_code(&e, &["ResourceNotFoundException"]) => {}
        Err(e) => println!("  secret {} could not be read ({})", config.dap.secret_name, explain(&e)),
    }
    if let DatabaseProps::Existing(db) = &config.database {
        any = true;
        println!("  your database {} and its replicated schemas (not the stack's; untouched)", db.endpoint);
    }
    if !any {
        println!("  nothing");
    }
    println!("  total about ${total:.2}/month");
    Ok(())
}
