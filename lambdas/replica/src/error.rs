//! Replication errors: each names the table (and the object and line, for bad data) and
//! says what to do. Database errors keep sqlx's error, so that the SQLSTATE and whether the
//! connection was lost reach whoever decides to retry ([`is_transient_db`]).

use dap::DapError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Dap(#[from] DapError),
    #[error(transparent)]
    Schema(#[from] crate::model::SchemaError),
    #[error("{table}: database error while {doing}: {}", describe(cause))]
    Db { table: String, doing: String, cause: sqlx::Error },
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
    #[error(
        "the connection string is not valid: {0}; expected postgresql://user:password@host:port/database[?sslmode=verify-full&sslrootcert=/path/to/ca.pem]"
    )]
    BadConnectionString(String),
    /// A setup that cannot be made as asked ([`crate::setup::Setup`]): the message says what to change.
    #[error("setting up the database: {0}")]
    Setup(String),
    #[error(
        "TLS to the database at {target} failed ({detail}): sslrootcert must hold the CA of the database's region (the functions ship the RDS bundle), the server must offer TLS, and with verify-full the host must be a name its certificate carries (the cluster endpoint, not an address or another name)"
    )]
    Tls { target: String, detail: String },
    #[error(
        "the database at {target} refused the login ({detail}): check the user name, the database name, and that the user may log in as configured (IAM: GRANT rds_iam and rds-db:connect in the function's role; a password: the secret set_key.sh stored)"
    )]
    Login { target: String, detail: String },
    #[error("could not connect to the database at {target}: {}", describe(cause))]
    Connect { target: String, cause: sqlx::Error },
    #[error(
        "could not connect to the database at {target} within {waited:.0?} (a paused Aurora Serverless database takes about 15 s to resume); try again"
    )]
    ConnectTimeout { target: String, waited: Duration },
    #[error(
        "{table}: DAP deleted the {kind} job 24 hours after it started, with {loaded} of {total} objects loaded, {times} times in a row: loading the table takes longer than DAP keeps a job. Give it more calls a run (max_calls) or more runs a day; the next run starts the load again"
    )]
    JobExpired { table: String, kind: String, loaded: usize, total: usize, times: i32 },
    #[error(
        "{table}: the type change of column `{column}` cannot finish: {views} use(s) its converted copy `{shadow}` (a view made while the change was under way, perhaps with SELECT *); drop or recreate it without `{shadow}`, and the next sync finishes the change"
    )]
    RetypeBlocked { table: String, column: String, shadow: String, views: String },
    #[error(
        "{table}: putting the converted column `{column}` in place (dropping the old one, recreating its {indexes} index(es) and the table's {views} dependent view(s)) takes longer than a call's budget; drop what of those you can do without, or make the change by hand: ALTER TABLE ... DROP COLUMN {column}, RENAME COLUMN {shadow} TO {column}, then DELETE its row from cd2_aws.retype"
    )]
    RetypeTooSlow { table: String, column: String, shadow: String, indexes: usize, views: usize },
    /// Writing to the raw zone failed; the object (or job) is not recorded as loaded.
    #[error("{table}: writing {key} to the archive failed: {message}")]
    Archive { table: String, key: String, message: String, transient: bool },
    /// Reading the raw zone failed (a restore): its manifests or an object.
    #[error("{table}: reading {key} from the archive failed: {message}")]
    ArchiveRead { table: String, key: String, message: String, transient: bool },
    /// A restore that the archive cannot make.
    #[error("{table}: cannot restore from the archive: {message}")]
    Restore { table: String, message: String },
    /// The call's time budget ran out in the middle of an object; its transaction was rolled
    /// back. Init and sync answer `in_progress` instead of returning this.
    #[error("{table}: the time budget ran out while loading object {object}; it is loaded again by the next call")]
    OutOfTime { table: String, object: String },
}

impl ReplicaError {
    /// A setting or a secret is wrong: retrying cannot help.
    pub fn is_configuration(&self) -> bool {
        match self {
            ReplicaError::Dap(e) => e.is_configuration(),
            ReplicaError::BadConnectionString(_)
            | ReplicaError::Setup(_)
            | ReplicaError::Tls { .. }
            | ReplicaError::Login { .. } => true,
            ReplicaError::Archive { transient, .. } | ReplicaError::ArchiveRead { transient, .. } => !transient,
            _ => false,
        }
    }

    /// Worth retrying later without any change.
    pub fn is_transient(&self) -> bool {
        match self {
            ReplicaError::Dap(e) => e.is_transient(),
            ReplicaError::Busy { .. } | ReplicaError::ConnectTimeout { .. } | ReplicaError::OutOfTime { .. } => true,
            ReplicaError::Db { cause, .. } | ReplicaError::Connect { cause, .. } => is_transient_db(cause),
            ReplicaError::Archive { transient, .. } | ReplicaError::ArchiveRead { transient, .. } => *transient,
            _ => false,
        }
    }

