//! `AWS::IAM::*` and the policy language.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use indexmap::IndexMap;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version")]
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

impl PolicyDocument {
    pub fn new(statements: Vec<Statement>) -> Self {
        Self { version: "2012-10-17", statements }
    }
}

/// Who a statement is about, in a resource or trust policy.
#[derive(Clone, Debug, Serialize)]
pub enum Principal {
    Service(Vec<Expr>),
    #[serde(rename = "AWS")]
    Aws(Vec<Expr>),
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    pub action: Vec<String>,
    /// Empty only in trust policies, where it is left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<Expr>,
    /// `{operator: {key: value}}`.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub condition: IndexMap<String, IndexMap<String, Expr>>,
}

impl Statement {
    /// Adds this statement to `statements` unless an identical one is there (two secrets
    /// under one key each grant the same decrypt).
    pub fn add_once(self, statements: &mut Vec<Statement>) {
        let json = |s: &Statement| serde_json::to_value(s).expect("a statement serializes");
        let this = json(&self);
        if !statements.iter().any(|s| json(s) == this) {
            statements.push(self);
        }
    }

    /// Deny `actions` on `resources` (with conditions saying when).
    pub fn deny(actions: &[&str], resources: Vec<Expr>) -> Self {
        Self { effect: "Deny", ..Self::allow(actions, resources) }
    }

    /// The trust statement letting `service` assume a role for this account only
    /// (`aws:SourceAccount`), so no other account's resource can make the service act as it.
    pub fn trust(service: &str) -> Self {
        Self::allow(&["sts:AssumeRole"], vec![])
            .for_principal(Principal::Service(vec![Expr::str(service)]))
            .with_condition("StringEquals", "aws:SourceAccount", Expr::sub("${AWS::AccountId}"))
    }

    /// Allow `actions` on `resources`.
    pub fn allow(actions: &[&str], resources: Vec<Expr>) -> Self {
        Self {
            sid: None,
            effect: "Allow",
            principal: None,
            action: actions.iter().map(|a| (*a).to_owned()).collect(),
            resource: resources,
            condition: IndexMap::new(),
        }
    }

    pub fn with_sid(mut self, sid: &str) -> Self {
        self.sid = Some(sid.into());
        self
    }

    pub fn for_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    pub fn with_condition(mut self, operator: &str, key: &str, value: Expr) -> Self {
        self.condition.entry(operator.into()).or_default().insert(key.into(), value);
        self
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InlinePolicy {
    pub policy_name: String,
    pub policy_document: PolicyDocument,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub assume_role_policy_document: PolicyDocument,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managed_policy_arns: Vec<Expr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<InlinePolicy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Role {
    const TYPE: &'static str = "AWS::IAM::Role";
}

impl Handle<Role> {
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfile {
    pub roles: Vec<Expr>,
}

impl Resource for InstanceProfile {
    const TYPE: &'static str = "AWS::IAM::InstanceProfile";
}
