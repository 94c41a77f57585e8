//! `cargo xtask replicate`: the replication workflow on this machine, through the same
//! library calls the Lambdas make: init where a table is new, sync otherwise, tables
//! concurrently within the shared DAP rate limit, a line per table as it progresses, and a
//! summary at the end. Options and environment variables are named as in the `dap` CLI.

use anyhow::{Context, Result, bail};
use contract::Namespace;
use dap::{ClientConfig, Credentials, DapClient};
use replica::{Budget, Outcome, Replicator, Status, TableRef};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, clap::Args)]
pub struct ReplicateFlags {
    /// DAP namespace: canvas, canvas_logs, catalog or new_quizzes.
    #[arg(long)]
    pub namespace: String,
    /// Table name, a comma-separated list, or `all`.
    #[arg(long)]
    pub table: String,
    /// Base URL of the DAP API.
    #[arg(long, env = "DAP_API_URL", default_value = dap::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// OAuth client id (`region#uuid`).
    #[arg(long, env = "DAP_CLIENT_ID", hide_env_values = true)]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long, env = "DAP_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// postgresql://user:password@host:port/database[?ssl=disable|prefer]
    #[arg(long, env = "DAP_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: Option<String>,
    /// Tables replicated at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

struct TableResult {
    name: String,
    outcome: Result<Outcome, String>,
    duration: Duration,
}

pub fn run(flags: &ReplicateFlags) -> Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(replicate(flags))
}

fn required(value: &Option<String>, flag: &str, var: &str) -> Result<String> {
    match value {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => bail!("{flag} is missing: pass {flag} or set {var}"),
    }
}

async fn replicate(flags: &ReplicateFlags) -> Result<()> {
    let namespace = flags.namespace.as_str();
    if Namespace::from_name(namespace).is_none() {
        bail!("unknown namespace `{namespace}`: use one of {}", Namespace::names());
    }
    let credentials = Credentials {
        client_id: required(&flags.client_id, "--client-id", "DAP_CLIENT_ID")?,
        client_secret: required(&flags.client_secret, "--client-secret", "DAP_CLIENT_SECRET")?,
    };
    let connection = required(&flags.connection_string, "--connection-string", "DAP_CONNECTION_STRING")?;
    let db_config = replica::parse_connection_string(&connection)?;
    let dap = DapClient::new(ClientConfig::new(&flags.base_url, credentials))?;

    // Fail fast, with one line, on bad credentials or an unreachable database.
    dap.check_credentials().await?;
    drop(Replicator::connect(&db_config, dap.clone()).await?);
    let tables: Vec<String> = if flags.table == "all" {
        dap.list_tables(namespace).await?
    } else {
        flags.table.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    };
    if tables.is_empty() {
        bail!("no tables to replicate: --table takes a name, a comma-separated list, or `all`");
    }
    println!("replicating {} table(s) of {namespace}, {} at a time", tables.len(), flags.concurrency.max(1));

    let gate = Arc::new(Semaphore::new(flags.concurrency.max(1)));
    let mut tasks = Vec::new();
    for table in tables {
        let (gate, dap, db_config, table) =
            (gate.clone(), dap.clone(), db_config.clone(), TableRef::new(namespace, table));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("the semaphore is never closed");
            let name = table.to_string();
            println!("{name:<40} started");
            let start = Instant::now();
            let outcome = async {
                let mut replicator = Replicator::connect(&db_config, dap).await?;
                replicator.on_progress(std::sync::Arc::new(|progress: &replica::Progress<'_>| println!("{progress}")));
                let mut outcome = replicator.replicate(&table, Budget::unlimited()).await?;
                // With no budget a call finishes; loop anyway, as the workflow does.
                while outcome.status == Status::InProgress {
                    outcome = replicator.replicate(&table, Budget::unlimited()).await?;
                }
                Ok::<_, replica::ReplicaError>(outcome)
            }
            .await
            .map_err(|e| format!("[{}] {e}", e.kind()));
            let duration = start.elapsed();
            match &outcome {
                Ok(o) => println!(
                    "{name:<40} done in {:.1}s: {} inserted, {} updated, {} deleted",
                    duration.as_secs_f64(),
                    o.counts.inserted,
                    o.counts.updated,
                    o.counts.deleted
                ),
                Err(e) => println!("{name:<40} FAILED after {:.1}s: {e}", duration.as_secs_f64()),
            }
            TableResult { name, outcome, duration }
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.context("a table's task panicked")?);
    }
    print_summary(&results);
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        bail!("{failed} of {} table(s) failed", results.len());
    }
    Ok(())
}

fn print_summary(results: &[TableResult]) {
    println!("\n{:<40} {:>10} {:>10} {:>10} {:>10}  outcome", "table", "inserted", "updated", "deleted", "seconds");
    for r in results {
        let secs = format!("{:.1}", r.duration.as_secs_f64());
        match &r.outcome {
            Ok(o) => {
                println!(
                    "{:<40} {:>10} {:>10} {:>10} {secs:>10}  ok",
                    r.name, o.counts.inserted, o.counts.updated, o.counts.deleted
                );
                for note in &o.notes {
                    println!("{:<40} schema: {note}", "");
                }
            }
            Err(e) => println!("{:<40} {:>10} {:>10} {:>10} {secs:>10}  failed: {e}", r.name, "-", "-", "-"),
        }
    }
}
