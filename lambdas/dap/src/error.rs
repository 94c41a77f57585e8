//! Errors, with the DAP error type and uuid kept so alerts can quote them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The `error` object of a DAP error response (`{"error": {"type", "uuid", "message", ...}}`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ApiError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.uuid.is_empty() {
            write!(f, " (DAP error uuid {})", self.uuid)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DapError {
    #[error(
        "DAP rejected the client id or secret ({0}); check the credentials (DAP_CLIENT_ID / DAP_CLIENT_SECRET or the secret set_key.sh stored)"
    )]
    Authentication(ApiError),
    #[error("DAP refused the request to {what}: {error}")]
    Forbidden { what: String, error: ApiError },
    #[error("DAP found nothing to {what} ({error}); check the namespace and table name")]
    NotFound { what: String, error: ApiError },
    #[error("DAP answered HTTP {status} to {what}: {error}")]
    Api { status: u16, what: String, error: ApiError },
    #[error("DAP kept answering 429 Too Many Requests to {what} after {attempts} attempts; retry later")]
    RateLimited { what: String, attempts: u32, retry_after: Option<Duration> },
    #[error("the DAP job {job_id} for {what} failed: {error}")]
    JobFailed { job_id: String, what: String, error: ApiError },
    #[error("the DAP job {job_id} for {what} was not complete after {waited:?}")]
    JobTimeout { job_id: String, what: String, waited: Duration },
    #[error("unexpected answer from DAP to {what}: {detail}")]
    UnexpectedResponse { what: String, detail: String },
    #[error("could not reach DAP at {url} for {what}: {source}")]
    Transport {
        what: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("download of {object} failed: {detail}")]
    Download { object: String, detail: String },
}

/// An error and its causes on one line, each cause once (libraries often repeat the
/// cause's text in their own message).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

impl DapError {
    /// Worth retrying later: rate limits, server-side processing errors, 5xx, lost connections.
    pub fn is_transient(&self) -> bool {
        match self {
            DapError::RateLimited { .. } | DapError::Transport { .. } | DapError::Download { .. } => true,
            DapError::Api { status, error, .. } => *status >= 500 || error.kind == "ProcessingError",
            DapError::JobFailed { error, .. } => error.kind == "ProcessingError",
            DapError::JobTimeout { .. } => true,
            _ => false,
        }
    }

    /// For a transient error: whether sending the request again may succeed. A transport
    /// error counts only when the request failed on its way (connecting, a timeout, sending
    /// it), not when the client could not build it or read a redirect.
    pub fn request_may_not_have_arrived(&self) -> bool {
        match self {
            DapError::Transport { source, .. } => source.is_connect() || source.is_timeout() || source.is_request(),
            _ => true,
        }
    }

    /// The DAP error, when the API sent one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            DapError::Authentication(e)
            | DapError::Forbidden { error: e, .. }
            | DapError::NotFound { error: e, .. }
            | DapError::Api { error: e, .. }
            | DapError::JobFailed { error: e, .. } => Some(e),
            _ => None,
        }
    }
}
