//! `status`: who gets the alerts (a subscription still waiting for its confirmation gets
//! nothing), then the recent runs, newest first, with their outcome, duration and counts;
//! or, with `--tables`, how fresh each table is, as the last run's `summarize` wrote it.

use crate::aws::{Aws, Explain};
use crate::project::EnvFlags;
use anyhow::{Context as _, Result};
use aws_sdk_sfn::types::ExecutionStatus;
use contract::Summary;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// How many runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: i32,
    /// Each table instead of the runs: the DAP timestamp it is current to, how far behind
    /// that is, its last run's outcome and about how many rows it holds, least current first.
    #[arg(long)]
    pub tables: bool,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
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
    if flags.tables {
        return tables(&aws, &config.stack_name).await;
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

/// Each table's freshness, least current first, from the results bucket's freshness file.
async fn tables(aws: &Aws, stack: &str) -> Result<()> {
    let resources = crate::stacks::resources(aws, stack).await?;
    let Some(bucket) = resources.get(stack::app::RESULTS_BUCKET_ID) else {
        anyhow::bail!("stack {stack} has no results bucket: deploy this version first");
    };
    let key = contract::freshness::FRESHNESS_KEY;
    let object = match aws.s3().get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            println!("no run has finished yet: cargo xtask run starts one");
            return Ok(());
        }
        Err(e) => return Err(e).doing(format!("reading s3://{bucket}/{key}")),
    };
    let bytes = object.body.collect().await.with_context(|| format!("reading s3://{bucket}/{key}"))?.into_bytes();
    let fresh: contract::freshness::Freshness = serde_json::from_slice(&bytes)
        .with_context(|| format!("s3://{bucket}/{key} is not the freshness summarize writes"))?;
    for line in table_lines(&fresh, contract::freshness::now_s()) {
        println!("{line}");
    }
    Ok(())
}

/// The table of `status --tables`: least current first (never replicated before all).
fn table_lines(fresh: &contract::freshness::Freshness, now_s: i64) -> Vec<String> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let date = |s: i64| {
        DateTime::from_secs(s).fmt(Format::DateTime).unwrap_or_default().trim_end_matches('Z').replace('T', " ")
    };
    let mut tables: Vec<_> = fresh.tables.iter().collect();
    tables.sort_by_key(|t| (t.current_to_s.unwrap_or(i64::MIN), t.namespace.clone(), t.table.clone()));
    let mut lines = vec![format!(
        "{:<44} {:<19} {:>8}  {:<34} {:>13}",
        "table", "current to (UTC)", "behind", "last run: outcome", "rows (about)"
    )];
    for t in &tables {
        let (current_to, behind) = match t.current_to_s {
            Some(s) => (date(s), age(now_s - s)),
            None if t.first_seen_s > 0 => ("never replicated".to_owned(), age(now_s - t.first_seen_s)),
            None => ("never replicated".to_owned(), "-".to_owned()),
        };
        let rows = t.rows.map(thousands).unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{:<44} {current_to:<19} {behind:>8}  {:<34} {rows:>13}",
            format!("{}.{}", t.namespace, t.table),
            format!("{}: {}", t.last_run, t.last_outcome)
        ));
    }
    match tables.first() {
        Some(oldest) if oldest.current_to_s.is_some() => lines.push(format!(
            "{}; the least current, {}.{}, is {} behind DAP (as of the last run, {})",
            count(tables.len()),
            oldest.namespace,
            oldest.table,
            age(now_s - oldest.current_to_s.unwrap_or_default()),
            date(fresh.written_s)
        )),
        Some(_) => lines.push(format!("{}; some have never been replicated", count(tables.len()))),
        None => lines.push("no table has been replicated yet".into()),
    }
    lines
}

/// "1 table", "4 tables".
fn count(tables: usize) -> String {
    if tables == 1 { "1 table".into() } else { format!("{tables} tables") }
}

/// `45m`, `3h 05m`, `2d 04h`.
fn age(seconds: i64) -> String {
    let m = seconds.max(0) / 60;
    match m {
        0..60 => format!("{m}m"),
        60..1440 => format!("{}h {:02}m", m / 60, m % 60),
        _ => format!("{}d {:02}h", m / 1440, (m % 1440) / 60),
    }
}

/// `1234567` -> `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
    fn tables_are_listed_least_current_first() {
        use contract::freshness::{Freshness, TableFreshness};
        let now = 1_714_557_600 + 3 * 86_400;
        let table = |name: &str, current_to_s: Option<i64>, outcome: &str| TableFreshness {
            namespace: "canvas".into(),
            table: name.into(),
            current_to_s,
            rows: current_to_s.map(|_| 1_234_567),
            last_run: "run-7".into(),
            last_run_s: now,
            last_outcome: outcome.into(),
            first_seen_s: now - 86_400,
        };
        let fresh = Freshness {
            written_s: now,
            tables: vec![
                table("users", Some(now - 2 * 3600 - 300), "success"),
                table("courses", Some(now - 3 * 86_400), "DatabaseError"),
                table("grades", None, "SchemaError"),
            ],
        };
        let lines = table_lines(&fresh, now);
        assert!(lines[1].starts_with("canvas.grades") && lines[1].contains("never replicated"), "{lines:#?}");
        assert!(lines[1].contains("1d 00h"), "behind since a run first had it: {lines:#?}");
        assert!(lines[2].contains("2024-05-01 10:00:00") && lines[2].contains("3d 00h"), "{lines:#?}");
        assert!(lines[2].contains("run-7: DatabaseError") && lines[2].contains("1,234,567"), "{lines:#?}");
        assert!(lines[3].contains("2h 05m") && lines[3].contains("run-7: success"), "{lines:#?}");
        assert_eq!(lines[4], "3 tables; some have never been replicated");
        assert_eq!(age(59), "0m");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

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
