//! `AWS::RDS::*`: Aurora PostgreSQL.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use indexmap::IndexMap;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbSubnetGroup {
    #[serde(rename = "DBSubnetGroupDescription")]
    pub description: String,
    pub subnet_ids: Vec<Expr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for DbSubnetGroup {
    const TYPE: &'static str = "AWS::RDS::DBSubnetGroup";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbClusterParameterGroup {
    pub description: String,
    pub family: String,
    pub parameters: IndexMap<String, Expr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for DbClusterParameterGroup {
    const TYPE: &'static str = "AWS::RDS::DBClusterParameterGroup";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerlessV2Scaling {
    pub min_capacity: f64,
    pub max_capacity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_until_auto_pause: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MasterUserSecret {
    pub kms_key_id: Expr,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbCluster {
    /// Fixed, so that the log group RDS writes to (`/aws/rds/cluster/<id>/postgresql`) can
    /// be the stack's, with its retention and key, made before the cluster.
    #[serde(rename = "DBClusterIdentifier")]
    pub db_cluster_identifier: String,
    pub engine: &'static str,
    pub engine_version: String,
    pub database_name: String,
    pub master_username: String,
    /// RDS generates the admin password into Secrets Manager and rotates it.
    pub manage_master_user_password: bool,
    pub master_user_secret: MasterUserSecret,
    pub port: u16,
    pub storage_encrypted: bool,
    pub kms_key_id: Expr,
    #[serde(rename = "DBSubnetGroupName")]
    pub db_subnet_group_name: Expr,
    #[serde(rename = "DBClusterParameterGroupName")]
    pub db_cluster_parameter_group_name: Expr,
    pub vpc_security_group_ids: Vec<Expr>,
    pub backup_retention_period: u32,
    pub preferred_backup_window: String,
    pub preferred_maintenance_window: String,
    pub copy_tags_to_snapshot: bool,
    pub deletion_protection: bool,
    #[serde(rename = "EnableIAMDatabaseAuthentication")]
    pub enable_iam_database_authentication: bool,
    /// The RDS Data API: SQL over HTTPS with a Secrets Manager credential, for the console's
    /// query editor and `cargo xtask sql`, with no network path to the private cluster.
    pub enable_http_endpoint: bool,
    pub enable_cloudwatch_logs_exports: Vec<&'static str>,
    pub serverless_v2_scaling_configuration: ServerlessV2Scaling,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for DbCluster {
    const TYPE: &'static str = "AWS::RDS::DBCluster";
}

impl Handle<DbCluster> {
    pub fn cluster_identifier(&self) -> Expr {
        self.as_ref()
    }

    pub fn endpoint_address(&self) -> Expr {
        self.get_att("Endpoint.Address")
    }

    pub fn endpoint_port(&self) -> Expr {
        self.get_att("Endpoint.Port")
    }

    pub fn arn(&self) -> Expr {
        self.get_att("DBClusterArn")
    }

    /// The cluster's stable id (`cluster-...`), which IAM database authentication's
    /// `rds-db:connect` ARNs name.
    pub fn resource_id(&self) -> Expr {
        self.get_att("DBClusterResourceId")
    }

    pub fn master_user_secret_arn(&self) -> Expr {
        self.get_att("MasterUserSecret.SecretArn")
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbInstance {
    #[serde(rename = "DBClusterIdentifier")]
    pub db_cluster_identifier: Expr,
    #[serde(rename = "DBInstanceClass")]
    pub db_instance_class: &'static str,
    pub engine: &'static str,
    pub publicly_accessible: bool,
    pub auto_minor_version_upgrade: bool,
    pub enable_performance_insights: bool,
    #[serde(rename = "PerformanceInsightsKMSKeyId", skip_serializing_if = "Option::is_none")]
    pub performance_insights_kms_key_id: Option<Expr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring_role_arn: Option<Expr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for DbInstance {
    const TYPE: &'static str = "AWS::RDS::DBInstance";
}
