//! The functions' settings, from the environment the stack sets: the groups of
//! [`contract::env`], their values parsed. A missing or malformed variable is one
//! `ConfigurationError` naming it. Nothing else in the functions reads the environment.

use crate::error::FunctionError;
use contract::env::{self, Group};
use std::str::FromStr;
use std::time::Duration;

/// A variable's value, `None` when unset or blank: the lookup every group is read with.
pub fn get(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A group of [`contract::env`] from the environment; a required variable that is missing
/// is one `ConfigurationError` naming it.
pub fn read<G: Group>() -> Result<G, FunctionError> {
    G::read(get).map_err(|env::Missing(name)| {
        FunctionError::config(format!("the environment variable {name} is not set (the stack sets it)"))
    })
}

/// Variable `name`'s `value` parsed into `T`, or `default` when unset.
pub fn parsed<T: FromStr>(name: &str, value: Option<String>, default: T) -> Result<T, FunctionError> {
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            FunctionError::config(format!("the environment variable {name} is `{v}`, which is not a valid value"))
        }),
    }
}

/// A duration in milliseconds, when set.
fn millis(name: &str, value: Option<String>) -> Result<Option<Duration>, FunctionError> {
    match value {
        None => Ok(None),
        Some(_) => Ok(Some(Duration::from_millis(parsed(name, value, 0)?))),
    }
}

/// A comma-separated list (empty items dropped).
pub fn list(value: Option<&str>) -> Vec<String> {
    value
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
        use env::dap::*;
        let v: Vars<String> = read()?;
        Ok(Self {
            api_url: v.api_url.unwrap_or_else(|| dap::DEFAULT_BASE_URL.to_owned()),
            secret_id: v.secret_id,
            poll_interval: millis(POLL_INTERVAL_MS, v.poll_interval_ms)?,
            rate_window: millis(RATE_WINDOW_MS, v.rate_window_ms)?,
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
        use env::replicate::*;
        let v: Vars<String> = read()?;
        Ok(Self {
            budget: Duration::from_secs(parsed(
                TIME_BUDGET_SECONDS,
                v.time_budget_seconds,
                DEFAULT_TIME_BUDGET_SECONDS,
            )?),
            margin: Duration::from_secs(parsed(
                BUDGET_MARGIN_SECONDS,
                v.budget_margin_seconds,
                DEFAULT_BUDGET_MARGIN_SECONDS,
            )?),
            max_calls: parsed(MAX_CALLS, v.max_calls, DEFAULT_MAX_CALLS)?,
            max_idle_calls: parsed(MAX_IDLE_CALLS, v.max_idle_calls, DEFAULT_MAX_IDLE_CALLS)?,
        })
    }
}
