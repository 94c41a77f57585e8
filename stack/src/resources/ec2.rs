//! `AWS::EC2::*`: the network.

use super::{Resource, Tag};
use crate::intrinsics::Expr;
use crate::template::Handle;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Vpc {
    pub cidr_block: Expr,
    pub enable_dns_hostnames: bool,
    pub enable_dns_support: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Vpc {
    const TYPE: &'static str = "AWS::EC2::VPC";
}

impl Handle<Vpc> {
    pub fn vpc_id(&self) -> Expr {
        self.as_ref()
    }

    pub fn cidr_block(&self) -> Expr {
        self.get_att("CidrBlock")
    }

    pub fn default_security_group(&self) -> Expr {
        self.get_att("DefaultSecurityGroup")
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subnet {
    pub vpc_id: Expr,
    pub cidr_block: Expr,
    /// The zone by name (`us-east-1a`, which names a different zone in each account) or,
    /// when chosen, by id (`use1-az1`, the same zone everywhere).
    #[serde(flatten)]
    pub zone: Zone,
    pub map_public_ip_on_launch: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// Where a subnet is: `AvailabilityZone` or `AvailabilityZoneId`.
#[derive(Clone, Debug, Serialize)]
pub enum Zone {
    #[serde(rename = "AvailabilityZone")]
    Name(Expr),
    #[serde(rename = "AvailabilityZoneId")]
    Id(Expr),
}

impl Resource for Subnet {
    const TYPE: &'static str = "AWS::EC2::Subnet";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InternetGateway {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for InternetGateway {
    const TYPE: &'static str = "AWS::EC2::InternetGateway";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcGatewayAttachment {
    pub vpc_id: Expr,
    pub internet_gateway_id: Expr,
}

impl Resource for VpcGatewayAttachment {
    const TYPE: &'static str = "AWS::EC2::VPCGatewayAttachment";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Eip {
    pub domain: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Eip {
    const TYPE: &'static str = "AWS::EC2::EIP";
}

impl Handle<Eip> {
    pub fn allocation_id(&self) -> Expr {
        self.get_att("AllocationId")
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NatGateway {
    pub allocation_id: Expr,
    pub subnet_id: Expr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for NatGateway {
    const TYPE: &'static str = "AWS::EC2::NatGateway";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RouteTable {
    pub vpc_id: Expr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for RouteTable {
    const TYPE: &'static str = "AWS::EC2::RouteTable";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Route {
    pub route_table_id: Expr,
    pub destination_cidr_block: Expr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<Expr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<Expr>,
    /// A NAT instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Expr>,
}

impl Resource for Route {
    const TYPE: &'static str = "AWS::EC2::Route";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubnetRouteTableAssociation {
    pub route_table_id: Expr,
    pub subnet_id: Expr,
}

impl Resource for SubnetRouteTableAssociation {
    const TYPE: &'static str = "AWS::EC2::SubnetRouteTableAssociation";
}

/// `AWS::EC2::VPCEndpoint`: a gateway endpoint, so S3 traffic skips the NAT.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcEndpoint {
    pub vpc_id: Expr,
    pub service_name: Expr,
    pub vpc_endpoint_type: &'static str,
    pub route_table_ids: Vec<Expr>,
}

impl Resource for VpcEndpoint {
    const TYPE: &'static str = "AWS::EC2::VPCEndpoint";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlowLog {
    pub resource_id: Expr,
    pub resource_type: &'static str,
    pub traffic_type: &'static str,
    pub log_destination_type: &'static str,
    pub log_group_name: Expr,
    pub deliver_logs_permission_arn: Expr,
}

impl Resource for FlowLog {
    const TYPE: &'static str = "AWS::EC2::FlowLog";
}

/// One rule of a security group, in or out. Exactly one of the peer fields is set.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupRule {
    pub ip_protocol: &'static str,
    pub from_port: i64,
    pub to_port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr_ip: Option<Expr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_security_group_id: Option<Expr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_security_group_id: Option<Expr>,
    pub description: String,
}

impl SecurityGroupRule {
    /// HTTPS (TCP 443) from or to the addresses of `cidr`.
    pub fn https(cidr: impl Into<Expr>, description: &str) -> Self {
        Self {
            ip_protocol: "tcp",
            from_port: 443,
            to_port: 443,
            cidr_ip: Some(cidr.into()),
            source_security_group_id: None,
            destination_security_group_id: None,
            description: description.into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroup {
    pub group_description: String,
    pub vpc_id: Expr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_group_ingress: Vec<SecurityGroupRule>,
    /// Always written: an empty list would leave AWS's default allow-all egress in place.
    pub security_group_egress: Vec<SecurityGroupRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for SecurityGroup {
    const TYPE: &'static str = "AWS::EC2::SecurityGroup";
}

impl Handle<SecurityGroup> {
    pub fn group_id(&self) -> Expr {
        self.get_att("GroupId")
    }
}

/// A rule added to an existing group; used where two groups point at each other, which
/// inline rules cannot express without a dependency cycle.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupIngress {
    pub group_id: Expr,
    #[serde(flatten)]
    pub rule: SecurityGroupRule,
}

impl Resource for SecurityGroupIngress {
    const TYPE: &'static str = "AWS::EC2::SecurityGroupIngress";
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupEgress {
    pub group_id: Expr,
    #[serde(flatten)]
    pub rule: SecurityGroupRule,
}

impl Resource for SecurityGroupEgress {
    const TYPE: &'static str = "AWS::EC2::SecurityGroupEgress";
}

/// What an instance starts from: only the settings this stack holds to (IMDSv2, the
/// encrypted root volume), so they cannot be forgotten on the instance itself.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchTemplate {
    pub launch_template_data: LaunchTemplateData,
}

impl Resource for LaunchTemplate {
    const TYPE: &'static str = "AWS::EC2::LaunchTemplate";
}

impl Handle<LaunchTemplate> {
    pub fn latest_version_number(&self) -> Expr {
        self.get_att("LatestVersionNumber")
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchTemplateData {
    pub metadata_options: MetadataOptions,
    pub block_device_mappings: Vec<BlockDeviceMapping>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetadataOptions {
    /// `required`: IMDSv2 only.
    pub http_tokens: &'static str,
    pub http_endpoint: &'static str,
    pub http_put_response_hop_limit: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockDeviceMapping {
    pub device_name: String,
    pub ebs: Ebs,
}

/// The volume's size is left to the image's own.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ebs {
    pub encrypted: bool,
    pub volume_type: &'static str,
    pub delete_on_termination: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchTemplateRef {
    pub launch_template_id: Expr,
    pub version: Expr,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    pub launch_template: LaunchTemplateRef,
    pub image_id: Expr,
    pub instance_type: String,
    pub iam_instance_profile: Expr,
    /// A NAT forwards what is addressed to others.
    pub source_dest_check: bool,
    /// `stop`: shutting down from inside stops the instance (on demand, it stops itself).
    pub instance_initiated_shutdown_behavior: &'static str,
    pub monitoring: bool,
    pub ebs_optimized: bool,
    pub credit_specification: CreditSpecification,
    pub network_interfaces: Vec<InstanceNetworkInterface>,
    pub user_data: Expr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl Resource for Instance {
    const TYPE: &'static str = "AWS::EC2::Instance";
}

impl Handle<Instance> {
    /// `Ref` gives the instance id.
    pub fn instance_id(&self) -> Expr {
        self.as_ref()
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceNetworkInterface {
    pub device_index: &'static str,
    pub subnet_id: Expr,
    pub group_set: Vec<Expr>,
    /// A public address while running, released while stopped: no Elastic IP to pay for.
    pub associate_public_ip_address: bool,
    pub delete_on_termination: bool,
}

/// A burstable instance's CPU credits: `standard` never bills past its baseline.
#[derive(Clone, Debug, Serialize)]
pub struct CreditSpecification {
    #[serde(rename = "CPUCredits")]
    pub cpu_credits: &'static str,
}
