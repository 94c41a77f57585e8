//! `restore`: rebuilds a table from the archive alone, in any PostgreSQL this machine can
//! reach (`--into`), through the replicator's own loads: the newest snapshot, then every
//! incremental job in order, so that the table ends as replication left it (rows and
//! `table_sync`) and replication can go on from it. A table already there catches up from
//! its `table_sync` timestamp.

use crate::archive;
use crate::aws::Aws;
use crate::project::EnvFlags;
use anyhow::{Context, Result, bail};
use contract::TableRef;
use std::sync::Arc;

/// The password of `--into` when its URL has none, as libpq reads it: kept out of the
/// command line, which other users of the machine can see and the shell's history keeps.
pub const PASSWORD_VAR: &str = "PGPASSWORD";

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// The table to rebuild, e.g. --table canvas_logs.web_logs.
    #[arg(long, value_name = "NS.TABLE")]
    pub table: TableRef,
    /// The database to rebuild it in: postgresql://user@host:port/database[?sslmode=...],
    /// the password in PGPASSWORD (or in the URL, where the process list shows it).
    #[arg(long, value_name = "CONNECTION")]
    pub into: String,
    /// The archive bucket (by default the stack's, or the one it kept when it was destroyed).
    #[arg(long)]
    pub bucket: Option<String>,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    let bucket = match &flags.bucket {
        Some(bucket) => bucket.clone(),
        None => archive_bucket(&aws, &config.stack_name).await?,
    };
    let mut options = replica::parse_connection_string(&flags.into)?;
    if options.password.is_none() {
        options.password = std::env::var(PASSWORD_VAR).ok().filter(|p| !p.is_empty());
    }
    println!(
        "restoring {} from s3://{bucket} into {}:{}/{}",
        flags.table, options.host, options.port, options.database
    );
    // A restore reads the archive alone; the client is never called.
    let no_dap = dap::DapClient::new(dap::ClientConfig::new(
        dap::DEFAULT_BASE_URL,
        dap::Credentials { client_id: String::new(), client_secret: String::new() },
    ))?;
    let mut replicator = replica::Replicator::connect(&options, no_dap).await?;
    replicator.on_progress(Arc::new(|p: &replica::Progress<'_>| println!("{p}")));
    let reader = Arc::new(s3_archive::S3Archive::new(aws.s3().clone(), bucket));
    let outcome = replicator.restore(&flags.table, reader, replica::Budget::unlimited()).await;
    let current_to = match &outcome {
        Ok(_) => replicator.last_timestamp(&flags.table).await.ok().flatten(),
        Err(_) => None,
    };
    replicator.close().await;
    let outcome = outcome?;
    for note in &outcome.notes {
        println!("  {note}");
    }
    let c = outcome.counts;
    match current_to {
        Some(at) => println!(
            "restored {}: {} inserted, {} updated, {} deleted; current to {at} (replication goes on from there)",
            flags.table, c.inserted, c.updated, c.deleted
        ),
        None => bail!("{}: the restore ended without the table in the database", flags.table),
    }
    Ok(())
}

/// The stack's archive bucket, or the one a destroy kept.
async fn archive_bucket(aws: &Aws, stack_name: &str) -> Result<String> {
    if let Some(stack) = crate::stacks::describe(aws, stack_name).await? {
        let resources = crate::stacks::resources(aws, &stack.id).await?;
        if let Some(bucket) = resources.get(stack::app::ARCHIVE_BUCKET_ID) {
            return Ok(bucket.clone());
        }
    }
    let kept = archive::buckets_of(aws, stack_name).await?;
    match kept.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "stack {stack_name} has no archive in {} (archive.enabled is off, or it was deleted): pass --bucket",
            aws.region
        ),
        many => Err(anyhow::anyhow!("several archive buckets of {stack_name}: {}", many.join(", ")))
            .context("pass --bucket with the one to restore from"),
    }
}
