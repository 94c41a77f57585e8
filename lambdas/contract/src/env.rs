//! The Lambda functions' environment variables, one module per group as the functions use
//! them: each variable's name is one constant with its default beside it, and each group is
//! one struct, generic over the value, that the stack fills with CloudFormation expressions,
//! the tests and benches with strings, and the functions read (through
//! `functions::settings`, which parses the values).
//!
//! A variable added to a group fails to compile in every writer until it sets it (or says
//! `None`), and its reader gets it from [`Group::read`] with the others.
//!
//! ```text
//! group          list_tables  sync_table, init_table  summarize  db_bootstrap
//! dap            yes          yes
//! database       yes          yes                                yes
//! login          yes          yes
//! list_tables    yes
//! replicate                   yes
//! archive                     yes
//! summarize                                           yes
//! bootstrap                                                      yes
//! ```

/// Read by the functions' `tracing` filter (`info` in the stack); not a group's, since
/// every function takes it.
pub const RUST_LOG: &str = "RUST_LOG";
/// The S3 endpoint, which the AWS SDK's `AWS_ENDPOINT_URL` does not reach in every version:
/// set only by the tests (moto), never by the stack.
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";

/// A required variable that is unset or blank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missing(pub &'static str);

/// A group read from a lookup (a variable's value, `None` when unset or blank): every
/// group's `Vars<String>`.
pub trait Group: Sized {
    fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, Missing>;
}

/// A variable the function cannot do without.
pub type Required<V> = V;
/// A variable with a default (or none needed): unset is `None`.
pub type Optional<V> = Option<V>;

