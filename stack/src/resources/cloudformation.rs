//! `Custom::*`: resources answered by a function of this stack.

use super::Resource;
use crate::intrinsics::Expr;
use serde::Serialize;

/// `Custom::DatabaseBootstrap`: the application role, its schemas and the metadata tables,
/// created by the `db_bootstrap` function with the admin credential.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseBootstrap {
    /// The function CloudFormation invokes.
    pub service_token: Expr,
    /// Seconds CloudFormation waits for the answer before failing the operation (its
    /// default is an hour).
    pub service_timeout: u32,
    #[serde(flatten)]
    pub properties: contract::BootstrapProperties<Expr>,
}

impl Resource for DatabaseBootstrap {
    const TYPE: &'static str = "Custom::DatabaseBootstrap";
}
