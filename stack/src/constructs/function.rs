//! A Rust Lambda function (`provided.al2023`, arm64) in the private subnets, with its own
//! role, log group and only the permissions granted to it.

use super::grants::Grantee;
use super::key::EncryptionKey;
use crate::intrinsics::{Expr, LogicalId};
use crate::resources::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::resources::lambda::{Code, Environment, Function, LoggingConfig, TracingConfig, VpcConfig};
use crate::resources::logs::LogGroup;
use crate::template::{Attributes, Handle, Template};
use indexmap::IndexMap;

/// Where a function's zip lives: set by the deploy step, so only references here.
#[derive(Clone, Debug)]
pub struct Asset {
    pub bucket: Expr,
    pub key: Expr,
}

/// What every function of the stack shares.
#[derive(Clone, Debug)]
pub struct FunctionDefaults {
    pub subnet_ids: Vec<Expr>,
    pub security_group_id: Expr,
    pub key: EncryptionKey,
    pub log_retention_days: u32,
}

/// A function being configured: grants and environment are collected, then [`build`](Self::build) emits it.
#[derive(Clone, Debug)]
pub struct RustFunction {
    pub id: String,
    pub description: String,
    pub asset: Asset,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub environment: IndexMap<String, Expr>,
    pub reserved_concurrency: Option<u32>,
    /// Who calls it, which decides why a dead-letter queue and reserved concurrency do not apply.
    pub invoker: Invoker,
    statements: Vec<Statement>,
    /// Resources that must exist before it (and go after it).
    after: Vec<LogicalId>,
}

/// What invokes a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invoker {
    /// Synchronously, from the state machine's tasks (which retry and catch).
    StepFunctions,
    /// As a custom resource: CloudFormation sends the request and waits for the answer the
    /// function PUTs.
    CloudFormation,
}

impl Grantee for RustFunction {
    fn add_to_policy(&mut self, statement: Statement) {
        statement.add_once(&mut self.statements);
    }
}

/// The emitted function.
#[derive(Clone, Debug)]
pub struct FunctionRef {
    pub function: Handle<Function>,
    pub role: Handle<Role>,
    pub log_group: Handle<LogGroup>,
}

impl FunctionRef {
    pub fn arn(&self) -> Expr {
        self.function.arn()
    }

    /// Lets `grantee` invoke the function and its versions.
    pub fn grant_invoke(&self, grantee: &mut dyn Grantee) {
        let arn = self.arn();
        grantee.add_to_policy(Statement::allow(
            &["lambda:InvokeFunction"],
            vec![arn.clone(), Expr::join("", [arn, Expr::str(":*")])],
        ));
    }
}

/// What Lambda does with the function's network interfaces in the VPC (the actions of the
/// managed `AWSLambdaVPCAccessExecutionRole`, without its `logs:*` on every log group).
const ENI_ACTIONS: [&str; 6] = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
];

