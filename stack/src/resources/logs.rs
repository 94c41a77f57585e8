//! `AWS::Logs::*`.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_group_name: Option<Expr>,
    pub retention_in_days: u32,
    pub kms_key_id: Expr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for LogGroup {
    const TYPE: &'static str = "AWS::Logs::LogGroup";
}

impl Handle<LogGroup> {
    pub fn name(&self) -> Expr {
        self.as_ref()
    }

    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}
