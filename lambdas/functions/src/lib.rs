//! The replication workflow's Lambda functions. Each binary in `src/bin` is a thin `main`
//! that builds its clients once per container and hands each event to a handler here:
//!
//! - [`list`]: the tables to replicate, or *skipped* when an earlier run still holds them;
//! - [`replicate`]: `sync_table` and `init_table`, one budgeted call each;
//! - [`summary`]: the run report and failure alert, from templates in `assets/`, over the
//!   table results [`results`] reads from S3;
//! - [`bootstrap`]: the CloudFormation custom resource that sets the database up.
//!
//! Errors carry stable names the state machine matches ([`error::FunctionError`]).

pub mod aws;
pub mod bootstrap;
pub mod dap_access;
pub mod database;
pub mod error;
pub mod freshness;
pub mod list;
pub mod replicate;
pub mod results;
pub mod settings;
pub mod summary;

pub use dap_access::DapAccess;
pub use error::FunctionError;

/// The invocation's deadline. Lambda sends it as epoch milliseconds; `cargo lambda watch`,
/// the local runtime the end-to-end test runs the functions under, sends a fixed 600000
/// (its ten-minute timeout, not a point in time). A value that cannot be a real deadline
/// (before the year 2001) is read as that many milliseconds from now, so that a handler
/// run locally gets a budget rather than "no time left".
pub fn deadline(context: &lambda_runtime::Context) -> std::time::SystemTime {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    if context.deadline < YEAR_2001_MS {
        tracing::debug!(
            deadline_ms = context.deadline,
            "the runtime's deadline is not a point in time: read as a duration"
        );
        std::time::SystemTime::now() + std::time::Duration::from_millis(context.deadline)
    } else {
        context.deadline()
    }
}

/// JSON logs through the runtime's subscriber, at the level the function's logging
/// configuration sets (`AWS_LAMBDA_LOG_LEVEL`, or `RUST_LOG`).
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// What a function keeps for the container's life, built on the first invocation that
/// needs it (so that a missing secret is an invocation's clear error, not a crash at
/// start-up) and built again by the next invocation when building failed.
#[derive(Debug)]
pub struct PerContainer<T> {
    slot: tokio::sync::Mutex<Option<T>>,
}

impl<T> Default for PerContainer<T> {
    fn default() -> Self {
        Self { slot: tokio::sync::Mutex::new(None) }
    }
}

impl<T> PerContainer<T> {
    /// Runs `f` on the kept value, building it first with `build` if there is none.
    pub async fn with<R>(
        &self,
        build: impl AsyncFnOnce() -> Result<T, FunctionError>,
        f: impl AsyncFnOnce(&mut T) -> Result<R, FunctionError>,
    ) -> Result<R, FunctionError> {
        let mut slot = self.slot.lock().await;
        let value = match &mut *slot {
            Some(v) => v,
            None => slot.insert(build().await?),
        };
        f(value).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn context(deadline: u64) -> lambda_runtime::Context {
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline;
        context
    }

    #[test]
    fn a_real_deadline_is_kept_and_cargo_lambda_watch_s_timeout_is_read_as_a_duration() {
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let ms = in_a_minute.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert_eq!(deadline(&context(ms)), UNIX_EPOCH + Duration::from_millis(ms));
        let local = deadline(&context(600_000)).duration_since(SystemTime::now()).unwrap();
        assert!(local > Duration::from_secs(590) && local <= Duration::from_secs(600), "{local:?}");
    }
}
