//! `status`: who gets the alerts (a subscription still waiting for its confirmation gets
//! nothing), then the recent runs, newest first, with their outcome, duration and counts.

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
    for line in match subscriptions(&aws, &config.stack_name).await {
        Ok(Some(found)) => alert_lines(&found),
        Ok(None) => vec!["alerts: the stack has no alerts topic".into()],
        // Who gets the alerts is worth saying, not worth failing the runs' listing for.
        Err(e) => vec![format!("alerts: cannot say who gets the alerts: {e:#}")],
    } {
        println!("{line}");
    }
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

/// An alerts topic subscription: protocol, endpoint, and its ARN (`PendingConfirmation`
/// until the link in the email AWS sent is followed).
type Subscription = (String, String, String);

/// The subscriptions of the stack's alerts topic, when the stack names one.
async fn subscriptions(aws: &Aws, stack: &str) -> Result<Option<Vec<Subscription>>> {
    let resources = crate::stacks::resources(aws, stack).await?;
    let Some(topic) = resources.get(&stack::constructs::alerts::topic_id(stack::app::ALERTS_ID)) else {
        return Ok(None);
    };
    let mut pages = aws.sns().list_subscriptions_by_topic().topic_arn(topic).into_paginator().items().send();
    let mut found = Vec::new();
    while let Some(s) = pages.next().await {
        let s = s.doing("listing the alerts topic's subscriptions")?;
        let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
        found.push((text(s.protocol()), text(s.endpoint()), text(s.subscription_arn())));
    }
    Ok(Some(found))
}

/// What `status` says about who gets the alerts.
fn alert_lines(subscriptions: &[Subscription]) -> Vec<String> {
    if subscriptions.is_empty() {
        return vec![
            "alerts: the alerts topic has no subscriber, so failures reach no one: set alert_email and deploy".into(),
        ];
    }
    subscriptions
        .iter()
        .map(|(protocol, endpoint, arn)| {
            // A confirmed subscription has an ARN; until then SNS shows `PendingConfirmation`,
            // and a subscription on its way out shows `Deleted`.
            match arn.as_str() {
                _ if arn.starts_with("arn:") => format!("alerts: {protocol} {endpoint} (confirmed)"),
                "PendingConfirmation" => format!(
                    "alerts: {protocol} {endpoint} is PENDING CONFIRMATION and gets nothing until the link in the email from AWS Notifications is followed (aws sns subscribe sends another)"
                ),
                other => format!("alerts: {protocol} {endpoint} is NOT SUBSCRIBED ({other}) and gets nothing: deploy again to subscribe it"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_waiting_for_its_confirmation_is_said_loudly() {
        let pending = ("email".to_owned(), "ops@example.org".to_owned(), "PendingConfirmation".to_owned());
        let confirmed = ("email".to_owned(), "dba@example.org".to_owned(), "arn:aws:sns:us-east-1:1:t:abc".to_owned());
        let lines = alert_lines(&[pending, confirmed]);
        assert!(lines[0].contains("ops@example.org is PENDING CONFIRMATION"), "{lines:?}");
        assert_eq!(lines[1], "alerts: email dba@example.org (confirmed)");
        assert!(alert_lines(&[])[0].contains("no subscriber"));
        let deleted = ("email".to_owned(), "old@example.org".to_owned(), "Deleted".to_owned());
        assert!(
            alert_lines(&[deleted])[0].contains("NOT SUBSCRIBED (Deleted)"),
            "only an ARN is a confirmed subscription"
        );
    }
}
