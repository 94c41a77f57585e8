//! DAP's limit on job creation (5 a minute per client), shared through the replica
//! database by every process that replicates into it: the Map's concurrent Lambdas all
//! use one DAP client id, so each keeping its own count would let ten of them make fifty
//! requests a minute and meet a storm of 429s.
//!
//! The window is a row of `cd2_aws.dap_rate_limit` (created with the metadata tables,
//! [`crate::ddl::metadata`]): the times (the database's clock, so
//! the Lambdas' clocks do not matter) of the calls made in the last window. Taking a slot
//! is one short transaction holding the row's lock for a few milliseconds. The window is
//! per database: environments that share one DAP client id but not a database (dev and
//! prod) do not share it, and should have a client id each.

use crate::TableRef;
use crate::error::{DbContext as _, ReplicaError};
use dap::{DapClient, DapError, Job, Limit, Query};
use sqlx::{Connection as _, PgConnection};
use std::time::{Duration, Instant};

/// The row counting job creations.
pub(crate) const CREATE_JOB: &str = "create_job";

/// Added to the window (a twentieth, 3 s of DAP's minute, and at least 250 ms) for the
/// time between a slot taken here and the request reaching DAP, which varies from call to
/// call (a slower connection, a busy machine), so that calls admitted a window apart never
/// arrive closer.
const SLACK_DIVISOR: u32 = 20;
const MIN_SLACK: Duration = Duration::from_millis(250);

/// The shortest pause before asking again, so that waiters do not spin on the row.
const MIN_WAIT: Duration = Duration::from_millis(50);

const WHAT: &str = "DAP rate limit";

