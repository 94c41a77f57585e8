//! `AWS::SecretsManager::*`.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use serde::Serialize;

/// A secret whose value CloudFormation generates: nobody, the template included, ever
/// writes it down.
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

/// The JSON object `secret_string_template` with a random string added as `generate_string_key`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateSecretString {
    pub secret_string_template: String,
    pub generate_string_key: &'static str,
    pub password_length: u32,
    pub exclude_punctuation: bool,
}

impl Handle<Secret> {
    /// `Ref` gives the secret's ARN.
    pub fn arn(&self) -> Expr {
        self.as_ref()
    }
}
