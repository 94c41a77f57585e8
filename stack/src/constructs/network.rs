//! The VPC the database and Lambdas live in: a new one over two availability zones, or the
//! operator's own (many universities must use a VPC their network team runs).

use super::nat::{NatInstanceProps, NatInstances, NatMode};
use crate::intrinsics::{Expr, LogicalId};
use crate::resources::Tag;
use crate::resources::ec2::{
    Eip, InternetGateway, NatGateway, Route, RouteTable, SecurityGroup, SecurityGroupEgress, SecurityGroupIngress,
    SecurityGroupRule, Subnet, SubnetRouteTableAssociation, Vpc, VpcEndpoint, VpcGatewayAttachment, Zone,
};
use crate::resources::iam::Statement;
use crate::template::{Attributes, Handle, Template};

/// The id the NATs of the network made with `id` are made with.
pub fn nat_id(id: &str) -> String {
    format!("{id}Nat")
}

/// What a private subnet's default route goes to.
enum NatTarget {
    Gateway(Handle<NatGateway>),
    Instance(Handle<crate::resources::ec2::Instance>),
}

/// How to get a network.
#[derive(Clone, Debug)]
pub enum NetworkProps {
    /// A VPC with public and private subnets in two AZs and `nat_gateways` NAT gateways
    /// (1 saves about $33 a month over 2; the NAT's AZ is then a single point of egress).
    /// The zones are the two `zone_ids` when given (a zone where Lambda cannot run can be
    /// avoided), else the region's first two zone names.
    ///
    /// `nat`: gateways, or instances ([`super::nat`]) with `nat_instance`'s settings.
    Create { cidr: String, nat_gateways: u8, zone_ids: Vec<String>, nat: NatMode, nat_instance: NatInstanceProps },
    /// Existing private subnets (two AZs at least) that already reach the internet.
    Existing { vpc_id: String, private_subnet_ids: Vec<String> },
}

/// What the rest of the stack needs from the network.
#[derive(Clone, Debug)]
pub struct Network {
    pub vpc_id: Expr,
    pub private_subnet_ids: Vec<Expr>,
    /// What the private subnets need to reach the internet and S3 (the default routes
    /// through the NATs, the S3 endpoint), for resources that must come after it and go
    /// before it; empty for an existing VPC, whose routes are not the stack's.
    pub outbound: Vec<LogicalId>,
    /// NAT instances that run only when needed: what a run (or a deploy) must start first.
    pub on_demand_nats: Vec<Expr>,
}

const AZS: u32 = 2;

/// The four subnets' blocks of the VPC block `cidr` (`10.42.0.0/16`), in order: public a,
/// public b, private a, private b.
///
/// Computed at synth, as CDK's `Vpc` does, rather than with `Fn::Cidr`: the template shows
/// them, and they are the blocks `Fn::Cidr(vpc, 4, 8)` gave (/24s) for a /16 to a /22; a /23
/// or /24, where four /24s do not fit, is split into four equal parts. Errors say why the
/// block is not one (the configuration's check shows them).
pub fn subnet_blocks(cidr: &str) -> Result<[String; 4], String> {
    let (ip, bits) = cidr.split_once('/').ok_or("expected an address and a prefix length, like 10.42.0.0/16")?;
    let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
    let bits: u32 = bits.parse().map_err(|_| format!("`/{bits}` is not a prefix length"))?;
    if !(16..=24).contains(&bits) {
        return Err(format!("/{bits} is outside /16 to /24, the sizes a VPC of this stack may have"));
    }
    let base = u32::from(ip);
    let network = base & (u32::MAX << (32 - bits));
    if network != base {
        return Err(format!(
            "{ip} is not the first address of its /{bits}: did you mean {}/{bits}?",
            std::net::Ipv4Addr::from(network)
        ));
    }
    let host_bits = (32 - bits - 2).min(8);
    Ok(std::array::from_fn(|i| {
        format!("{}/{}", std::net::Ipv4Addr::from(base + ((i as u32) << host_bits)), 32 - host_bits)
    }))
}