/// Starts a DAP job, each attempt (the first and every retry) in a slot of the shared
/// window, so that retries after a 5xx, a lost connection or a 429 never push the client
/// past DAP's limit. A 429 holds every process off (for `Retry-After`, or the client's
/// default when DAP sends none). `None`: no slot before `deadline` (the call answers
/// `in_progress` without a job, and the next call asks again).
pub(crate) async fn create_job(
    db: &mut PgConnection,
    dap: &DapClient,
    table: &TableRef,
    query: &Query,
    deadline: Option<Instant>,
) -> Result<Option<Job>, ReplicaError> {
    let config = dap.config();
    let limit = config.job_limit;
    let mut pauses = config.retry.pauses();
    let mut attempt = 0;
    let mut relogged = false;
    loop {
        attempt += 1;
        // Logged in first, so the slot is not spent on a login before the request.
        dap.check_credentials().await?;
        if !take_slot(db, CREATE_JOB, limit, deadline).await? {
            return Ok(None);
        }
        let failure = match dap.try_start_job(&table.namespace, &table.table, query).await {
            Ok(job) => return Ok(Some(job)),
            Err(e) => e,
        };
        // Every attempt counts against the policy's, whatever the pause before the next.
        let next = pauses.next();
        let pause = match &failure {
            // A token DAP no longer takes: one more attempt, after a new login.
            DapError::Authentication(_) if !relogged => {
                relogged = true;
                Duration::ZERO
            }
            DapError::RateLimited { retry_after, .. } => {
                // Shared even when too long to wait out here: the others then stop asking.
                let wait = retry_after.unwrap_or(config.default_retry_after);
                hold_off(db, CREATE_JOB, limit, wait).await?;
                if wait > config.max_retry_after {
                    return Err(failure.into());
                }
                Duration::ZERO
            }
            e if e.is_transient() && e.request_may_not_have_arrived() => next.unwrap_or_default(),
            _ => return Err(failure.into()),
        };
        if next.is_none() {
            return Err(failure.into());
        }
        tracing::warn!(
            namespace = %table.namespace, table = %table.table, attempt, error = %failure,
            "job creation failed; trying again in a new slot"
        );
        if deadline.is_some_and(|d| Instant::now() + pause >= d) {
            // No time for another attempt: this call ends without a job; the next asks again.
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
    }
}

/// Waits for a free slot of `quota` in the shared window, records it and answers `true`;
/// when no slot can come before `deadline`, waits until then and answers `false` (the call
/// ends its budget without a job, and the next call asks again: one call a budget, not a
/// busy loop of calls).
pub(crate) async fn take_slot(
    db: &mut PgConnection,
    quota: &str,
    limit: Limit,
    deadline: Option<Instant>,
) -> Result<bool, ReplicaError> {
    loop {
        let Some(wait) = try_take(db, quota, limit).await? else {
            return Ok(true);
        };
        if let Some(d) = deadline.filter(|d| Instant::now() + wait >= *d) {
            tracing::info!(quota, wait_ms = wait.as_millis() as u64, "no DAP slot before the budget ends");
            tokio::time::sleep_until(d.into()).await;
            return Ok(false);
        }
        tracing::debug!(quota, wait_ms = wait.as_millis() as u64, "DAP rate limit shared with other runs: waiting");
        tokio::time::sleep(wait).await;
    }
}

/// DAP answered 429 to someone: every process waits `wait` before its next call. The
/// window is filled with calls that leave it only then, keeping any that leave later.
pub(crate) async fn hold_off(
    db: &mut PgConnection,
    quota: &str,
    limit: Limit,
    wait: Duration,
) -> Result<(), ReplicaError> {
    let calls = limit.calls.max(1);
    let per = window_with_slack(limit).as_secs_f64();
    let mut tx = db.begin().await.doing(WHAT, "starting a transaction")?;
    let (sent, now) = lock_window(&mut tx, quota).await?;
    // A call "sent" at `now + wait - per` leaves the window `wait` from now.
    let leaves_then = now + wait.as_secs_f64() - per;
    let mut held: Vec<f64> = sent.into_iter().filter(|t| *t > now - per).map(|t| t.max(leaves_then)).collect();
    held.resize(held.len().max(calls), leaves_then);
    store_window(&mut tx, quota, &held).await?;
    tx.commit().await.doing(WHAT, "committing the window")?;
    tracing::warn!(quota, wait_ms = wait.as_millis() as u64, "DAP answered 429: every process holds off");
    Ok(())
}

/// DAP's window widened by the slack.
fn window_with_slack(limit: Limit) -> Duration {
    limit.per + (limit.per / SLACK_DIVISOR).max(MIN_SLACK)
}

/// The window's calls and the database's clock, with the row locked for this transaction.
async fn lock_window(tx: &mut PgConnection, quota: &str) -> Result<(Vec<f64>, f64), ReplicaError> {
    sqlx::query(r#"INSERT INTO "cd2_aws"."dap_rate_limit" ("quota") VALUES ($1) ON CONFLICT ("quota") DO NOTHING"#)
        .bind(quota)
        .execute(&mut *tx)
        .await
        .doing(WHAT, "adding the window")?;
    let sent: Vec<f64> =
        sqlx::query_scalar(r#"SELECT "sent" FROM "cd2_aws"."dap_rate_limit" WHERE "quota" = $1 FOR UPDATE"#)
            .bind(quota)
            .fetch_one(&mut *tx)
            .await
            .doing(WHAT, "reading the window")?;
    // Read once the row is ours: a clock read before a wait for the lock would be stale.
    let now: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(&mut *tx)
        .await
        .doing(WHAT, "reading the clock")?;
    Ok((sent, now))
}

async fn store_window(tx: &mut PgConnection, quota: &str, sent: &[f64]) -> Result<(), ReplicaError> {
    sqlx::query(r#"UPDATE "cd2_aws"."dap_rate_limit" SET "sent" = $2 WHERE "quota" = $1"#)
        .bind(quota)
        .bind(sent)
        .execute(&mut *tx)
        .await
        .doing(WHAT, "recording the call")?;
    Ok(())
}

/// Records a call when the window has room (`None`); otherwise how long until the oldest
/// call that keeps it full leaves it.
async fn try_take(db: &mut PgConnection, quota: &str, limit: Limit) -> Result<Option<Duration>, ReplicaError> {
    let mut tx = db.begin().await.doing(WHAT, "starting a transaction")?;
    let (sent, now) = lock_window(&mut tx, quota).await?;
    let calls = limit.calls.max(1);
    let per = window_with_slack(limit).as_secs_f64();
    let mut recent: Vec<f64> = sent.into_iter().filter(|t| *t > now - per).collect();
    recent.sort_by(f64::total_cmp);
    let wait = if recent.len() < calls {
        recent.push(now);
        None
    } else {
        let oldest_to_leave = recent[recent.len() - calls];
        Some(Duration::from_secs_f64((oldest_to_leave + per - now).max(0.0)).max(MIN_WAIT))
    };
    store_window(&mut tx, quota, &recent).await?;
    tx.commit().await.doing(WHAT, "committing the window")?;
    Ok(wait)
}
