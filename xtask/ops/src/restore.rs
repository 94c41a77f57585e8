//! `restore`: rebuilds a table from the archive alone through the replicator's own loads:
//! the newest snapshot, then every incremental job in order, so that the table ends as
//! replication left it (rows and `table_sync`) and replication can go on from it. A table
//! already there catches up from its `table_sync` timestamp.
//!
//! Into the stack's own database, which is private, `init_table` does it from inside the
//! stack's network, called again while it answers `in_progress`; into any PostgreSQL this
//! machine reaches (`--into`), this process does it.

use crate::archive;
use crate::aws::{Aws, Explain};
use crate::project::EnvFlags;
use anyhow::{Context, Result, bail};
use contract::{Status, TableRef, TableState};
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
    /// Another database to rebuild it in (by default the stack's own):
    /// postgresql://user@host:port/database[?sslmode=...], the password in PGPASSWORD (or
    /// in the URL, where the process list shows it).
    #[arg(long, value_name = "CONNECTION")]
    pub into: Option<String>,
    /// The archive bucket (by default the stack's, or the one it kept when it was destroyed).
    #[arg(long)]
    pub bucket: Option<String>,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    let Some(into) = &flags.into else {
        if flags.bucket.is_some() {
            bail!("--bucket needs --into: the stack's own database is restored from the stack's own archive");
        }
        let function = init_function(&aws, &config.stack_name).await?;
        no_run_under_way(&aws, &config.stack_name).await?;
        // The function reads its secret when it starts cold, through the NAT: an on-demand
        // one may have stopped itself, and may again between calls (a restore is no run).
        let nat = (config.network.nat == stack::constructs::nat::NatMode::InstanceOnDemand)
            .then_some(config.stack_name.as_str());
        return in_stack(&aws, &function, &flags.table, nat).await;
    };
    let bucket = match &flags.bucket {
        Some(bucket) => bucket.clone(),
        None => archive_bucket(&aws, &config.stack_name).await?,
    };
    let mut options = replica::parse_connection_string(into)?;
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

/// The stack's `init_table` function, when the stack has an archive.
async fn init_function(aws: &Aws, stack_name: &str) -> Result<String> {
    let Some(stack) = crate::stacks::describe(aws, stack_name).await? else {
        bail!(
            "stack {stack_name} does not exist in {}: pass --into with a database to restore into (and --bucket with the archive a destroy kept)",
            aws.region
        );
    };
    let resources = crate::stacks::resources(aws, &stack.id).await?;
    if !resources.contains_key(stack::app::ARCHIVE_BUCKET_ID) {
        bail!(
            "stack {stack_name} has no archive (archive.enabled is off): turn it on and deploy, or pass --into and --bucket"
        );
    }
    let function = stack::app::Function::InitTable.logical_id();
    resources.get(function).cloned().ok_or_else(|| anyhow::anyhow!("stack {stack_name} has no {function} function"))
}

/// A run would init a table it finds missing from DAP between the restore's calls, and
/// the two would undo each other's work: a restore waits for runs to end (and is best run
/// with `schedule_enabled=false` for a large table).
async fn no_run_under_way(aws: &Aws, stack_name: &str) -> Result<()> {
    let machine = crate::run::state_machine(aws, stack_name).await?;
    let running = aws
        .sfn()
        .list_executions()
        .state_machine_arn(&machine)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .max_results(1)
        .send()
        .await
        .doing("listing the runs under way")?;
    if let Some(run) = running.executions().first() {
        bail!(
            "run {} is under way: a restore waits for it to end (cargo xtask status), since a run inits a table it finds missing",
            run.name()
        );
    }
    Ok(())
}

/// Calls of `init_table` a restore makes again after a passing failure (a paused database
/// that did not answer in time, the table's lock held), and the pause before each.
const TRANSIENT_RETRIES: u32 = 5;
const TRANSIENT_PAUSE: std::time::Duration = std::time::Duration::from_secs(15);

/// Has `function` (the stack's `init_table`) restore `table` into the stack's database,
/// calling it again while it answers `in_progress`; its own limits on calls end a restore
/// that makes no progress. With `wake_nat_of` (a stack whose NAT instances start on demand),
/// its NAT is woken before each call.
async fn in_stack(aws: &Aws, function: &str, table: &TableRef, wake_nat_of: Option<&str>) -> Result<()> {
    in_stack_pausing(aws, function, table, wake_nat_of, TRANSIENT_PAUSE).await
}

