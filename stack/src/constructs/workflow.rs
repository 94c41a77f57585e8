//! A Standard state machine from a typed ASL definition, with its own role (only what its
//! tasks call), its own log group and X-Ray tracing.

use super::grants::Grantee;
use super::key::EncryptionKey;
use crate::asl::{self, AslError};
use crate::intrinsics::{Expr, LogicalId};
use crate::resources::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::resources::logs::LogGroup;
use crate::resources::stepfunctions::{
    CloudWatchLogsLogGroup, LogDestination, LoggingConfiguration, StateMachine, TracingConfiguration,
};
use crate::template::{Attributes, Handle, Template, sub_variables};
use indexmap::IndexMap;
use serde_json::Value;

/// A state machine being configured: tasks' grants are collected, then [`build`](Self::build) emits it.
#[derive(Debug)]
pub struct Workflow {
    pub id: String,
    pub definition: asl::StateMachine,
    /// Values for `${Name}` placeholders in the definition (function ARNs, the topic).
    pub substitutions: IndexMap<String, Expr>,
    statements: Vec<Statement>,
    /// Resources that must exist before the state machine can run (the database bootstrap).
    after: Vec<LogicalId>,
}

impl Grantee for Workflow {
    fn add_to_policy(&mut self, statement: Statement) {
        statement.add_once(&mut self.statements);
    }
}

/// The ARN of the state machine a [`Workflow`] of `id` makes, known before it exists (it is
/// built from the name), for what must name it earlier (the NAT instances).
pub fn state_machine_arn(id: &str) -> Expr {
    states_arn(id, "stateMachine", "")
}