impl Network {
    /// `run_state_machine`: the state machine whose runs keep on-demand NAT instances up.
    pub fn new(t: &mut Template, id: &str, props: &NetworkProps, run_state_machine: &Expr) -> Self {
        match props {
            NetworkProps::Existing { vpc_id, private_subnet_ids } => Self {
                vpc_id: Expr::str(vpc_id),
                private_subnet_ids: private_subnet_ids.iter().map(Expr::str).collect(),
                outbound: Vec::new(),
                on_demand_nats: Vec::new(),
            },
            NetworkProps::Create { cidr, nat_gateways, zone_ids, nat, nat_instance } => {
                Self::create(t, id, cidr, *nat_gateways, zone_ids, (*nat, nat_instance), run_state_machine)
            }
        }
    }

    fn create(
        t: &mut Template,
        id: &str,
        cidr: &str,
        nat_gateways: u8,
        zone_ids: &[String],
        (nat, nat_instance): (NatMode, &NatInstanceProps),
        run_state_machine: &Expr,
    ) -> Self {
        let name = |suffix: &str| Tag::name(Expr::sub(format!("${{AWS::StackName}}-{suffix}")));
        let vpc = t.add(
            id,
            Vpc { cidr_block: cidr.into(), enable_dns_hostnames: true, enable_dns_support: true, tags: name("vpc") },
        );
        let blocks = subnet_blocks(cidr).unwrap_or_else(|why| panic!("network cidr `{cidr}`: {why}"));
        let block = |i: u32| Expr::str(&blocks[i as usize]);
        let az = |i: u32| match zone_ids.get(i as usize) {
            Some(zone) => Zone::Id(Expr::str(zone)),
            None => Zone::Name(Expr::select(i, Expr::azs())),
        };

        let igw = t.add(&format!("{id}InternetGateway"), InternetGateway { tags: name("igw") });
        let attachment = t.add(
            &format!("{id}GatewayAttachment"),
            VpcGatewayAttachment { vpc_id: vpc.vpc_id(), internet_gateway_id: igw.as_ref() },
        );
        let public_rt =
            t.add(&format!("{id}PublicRouteTable"), RouteTable { vpc_id: vpc.vpc_id(), tags: name("public") });
        let public_route = t.add_with(
            &format!("{id}PublicDefaultRoute"),
            Route {
                route_table_id: public_rt.as_ref(),
                destination_cidr_block: "0.0.0.0/0".into(),
                gateway_id: Some(igw.as_ref()),
                nat_gateway_id: None,
                instance_id: None,
            },
            Attributes::default().depends_on(&attachment),
        );

        // What a NAT instance needs before it boots: its way out.
        let mut public_routes = vec![public_route.id().clone()];
        let mut public = Vec::new();
        let mut private = Vec::new();
        for i in 0..AZS {
            let letter = char::from(b'A' + i as u8);
            let subnet = |t: &mut Template, kind: &str, index: u32, public: bool| {
                t.add(
                    &format!("{id}{kind}Subnet{letter}"),
                    Subnet {
                        vpc_id: vpc.vpc_id(),
                        cidr_block: block(index),
                        zone: az(i),
                        map_public_ip_on_launch: false,
                        tags: {
                            let mut tags = name(&format!("{}-{}", kind.to_lowercase(), letter.to_ascii_lowercase()));
                            tags.push(Tag::new("aws-cdk:subnet-type", if public { "Public" } else { "Private" }));
                            tags
                        },
                    },
                )
            };
            let p = subnet(t, "Public", i, true);
            let association = t.add(
                &format!("{id}PublicSubnet{letter}RouteTableAssociation"),
                SubnetRouteTableAssociation { route_table_id: public_rt.as_ref(), subnet_id: p.as_ref() },
            );
            public_routes.push(association.id().clone());
            public.push(p);
            private.push(subnet(t, "Private", AZS + i, false));
        }

        let count = u32::from(nat_gateways.clamp(1, AZS as u8));
        let gateways = |t: &mut Template| -> Vec<NatTarget> {
            (0..count)
                .map(|i| {
                    let letter = char::from(b'A' + i as u8);
                    let tag = name(&format!("nat-{}", letter.to_ascii_lowercase()));
                    let eip = t.add_with(
                        &format!("{id}NatEip{letter}"),
                        Eip { domain: "vpc", tags: tag.clone() },
                        Attributes::default().depends_on(&attachment),
                    );
                    NatTarget::Gateway(t.add(
                        &format!("{id}NatGateway{letter}"),
                        NatGateway {
                            allocation_id: eip.allocation_id(),
                            subnet_id: public[i as usize].as_ref(),
                            tags: tag,
                        },
                    ))
                })
                .collect()
        };
        let (nats, on_demand_nats) = if nat.is_instance() {
            let mut props = nat_instance.clone();
            if nat == NatMode::Instance {
                props.idle_minutes = 0;
            }
            let made = NatInstances::new(
                t,
                &nat_id(id),
                &props,
                &vpc.vpc_id(),
                &vpc.cidr_block(),
                &public,
                count as usize,
                &public_routes,
                run_state_machine,
            );
            let on_demand = if nat == NatMode::InstanceOnDemand {
                made.instances.iter().map(Handle::instance_id).collect()
            } else {
                vec![]
            };
            (made.instances.into_iter().map(NatTarget::Instance).collect::<Vec<_>>(), on_demand)
        } else {
            (gateways(t), vec![])
        };
        let mut private_tables = Vec::new();
        let mut outbound = Vec::new();
        for (i, subnet) in private.iter().enumerate() {
            let letter = char::from(b'A' + i as u8);
            // With fewer NATs than AZs, the remaining AZs route through the last NAT.
            let nat = &nats[i.min(nats.len() - 1)];
            let rt = t.add(
                &format!("{id}PrivateRouteTable{letter}"),
                RouteTable { vpc_id: vpc.vpc_id(), tags: name(&format!("private-{}", letter.to_ascii_lowercase())) },
            );
            let route = t.add(
                &format!("{id}PrivateDefaultRoute{letter}"),
                Route {
                    route_table_id: rt.as_ref(),
                    destination_cidr_block: "0.0.0.0/0".into(),
                    gateway_id: None,
                    nat_gateway_id: match nat {
                        NatTarget::Gateway(g) => Some(g.as_ref()),
                        NatTarget::Instance(_) => None,
                    },
                    instance_id: match nat {
                        NatTarget::Instance(i) => Some(i.instance_id()),
                        NatTarget::Gateway(_) => None,
                    },
                },
            );
            outbound.push(route.id().clone());
            t.add(
                &format!("{id}PrivateSubnet{letter}RouteTableAssociation"),
                SubnetRouteTableAssociation { route_table_id: rt.as_ref(), subnet_id: subnet.as_ref() },
            );
            private_tables.push(rt);
        }
        // Snapshot files come from S3; a gateway endpoint is free and keeps same-region
        // downloads off the NAT's per-GB charge.
        let endpoint = t.add(
            &format!("{id}S3Endpoint"),
            VpcEndpoint {
                vpc_id: vpc.vpc_id(),
                service_name: Expr::sub("com.amazonaws.${AWS::Region}.s3"),
                vpc_endpoint_type: "Gateway",
                route_table_ids: private_tables.iter().map(Handle::as_ref).collect(),
            },
        );
        outbound.push(endpoint.id().clone());
        Self {
            vpc_id: vpc.vpc_id(),
            private_subnet_ids: private.iter().map(Handle::as_ref).collect(),
            outbound,
            on_demand_nats,
        }
    }

