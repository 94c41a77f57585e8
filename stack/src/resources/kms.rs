//! `AWS::KMS::*`.

use super::iam::PolicyDocument;
use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Key {
    pub description: String,
    pub enable_key_rotation: bool,
    pub pending_window_in_days: u32,
    pub key_policy: PolicyDocument,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Key {
    const TYPE: &'static str = "AWS::KMS::Key";
}

impl Handle<Key> {
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alias {
    pub alias_name: Expr,
    pub target_key_id: Expr,
}

impl Resource for Alias {
    const TYPE: &'static str = "AWS::KMS::Alias";
}
