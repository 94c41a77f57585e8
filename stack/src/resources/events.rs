//! `AWS::Events::*`: the schedule.

use super::Resource;
use crate::intrinsics::Expr;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub id: String,
    pub arn: Expr,
    pub role_arn: Expr,
    pub input: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    pub description: String,
    pub schedule_expression: String,
    pub state: &'static str,
    pub targets: Vec<Target>,
}

impl Resource for Rule {
    const TYPE: &'static str = "AWS::Events::Rule";
}