    /// Lets `grantee` (the workflow) start the on-demand NAT instances and see whether they
    /// forward. DescribeInstances has no resource-level permission: AWS documents `*`.
    pub fn grant_start_nats(&self, grantee: &mut dyn super::grants::Grantee) {
        if self.on_demand_nats.is_empty() {
            return;
        }
        let arns = self
            .on_demand_nats
            .iter()
            .map(|id| {
                Expr::sub_with(
                    "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/${Id}",
                    [("Id", id.clone())],
                )
            })
            .collect();
        grantee.add_to_policy(Statement::allow(&["ec2:StartInstances"], arns).with_sid("StartNat"));
        grantee.add_to_policy(Statement::allow(&["ec2:DescribeInstances"], vec![Expr::str("*")]).with_sid("WatchNat"));
    }

    /// A security group that allows nothing until rules are added (AWS's default allows
    /// all egress; the placeholder rule below is how CDK closes it too).
    pub fn security_group(&self, t: &mut Template, id: &str, description: &str) -> Handle<SecurityGroup> {
        t.add(
            id,
            SecurityGroup {
                group_description: description.into(),
                vpc_id: self.vpc_id.clone(),
                security_group_ingress: vec![],
                security_group_egress: vec![SecurityGroupRule {
                    ip_protocol: "icmp",
                    from_port: 252,
                    to_port: 86,
                    cidr_ip: Some("255.255.255.255/32".into()),
                    source_security_group_id: None,
                    destination_security_group_id: None,
                    description: "Disallow all traffic".into(),
                }],
                tags: Tag::name(Expr::sub(format!("${{AWS::StackName}}-{}", id.to_lowercase()))),
            },
        )
    }
}

