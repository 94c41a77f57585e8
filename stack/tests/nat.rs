//! How a new VPC reaches the internet in each `network.nat` mode, in the template; and the
//! on-demand instance's decision to stop, run from the real script the instance runs.

mod common;

use serde_json::{Value, json};
use std::process::Command;

fn doc(overrides: &[&str]) -> Value {
    common::synth("dev", overrides).template.to_json()
}

fn ids_of(doc: &Value, kind: &str) -> Vec<String> {
    doc["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == kind).map(|(id, _)| id.clone()).collect()
}

fn props<'a>(doc: &'a Value, id: &str) -> &'a Value {
    &doc["Resources"][id]["Properties"]
}

#[test]
fn gateway_mode_keeps_the_managed_nat() {
    let d = doc(&["network.nat=\"gateway\""]);
    assert_eq!(ids_of(&d, "AWS::EC2::NatGateway"), ["NetworkNatGatewayA"]);
    assert!(ids_of(&d, "AWS::EC2::Instance").is_empty());
    assert_eq!(props(&d, "NetworkPrivateDefaultRouteA")["NatGatewayId"], json!({"Ref": "NetworkNatGatewayA"}));
}

#[test]
fn a_nat_instance_forwards_for_the_vpc_alone_with_imdsv2_an_encrypted_volume_and_no_elastic_ip() {
    let d = doc(&[]);
    assert_eq!(ids_of(&d, "AWS::EC2::Instance"), ["NetworkNatInstanceA"]);
    assert!(ids_of(&d, "AWS::EC2::NatGateway").is_empty());
    assert!(ids_of(&d, "AWS::EC2::EIP").is_empty(), "a stopped instance holds no public address");
    for route in ["NetworkPrivateDefaultRouteA", "NetworkPrivateDefaultRouteB"] {
        assert_eq!(props(&d, route)["InstanceId"], json!({"Ref": "NetworkNatInstanceA"}), "{route}");
        assert!(props(&d, route).get("NatGatewayId").is_none());
    }
    let instance = props(&d, "NetworkNatInstanceA");
    assert_eq!(instance["SourceDestCheck"], false);
    assert_eq!(instance["InstanceType"], "t4g.nano");
    assert_eq!(instance["InstanceInitiatedShutdownBehavior"], "stop");
    assert!(instance.get("KeyName").is_none(), "no SSH key");
    assert_eq!(instance["ImageId"], json!({"Ref": "NetworkNatImage"}));
    let image = &d["Parameters"]["NetworkNatImage"];
    assert_eq!(image["Type"], "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>");
    assert_eq!(image["Default"], "/aws/service/ami-amazon-linux-latest/al2023-ami-minimal-kernel-default-arm64");
    let nic = &instance["NetworkInterfaces"][0];
    assert_eq!(nic["AssociatePublicIpAddress"], true);
    assert_eq!(nic["SubnetId"], json!({"Ref": "NetworkPublicSubnetA"}));
    assert_eq!(nic["GroupSet"], json!([{"Fn::GetAtt": ["NetworkNatSecurityGroup", "GroupId"]}]));

    let template = &props(&d, "NetworkNatLaunchTemplate")["LaunchTemplateData"];
    assert_eq!(template["MetadataOptions"]["HttpTokens"], "required", "IMDSv2 only");
    assert_eq!(template["BlockDeviceMappings"][0]["Ebs"]["Encrypted"], true);

    let group = props(&d, "NetworkNatSecurityGroup");
    assert_eq!(
        group["SecurityGroupIngress"],
        json!([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "CidrIp": {"Fn::GetAtt": ["Network", "CidrBlock"]},
                "Description": "HTTPS from the VPC's Lambdas, forwarded to the DAP API and AWS"}]),
        "nothing from the internet, no SSH"
    );

    // Its role tags this stack's instances with the ready tag alone, and asks whether a run
    // is under way.
    let statements = &props(&d, "NetworkNatRole")["Policies"][0]["PolicyDocument"]["Statement"];
    assert_eq!(statements[0]["Action"], json!(["ec2:CreateTags", "ec2:DeleteTags"]));
    assert_eq!(
        statements[0]["Condition"],
        json!({"StringEquals": {"aws:ResourceTag/cd2-aws:nat": {"Fn::Sub": "${AWS::StackName}"}},
               "ForAllValues:StringEquals": {"aws:TagKeys": "cd2-aws:nat-ready"}})
    );
    assert_eq!(statements[1]["Action"], json!(["states:ListExecutions"]));
    assert_eq!(
        statements[1]["Resource"],
        json!([{"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-Replication"}])
    );

    // The user data: the settings, then the script the test below runs.
    let user_data = instance["UserData"]["Fn::Base64"]["Fn::Join"][1].to_string();
    assert!(user_data.contains("IDLE_MINUTES=30") && user_data.contains("cd2-nat install"), "{user_data}");
    assert!(user_data.starts_with("[\"#cloud-boothook\\n"), "written again at every boot: {user_data:.80}");
    assert_eq!(instance["CreditSpecification"], json!({"CPUCredits": "standard"}));
    assert_eq!(
        d["Resources"]["NetworkNatInstanceA"]["DependsOn"],
        json!([
            "NetworkPublicDefaultRoute",
            "NetworkPublicSubnetARouteTableAssociation",
            "NetworkPublicSubnetBRouteTableAssociation"
        ]),
        "it boots with a way out"
    );
    assert!(user_data.contains("decide()"), "the script itself");
    let always_on = doc(&["network.nat=\"instance\""]);
    let user_data = props(&always_on, "NetworkNatInstanceA")["UserData"]["Fn::Base64"]["Fn::Join"][1].to_string();
    assert!(user_data.contains("IDLE_MINUTES=0"), "an always-on instance never stops itself");

    let two = doc(&["network.nat_gateways=2"]);
    assert_eq!(ids_of(&two, "AWS::EC2::Instance"), ["NetworkNatInstanceA", "NetworkNatInstanceB"]);
    assert_eq!(props(&two, "NetworkPrivateDefaultRouteB")["InstanceId"], json!({"Ref": "NetworkNatInstanceB"}));
}

