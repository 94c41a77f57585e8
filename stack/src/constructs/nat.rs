//! How a new VPC's private subnets reach the internet: NAT gateways, or small arm64 NAT
//! instances (CDK's `NatProvider.instanceV2`), which may stop themselves while no run needs
//! them, so that an idle replica pays for a few GB of disk rather than a gateway.
//!
//! An instance: Amazon Linux 2023 minimal (resolved at deploy from AWS's public SSM
//! parameter), forwarding and masquerading set up at every boot by `assets/nat/cd2-nat.sh`,
//! source/destination check off, IMDSv2 only, no SSH, no key pair and no inbound rule from
//! the internet, an encrypted root volume, security updates at boot. Its public address is
//! assigned while it runs and released while it is stopped: no Elastic IP. On demand, it
//! stops after `idle_minutes` with nothing forwarded and no run of the state machine under
//! way, and says it forwards with its ready tag ([`READY_TAG`]), which the workflow waits for.

use crate::intrinsics::Expr;
use crate::resources::Tag;
use crate::resources::ec2::{
    BlockDeviceMapping, CreditSpecification, Ebs, Instance, InstanceNetworkInterface, LaunchTemplate,
    LaunchTemplateData, LaunchTemplateRef, MetadataOptions, SecurityGroup, SecurityGroupRule, Subnet,
};
use crate::resources::iam::{InlinePolicy, InstanceProfile, PolicyDocument, Principal, Role, Statement};
use crate::template::{Attributes, Handle, Parameter, Template};

/// `network.nat` in an environment file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatMode {
    /// NAT gateways: managed, always on, about $36.50 a month each with its address.
    #[default]
    Gateway,
    /// NAT instances, always on.
    Instance,
    /// NAT instances that run only while a run (or a deploy) needs them.
    InstanceOnDemand,
}

impl NatMode {
    pub fn is_instance(self) -> bool {
        self != NatMode::Gateway
    }
}

/// The instances' settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatInstanceProps {
    /// An arm64 (Graviton) type, e.g. `t4g.nano`.
    pub instance_type: String,
    /// On demand: minutes with nothing forwarded and no run before it stops; 0: never.
    pub idle_minutes: u32,
}

/// The tag an instance sets once it forwards and removes before it stops itself.
pub const READY_TAG: &str = "cd2-aws:nat-ready";
/// The tag naming the stack an instance belongs to, which its own role may tag by.
pub const STACK_TAG: &str = "cd2-aws:nat";
/// AWS's public parameter naming the latest Amazon Linux 2023 minimal image for arm64.
pub const IMAGE_PARAMETER: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-minimal-kernel-default-arm64";
/// The logical id of the `i`th instance of the NATs made with `id`.
pub fn instance_id(id: &str, i: usize) -> String {
    format!("{id}Instance{}", char::from(b'A' + u8::try_from(i).expect("two NATs at most")))
}

/// The boot script, run from the user data.
const SCRIPT: &str = include_str!("../../../assets/nat/cd2-nat.sh");

/// The instances made, one per public subnet given.
#[derive(Clone, Debug)]
pub struct NatInstances {
    pub instances: Vec<Handle<Instance>>,
}