/// A security group that rules can name: one of this stack's, or an existing one by id
/// (CDK's `SecurityGroup.fromSecurityGroupId`).
#[derive(Clone, Debug)]
pub struct GroupRef {
    /// Names the rules made for it.
    name: String,
    group_id: Expr,
}

impl GroupRef {
    /// The group `group_id`, outside the stack; `name` names the rules added to it.
    pub fn imported(name: &str, group_id: &str) -> Self {
        Self { name: name.to_owned(), group_id: Expr::str(group_id) }
    }

    pub fn group_id(&self) -> Expr {
        self.group_id.clone()
    }
}

impl From<&Handle<SecurityGroup>> for GroupRef {
    fn from(group: &Handle<SecurityGroup>) -> Self {
        Self { name: group.id().to_string(), group_id: group.group_id() }
    }
}

/// Lets `from` open TCP connections to `to` on `port`: an egress rule on one side and an
/// ingress rule on the other, as separate resources so the two groups can refer to each
/// other without a cycle (and so a group outside the stack can get its rule). Answers the
/// two rules' ids.
pub fn allow_tcp(
    t: &mut Template,
    from: &Handle<SecurityGroup>,
    to: &GroupRef,
    port: u16,
    description: &str,
) -> [LogicalId; 2] {
    let rule = |peer_in: Option<Expr>, peer_out: Option<Expr>| SecurityGroupRule {
        ip_protocol: "tcp",
        from_port: port.into(),
        to_port: port.into(),
        cidr_ip: None,
        source_security_group_id: peer_in,
        destination_security_group_id: peer_out,
        description: description.into(),
    };
    let egress = t.add(
        &format!("{}To{}Egress{port}", from.id(), to.name),
        SecurityGroupEgress { group_id: from.group_id(), rule: rule(None, Some(to.group_id())) },
    );
    let ingress = t.add(
        &format!("{}From{}Ingress{port}", to.name, from.id()),
        SecurityGroupIngress { group_id: to.group_id(), rule: rule(Some(from.group_id()), None) },
    );
    [egress.id().clone(), ingress.id().clone()]
}

/// Lets `from` reach HTTPS anywhere: the DAP API, its download URLs and AWS APIs.
/// Answers the rule's id.
pub fn allow_https_out(t: &mut Template, from: &Handle<SecurityGroup>) -> LogicalId {
    let rule = t.add(
        &format!("{}HttpsEgress", from.id()),
        SecurityGroupEgress {
            group_id: from.group_id(),
            rule: SecurityGroupRule::https("0.0.0.0/0", "HTTPS to the DAP API, its downloads and AWS APIs"),
        },
    );
    rule.id().clone()
}
