//! The replica database. Either created: Aurora PostgreSQL Serverless v2, private and
//! encrypted, with TLS forced and one stored credential (the admin one RDS generates and
//! rotates). Or existing: a university's own Aurora or RDS PostgreSQL, which the stack only
//! opens to the Lambdas. Either way the application user logs in with IAM tokens, so it has
//! no password to store or rotate; the bootstrap resource creates it, or a DBA does.

use super::function::FunctionRef;
use super::grants::{Grantee, SecretRef};
use super::key::EncryptionKey;
use super::network::{GroupRef, Network};
use crate::intrinsics::{Expr, LogicalId};
use crate::resources::cloudformation::DatabaseBootstrap;
use crate::resources::iam::Statement;
use crate::resources::logs::LogGroup;
use crate::resources::rds::{
    DbCluster, DbClusterParameterGroup, DbInstance, DbSubnetGroup, MasterUserSecret, ServerlessV2Scaling,
};
use crate::resources::secretsmanager::{GenerateSecretString, Secret};
use crate::template::{Attributes, Handle, Template};
use indexmap::IndexMap;

/// The logical id of the Aurora cluster of the database made with `id`.
pub fn cluster_id(id: &str) -> String {
    format!("{id}Cluster")
}

/// Also the `[database]` table of an environment file, told apart by its `mode` key.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum DatabaseProps {
    /// The stack creates an Aurora Serverless v2 cluster.
    Create(ClusterProps),
    /// The stack uses a database it does not own.
    Existing(ExistingProps),
}

impl DatabaseProps {
    /// The database the replicated schemas live in.
    pub fn database_name(&self) -> &str {
        match self {
            DatabaseProps::Create(p) => &p.database_name,
            DatabaseProps::Existing(p) => &p.database_name,
        }
    }

    /// The role the Lambdas log in as.
    pub fn app_username(&self) -> &str {
        match self {
            DatabaseProps::Create(p) => &p.app_username,
            DatabaseProps::Existing(p) => &p.app_username,
        }
    }

    /// The readers: login roles (IAM database authentication) that may read every replicated
    /// namespace and the sync metadata, each with a schema of its own for views.
    pub fn readers(&self) -> &[String] {
        match self {
            DatabaseProps::Create(p) => &p.readers,
            DatabaseProps::Existing(p) => &p.readers,
        }
    }

    /// Readers as [`readers`](Self::readers), that log in with a password the stack
    /// generates and keeps in Secrets Manager (a BI tool's, the console's query editor's).
    pub fn password_readers(&self) -> &[String] {
        match self {
            DatabaseProps::Create(p) => &p.password_readers,
            DatabaseProps::Existing(p) => &p.password_readers,
        }
    }
}

/// `mode = "create"`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterProps {
    /// e.g. `17.7`; the major version picks the parameter group family.
    pub engine_version: String,
    #[serde(rename = "name")]
    pub database_name: String,
    pub admin_username: String,
    pub app_username: String,
    /// Login roles that may read the replica ([`DatabaseProps::readers`]).
    #[serde(default)]
    pub readers: Vec<String>,
    /// The same, with passwords ([`DatabaseProps::password_readers`]).
    #[serde(default)]
    pub password_readers: Vec<String>,
    /// Aurora capacity units; a minimum of 0 lets the cluster pause when idle.
    pub min_capacity: f64,
    pub max_capacity: f64,
    pub auto_pause_seconds: u32,
    pub backup_retention_days: u32,
    pub deletion_protection: bool,
}

/// `mode = "existing"`: an Aurora or RDS PostgreSQL with IAM database authentication on,
/// reachable from the functions' subnets.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExistingProps {
    /// The writer endpoint's host name.
    pub endpoint: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(rename = "name")]
    pub database_name: String,
    pub app_username: String,
    /// Login roles that may read the replica ([`DatabaseProps::readers`]).
    #[serde(default)]
    pub readers: Vec<String>,
    /// The same, with passwords ([`DatabaseProps::password_readers`]).
    #[serde(default)]
    pub password_readers: Vec<String>,
    /// The database's security group; the stack adds the ingress rule from the Lambdas.
    pub security_group_id: String,
    /// Create the application role and schemas with the admin credential (default true);
    /// false when a DBA has run the SQL in lambdas/replica/README.md.
    #[serde(default = "yes")]
    pub bootstrap: bool,
    /// The admin credential (`username`, `password`), needed when `bootstrap` is true.
    #[serde(default)]
    pub admin_secret_arn: Option<String>,
    /// The customer-managed KMS key of that secret, if it has one.
    #[serde(default)]
    pub admin_secret_kms_key_arn: Option<String>,
    /// The cluster's or instance's resource id (`cluster-...`, `db-...`), which narrows
    /// `rds-db:connect`; without it the grant covers the user on any database of the account.
    #[serde(default)]
    pub resource_id: Option<String>,
}

