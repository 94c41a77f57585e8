//! `status`: the recent runs, newest first, with their outcome, duration and counts.

use crate::EnvFlags;
use crate::aws::{Aws, Explain};
use anyhow::Result;
use aws_sdk_sfn::types::ExecutionStatus;
use contract::Summary;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// How many runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: i32,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::root())?;
    let aws = Aws::connect(&config.region).await;
    let machine = crate::run::state_machine(&aws, &config.stack_name).await?;
    let sfn = aws.sfn();
    let list = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .max_results(flags.limit.clamp(1, 1000))
        .send()
        .await
        .doing("listing the runs")?;
    if list.executions().is_empty() {
        println!("no runs yet of stack {} (cargo xtask run starts one)", config.stack_name);
        return Ok(());
    }
    println!("{:<44} {:<10} {:<20} {:>9}  tables", "run", "outcome", "started (UTC)", "duration");
    for e in list.executions() {
        let start = e.start_date();
        let duration = match e.stop_date() {
            Some(stop) => format!("{} s", stop.secs() - start.secs()),
            None => "running".into(),
        };
        let counts = match summary(&aws, e.execution_arn(), e.status()).await {
            Some(s) => format!("{} ok, {} failed", s.succeeded, s.failed),
            None => "-".into(),
        };
        println!(
            "{:<44} {:<10} {:<20} {:>9}  {counts}",
            e.name(),
            e.status().as_str().to_lowercase(),
            start.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default().trim_end_matches('Z'),
            duration
        );
    }
    Ok(())
}

/// The run's summary: its output when it succeeded, else the Summarize step's answer in
/// its history (a run with failed tables fails after summarizing).
async fn summary(aws: &Aws, execution: &str, status: &ExecutionStatus) -> Option<Summary> {
    let sfn = aws.sfn();
    if status == &ExecutionStatus::Succeeded {
        let d = sfn.describe_execution().execution_arn(execution).send().await.ok()?;
        return serde_json::from_str(d.output()?).ok();
    }
    let history =
        sfn.get_execution_history().execution_arn(execution).reverse_order(true).max_results(50).send().await.ok()?;
    history.events().iter().find_map(|e| {
        let output = e
            .task_succeeded_event_details()
            .and_then(|d| d.output())
            .or_else(|| e.lambda_function_succeeded_event_details().and_then(|d| d.output()))?;
        let v: serde_json::Value = serde_json::from_str(output).ok()?;
        // A Lambda task's result is under Payload.
        let payload = v.get("Payload").cloned().unwrap_or(v);
        serde_json::from_value::<Summary>(payload).ok().filter(|s| !s.subject.is_empty())
    })
}