impl NatInstances {
    /// `count` instances in the first `count` of `public` subnets, forwarding what comes from
    /// `vpc_cidr`, made once `public_routes` (their way out) exist; `state_machine_arn` is
    /// the run whose being under way keeps them up.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        t: &mut Template,
        id: &str,
        props: &NatInstanceProps,
        vpc_id: &Expr,
        vpc_cidr: &Expr,
        public: &[Handle<Subnet>],
        count: usize,
        public_routes: &[crate::intrinsics::LogicalId],
        state_machine_arn: &Expr,
    ) -> Self {
        let name = |suffix: &str| Tag::name(Expr::sub(format!("${{AWS::StackName}}-{suffix}")));
        let image = t.parameter(
            &format!("{id}Image"),
            Parameter {
                kind: "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>".into(),
                description: Some("The NAT instances' image: AWS's latest Amazon Linux 2023 minimal for arm64".into()),
                ..Parameter::default()
            }
            .with_default(IMAGE_PARAMETER),
        );
        let group = t.add(
            &format!("{id}SecurityGroup"),
            SecurityGroup {
                group_description: "NAT instances: HTTPS from the VPC in, HTTPS out; nothing from the internet".into(),
                vpc_id: vpc_id.clone(),
                security_group_ingress: vec![SecurityGroupRule::https(
                    vpc_cidr.clone(),
                    "HTTPS from the VPC's Lambdas, forwarded to the DAP API and AWS",
                )],
                security_group_egress: vec![SecurityGroupRule::https(
                    "0.0.0.0/0",
                    "HTTPS out: what it forwards, its own security updates and AWS APIs",
                )],
                tags: name("nat"),
            },
        );
        let instances_arn = Expr::sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*");
        let role = t.add(
            &format!("{id}Role"),
            Role {
                description: Some(
                    "NAT instances: set and remove their own ready tag, see whether a run is under way".into(),
                ),
                // EC2 sets no source account for an instance's role; the instance profile is
                // what hands the role to this stack's instances alone.
                assume_role_policy_document: PolicyDocument::new(vec![
                    Statement::allow(&["sts:AssumeRole"], vec![])
                        .for_principal(Principal::Service(vec![Expr::str("ec2.amazonaws.com")])),
                ]),
                managed_policy_arns: vec![],
                policies: vec![InlinePolicy {
                    policy_name: "nat".into(),
                    policy_document: PolicyDocument::new(vec![
                        Statement::allow(&["ec2:CreateTags", "ec2:DeleteTags"], vec![instances_arn])
                            .with_condition(
                                "StringEquals",
                                &format!("aws:ResourceTag/{STACK_TAG}"),
                                Expr::sub("${AWS::StackName}"),
                            )
                            .with_condition("ForAllValues:StringEquals", "aws:TagKeys", Expr::str(READY_TAG)),
                        Statement::allow(&["states:ListExecutions"], vec![state_machine_arn.clone()]),
                    ]),
                }],
                tags: vec![],
            },
        );
        let profile = t.add(&format!("{id}InstanceProfile"), InstanceProfile { roles: vec![role.as_ref()] });
        let template = t.add(
            &format!("{id}LaunchTemplate"),
            LaunchTemplate {
                launch_template_data: LaunchTemplateData {
                    metadata_options: MetadataOptions {
                        http_tokens: "required",
                        http_endpoint: "enabled",
                        http_put_response_hop_limit: 1,
                    },
                    block_device_mappings: vec![BlockDeviceMapping {
                        device_name: "/dev/xvda".into(),
                        ebs: Ebs { encrypted: true, volume_type: "gp3", delete_on_termination: true },
                    }],
                },
            },
        );
        let settings = Expr::join(
            "",
            [
                // A boothook runs at every boot: what the stack changes reaches an instance
                // CloudFormation only stopped and started.
                Expr::str("#cloud-boothook\n#!/bin/bash\nset -euo pipefail\ncat >/etc/cd2-nat.conf <<'CONF'\nREGION="),
                Expr::sub("${AWS::Region}"),
                Expr::str("\nSTATE_MACHINE_ARN="),
                state_machine_arn.clone(),
                Expr::str(format!(
                    "\nIDLE_MINUTES={}\nREADY_TAG={READY_TAG}\nCONF\ncat >/usr/local/sbin/cd2-nat <<'SCRIPT'\n{SCRIPT}SCRIPT\nchmod 755 /usr/local/sbin/cd2-nat\n/usr/local/sbin/cd2-nat install\n",
                    props.idle_minutes
                )),
            ],
        );
        let instances = public
            .iter()
            .take(count)
            .enumerate()
            .map(|(i, subnet)| {
                let letter = char::from(b'A' + i as u8);
                let mut tags = name(&format!("nat-{}", letter.to_ascii_lowercase()));
                tags.push(Tag::new(STACK_TAG, Expr::sub("${AWS::StackName}")));
                t.add_with(
                    &instance_id(id, i),
                    Instance {
                        launch_template: LaunchTemplateRef {
                            launch_template_id: template.as_ref(),
                            version: template.latest_version_number(),
                        },
                        image_id: image.as_ref(),
                        instance_type: props.instance_type.clone(),
                        iam_instance_profile: profile.as_ref(),
                        source_dest_check: false,
                        instance_initiated_shutdown_behavior: "stop",
                        monitoring: false,
                        ebs_optimized: true,
                        // No surcharge for bursting: a NAT's load is the runs' HTTPS calls.
                        credit_specification: CreditSpecification { cpu_credits: "standard" },
                        network_interfaces: vec![InstanceNetworkInterface {
                            device_index: "0",
                            subnet_id: subnet.as_ref(),
                            group_set: vec![group.group_id()],
                            associate_public_ip_address: true,
                            delete_on_termination: true,
                        }],
                        user_data: Expr::base64(settings.clone()),
                        tags,
                    },
                    Attributes::default()
                        .depends_on_all(public_routes.iter().cloned())
                        .skip_check(
                            "CKV_AWS_88",
                            "a NAT instance needs a public address; its security group takes nothing from the internet, and the address is released while it is stopped",
                        ),
                )
            })
            .collect();
        Self { instances }
    }
}
