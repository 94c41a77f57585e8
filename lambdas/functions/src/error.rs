//! What a function returns when it fails: a stable `errorType` the state machine matches
//! ([`ErrorName`]) and one line that says what happened, with the DAP error type and
//! uuid when DAP sent them, and never a secret, token or pre-signed URL (the libraries
//! below keep those out of their errors; nothing here adds any).

use contract::{ErrorDetail, ErrorName};
use dap::DapError;
use replica::ReplicaError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub name: ErrorName,
    pub detail: ErrorDetail,
    /// DAP refused the client id or secret: the key may have been replaced since it was
    /// read ([`crate::DapAccess::renew_key_after`]).
    pub dap_key_refused: bool,
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.detail.to_line())
    }
}

impl std::error::Error for FunctionError {}

impl FunctionError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        Self { name, detail: ErrorDetail { message: message.into(), ..ErrorDetail::default() }, dap_key_refused: false }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorName::Configuration, message)
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorName::Transient, message)
    }

    /// This error with `more` said after it (its name and DAP's identifiers unchanged).
    pub fn and(mut self, more: &str) -> Self {
        self.detail.message = format!("{}; {more}", self.detail.message);
        self
    }

    fn with_dap(mut self, e: &DapError) -> Self {
        if let Some(api) = e.api_error() {
            self.detail.dap_type = Some(api.kind.clone()).filter(|k| !k.is_empty());
            self.detail.dap_uuid = Some(api.uuid.clone()).filter(|u| !u.is_empty());
        }
        self
    }
}

impl From<DapError> for FunctionError {
    fn from(e: DapError) -> Self {
        let name = if e.is_configuration() {
            ErrorName::Configuration
        } else if e.is_transient() {
            ErrorName::Transient
        } else {
            ErrorName::Dap
        };
        let mut error = Self::new(name, e.to_string()).with_dap(&e);
        error.dap_key_refused = matches!(e, DapError::Authentication(_));
        error
    }
}

impl From<ReplicaError> for FunctionError {
    fn from(e: ReplicaError) -> Self {
        if let ReplicaError::Dap(dap) = e {
            return dap.into();
        }
        let name = if e.is_configuration() {
            ErrorName::Configuration
        } else if e.is_transient() {
            ErrorName::Transient
        } else {
            match &e {
                ReplicaError::Schema(_) => ErrorName::Schema,
                ReplicaError::Data { .. } => ErrorName::Data,
                ReplicaError::AlreadyInitialized { .. } | ReplicaError::Unregistered { .. } => ErrorName::TableState,
                ReplicaError::JobExpired { .. } | ReplicaError::RetypeTooSlow { .. } => ErrorName::NoProgress,
                _ => ErrorName::Database,
            }
        };
        Self::new(name, e.to_string())
    }
}

/// What Lambda reports: `errorType` is the stable name, `errorMessage` the line.
impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        Self { error_type: e.name.as_str().to_owned(), error_message: e.detail.to_line() }
    }
}

impl FunctionError {
    /// What Lambda reports for an error that ends the whole run (the listing's): one, so
    /// its message keeps up to [`ErrorDetail::MAX_RUN_MESSAGE`] for what to do.
    pub fn ending_the_run(self) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: self.name.as_str().to_owned(),
            error_message: self.detail.to_line_within(ErrorDetail::MAX_RUN_MESSAGE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dap::ApiError;

    #[test]
    fn dap_errors_keep_their_type_and_uuid_and_transient_ones_say_so() {
        let api = ApiError { kind: "ProcessingError".into(), uuid: "u-1".into(), message: "busy".into() };
        let e: FunctionError = DapError::Api { status: 500, what: "create a job".into(), error: api.clone() }.into();
        assert_eq!(e.name, ErrorName::Transient);
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "TransientError");
        assert!(d.error_message.ends_with("[DAP error ProcessingError u-1]"), "{}", d.error_message);

        let gone: FunctionError =
            DapError::NotFound { what: "list".into(), error: ApiError { kind: "NotFound".into(), ..api } }.into();
        assert_eq!(gone.name, ErrorName::Dap);
    }

    #[test]
    fn replica_errors_get_their_names() {
        let busy: FunctionError = ReplicaError::Busy { table: "canvas.users".into() }.into();
        assert_eq!(busy.name, ErrorName::Transient, "a table busy in another run is retried");
        let data: FunctionError =
            ReplicaError::Data { table: "t".into(), object: "o".into(), line: 3, message: "m".into() }.into();
        assert_eq!(data.name, ErrorName::Data);
        let again: FunctionError = ReplicaError::AlreadyInitialized { table: "t".into() }.into();
        assert_eq!(again.name, ErrorName::TableState);
    }

    /// What no retry can mend is a ConfigurationError, which the state machine does not retry.
    #[test]
    fn settings_to_fix_are_configuration_errors() {
        let api = ApiError { kind: "AuthenticationFailed".into(), ..ApiError::default() };
        let dap_errors = [
            DapError::Authentication(api.clone()),
            DapError::Forbidden { what: "list".into(), error: api },
            DapError::DownloadRefused { object: "o".into() },
            DapError::Certificate { what: "list".into(), url: "https://dap".into(), detail: "UnknownIssuer".into() },
        ];
        for e in dap_errors {
            let f: FunctionError = ReplicaError::Dap(e).into();
            assert_eq!(f.name, ErrorName::Configuration, "{}", f.detail.message);
        }
        for e in [
            ReplicaError::Tls { target: "db".into(), detail: "UnknownIssuer".into() },
            ReplicaError::Login { target: "db".into(), detail: "28000".into() },
        ] {
            let f: FunctionError = e.into();
            assert_eq!(f.name, ErrorName::Configuration, "{}", f.detail.message);
        }
    }
}
