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

use crate::error::{DbContext as _, ReplicaError};
use dap::Limit;
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

/// Records a call when the window has room (`None`); otherwise how long until the oldest
/// call that keeps it full leaves it.
async fn try_take(db: &mut PgConnection, quota: &str, limit: Limit) -> Result<Option<Duration>, ReplicaError> {
    let mut tx = db.begin().await.doing(WHAT, "starting a transaction")?;
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
    let calls = limit.calls.max(1);
    let per = (limit.per + (limit.per / SLACK_DIVISOR).max(MIN_SLACK)).as_secs_f64();
    let mut recent: Vec<f64> = sent.into_iter().filter(|t| *t > now - per).collect();
    recent.sort_by(f64::total_cmp);
    let wait = if recent.len() < calls {
        recent.push(now);
        None
    } else {
        let oldest_to_leave = recent[recent.len() - calls];
        Some(Duration::from_secs_f64((oldest_to_leave + per - now).max(0.0)).max(MIN_WAIT))
    };
    sqlx::query(r#"UPDATE "cd2_aws"."dap_rate_limit" SET "sent" = $2 WHERE "quota" = $1"#)
        .bind(quota)
        .bind(&recent)
        .execute(&mut *tx)
        .await
        .doing(WHAT, "recording the call")?;
    tx.commit().await.doing(WHAT, "committing the window")?;
    Ok(wait)
}
