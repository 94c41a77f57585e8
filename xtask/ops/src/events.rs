//! Follows a stack operation through its events with one progress line (`n/m`, the
//! current resource, the elapsed time) until the stack settles. CloudFormation's own
//! waiters poll every 30-120 s; this polls every 2 s.

use crate::aws::{Aws, Explain};
use crate::prompt;
use anyhow::{Result, bail};
use contract::{Backoff, Pauses};
use stack::resources::Resource;
use stack::resources::ec2::{SecurityGroup, Subnet};
use stack::resources::lambda::Function;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// A resource that failed, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub logical_id: String,
    pub resource_type: String,
    pub reason: String,
}

/// How the operation ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: String,
    /// The first failures, in the order they happened (the cause, before the cancellations).
    pub failures: Vec<Failure>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self.status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE")
    }

    /// The failing resource and its reason, in one line.
    pub fn cause(&self) -> String {
        match self.failures.first() {
            Some(f) => format!("{} ({}) failed: {}", f.logical_id, f.resource_type, f.reason),
            None => format!("the stack ended in {}", self.status),
        }
    }
}

/// Longer than any create or delete of this stack, ENI waits included.
const DEADLINE: Duration = Duration::from_secs(4 * 3600);

/// Reads that fail (throttling, a dropped connection) are tried again 4, 8, 16, 32 and 64 s
/// later; after five failures in a row following gives up.
const READ_RETRY: Backoff = Backoff::doubling(6, Duration::from_secs(4), Duration::from_secs(64));

/// The newest event id of `stack` now, so that following starts after it.
pub async fn latest_event(aws: &Aws, stack: &str) -> Result<Option<String>> {
    let page = aws
        .cloudformation()
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .doing(format!("reading the events of {stack}"))?;
    Ok(page.stack_events().first().and_then(|e| e.event_id()).map(str::to_owned))
}

/// Deletes stack `stack_id` (of `total` resources) and follows the delete to its end.
pub async fn delete_stack(aws: &Aws, stack_id: &str, total: usize) -> Result<Outcome> {
    let since = latest_event(aws, stack_id).await?;
    aws.cloudformation()
        .delete_stack()
        .stack_name(stack_id)
        .client_request_token(format!("cd2-delete-{}", crate::clock::unix_millis()))
        .send()
        .await
        .doing(format!("deleting stack {stack_id}"))?;
    follow(aws, stack_id, since, total).await
}

/// Follows `stack_id` from after event `since` until its status is no longer in progress.
/// `total`: how many resources the operation touches (the change set's size, or the
/// stack's resources for a delete).
pub async fn follow(aws: &Aws, stack_id: &str, since: Option<String>, total: usize) -> Result<Outcome> {
    let cfn = aws.cloudformation();
    let started = Instant::now();
    let tty = prompt::is_tty();
    let mut seen_until = since;
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    let mut current = String::from("starting");
    let mut waiting_since: Option<(String, Instant)> = None;
    let mut told_about_enis = false;
    let mut last_line = String::new();
    let mut failed_reads = READ_RETRY.pauses();
    let mut settled: Option<String> = None;
    // Right after the call the stack may still show how the last operation ended: a
    // settled status counts only once this operation has written an event.
    let mut begun = false;
    loop {
        if started.elapsed() > DEADLINE {
            bail!(
                "stack {stack_id} is still in progress after {} hours; it goes on without this command (the CloudFormation console follows it)",
                DEADLINE.as_secs() / 3600
            );
        }
        // Newest first: read back to the last event seen.
        let mut fresh = Vec::new();
        let mut next: Option<String> = None;
        'pages: loop {
            let page = match cfn.describe_stack_events().stack_name(stack_id).set_next_token(next.clone()).send().await
            {
                Ok(page) => page,
                Err(e) if retry(&mut failed_reads, "the stack's events", &crate::aws::explain(&e)).await => continue,
                Err(e) => return Err(e).doing("reading the stack's events"),
            };
            failed_reads = READ_RETRY.pauses();
            for e in page.stack_events() {
                if e.event_id().is_some() && e.event_id().map(str::to_owned) == seen_until {
                    break 'pages;
                }
                fresh.push(e.clone());
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        begun |= !fresh.is_empty();
        if let Some(newest) = fresh.first().and_then(|e| e.event_id()) {
            seen_until = Some(newest.to_owned());
        }
        for e in fresh.iter().rev() {
            let id = e.logical_resource_id().unwrap_or_default();
            let status = e.resource_status().map(|s| s.as_str()).unwrap_or_default();
            let kind = e.resource_type().unwrap_or_default();
            if kind == crate::stacks::STACK_TYPE {
                continue;
            }
            if status.ends_with("_COMPLETE") || status.ends_with("_FAILED") || status.ends_with("_SKIPPED") {
                done.insert(id.to_owned());
                waiting_since = None;
            } else {
                waiting_since = Some((kind.to_owned(), Instant::now()));
            }
            let reason = e.resource_status_reason().unwrap_or_default();
            if status.ends_with("_FAILED") && !reason.contains("cancelled") {
                failures.push(Failure {
                    logical_id: id.to_owned(),
                    resource_type: kind.to_owned(),
                    reason: reason.to_owned(),
                });
            }
            current = format!("{id} {status}");
        }
        if let Some(status) = settled {
            // The events written up to the end have been read and shown.
            return Ok(Outcome { status, failures });
        }
        let status = match cfn.describe_stacks().stack_name(stack_id).send().await {
            Ok(d) => {
                d.stacks().first().and_then(|s| s.stack_status()).map(|s| s.as_str().to_owned()).unwrap_or_default()
            }
            // A deleted stack may be gone from the API altogether.
            Err(e) if crate::aws::explain(&e).contains("does not exist") => "DELETE_COMPLETE".to_owned(),
            Err(e) if retry(&mut failed_reads, "the stack's status", &crate::aws::explain(&e)).await => continue,
            Err(e) => return Err(e).doing("reading the stack's status"),
        };
        let line = format!("[{}/{}] {current}  {}s", done.len(), total.max(done.len()), started.elapsed().as_secs());
        if tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if line.split("  ").next() != last_line.split("  ").next() {
            eprintln!("{line}");
        }
        last_line = line;
        // Lambda functions in a VPC hold network interfaces that AWS releases in its own time.
        if let Some((kind, since)) = &waiting_since
            && !told_about_enis
            && status == "DELETE_IN_PROGRESS"
            && [SecurityGroup::TYPE, Function::TYPE, Subnet::TYPE].contains(&kind.as_str())
            && since.elapsed() > Duration::from_secs(90)
        {
            told_about_enis = true;
            // On a terminal, below the progress line.
            eprintln!(
                "{}note: AWS is releasing the Lambdas' network interfaces (ENIs); this often takes 20-45 minutes and nothing is stuck",
                if tty { "\n" } else { "" }
            );
        }
        if !status.ends_with("_IN_PROGRESS") && (begun || started.elapsed() > Duration::from_secs(60)) {
            if tty {
                eprintln!();
            }
            // One more read of the events, for those written just before the end.
            settled = Some(status);
            continue;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// After a failed read: waits the policy's next pause and answers true while reads may
/// still be retried, saying why.
async fn retry(failed_reads: &mut Pauses, what: &str, why: &str) -> bool {
    let Some(pause) = failed_reads.next() else { return false };
    eprintln!("\nwarning: reading {what}: {why} (retrying)");
    tokio::time::sleep(pause).await;
    true
}
