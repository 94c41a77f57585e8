//! `AWS::StepFunctions::*`.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloudWatchLogsLogGroup {
    pub log_group_arn: Expr,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogDestination {
    pub cloud_watch_logs_log_group: CloudWatchLogsLogGroup,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfiguration {
    pub level: &'static str,
    pub include_execution_data: bool,
    pub destinations: Vec<LogDestination>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfiguration {
    pub enabled: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionConfiguration {
    pub kms_key_id: Expr,
    pub kms_data_key_reuse_period_seconds: u32,
    #[serde(rename = "Type")]
    pub kind: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateMachine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_machine_name: Option<Expr>,
    pub state_machine_type: &'static str,
    pub role_arn: Expr,
    /// The ASL document as an object (not a string), so that cfn-lint checks it too.
    pub definition: Value,
    /// Values for the `${Name}` placeholders in `definition`.
    pub definition_substitutions: IndexMap<String, Expr>,
    pub logging_configuration: LoggingConfiguration,
    pub tracing_configuration: TracingConfiguration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<EncryptionConfiguration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for StateMachine {
    const TYPE: &'static str = "AWS::StepFunctions::StateMachine";
}

impl Handle<StateMachine> {
    pub fn arn(&self) -> Expr {
        self.as_ref()
    }

    pub fn name(&self) -> Expr {
        self.get_att("Name")
    }
}