fn default_port() -> u16 {
    POSTGRES_PORT
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug)]
pub struct Database {
    /// The writer endpoint's host and port.
    pub endpoint: Expr,
    pub port: Expr,
    /// The same, as a number for the network rules.
    pub port_number: u16,
    /// The group connections must be allowed into.
    pub security_group: GroupRef,
    /// The admin credential, when the stack has one (a created cluster's, or the one
    /// configured for an existing database's bootstrap).
    pub admin_secret: Option<SecretRef>,
    pub name: String,
    /// The role the Lambdas log in as.
    pub app_user: String,
    /// The readers' login roles, made by the bootstrap.
    pub readers: Vec<String>,
    /// The readers that log in with a password: each one's name, secret, and what its
    /// value was generated from.
    pub password_readers: Vec<(String, SecretRef, String)>,
    /// The stack creates the role and schemas (a created cluster always does).
    pub bootstrap: bool,
    /// What `rds-db:connect` names: the cluster's or instance's resource id, or `*`.
    resource_id: Expr,
    /// What a connection needs first (a created cluster's writer instance).
    ready: Vec<LogicalId>,
    /// The cluster this stack created, if any.
    pub cluster: Option<Handle<DbCluster>>,
}

pub const POSTGRES_PORT: u16 = 5432;

impl Database {
    /// The database `props` describe: created (`identifier`: the cluster's, lower case;
    /// `log_retention_days`: of its PostgreSQL log) or existing.
    pub fn new(
        t: &mut Template,
        id: &str,
        identifier: &str,
        props: &DatabaseProps,
        network: &Network,
        key: &EncryptionKey,
        log_retention_days: u32,
    ) -> Self {
        let mut db = match props {
            DatabaseProps::Create(p) => Self::create(t, id, identifier, p, network, key, log_retention_days),
            DatabaseProps::Existing(p) => Self::existing(id, p),
        };
        for reader in props.password_readers() {
            let (secret, generation) = db.reader_secret(t, id, reader, key);
            db.password_readers.push((reader.clone(), secret, generation));
        }
        db
    }

    /// The secret of a reader that logs in with a password: `username` and a password
    /// CloudFormation generates (40 letters and digits, so that it needs no escaping in a
    /// connection string); the bootstrap sets it on the role. What the Data API and the
    /// console's query editor take. CloudFormation names it: a fixed name would be taken for
    /// the 30 days a deleted secret waits, so a reader taken out and put back, or a stack
    /// destroyed and deployed again, could not have one.
    fn reader_secret(&self, t: &mut Template, id: &str, reader: &str, key: &EncryptionKey) -> (SecretRef, String) {
        let template = serde_json::json!({ "username": reader, "dbname": self.name, "engine": "postgres" });
        let generate = GenerateSecretString {
            secret_string_template: template.to_string(),
            generate_string_key: "password",
            password_length: 40,
            exclude_punctuation: true,
        };
        let generation = serde_json::to_string(&generate).expect("the settings serialize");
        let secret = t.add_with(
            &format!("{id}Reader{}Secret", crate::intrinsics::pascal_case(reader)),
            Secret {
                description: format!(
                    "cd2-aws: the password of the database reader `{reader}` (a BI tool's, the query editor's); generated, never in the template"
                ),
                kms_key_id: key.arn(),
                generate_secret_string: generate,
                tags: vec![],
            },
            Attributes::default().skip_check(
                "CKV2_AWS_57",
                "a reader's password is changed by a new secret (take the reader out, deploy, put it back); rotation would need a Lambda of its own in the VPC that the bootstrap would have to follow",
            ),
        );
        (SecretRef { arn: secret.arn(), key_arn: Some(key.arn()) }, generation)
    }