fn states_arn(id: &str, resource: &str, tail: &str) -> Expr {
    Expr::sub(format!(
        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:{resource}:${{AWS::StackName}}-{id}{tail}"
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Asl(#[from] AslError),
    #[error("state machine `{id}`: placeholder `${{{name}}}` has no substitution")]
    MissingSubstitution { id: String, name: String },
    #[error("state machine `{id}`: substitution `{name}` is not used by the definition")]
    UnusedSubstitution { id: String, name: String },
}

#[derive(Clone, Debug)]
pub struct WorkflowRef {
    pub state_machine: Handle<StateMachine>,
    pub role: Handle<Role>,
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

impl Workflow {
    pub fn new(id: &str, definition: asl::StateMachine) -> Self {
        Self { id: id.into(), definition, substitutions: IndexMap::new(), statements: Vec::new(), after: Vec::new() }
    }

    /// The state machine is created only once `resource` is, so no run starts before it.
    pub fn after<T>(&mut self, resource: &Handle<T>) {
        self.after.push(resource.id().clone());
    }

    /// The state machine's name: fixed, so that its ARN is known before it exists and the
    /// functions it invokes can be granted access to it without a dependency cycle.
    pub fn name(&self) -> Expr {
        Expr::sub(format!("${{AWS::StackName}}-{}", self.id))
    }

    /// A Step Functions ARN of this state machine's `resource` type, its name followed by `tail`.
    fn states_arn(&self, resource: &str, tail: &str) -> Expr {
        states_arn(&self.id, resource, tail)
    }

    /// The state machine's ARN, built from its name.
    pub fn arn(&self) -> Expr {
        state_machine_arn(&self.id)
    }

    /// Its executions (`Name:execution`) and a Distributed Map's child executions
    /// (`Name/MapRunLabel:execution`).
    fn executions_arns(&self) -> Vec<Expr> {
        [":*", "/*"].iter().map(|tail| self.states_arn("execution", tail)).collect()
    }

    /// Lets `grantee` see which executions run and when each started (the overlap check of
    /// `list_tables`): its own executions only, not the Map's children.
    pub fn grant_list_executions(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(&["states:ListExecutions"], vec![self.arn()]));
        grantee
            .add_to_policy(Statement::allow(&["states:DescribeExecution"], vec![self.states_arn("execution", ":*")]));
    }

    /// The `${name}` placeholder to put in the definition; its value goes in `substitutions`.
    pub fn placeholder(name: &str) -> String {
        format!("${{{name}}}")
    }

    /// The definition checked and as JSON, as written to `<stack>.asl.json`.
    pub fn definition_json(&self) -> Result<Value, WorkflowError> {
        asl::check(&self.definition)?;
        let json = self.definition.to_json();
        let mut strings = Vec::new();
        collect_strings(&json, &mut strings);
        let used: Vec<&str> = strings.iter().flat_map(|s| sub_variables(s)).collect();
        for name in &used {
            if !self.substitutions.contains_key(*name) {
                return Err(WorkflowError::MissingSubstitution { id: self.id.clone(), name: (*name).into() });
            }
        }
        for name in self.substitutions.keys() {
            if !used.contains(&name.as_str()) {
                return Err(WorkflowError::UnusedSubstitution { id: self.id.clone(), name: name.clone() });
            }
        }
        Ok(json)
    }

    pub fn build(
        mut self,
        t: &mut Template,
        key: &EncryptionKey,
        log_retention_days: u32,
    ) -> Result<WorkflowRef, WorkflowError> {
        let definition = self.definition_json()?;
        let name = self.name();
        // Its own ARN, and `Name/MapRunLabel` for a Distributed Map's children.
        let source = self.states_arn("stateMachine", "*");
        if self.definition.has_distributed_map() {
            // A Distributed Map runs each item as a child execution of this state machine.
            let (own, executions) = (self.arn(), self.executions_arns());
            self.statements.push(Statement::allow(&["states:StartExecution"], vec![own]).with_sid("MapChildren"));
            self.statements.push(
                Statement::allow(&["states:DescribeExecution", "states:StopExecution"], executions)
                    .with_sid("MapChildrenControl"),
            );
        }
        let id = &self.id;
        let log_group = t.add_with(
            &format!("{id}LogGroup"),
            LogGroup {
                // Step Functions' console finds logs under this prefix; the name must start with it
                // for the resource policy size limit workaround to apply.
                log_group_name: Some(Expr::sub(format!("/aws/vendedlogs/states/${{AWS::StackName}}-{id}"))),
                retention_in_days: log_retention_days,
                kms_key_id: key.arn(),
                tags: vec![],
            },
            super::function::retention_skip(log_retention_days),
        );
        let mut statements = self.statements;
        // Vended-log delivery and X-Ray have no resource-level permissions: AWS documents `*`.
        statements.push(
            Statement::allow(
                &[
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                ],
                vec![Expr::str("*")],
            )
            .with_sid("VendedLogDelivery"),
        );
        statements.push(
            Statement::allow(
                &[
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                vec![Expr::str("*")],
            )
            .with_sid("XRayTracing"),
        );
        let role = t.add_with(
            &format!("{id}Role"),
            Role {
                description: Some(format!("Role of the {id} state machine")),
                // This state machine only: it and its Distributed Map's child executions.
                assume_role_policy_document: PolicyDocument::new(vec![
                    Statement::trust("states.amazonaws.com").with_condition("ArnLike", "aws:SourceArn", source),
                ]),
                managed_policy_arns: vec![],
                policies: vec![InlinePolicy { policy_name: "tasks".into(), policy_document: PolicyDocument::new(statements) }],
                tags: vec![],
            },
            Attributes::default()
                .skip_check("CKV_AWS_111", "only CloudWatch Logs delivery, X-Ray, PutMetricData (held to its namespace by a condition) and, with on-demand NAT instances, ec2:DescribeInstances use `*`; they have no resource-level permissions")
                .skip_check("CKV_AWS_109", "logs:PutResourcePolicy on `*` is how Step Functions sets up log delivery; AWS documents no narrower form")
                .skip_check("CKV_AWS_290", "only CloudWatch Logs delivery, X-Ray, PutMetricData (held to its namespace by a condition) and, with on-demand NAT instances, ec2:DescribeInstances use `*`; they have no resource-level permissions")
                .skip_check("CKV_AWS_355", "only CloudWatch Logs delivery, X-Ray, PutMetricData (held to its namespace by a condition) and, with on-demand NAT instances, ec2:DescribeInstances use `*`; they have no resource-level permissions"),
        );
        let state_machine = t.add_with(
            id,
            StateMachine {
                state_machine_name: Some(name),
                state_machine_type: "STANDARD",
                role_arn: role.arn(),
                definition,
                definition_substitutions: self.substitutions,
                logging_configuration: LoggingConfiguration {
                    level: "ERROR",
                    include_execution_data: false,
                    destinations: vec![LogDestination {
                        cloud_watch_logs_log_group: CloudWatchLogsLogGroup { log_group_arn: log_group.arn() },
                    }],
                },
                tracing_configuration: TracingConfiguration { enabled: true },
                encryption_configuration: None,
                tags: vec![],
            },
            Attributes::default().depends_on_all(self.after),
        );
        Ok(WorkflowRef { state_machine, role })
    }
}
