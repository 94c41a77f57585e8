//! `AWS::SNS::*`.

use super::iam::PolicyDocument;
use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Topic {
    pub display_name: String,
    pub kms_master_key_id: Expr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Topic {
    const TYPE: &'static str = "AWS::SNS::Topic";
}

impl Handle<Topic> {
    pub fn arn(&self) -> Expr {
        self.as_ref()
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopicPolicy {
    pub policy_document: PolicyDocument,
    pub topics: Vec<Expr>,
}

impl Resource for TopicPolicy {
    const TYPE: &'static str = "AWS::SNS::TopicPolicy";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subscription {
    pub topic_arn: Expr,
    pub protocol: &'static str,
    pub endpoint: Expr,
}

impl Resource for Subscription {
    const TYPE: &'static str = "AWS::SNS::Subscription";
}