    /// A database the stack does not own: only names and the grant on its admin secret.
    pub fn existing(id: &str, props: &ExistingProps) -> Self {
        let admin_secret = props.admin_secret_arn.as_ref().filter(|_| props.bootstrap).map(|arn| SecretRef {
            arn: Expr::str(arn.as_str()),
            key_arn: props.admin_secret_kms_key_arn.as_deref().map(Expr::str),
        });
        Self {
            endpoint: Expr::str(props.endpoint.as_str()),
            port: Expr::str(props.port.to_string()),
            port_number: props.port,
            security_group: GroupRef::imported(&format!("{id}SecurityGroup"), &props.security_group_id),
            admin_secret,
            name: props.database_name.clone(),
            app_user: props.app_username.clone(),
            readers: props.readers.clone(),
            password_readers: vec![],
            bootstrap: props.bootstrap,
            resource_id: Expr::str(props.resource_id.as_deref().unwrap_or("*")),
            ready: vec![],
            cluster: None,
        }
    }

    fn create(
        t: &mut Template,
        id: &str,
        identifier: &str,
        props: &ClusterProps,
        network: &Network,
        key: &EncryptionKey,
        log_retention_days: u32,
    ) -> Self {
        let key_arn = &key.arn();
        // Made before the cluster: RDS would otherwise create it, kept forever, unencrypted,
        // and outside the stack.
        let log_group = t.add_with(
            &format!("{id}LogGroup"),
            LogGroup {
                log_group_name: Some(Expr::str(format!("/aws/rds/cluster/{identifier}/postgresql"))),
                retention_in_days: log_retention_days,
                kms_key_id: key_arn.clone(),
                tags: vec![],
            },
            super::function::retention_skip(log_retention_days),
        );
        let security_group = network.security_group(
            t,
            &format!("{id}SecurityGroup"),
            "Aurora PostgreSQL: accepts 5432 only from the replication Lambdas",
        );
        let subnets = t.add(
            &format!("{id}SubnetGroup"),
            DbSubnetGroup {
                description: "Private subnets of the Canvas Data 2 replica".into(),
                subnet_ids: network.private_subnet_ids.clone(),
                tags: vec![],
            },
        );
        let major = props.engine_version.split('.').next().unwrap_or_default();
        let mut parameters = IndexMap::new();
        // Refuse unencrypted connections.
        parameters.insert("rds.force_ssl".to_owned(), Expr::str("1"));
        // Long enough that no replication statement is cut off, short enough to notice leaks.
        parameters.insert("idle_in_transaction_session_timeout".to_owned(), Expr::str("3600000"));
        parameters.insert("log_min_duration_statement".to_owned(), Expr::str("60000"));
        let parameter_group = t.add(
            &format!("{id}ClusterParameters"),
            DbClusterParameterGroup {
                description: "cd2-aws: TLS only".into(),
                family: format!("aurora-postgresql{major}"),
                parameters,
                tags: vec![],
            },
        );
        let mut attributes = Attributes::default().snapshot_on_delete().depends_on(&log_group);
        if !props.deletion_protection {
            attributes = attributes.skip_check(
                "CKV_AWS_139",
                "deletion protection is off by configuration (database.deletion_protection) so destroy can run; a final snapshot is kept by the Snapshot deletion policy",
            );
        }
        let cluster = t.add_with(
            &cluster_id(id),
            DbCluster {
                db_cluster_identifier: identifier.to_owned(),
                engine: "aurora-postgresql",
                engine_version: props.engine_version.clone(),
                database_name: props.database_name.clone(),
                master_username: props.admin_username.clone(),
                manage_master_user_password: true,
                master_user_secret: MasterUserSecret { kms_key_id: key_arn.clone() },
                port: POSTGRES_PORT,
                storage_encrypted: true,
                kms_key_id: key_arn.clone(),
                db_subnet_group_name: subnets.as_ref(),
                db_cluster_parameter_group_name: parameter_group.as_ref(),
                vpc_security_group_ids: vec![security_group.group_id()],
                backup_retention_period: props.backup_retention_days,
                preferred_backup_window: "07:00-08:00".into(),
                preferred_maintenance_window: "sun:08:30-sun:09:30".into(),
                copy_tags_to_snapshot: true,
                deletion_protection: props.deletion_protection,
                enable_iam_database_authentication: true,
                enable_http_endpoint: true,
                enable_cloudwatch_logs_exports: vec!["postgresql"],
                serverless_v2_scaling_configuration: ServerlessV2Scaling {
                    min_capacity: props.min_capacity,
                    max_capacity: props.max_capacity,
                    seconds_until_auto_pause: (props.min_capacity == 0.0).then_some(props.auto_pause_seconds),
                },
                tags: vec![],
            },
            attributes,
        );
        let writer = t.add_with(
            &format!("{id}Writer"),
            DbInstance {
                db_cluster_identifier: cluster.as_ref(),
                db_instance_class: "db.serverless",
                engine: "aurora-postgresql",
                publicly_accessible: false,
                auto_minor_version_upgrade: true,
                enable_performance_insights: true,
                performance_insights_kms_key_id: Some(key_arn.clone()),
                monitoring_interval: None,
                monitoring_role_arn: None,
                tags: vec![],
            },
            Attributes::default().skip_check(
                "CKV_AWS_118",
                "enhanced monitoring costs more than the replica itself at 0.5 ACU; Performance Insights and CloudWatch metrics are on",
            ),
        );
        Self {
            endpoint: cluster.endpoint_address(),
            port: cluster.endpoint_port(),
            port_number: POSTGRES_PORT,
            admin_secret: Some(SecretRef { arn: cluster.master_user_secret_arn(), key_arn: Some(key_arn.clone()) }),
            security_group: GroupRef::from(&security_group),
            name: props.database_name.clone(),
            app_user: props.app_username.clone(),
            readers: props.readers.clone(),
            password_readers: vec![],
            bootstrap: true,
            resource_id: cluster.resource_id(),
            ready: vec![writer.id().clone()],
            cluster: Some(cluster),
        }
    }

