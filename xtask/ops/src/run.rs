//! `run`: starts a replication run and follows it, one line per table as it finishes (the
//! Distributed Map's child executions), and fails when the run failed.

use crate::aws::{Aws, Explain};
use crate::project::EnvFlags;
use anyhow::{Result, anyhow, bail};
use aws_sdk_sfn::types::ExecutionStatus;
use contract::{RunInput, Summary, TableRef, TableState};
use stack::app::{REPLICATION_ID, STATE_MACHINE_ARN};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// Replicate only this table (repeatable), e.g. --table canvas.accounts.
    #[arg(long = "table", value_name = "NS.TABLE")]
    pub tables: Vec<TableRef>,
    /// Start the run and return; `status` shows how it went.
    #[arg(long)]
    pub no_wait: bool,
}

/// The state machine of the environment's stack: its output ([`STATE_MACHINE_ARN`]), or,
/// when the stack shows no outputs (moto's do not), the physical id of its resource
/// ([`REPLICATION_ID`]), which for a state machine is its ARN; and it must exist (a stack
/// that rolled back or is being deleted still lists the machine it no longer has).
pub async fn state_machine(aws: &Aws, stack: &str) -> Result<String> {
    let missing =
        || anyhow!("stack {stack} has no state machine in {}: deploy it first (cargo xtask deploy)", aws.region);
    let Some(info) = crate::stacks::describe(aws, stack).await? else { return Err(missing()) };
    let arn = match info.output(STATE_MACHINE_ARN) {
        Some(arn) => arn.to_owned(),
        None => crate::stacks::resources(aws, stack).await?.remove(REPLICATION_ID).ok_or_else(missing)?,
    };
    match aws.sfn().describe_state_machine().state_machine_arn(&arn).send().await {
        Ok(_) => Ok(arn),
        Err(e) if crate::aws::is_code(&e, &["StateMachineDoesNotExist"]) => {
            Err(missing().context(format!("stack {stack} is {}", info.status)))
        }
        Err(e) => Err(e).doing(format!("looking for the state machine {arn}")),
    }
}

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    let machine = state_machine(&aws, &config.stack_name).await?;
    let tables = flags.tables.clone();
    let input = RunInput { tables: (!tables.is_empty()).then_some(tables) };
    if config.network.nat == stack::constructs::nat::NatMode::InstanceOnDemand {
        crate::nat::start(&aws, &config.stack_name).await;
    }
    let name = format!("manual-{}", crate::clock::unix_millis());
    let sfn = aws.sfn();
    let started = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name(&name)
        .input(serde_json::to_string(&input)?)
        .send()
        .await
        .doing(format!("starting a run of {machine}"))?;
    let execution = started.execution_arn().to_owned();
    println!("started run {name}");
    if flags.no_wait {
        println!("{execution}");
        return Ok(());
    }
    let mut printed = BTreeSet::new();
    loop {
        let d = sfn.describe_execution().execution_arn(&execution).send().await.doing("reading the run")?;
        print_finished_tables(&aws, &execution, &mut printed).await?;
        match d.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            ExecutionStatus::Succeeded => {
                let summary = d.output().and_then(|o| serde_json::from_str::<Summary>(o).ok());
                match summary {
                    Some(s) => println!("run {name} succeeded: {} tables replicated, {} failed", s.succeeded, s.failed),
                    None => println!("run {name} succeeded"),
                }
                return Ok(());
            }
            other => {
                let error = d.error().unwrap_or("no error name");
                let cause = d.cause().unwrap_or("no cause recorded");
                bail!("run {name} ended {}: {error}: {cause}", other.as_str());
            }
        }
    }
}

/// One line for each table whose child execution finished since the last call.
async fn print_finished_tables(aws: &Aws, execution: &str, printed: &mut BTreeSet<String>) -> Result<()> {
    let sfn = aws.sfn();
    let Ok(runs) = sfn.list_map_runs().execution_arn(execution).send().await else { return Ok(()) };
    for map_run in runs.map_runs() {
        let mut next = None;
        loop {
            let page = sfn
                .list_executions()
                .map_run_arn(map_run.map_run_arn())
                .set_next_token(next)
                .send()
                .await
                .doing("listing the run's tables")?;
            for child in page.executions() {
                if child.status() == &ExecutionStatus::Running || printed.contains(child.execution_arn()) {
                    continue;
                }
                printed.insert(child.execution_arn().to_owned());
                let d = sfn
                    .describe_execution()
                    .execution_arn(child.execution_arn())
                    .send()
                    .await
                    .doing("reading a table's run")?;
                let state = d
                    .output()
                    .or(d.input())
                    .and_then(|o| serde_json::from_str::<TableState>(o).ok())
                    .unwrap_or_default();
                println!("{}", table_line(&state, d.status().as_str()));
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
    }
    Ok(())
}

fn table_line(t: &TableState, execution_status: &str) -> String {
    match &t.error {
        None if execution_status != "SUCCEEDED" => t.line(&execution_status.to_lowercase()),
        _ => t.finished_line(),
    }
}
