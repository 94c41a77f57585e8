//! `AWS::SecretsManager::*`.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateSecretString {
    pub secret_string_template: String,
    pub generate_string_key: String,
    pub password_length: u32,
    /// Characters that break connection strings or shell quoting.
    pub exclude_characters: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Secret {
    pub description: String,
    pub kms_key_id: Expr,
    pub generate_secret_string: GenerateSecretString,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Secret {
    const TYPE: &'static str = "AWS::SecretsManager::Secret";
}

impl Handle<Secret> {
    pub fn arn(&self) -> Expr {
        self.as_ref()
    }
}

/// Adds the database's host, port and engine to a secret, in the shape RDS rotation expects.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretTargetAttachment {
    pub secret_id: Expr,
    pub target_id: Expr,
    pub target_type: &'static str,
}

impl Resource for SecretTargetAttachment {
    const TYPE: &'static str = "AWS::SecretsManager::SecretTargetAttachment";
}