async fn in_stack_pausing(
    aws: &Aws,
    function: &str,
    table: &TableRef,
    wake_nat_of: Option<&str>,
    pause: std::time::Duration,
) -> Result<()> {
    println!("restoring {table} from the stack's archive into its database, by {function}");
    let mut state = TableState {
        namespace: table.namespace.clone(),
        table: table.table.clone(),
        restore: true,
        ..TableState::default()
    };
    // One attempt a call, for as long as the function may run: a call sent again while
    // the first still runs would only meet the table's lock.
    let once = aws_sdk_lambda::config::Builder::default()
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(
                    u64::from(stack::app::REPLICATE_TIMEOUT_SECONDS) + 60,
                ))
                .build(),
        );
    let mut retries = 0;
    loop {
        if let Some(stack) = wake_nat_of
            && let Err(e) = crate::nat::wake(aws, stack).await
        {
            eprintln!("note: {e:#}; calling {function} all the same (a warm function needs no NAT)");
        }
        let payload = aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(&state)?);
        let invoke = aws.lambda().invoke().function_name(function).payload(payload);
        let answer = invoke.customize().config_override(once.clone()).send().await;
        let answer = answer.doing(format!("invoking {function}"))?;
        let body = answer.payload().map(|b| b.as_ref()).unwrap_or_default();
        if answer.function_error().is_some() {
            let error: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let kind = error["errorType"].as_str().unwrap_or("the function failed");
            let message = error["errorMessage"].as_str().unwrap_or("see the function's log");
            if kind == contract::ErrorName::Transient.as_str() && retries < TRANSIENT_RETRIES {
                retries += 1;
                println!("  {message}; calling again in {} s", pause.as_secs());
                tokio::time::sleep(pause).await;
                continue;
            }
            bail!("{table}: {kind}: {message}");
        }
        retries = 0;
        state =
            serde_json::from_slice(body).with_context(|| format!("{function} answered what is not a table's state"))?;
        if !state.restore {
            bail!(
                "{table}: {function} does not know restores, and loaded the table from DAP instead: deploy this version first (cargo xtask deploy)"
            );
        }
        let c = state.counts;
        match state.status {
            Status::InProgress => println!(
                "  call {}: {} inserted, {} updated, {} deleted so far",
                state.calls, c.inserted, c.updated, c.deleted
            ),
            Status::Success => {
                let at = state.current_to_s.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
                let at = at.map_or_else(|| "its table_sync timestamp".to_owned(), |t| t.to_string());
                println!(
                    "restored {table}: {} inserted, {} updated, {} deleted in {} calls; current to {at} (replication goes on from there)",
                    c.inserted, c.updated, c.deleted, state.calls
                );
                return Ok(());
            }
            other => bail!("{table}: {function} answered {other:?}, which a restore never is; see the function's log"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop as moto's Lambda answers it (its simple backend hands back queued answers;
    /// `lambdas/functions/tests/workflow.rs` has the real `init_table` restore).
    #[tokio::test]
    async fn the_function_is_called_again_while_in_progress_and_its_state_carried() {
        let Ok(moto) = testkit::Moto::start(None) else {
            panic!("moto is needed: run `cargo xtask test` once, or set {}", testkit::PYTHON_TOOLS_VAR)
        };
        let state = |status: &str, calls: u32, inserted: u64| {
            serde_json::json!({"namespace": "canvas", "table": "courses", "status": status, "calls": calls,
                "counts": {"inserted": inserted, "updated": 0, "deleted": 0}, "restore": true, "current_to_s": 1_700_000_000})
            .to_string()
        };
        let mut from_dap: serde_json::Value = serde_json::from_str(&state("success", 1, 25)).unwrap();
        from_dap.as_object_mut().unwrap().remove("restore");
        let results = serde_json::json!({"results": [
            state("in_progress", 1, 10), state("success", 2, 25), from_dap.to_string(), state("in_progress", 1, 0)
        ]});
        let file = std::env::temp_dir().join(format!("cd2-restore-answers-{}.json", std::process::id()));
        std::fs::write(&file, results.to_string()).unwrap();
        moto.boto(&format!(
            "import json, urllib.request\n\
             for path, body in [('/moto-api/config', {{'lambda': {{'use_docker': False}}}}), ('/moto-api/static/lambda-simple/response', json.load(open({file:?})))]:\n\
             \x20   r = urllib.request.Request(kw['endpoint_url'] + path, data=json.dumps(body).encode(), method='POST')\n\
             \x20   urllib.request.urlopen(r)\n\
             print(1)",
        ))
        .unwrap();
        let aws = Aws::local("us-east-1", &moto.endpoint()).await;
        let table = TableRef::new("canvas", "courses");
        let pause = std::time::Duration::ZERO;
        in_stack_pausing(&aws, "cd2-dev-InitTable", &table, None, pause).await.unwrap();
        // A function of an older version answers without `restore`: it loaded from DAP.
        let e = in_stack_pausing(&aws, "cd2-dev-InitTable", &table, None, pause).await.unwrap_err().to_string();
        assert!(e.contains("does not know restores") && e.contains("cargo xtask deploy"), "{e}");
        let left = aws.lambda().invoke().function_name("cd2-dev-InitTable").send().await.unwrap();
        let left: TableState = serde_json::from_slice(left.payload().unwrap().as_ref()).unwrap();
        assert_eq!((left.status, left.calls), (Status::InProgress, 1), "three calls were made, no more");
    }
}