    /// What `rds-db:connect` names to let a principal log in as `user` with an IAM token.
    pub fn db_user_arn(&self, user: &str) -> Expr {
        Expr::join(
            "",
            [
                Expr::sub("arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"),
                self.resource_id.clone(),
                Expr::str(format!("/{user}")),
            ],
        )
    }

    /// Lets `grantee` log in as the application user with an IAM authentication token.
    pub fn grant_connect(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(&["rds-db:connect"], vec![self.db_user_arn(&self.app_user)]));
    }

    /// The password readers' secrets' ARNs, comma-separated: what the query editor and a
    /// BI tool's setup are given.
    pub fn reader_secret_arns(&self) -> Option<Expr> {
        (!self.password_readers.is_empty())
            .then(|| Expr::join(",", self.password_readers.iter().map(|(_, secret, _)| secret.arn.clone())))
    }

    /// Lets the bootstrap read the password readers' passwords, to set them.
    pub fn grant_read_reader_passwords(&self, grantee: &mut dyn Grantee) {
        for (_, secret, _) in &self.password_readers {
            secret.grant_read(grantee);
        }
    }

    /// The readers' [`db_user_arn`](Self::db_user_arn)s, comma-separated: what the IAM
    /// policy of a person or tool reading as one of them allows `rds-db:connect` on.
    pub fn readers_connect_arns(&self) -> Option<Expr> {
        (!self.readers.is_empty()).then(|| Expr::join(",", self.readers.iter().map(|r| self.db_user_arn(r))))
    }

    /// The custom resource that `function` (db_bootstrap, granted the admin secret) answers:
    /// the application role, the schemas of `namespaces` and the metadata tables, made once
    /// the writer instance accepts connections. Whatever needs them depends on the handle.
    ///
    /// `network_path`: what the function needs to reach the database, Secrets Manager and
    /// CloudFormation's answer URL (rules, routes); the resource comes after it and, on
    /// delete, goes before it, so that its Delete can still answer.
    pub fn bootstrap(
        &self,
        t: &mut Template,
        id: &str,
        function: &FunctionRef,
        namespaces: Vec<String>,
        network_path: Vec<LogicalId>,
        timeout_seconds: u32,
    ) -> Handle<DatabaseBootstrap> {
        t.add_with(
            id,
            DatabaseBootstrap {
                service_token: function.arn(),
                service_timeout: timeout_seconds,
                properties: contract::BootstrapProperties {
                    app_user: self.app_user.clone(),
                    namespaces,
                    iam_auth: "true".into(),
                    readers: self.readers.clone(),
                    password_readers: self
                        .password_readers
                        .iter()
                        .map(|(name, secret, generation)| contract::PasswordReader {
                            name: name.clone(),
                            secret_arn: secret.arn.clone(),
                            generation: generation.clone(),
                        })
                        .collect(),
                    endpoint: self.endpoint.clone(),
                    port: self.port.clone(),
                    resource_id: self.resource_id.clone(),
                },
            },
            Attributes::default().depends_on_all(self.ready.iter().cloned().chain(network_path)),
        )
    }
}