    /// The database error behind this one, if any.
    pub fn db_error(&self) -> Option<&sqlx::Error> {
        match self {
            ReplicaError::Db { cause, .. } | ReplicaError::Connect { cause, .. } => Some(cause),
            _ => None,
        }
    }

    /// The SQLSTATE the server sent, e.g. `55P03`.
    pub fn sqlstate(&self) -> Option<String> {
        self.db_error().and_then(sqlstate)
    }

    /// The connection is gone: nothing more can be done on it.
    pub fn connection_lost(&self) -> bool {
        self.db_error().is_some_and(connection_lost)
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
            ReplicaError::BadConnectionString(_)
            | ReplicaError::Setup(_)
            | ReplicaError::Tls { .. }
            | ReplicaError::Login { .. } => "ConfigurationError",
            ReplicaError::Connect { .. } | ReplicaError::ConnectTimeout { .. } => "ConnectError",
            ReplicaError::OutOfTime { .. } => "OutOfTime",
            ReplicaError::JobExpired { .. } => "JobExpired",
            ReplicaError::RetypeBlocked { .. } => "RetypeBlocked",
            ReplicaError::RetypeTooSlow { .. } => "RetypeTooSlow",
            ReplicaError::Archive { .. } => "ArchiveError",
            ReplicaError::ArchiveRead { .. } => "ArchiveReadError",
            ReplicaError::Restore { .. } => "RestoreError",
        }
    }
}

/// A failed connection, classified: TLS that failed (a certificate refused, no TLS where
/// it is required) and a refused login are settings to fix; anything else may pass.
pub fn connect_error(target: String, cause: sqlx::Error) -> ReplicaError {
    if let Some(detail) = dap::certificate_refused(&cause) {
        return ReplicaError::Tls { target, detail };
    }
    if let sqlx::Error::Tls(e) = &cause {
        return ReplicaError::Tls { target, detail: e.to_string() };
    }
    // 28000 invalid authorization (pg_hba.conf, IAM), 28P01 wrong password, 3D000 no such database.
    if let Some(code) = sqlstate(&cause).filter(|c| c.starts_with("28") || c == "3D000") {
        let detail = cause.as_database_error().map_or_else(|| code.clone(), |d| format!("{code}: {}", d.message()));
        return ReplicaError::Login { target, detail };
    }
    ReplicaError::Connect { target, cause }
}

/// The SQLSTATE of a database error.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

/// SQLSTATEs worth a retry after a pause: serialization failure and deadlock, a lock not
/// granted in time, the server shutting down, crashed or starting (Aurora resuming from
/// 0 ACU answers 57P03), too many connections, connection exceptions, and a statement
/// cancelled by the `statement_timeout` the caller's deadline set.
fn transient_sqlstate(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "57014")
        || code.starts_with("08")
}

/// The one place that decides whether a database error deserves a retry.
pub fn is_transient_db(e: &sqlx::Error) -> bool {
    connection_lost(e) || sqlstate(e).is_some_and(|c| transient_sqlstate(&c)) || matches!(e, sqlx::Error::PoolTimedOut)
}

/// The connection cannot be used any more: any I/O, TLS or protocol failure (the stream is
/// broken or out of step), or the server ending the session.
pub fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => {
            sqlstate(e).is_some_and(|c| matches!(c.as_str(), "57P01" | "57P02" | "57P03") || c.starts_with("08"))
        }
        _ => false,
    }
}

/// The server's message, detail, context and hint, or sqlx's error with its causes.
pub fn describe(e: &sqlx::Error) -> String {
    if let Some(db) = e.as_database_error() {
        let mut s = db.message().to_owned();
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            if let Some(d) = pg.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(w) = pg.r#where() {
                s.push_str(&format!(" [{w}]"));
            }
            if let Some(h) = pg.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
        }
        if let Some(code) = db.code() {
            s.push_str(&format!(" (SQLSTATE {code})"));
        }
        return s;
    }
    dap::chain(e)
}

/// Adds the table and what was being done to a database error.
pub trait DbContext<T> {
    fn doing(self, table: &str, doing: &str) -> Result<T, ReplicaError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn doing(self, table: &str, doing: &str) -> Result<T, ReplicaError> {
        self.map_err(|cause| ReplicaError::Db { table: table.into(), doing: doing.into(), cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_transient_and_bad_sql_is_not() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(connection_lost(&reset) && is_transient_db(&reset));
        let closed = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(is_transient_db(&closed));
        assert!(!is_transient_db(&sqlx::Error::RowNotFound));
        for code in ["40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300", "08006", "08001"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["42P01", "23505", "22P02", "42501", "XX000"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }
}
