//! `AWS::Glue::*`.

use super::Resource;
use crate::intrinsics::Expr;
use serde::Serialize;

/// A Data Catalog database: a name for tables, which Athena queries.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Database {
    pub catalog_id: Expr,
    pub database_input: DatabaseInput,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseInput {
    /// Lower-case letters, digits and `_`: what Athena takes without quoting.
    pub name: String,
    pub description: String,
}

impl Resource for Database {
    const TYPE: &'static str = "AWS::Glue::Database";
}
