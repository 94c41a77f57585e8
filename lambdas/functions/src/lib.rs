//! The replication workflow's Lambda functions. Each binary in `src/bin` is a thin `main`
//! that builds its clients once per container and hands each event to a handler here:
//!
//! - [`list`]: the tables to replicate, or *skipped* when an earlier run still holds them;
//! - [`replicate`]: `sync_table` and `init_table`, one budgeted call each;
//! - [`summary`]: the run report and failure alert, from templates in `assets/`;
//! - [`bootstrap`]: the CloudFormation custom resource that sets the database up.
//!
//! Errors carry stable names the state machine matches ([`error::FunctionError`]).

pub mod aws;
pub mod bootstrap;
pub mod database;
pub mod error;
pub mod list;
pub mod replicate;
pub mod settings;
pub mod summary;

pub use error::FunctionError;

use dap::{ClientConfig, Credentials, DapClient};
use settings::DapSettings;

/// JSON logs through the runtime's subscriber, at the level the function's logging
/// configuration sets (`AWS_LAMBDA_LOG_LEVEL`, or `RUST_LOG`).
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// The DAP client, with the client id and secret read from Secrets Manager.
pub async fn dap_client(
    settings: &DapSettings,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<DapClient, FunctionError> {
    let id = &settings.secret_id;
    let text = aws::secret_string(secrets, id, "DAP").await?;
    let credentials = Credentials {
        client_id: aws::secret_field(&text, "client_id", id)?,
        client_secret: aws::secret_field(&text, "client_secret", id)?,
    };
    let mut config = ClientConfig::new(&settings.api_url, credentials);
    if let Some(p) = settings.poll_interval {
        config.poll_interval = p;
    }
    DapClient::new(config).map_err(FunctionError::from)
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
