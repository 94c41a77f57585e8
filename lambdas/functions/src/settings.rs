//! The functions' settings, from the environment the stack sets. A missing or malformed
//! variable is one `ConfigurationError` naming it.

use crate::error::FunctionError;
use std::str::FromStr;
use std::time::Duration;

/// A required variable.
pub fn var(name: &str) -> Result<String, FunctionError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| FunctionError::config(format!("the environment variable {name} is not set (the stack sets it)")))
}

/// An optional variable.
pub fn var_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A variable parsed into `T`, or `default` when unset.
pub fn parsed<T: FromStr>(name: &str, default: T) -> Result<T, FunctionError> {
    match var_opt(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            FunctionError::config(format!("the environment variable {name} is `{v}`, which is not a valid value"))
        }),
    }
}

/// A duration in milliseconds, when set.
fn millis(name: &str) -> Result<Option<Duration>, FunctionError> {
    match var_opt(name) {
        None => Ok(None),
        Some(_) => Ok(Some(Duration::from_millis(parsed(name, 0)?))),
    }
}

/// A comma-separated list (empty items dropped).
pub fn list(name: &str) -> Vec<String> {
    var_opt(name)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Where DAP is and which secret holds the client id and secret.
#[derive(Clone, Debug)]
pub struct DapSettings {
    pub api_url: String,
    pub secret_id: String,
    /// Between job status polls (`DAP_POLL_INTERVAL_MS`; the official client's 5 s by
    /// default; shorter against the emulator).
    pub poll_interval: Option<Duration>,
    /// The window of DAP's per-client limits (`DAP_RATE_WINDOW_MS`): DAP's minute by
    /// default; shorter against an emulator that shortens its clock alike (the scale run).
    pub rate_window: Option<Duration>,
}

impl DapSettings {
    pub fn from_env() -> Result<Self, FunctionError> {
        Ok(Self {
            api_url: var_opt("DAP_API_URL").unwrap_or_else(|| dap::DEFAULT_BASE_URL.to_owned()),
            secret_id: var("DAP_SECRET_ID")?,
            poll_interval: millis("DAP_POLL_INTERVAL_MS")?,
            rate_window: millis("DAP_RATE_WINDOW_MS")?,
        })
    }
}

/// How long a replication call may work, and when a table has had enough calls.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// The most a call works, below the Lambda timeout (`TIME_BUDGET_SECONDS`).
    pub budget: Duration,
    /// Kept free before the invocation's deadline, to end the object in flight and answer.
    pub margin: Duration,
    /// Calls a table may take in one run (`MAX_CALLS`).
    pub max_calls: u32,
    /// Calls in a row that load nothing before the table fails (`MAX_IDLE_CALLS`).
    pub max_idle_calls: u32,
}

impl CallLimits {
    pub fn from_env() -> Result<Self, FunctionError> {
        Ok(Self {
            budget: Duration::from_secs(parsed("TIME_BUDGET_SECONDS", 840)?),
            margin: Duration::from_secs(parsed("BUDGET_MARGIN_SECONDS", 45)?),
            max_calls: parsed("MAX_CALLS", 200)?,
            max_idle_calls: parsed("MAX_IDLE_CALLS", 8)?,
        })
    }
}
