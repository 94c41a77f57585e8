//! `AWS::CloudWatch::*`.

use super::Resource;
use crate::intrinsics::Expr;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    pub name: String,
    pub value: Expr,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alarm {
    pub alarm_description: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
    pub statistic: &'static str,
    pub period: u32,
    pub evaluation_periods: u32,
    /// Breaching periods among `evaluation_periods` that raise the alarm (all when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    pub comparison_operator: &'static str,
    pub treat_missing_data: &'static str,
    pub alarm_actions: Vec<Expr>,
}

impl Resource for Alarm {
    const TYPE: &'static str = "AWS::CloudWatch::Alarm";
}

/// A dashboard: its body is the JSON CloudWatch documents, as one string.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dashboard {
    pub dashboard_name: Expr,
    pub dashboard_body: Expr,
}

impl Resource for Dashboard {
    const TYPE: &'static str = "AWS::CloudWatch::Dashboard";
}

impl crate::template::Handle<Dashboard> {
    /// `Ref` gives the dashboard's name.
    pub fn name(&self) -> Expr {
        self.as_ref()
    }
}
