//! Replication errors: each names the table (and the object and line, for bad data) and
//! says what to do.

use dap::DapError;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Dap(#[from] DapError),
    #[error(transparent)]
    Schema(#[from] crate::model::SchemaError),
    #[error("{table}: database error while {doing}: {message}")]
    Db { table: String, doing: String, message: String },
    #[error("{table}: object {object}, line {line}: {message}; nothing of this object was loaded")]
    Data { table: String, object: String, line: u64, message: String },
    #[error("{table}: another replication of this table is running; try again when it has finished")]
    Busy { table: String },
    #[error("{table} is already initialized (it has a row in instructure_dap.table_sync); sync it instead")]
    AlreadyInitialized { table: String },
    #[error(
        "{table} exists in the database but is not registered in instructure_dap.table_sync (left by an interrupted `dap initdb`?); drop it to initialize it again"
    )]
    Unregistered { table: String },
    #[error("could not connect to the database: {0}")]
    Connect(String),
}

impl ReplicaError {
    /// Worth retrying later without any change.
    pub fn is_transient(&self) -> bool {
        match self {
            ReplicaError::Dap(e) => e.is_transient(),
            ReplicaError::Busy { .. } => true,
            _ => false,
        }
    }

    /// A short name for alerts and Step Functions error matching.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplicaError::Dap(_) => "DapError",
            ReplicaError::Schema(_) => "SchemaError",
            ReplicaError::Db { .. } => "DatabaseError",
            ReplicaError::Data { .. } => "DataError",
            ReplicaError::Busy { .. } => "TableBusy",
            ReplicaError::AlreadyInitialized { .. } => "AlreadyInitialized",
            ReplicaError::Unregistered { .. } => "UnregisteredTable",
            ReplicaError::Connect(_) => "ConnectError",
        }
    }
}

/// The server's message, detail and hint, rather than tokio-postgres's terse "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_owned();
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(w) = db.where_() {
                s.push_str(&format!(" [{w}]"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

/// Adds the table and what was being done to a database error.
pub trait DbContext<T> {
    fn doing(self, table: &str, doing: &str) -> Result<T, ReplicaError>;
}

impl<T> DbContext<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, table: &str, doing: &str) -> Result<T, ReplicaError> {
        self.map_err(|e| ReplicaError::Db { table: table.into(), doing: doing.into(), message: describe(&e) })
    }
}