impl RustFunction {
    pub fn new(id: &str, description: &str, asset: Asset, memory_mb: u32, timeout_seconds: u32) -> Self {
        Self {
            id: id.into(),
            description: description.into(),
            asset,
            memory_mb,
            timeout_seconds,
            environment: IndexMap::new(),
            reserved_concurrency: None,
            invoker: Invoker::StepFunctions,
            statements: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Created only once `resource` is, so that a deploy never runs the new code before
    /// what it needs exists.
    pub fn after<T>(mut self, resource: &Handle<T>) -> Self {
        self.after.push(resource.id().clone());
        self
    }

    pub fn invoked_by(mut self, invoker: Invoker) -> Self {
        self.invoker = invoker;
        self
    }

    pub fn env(mut self, name: &str, value: impl Into<Expr>) -> Self {
        self.environment.insert(name.into(), value.into());
        self
    }

    /// A group of variables, as [`contract::env`]'s `Vars::pairs` lists them.
    pub fn vars(self, pairs: Vec<(&str, Expr)>) -> Self {
        pairs.into_iter().fold(self, |f, (name, value)| f.env(name, value))
    }

    pub fn build(self, t: &mut Template, defaults: &FunctionDefaults) -> FunctionRef {
        let id = &self.id;
        let log_group = t.add_with(
            &format!("{id}LogGroup"),
            LogGroup {
                log_group_name: None,
                retention_in_days: defaults.log_retention_days,
                kms_key_id: defaults.key.arn(),
                tags: vec![],
            },
            retention_skip(defaults.log_retention_days),
        );
        let mut statements = vec![
            // Its own log group only (the managed VPC policy would grant logs on every group).
            Statement::allow(&["logs:CreateLogStream", "logs:PutLogEvents"], vec![log_group.arn()]).with_sid("OwnLogs"),
            // Lambda's network interfaces in the VPC: these actions have no resource-level form.
            Statement::allow(&ENI_ACTIONS, vec![Expr::str("*")]).with_sid("VpcNetworkInterfaces"),
        ];
        statements.extend(self.statements);
        let policies =
            vec![InlinePolicy { policy_name: "function".into(), policy_document: PolicyDocument::new(statements) }];
        let role = t.add_with(
            &format!("{id}Role"),
            Role {
                description: Some(format!("Execution role of {id}")),
                assume_role_policy_document: PolicyDocument::new(vec![Statement::trust("lambda.amazonaws.com")]),
                managed_policy_arns: vec![],
                policies,
                tags: vec![],
            },
            Attributes::default()
                .skip_check(
                    "CKV_AWS_111",
                    "only the VPC network-interface actions use `*`; EC2 gives them no resource-level form",
                )
                .skip_check(
                    "CKV_AWS_290",
                    "only the VPC network-interface actions use `*`; EC2 gives them no resource-level form",
                )
                .skip_check(
                    "CKV_AWS_355",
                    "only the VPC network-interface actions use `*`; EC2 gives them no resource-level form",
                ),
        );
        let (dlq, concurrency) = match self.invoker {
            Invoker::StepFunctions => (
                "invoked synchronously by Step Functions, which retries and catches failures; a DLQ only applies to asynchronous invocation",
                "concurrency is bounded by the state machine's Map (MaxConcurrency); reserving it would fail on new accounts whose limit is 10",
            ),
            Invoker::CloudFormation => (
                "invoked by CloudFormation for a custom resource: the function answers every request itself, also failures, and an unanswered one fails the stack operation at its ServiceTimeout; a DLQ would add nothing",
                "invoked once per stack operation",
            ),
        };
        let mut attributes = Attributes::default()
            .depends_on_all(self.after)
            .skip_check("CKV_AWS_116", dlq)
            .skip_check(
                "CKV_AWS_272",
                "code is built from this repository and uploaded by `cargo xtask deploy`; signing needs an AWS Signer profile the operator may not have",
            );
        if self.reserved_concurrency.is_none() {
            attributes = attributes.skip_check("CKV_AWS_115", concurrency);
        }
        let function = t.add_with(
            id,
            Function {
                description: self.description,
                runtime: "provided.al2023",
                handler: "bootstrap",
                architectures: vec!["arm64"],
                code: Code { s3_bucket: self.asset.bucket, s3_key: self.asset.key },
                role: role.arn(),
                memory_size: self.memory_mb,
                timeout: self.timeout_seconds,
                environment: Environment { variables: self.environment },
                kms_key_arn: defaults.key.arn(),
                vpc_config: VpcConfig {
                    security_group_ids: vec![defaults.security_group_id.clone()],
                    subnet_ids: defaults.subnet_ids.clone(),
                },
                logging_config: LoggingConfig {
                    log_group: log_group.name(),
                    log_format: "JSON",
                    application_log_level: "INFO",
                    system_log_level: "WARN",
                },
                reserved_concurrent_executions: self.reserved_concurrency,
                tracing_config: TracingConfig { mode: "PassThrough" },
                tags: vec![],
            },
            attributes,
        );
        FunctionRef { function, role, log_group }
    }
}

/// checkov wants a year of logs; cost-minded operators choose less, on purpose.
pub(crate) fn retention_skip(days: u32) -> Attributes {
    if days >= 365 {
        Attributes::default()
    } else {
        Attributes::default().skip_check(
            "CKV_AWS_338",
            format!("retention is {days} days by configuration (log_retention_days); the replica's own tables are the record"),
        )
    }
}
