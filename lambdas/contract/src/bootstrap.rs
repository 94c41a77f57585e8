//! The properties of the `Custom::DatabaseBootstrap` resource: written by the stack,
//! read by `db_bootstrap`.

use serde::{Deserialize, Serialize};

/// As the template sets them; CloudFormation hands every scalar to the function as a
/// string, so `iam_auth` is one here too. `V` is what names the database: the stack's
/// expressions when it writes them, the strings CloudFormation resolved them to when the
/// function reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BootstrapProperties<V = String> {
    /// The application role the Lambdas log in as.
    pub app_user: String,
    /// The DAP namespaces replicated.
    pub namespaces: Vec<String>,
    /// `"true"`: log in with IAM tokens (`rds_iam`); `"false"`: the administrator gives the
    /// role a password (a database without IAM authentication).
    #[serde(default = "yes")]
    pub iam_auth: String,
    /// The readers' login roles that log in with IAM tokens (`database.readers` in the
    /// configuration).
    #[serde(default)]
    pub readers: Vec<String>,
    /// The readers that log in with a password (`database.password_readers`), each with
    /// the secret the stack generated for it.
    #[serde(default)]
    pub password_readers: Vec<PasswordReader<V>>,
    /// The database set up: its writer endpoint's host and port, and the cluster's resource
    /// id (`*` when the configuration does not give it). Pointing the stack at another
    /// database changes them, so CloudFormation sends an Update and that one is set up too;
    /// the function refuses a request whose database is not the one it is configured for.
    /// Empty in properties written before they existed (an Update's old ones, a rollback's).
    #[serde(default)]
    pub endpoint: V,
    #[serde(default)]
    pub port: V,
    #[serde(default)]
    pub resource_id: V,
}

/// A reader that logs in with a password, and where that password is kept: a Secrets
/// Manager secret of `username` and `password`, as RDS's own and the Data API read them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PasswordReader<V = String> {
    pub name: String,
    pub secret_arn: V,
    /// What CloudFormation generated the secret's value from: when that changes, the same
    /// secret gets a new password, and this property's change makes CloudFormation send the
    /// bootstrap the Update that sets it.
    #[serde(default)]
    pub generation: String,
}

fn yes() -> String {
    "true".into()
}

impl<V> BootstrapProperties<V> {
    pub fn iam_auth(&self) -> bool {
        self.iam_auth != "false"
    }
}