/// Declares a group: a module with a constant per variable and its `Vars<V>` struct
/// ([`Required`] and [`Optional`] fields), whose `pairs` lists the set
/// variables in field order and whose `read` takes them from a lookup.
macro_rules! group {
    (
        $(#[$doc:meta])*
        mod $module:ident {
            $( $(#[$fdoc:meta])* $field:ident: $konst:ident = $name:literal, $kind:ident; )*
        }
        $($extra:item)*
    ) => {
        $(#[$doc])*
        pub mod $module {
            $( #[doc = concat!("`", $name, "`")] pub const $konst: &str = $name; )*

            #[derive(Clone, Debug, PartialEq, Eq)]
            pub struct Vars<V> {
                $( $(#[$fdoc])* pub $field: super::$kind<V>, )*
            }

            impl<V> Vars<V> {
                /// The variables to set, in field order; an optional one that is `None` is left out.
                #[allow(clippy::vec_init_then_push, reason = "each push is a field's, some conditional")]
                pub fn pairs(self) -> Vec<(&'static str, V)> {
                    let Self { $($field),* } = self;
                    let mut pairs = Vec::new();
                    $( group!(@push pairs $kind $konst $field); )*
                    pairs
                }
            }

            impl super::Group for Vars<String> {
                fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, super::Missing> {
                    Ok(Self { $( $field: group!(@read get $kind $konst), )* })
                }
            }

            $($extra)*
        }
    };
    (@push $pairs:ident Required $konst:ident $field:ident) => { $pairs.push(($konst, $field)) };
    (@push $pairs:ident Optional $konst:ident $field:ident) => {
        if let Some(value) = $field {
            $pairs.push(($konst, value));
        }
    };
    (@read $get:ident Required $konst:ident) => { $get($konst).ok_or(super::Missing($konst))? };
    (@read $get:ident Optional $konst:ident) => { $get($konst) };
}

group! {
    /// Where DAP is and which secret holds its credential: every function that calls DAP.
    mod dap {
        /// DAP's base URL (unset: DAP's own).
        api_url: API_URL = "DAP_API_URL", Optional;
        /// The Secrets Manager secret holding `{"client_id", "client_secret"}`.
        secret_id: SECRET_ID = "DAP_SECRET_ID", Required;
        /// Milliseconds between job status polls (unset: the official client's 5 s; shorter
        /// against the emulator).
        poll_interval_ms: POLL_INTERVAL_MS = "DAP_POLL_INTERVAL_MS", Optional;
        /// The window of DAP's per-client limits in milliseconds (unset: DAP's minute;
        /// shorter against an emulator that shortens its clock alike).
        rate_window_ms: RATE_WINDOW_MS = "DAP_RATE_WINDOW_MS", Optional;
    }
}

group! {
    /// Where the database is and how its certificate is checked.
    mod database {
        host: HOST = "DB_HOST", Required;
        /// Unset: [`DEFAULT_PORT`].
        port: PORT = "DB_PORT", Optional;
        name: NAME = "DB_NAME", Required;
        /// `verify-full` (unset), `verify-ca`, `require`, ...: only tests weaken it.
        tls: TLS = "DB_TLS", Optional;
        /// A PEM file of certificate authorities (unset: the RDS ones shipped with the
        /// functions); set by tests.
        root_cert: ROOT_CERT = "DB_ROOT_CERT", Optional;
    }

    pub const DEFAULT_PORT: u16 = 5432;
}

group! {
    /// Who the replication functions log in as.
    mod login {
        user: USER = "DB_USER", Required;
        /// [`AUTH_IAM`] (unset) or [`AUTH_SECRET`].
        auth: AUTH = "DB_AUTH", Optional;
        /// With [`AUTH_SECRET`]: the secret whose `password` field is the user's.
        secret_arn: SECRET_ARN = "DB_SECRET_ARN", Optional;
    }

    /// IAM database authentication: a token signed with the function's role.
    pub const AUTH_IAM: &str = "iam";
    /// A password from a Secrets Manager secret (a database without IAM authentication).
    pub const AUTH_SECRET: &str = "secret";
}

group! {
    /// What `list_tables` lists.
    mod list_tables {
        /// The DAP namespaces, comma-separated.
        namespaces: NAMESPACES = "NAMESPACES", Required;
        /// `namespace.table` entries never replicated, comma-separated.
        skip_tables: SKIP_TABLES = "SKIP_TABLES", Optional;
    }
}

group! {
    /// How long a replication call may work, and when a table has had enough calls.
    mod replicate {
        /// Unset: [`DEFAULT_TIME_BUDGET_SECONDS`].
        time_budget_seconds: TIME_BUDGET_SECONDS = "TIME_BUDGET_SECONDS", Optional;
        /// Kept free before the invocation's deadline (unset: [`DEFAULT_BUDGET_MARGIN_SECONDS`]).
        budget_margin_seconds: BUDGET_MARGIN_SECONDS = "BUDGET_MARGIN_SECONDS", Optional;
        /// Unset: [`DEFAULT_MAX_CALLS`].
        max_calls: MAX_CALLS = "MAX_CALLS", Optional;
        /// Unset: [`DEFAULT_MAX_IDLE_CALLS`].
        max_idle_calls: MAX_IDLE_CALLS = "MAX_IDLE_CALLS", Optional;
    }

    pub const DEFAULT_TIME_BUDGET_SECONDS: u64 = 840;
    pub const DEFAULT_BUDGET_MARGIN_SECONDS: u64 = 45;
    /// At 12 minutes a call, more than a day of loading.
    pub const DEFAULT_MAX_CALLS: u32 = 200;
    /// Calls in a row that load nothing (a DAP job that never completes) before the table
    /// fails.
    pub const DEFAULT_MAX_IDLE_CALLS: u32 = 8;
}

group! {
    /// The raw zone: every DAP object the replication functions load is also written here.
    mod archive {
        /// The archive bucket (unset: no archive).
        bucket: BUCKET = "ARCHIVE_BUCKET", Optional;
        /// The Glue database that describes the archive to Athena: a table per DAP table,
        /// kind and schema version, made or updated as each job's manifest is written
        /// (unset: none).
        catalog: CATALOG = "ARCHIVE_CATALOG", Optional;
    }
}

group! {
    /// What `summarize` names and where it keeps the tables' freshness.
    mod summarize {
        /// The stack the alerts name (unset: [`DEFAULT_STACK_NAME`]).
        stack_name: STACK_NAME = "STACK_NAME", Optional;
        /// The run results bucket, which holds `freshness.json`.
        results_bucket: RESULTS_BUCKET = "RESULTS_BUCKET", Required;
    }

    pub const DEFAULT_STACK_NAME: &str = "cd2-aws";
}

group! {
    /// The database bootstrap's custom resource.
    mod bootstrap {
        /// The secret RDS manages for the admin user (`username`, `password`).
        admin_secret_arn: ADMIN_SECRET_ARN = "ADMIN_SECRET_ARN", Required;
        /// The one stack whose requests it answers.
        stack_id: STACK_ID = "STACK_ID", Required;
        /// The one logical id it answers for.
        resource: RESOURCE = "BOOTSTRAP_RESOURCE", Required;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_lists_what_is_set_in_field_order_and_reads_it_back() {
        let vars = database::Vars {
            host: "h".to_owned(),
            port: Some("6543".to_owned()),
            name: "cd2".to_owned(),
            tls: None,
            root_cert: None,
        };
        let pairs = vars.clone().pairs();
        assert_eq!(pairs, [("DB_HOST", "h".to_owned()), ("DB_PORT", "6543".to_owned()), ("DB_NAME", "cd2".to_owned())]);
        let get = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(database::Vars::read(get), Ok(vars));
        assert_eq!(database::Vars::read(|_| None), Err(Missing("DB_HOST")));
    }
}
