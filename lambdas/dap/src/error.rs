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
    #[error(
        "S3 refused the pre-signed URL of {object} (HTTP 403), and a fresh one too: something between this function and S3 refuses DAP's URLs (an S3 gateway endpoint policy or a proxy in an existing VPC); allow s3:GetObject on any bucket through it, or use the stack's own VPC"
    )]
    DownloadRefused { object: String },
    #[error(
        "the TLS certificate of {url} was not accepted for {what} ({detail}): is a proxy inspecting TLS on the way, or the URL wrong? The functions trust the public web CAs only"
    )]
    Certificate { what: String, url: String, detail: String },
}

/// The certificate error among `e`'s causes, if the other side's certificate was refused
/// (unknown issuer, expired, not valid for the name, none sent). Such a failure is a
/// setting to fix, never worth a retry. Used for DAP and the database alike.
pub fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut pending = vec![e];
    while let Some(cause) = pending.pop() {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>()
            && matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        {
            return Some(tls.to_string());
        }
        // io::Error's source() skips the error it wraps (often another io::Error): look
        // inside it too.
        if let Some(inner) = cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            pending.push(inner);
        }
        pending.extend(cause.source());
    }
    None
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

    /// A setting or a secret is wrong: the credentials (401), what they may reach (403), a
    /// certificate refused, S3 refusing every pre-signed URL. Retrying cannot help; the
    /// message says what to fix.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            DapError::Authentication(_)
                | DapError::Forbidden { .. }
                | DapError::DownloadRefused { .. }
                | DapError::Certificate { .. }
        )
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
