//! The error names the Lambdas raise (`errorType`), which the state machine's Retry and
//! Catch match, and the one-line message format the summary reads back.

/// A Lambda error's `errorType`: stable names, never Rust type names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// Worth a retry after a pause: HTTP 429, DAP `ProcessingError`, 5xx, a dropped
    /// connection, a transient SQLSTATE, a table busy in another run.
    Transient,
    /// DAP refused or failed for good: credentials, a table that does not exist, a failed job.
    Dap,
    /// The table's schema cannot be replicated as it is.
    Schema,
    /// DAP sent data that cannot be loaded (a malformed record).
    Data,
    /// The database refused for good: permissions, a constraint, an object in the way.
    Database,
    /// The replica's record of the table contradicts the call (an init of a table already there).
    TableState,
    /// The table made no progress in too many calls (a DAP job that never completes).
    NoProgress,
    /// The function's settings or secrets are wrong.
    Configuration,
}

impl ErrorName {
    pub const ALL: [ErrorName; 8] = [
        ErrorName::Transient,
        ErrorName::Dap,
        ErrorName::Schema,
        ErrorName::Data,
        ErrorName::Database,
        ErrorName::TableState,
        ErrorName::NoProgress,
        ErrorName::Configuration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::Transient => "TransientError",
            ErrorName::Dap => "DapError",
            ErrorName::Schema => "SchemaError",
            ErrorName::Data => "DataError",
            ErrorName::Database => "DatabaseError",
            ErrorName::TableState => "TableStateError",
            ErrorName::NoProgress => "NoProgressError",
            ErrorName::Configuration => "ConfigurationError",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// The names no retry can help.
    pub fn permanent() -> Vec<&'static str> {
        Self::ALL.into_iter().filter(|n| *n != ErrorName::Transient).map(Self::as_str).collect()
    }
}

impl std::fmt::Display for ErrorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error message and, when DAP sent one, its error type and uuid (what Instructure
/// support asks for), written as one line and read back by the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    pub message: String,
    pub dap_type: Option<String>,
    pub dap_uuid: Option<String>,
}

const DAP_MARK: &str = " [DAP error ";

impl ErrorDetail {
    /// The longest message kept: 500 failed tables must fit in one 256 KB state.
    pub const MAX_MESSAGE: usize = 160;

    /// The longest message of an error said once rather than once a table (one that ends
    /// the whole run, a custom resource's answer): room for the thing that failed and what
    /// to do about it.
    pub const MAX_RUN_MESSAGE: usize = 1000;

    /// One line: the message (cut at [`Self::MAX_MESSAGE`]) then `[DAP error TYPE UUID]`.
    pub fn to_line(&self) -> String {
        self.to_line_within(Self::MAX_MESSAGE)
    }

    /// [`to_line`](Self::to_line) with the message cut at `max` characters.
    pub fn to_line_within(&self, max: usize) -> String {
        let one_line = self.message.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut line = match one_line.char_indices().nth(max) {
            Some((cut, _)) => format!("{}...", &one_line[..cut]),
            None => one_line,
        };
        // DAP's own words: cut, and one token each, so that the line parses back.
        let token = |s: &str| -> String {
            s.chars().filter(|c| !c.is_whitespace() && *c != ']').take(crate::MAX_DAP_ID).collect()
        };
        if let Some(kind) = &self.dap_type {
            line.push_str(DAP_MARK);
            line.push_str(&token(kind));
            if let Some(uuid) = &self.dap_uuid {
                line.push(' ');
                line.push_str(&token(uuid));
            }
            line.push(']');
        }
        line
    }

    /// Reads a line [`to_line`](Self::to_line) wrote (any other text is all message).
    pub fn parse(line: &str) -> Self {
        if let Some(at) = line.rfind(DAP_MARK)
            && let Some(inner) = line[at + DAP_MARK.len()..].strip_suffix(']')
        {
            let mut parts = inner.split(' ');
            let kind = parts.next().filter(|k| !k.is_empty()).map(str::to_owned);
            let uuid = parts.next().map(str::to_owned);
            if kind.is_some() && parts.next().is_none() {
                return Self { message: line[..at].to_owned(), dap_type: kind, dap_uuid: uuid };
            }
        }
        Self { message: line.to_owned(), ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_parse_back() {
        for n in ErrorName::ALL {
            assert_eq!(ErrorName::parse(n.as_str()), Some(n));
        }
        assert_eq!(ErrorName::Transient.as_str(), "TransientError");
        assert!(!ErrorName::permanent().contains(&"TransientError"));
    }

    #[test]
    fn a_line_carries_the_dap_type_and_uuid() {
        let d = ErrorDetail {
            message: "the DAP job j1 failed:\nProcessingError".into(),
            dap_type: Some("ProcessingError".into()),
            dap_uuid: Some("5a3c".into()),
        };
        let line = d.to_line();
        assert_eq!(line, "the DAP job j1 failed: ProcessingError [DAP error ProcessingError 5a3c]");
        let back = ErrorDetail::parse(&line);
        assert_eq!(back.dap_type.as_deref(), Some("ProcessingError"));
        assert_eq!(back.dap_uuid.as_deref(), Some("5a3c"));
        assert_eq!(back.message, "the DAP job j1 failed: ProcessingError");
        assert_eq!(ErrorDetail::parse("plain [words]").message, "plain [words]");
    }

    #[test]
    fn long_messages_are_cut() {
        let d = ErrorDetail { message: "é".repeat(1000), ..ErrorDetail::default() };
        assert_eq!(d.to_line().chars().count(), ErrorDetail::MAX_MESSAGE + 3);
    }
}