/// A run starts its on-demand NAT instance and waits until it forwards, before anything
/// else; one that does not come up is the run's one alert, before any table.
#[test]
fn a_run_wakes_its_on_demand_nat_first() {
    let s = common::synth("dev", &[]);
    let asl = &s.state_machine;
    assert_eq!(asl["StartAt"], "WakeNat");
    let wake = &asl["States"]["WakeNat"];
    assert_eq!(wake["Type"], "Parallel");
    assert_eq!(wake["Next"], "ListTables");
    assert_eq!(wake["ResultPath"], Value::Null, "the run's input goes on to list_tables as it was");
    assert_eq!(wake["Catch"][0]["Next"], "NoResults", "summarized and alerted");
    let branch = &wake["Branches"][0]["States"];
    assert_eq!(branch["StartNat"]["Resource"], "arn:aws:states:::aws-sdk:ec2:startInstances");
    assert_eq!(branch["StartNat"]["Parameters"]["InstanceIds"], json!(["${NatInstanceA}"]));
    assert_eq!(branch["NatReady"]["Parameters"]["Filters"][0]["Name"], "tag:cd2-aws:nat-ready");
    assert_eq!(branch["NatNotUp"]["Error"], "NatNotReady");
    assert_eq!(
        branch["CountNatPoll"]["Next"], "StartNat",
        "started again at each look: one on its way down comes back"
    );
    assert_eq!(
        branch["IsNatUp"]["Choices"][0],
        json!({"Variable": "$.check.Reservations[0]", "IsPresent": true, "Next": "NatUp"})
    );
    assert!(branch["NatNotUp"]["Cause"].as_str().unwrap().contains("no table was attempted"));

    let d = s.template.to_json();
    let machine = props(&d, "Replication");
    assert_eq!(machine["DefinitionSubstitutions"]["NatInstanceA"], json!({"Ref": "NetworkNatInstanceA"}));
    let role = &props(&d, "ReplicationRole")["Policies"][0]["PolicyDocument"]["Statement"];
    let start = role.as_array().unwrap().iter().find(|s| s["Sid"] == "StartNat").unwrap();
    assert_eq!(start["Action"], json!(["ec2:StartInstances"]));
    assert_eq!(
        start["Resource"],
        json!([{"Fn::Sub": ["arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/${Id}", {"Id": {"Ref": "NetworkNatInstanceA"}}]}]),
        "this stack's NAT instance alone"
    );
    // An always-on NAT, or a gateway, needs no waking.
    for mode in ["instance", "gateway"] {
        let other = common::synth("dev", &[&format!("network.nat=\"{mode}\"")]);
        assert_eq!(other.state_machine["StartAt"], "ListTables", "{mode}");
    }
    // The NAT's role is EC2's to take, through its instance profile.
    let trust = &props(&d, "NetworkNatRole")["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(
        trust,
        &json!([{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}])
    );
    assert_eq!(props(&d, "NetworkNatInstanceProfile")["Roles"], json!([{"Ref": "NetworkNatRole"}]));
}

#[test]
fn an_instance_type_that_is_not_arm64_or_an_existing_vpc_with_a_nat_is_refused() {
    let err = common::config_error("dev", &["network.nat_instance_type=\"t3.nano\""]);
    assert!(err.contains("network.nat_instance_type") && err.contains("`t3.nano` is not an arm64"), "{err}");
    for ok in ["t4g.micro", "c7gn.medium", "m8g.large"] {
        common::config("dev", &[&format!("network.nat_instance_type=\"{ok}\"")]);
    }
    let mut existing = stack::app::envs::EXISTING_VPC_OVERRIDES.to_vec();
    existing.push("network.nat=\"instance\"");
    let err = common::config_error("dev", &existing);
    assert!(err.contains("network.nat") && err.contains("goes with mode = \"create\""), "{err}");
    let err = common::config_error("dev", &["network.nat_idle_minutes=5"]);
    assert!(err.contains("network.nat_idle_minutes"), "{err}");
}

/// `cd2-nat decide LAST_BYTES IDLE_SINCE BYTES NOW IDLE_MINUTES RUNNING`, as the instance's
/// timer runs it every minute.
fn decide(args: [i64; 6]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/nat/cd2-nat.sh");
    let out =
        Command::new("bash").arg(script).arg("decide").args(args.map(|a| a.to_string())).output().expect("bash runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_instance_stops_only_after_its_idle_minutes_with_nothing_forwarded_and_no_run() {
    // Traffic since the last tick: the idle clock starts again.
    assert_eq!(decide([100, 50, 200, 400, 30, 0]), "wait 400");
    // Nothing since, not yet 30 minutes.
    assert_eq!(decide([200, 50, 200, 50 + 29 * 60, 30, 0]), "wait 50");
    // Nothing for 30 minutes: stop.
    assert_eq!(decide([200, 50, 200, 50 + 30 * 60, 30, 0]), "stop");
    // A run under way (a table loading from S3, which does not pass the NAT) keeps it up.
    assert_eq!(decide([200, 50, 200, 50 + 90 * 60, 30, 1]), "wait 50");
    // The first tick after a boot starts the clock.
    assert_eq!(decide([0, 0, 0, 10, 30, 0]), "wait 10");
    // Always on.
    assert_eq!(decide([200, 50, 200, 999_999, 0, 0]), "wait 50");
}
