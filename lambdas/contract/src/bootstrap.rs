//! The properties of the `Custom::DatabaseBootstrap` resource: written by the stack,
//! read by `db_bootstrap`.

use serde::{Deserialize, Serialize};

/// As the template sets them; CloudFormation hands every scalar to the function as a
/// string, so `iam_auth` is one here too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BootstrapProperties {
    /// The application role the Lambdas log in as.
    pub app_user: String,
    /// The DAP namespaces replicated.
    pub namespaces: Vec<String>,
    /// `"true"`: log in with IAM tokens (`rds_iam`); `"false"`: the administrator gives the
    /// role a password (a database without IAM authentication).
    #[serde(default = "yes")]
    pub iam_auth: String,
}

fn yes() -> String {
    "true".into()
}

impl BootstrapProperties {
    pub fn iam_auth(&self) -> bool {
        self.iam_auth != "false"
    }
}
