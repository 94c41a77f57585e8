//! The constructs' secure defaults and wiring, checked on the synthesized app stack.

mod common;

use serde_json::{Value, json};
use stack::app::Function;

fn doc(env: &str, overrides: &[&str]) -> Value {
    common::synth(env, overrides).template.to_json()
}

fn of_type<'a>(doc: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    doc["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == kind).collect()
}

fn props<'a>(doc: &'a Value, id: &str) -> &'a Value {
    &doc["Resources"][id]["Properties"]
}

#[test]
fn network_spans_two_azs_with_the_configured_nat_count() {
    let d = doc("dev", &["network.nat=\"gateway\""]);
    assert_eq!(of_type(&d, "AWS::EC2::VPC").len(), 1);
    assert_eq!(of_type(&d, "AWS::EC2::Subnet").len(), 4);
    assert_eq!(of_type(&d, "AWS::EC2::NatGateway").len(), 1);
    let az = |id: &str| props(&d, id)["AvailabilityZone"].clone();
    assert_ne!(az("NetworkPrivateSubnetA"), az("NetworkPrivateSubnetB"));
    for id in ["NetworkPrivateSubnetA", "NetworkPrivateSubnetB"] {
        assert_eq!(props(&d, id)["MapPublicIpOnLaunch"], false);
    }
    // Both private route tables reach the internet through the one NAT.
    for letter in ["A", "B"] {
        assert_eq!(
            props(&d, &format!("NetworkPrivateDefaultRoute{letter}"))["NatGatewayId"],
            json!({"Ref": "NetworkNatGatewayA"})
        );
    }
    let prod = doc("prod", &[]);
    assert_eq!(of_type(&prod, "AWS::EC2::NatGateway").len(), 2);
    assert_eq!(props(&prod, "NetworkPrivateDefaultRouteB")["NatGatewayId"], json!({"Ref": "NetworkNatGatewayB"}));

    // Zones chosen by id (the same zones in every account; a zone without Lambda avoided).
    let chosen = doc("dev", &["network.availability_zone_ids=[\"use1-az1\", \"use1-az4\"]"]);
    for (subnet, zone) in
        [("PublicSubnetA", "use1-az1"), ("PrivateSubnetA", "use1-az1"), ("PrivateSubnetB", "use1-az4")]
    {
        let p = props(&chosen, &format!("Network{subnet}"));
        assert_eq!(p["AvailabilityZoneId"], zone, "{subnet}");
        assert!(p.get("AvailabilityZone").is_none(), "{subnet}: by id, not by name");
    }
}

#[test]
fn bring_your_own_vpc_creates_no_network_and_uses_its_subnets() {
    let d = doc("dev", &stack::app::envs::EXISTING_VPC_OVERRIDES);
    for kind in ["AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::NatGateway", "AWS::EC2::InternetGateway"] {
        assert!(of_type(&d, kind).is_empty(), "{kind} should not be created");
    }
    let subnets = json!(["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]);
    assert_eq!(props(&d, "DatabaseSubnetGroup")["SubnetIds"], subnets);
    assert_eq!(props(&d, "SyncTable")["VpcConfig"]["SubnetIds"], subnets);
    assert_eq!(props(&d, "DatabaseSecurityGroup")["VpcId"], "vpc-0123456789abcdef0");
}

#[test]
fn the_database_accepts_postgres_only_from_the_functions_group() {
    let d = doc("dev", &[]);
    let ingress = of_type(&d, "AWS::EC2::SecurityGroupIngress");
    assert_eq!(ingress.len(), 1, "exactly one way in");
    let rule = &ingress[0].1["Properties"];
    assert_eq!(rule["GroupId"], json!({"Fn::GetAtt": ["DatabaseSecurityGroup", "GroupId"]}));
    assert_eq!(rule["SourceSecurityGroupId"], json!({"Fn::GetAtt": ["FunctionsSecurityGroup", "GroupId"]}));
    assert_eq!((rule["FromPort"].clone(), rule["ToPort"].clone()), (json!(5432), json!(5432)));
    // The NAT instance's group (HTTPS from the VPC, HTTPS out) is tests/nat.rs's.
    for (id, sg) in
        of_type(&d, "AWS::EC2::SecurityGroup").into_iter().filter(|(id, _)| *id != "NetworkNatSecurityGroup")
    {
        assert!(sg["Properties"].get("SecurityGroupIngress").is_none(), "{id} has inline ingress");
        let egress = sg["Properties"]["SecurityGroupEgress"].as_array().unwrap();
        assert_eq!(egress[0]["CidrIp"], "255.255.255.255/32", "{id} must not keep AWS's allow-all egress");
    }
    for (id, rule) in
        of_type(&d, "AWS::EC2::SecurityGroupIngress").into_iter().chain(of_type(&d, "AWS::EC2::SecurityGroupEgress"))
    {
        assert!(rule["Properties"]["Description"].as_str().is_some_and(|s| !s.is_empty()), "{id} undescribed");
    }
}

#[test]
fn aurora_is_private_encrypted_tls_only_and_snapshotted() {
    let d = doc("dev", &[]);
    let cluster = &d["Resources"]["DatabaseCluster"];
    let p = &cluster["Properties"];
    assert_eq!(cluster["DeletionPolicy"], "Snapshot");
    assert_eq!(cluster["UpdateReplacePolicy"], "Snapshot");
    assert_eq!(p["StorageEncrypted"], true);
    assert_eq!(p["KmsKeyId"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    assert_eq!(p["ManageMasterUserPassword"], true);
    assert!(p.get("MasterUserPassword").is_none());
    assert_eq!(
        p["ServerlessV2ScalingConfiguration"],
        json!({"MinCapacity": 0.0, "MaxCapacity": 4.0, "SecondsUntilAutoPause": 900})
    );
    assert_eq!(props(&d, "DatabaseClusterParameters")["Parameters"]["rds.force_ssl"], "1");
    assert_eq!(props(&d, "DatabaseClusterParameters")["Family"], "aurora-postgresql17");
    assert_eq!(props(&d, "DatabaseWriter")["PubliclyAccessible"], false);
    assert_eq!(props(&d, "DatabaseWriter")["DBInstanceClass"], "db.serverless");

    let prod = doc("prod", &["database.engine_version=16.8"]);
    let p = props(&prod, "DatabaseCluster");
    assert_eq!(p["DeletionProtection"], true);
    assert!(p["ServerlessV2ScalingConfiguration"].get("SecondsUntilAutoPause").is_none(), "no pause above 0 ACU");
    assert_eq!(props(&prod, "DatabaseClusterParameters")["Family"], "aurora-postgresql16");
}

#[test]
fn every_function_is_a_private_arm64_rust_function_with_its_own_role_and_logs() {
    let d = doc("dev", &[]);
    let functions = of_type(&d, "AWS::Lambda::Function");
    let ids: std::collections::BTreeSet<&str> = functions.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, Function::ALL.map(Function::logical_id).into(), "each function, under its own logical id");
    let mut roles = std::collections::BTreeSet::new();
    for (id, f) in functions {
        let p = &f["Properties"];
        assert_eq!(p["Runtime"], "provided.al2023", "{id}");
        assert_eq!(p["Architectures"], json!(["arm64"]), "{id}");
        assert_eq!(p["Handler"], "bootstrap", "{id}");
        assert_eq!(p["Code"]["S3Bucket"], json!({"Ref": "AssetsBucket"}), "{id}");
        assert_eq!(p["Code"]["S3Key"], json!({"Ref": format!("{id}CodeKey")}), "{id}");
        assert_eq!(p["LoggingConfig"]["LogGroup"], json!({"Ref": format!("{id}LogGroup")}), "{id}");
        assert_eq!(props(&d, &format!("{id}LogGroup"))["RetentionInDays"], 30);
        assert!(p["VpcConfig"]["SubnetIds"].as_array().unwrap().len() == 2, "{id}");
        assert!(roles.insert(p["Role"].to_string()), "{id} shares a role");
        let text = p["Environment"].to_string().to_lowercase();
        assert!(!text.contains("password") && !text.contains("client_secret"), "{id} env holds a secret");
    }
}

/// What every function's role holds (its own log group, its network interfaces), which
/// [`statements`] leaves out.
const FUNCTION_BASICS: [&str; 2] = ["OwnLogs", "VpcNetworkInterfaces"];

/// Every statement of a role's inline policies but the function basics, as (actions, resources).
fn statements(d: &Value, role: &str) -> Vec<(Vec<String>, Vec<Value>)> {
    props(d, role)["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .filter(|s| !FUNCTION_BASICS.iter().any(|sid| s["Sid"] == *sid))
        .map(|s| {
            let actions = s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
            (actions, s["Resource"].as_array().unwrap().clone())
        })
        .collect()
}

#[test]
fn roles_hold_only_what_their_function_uses_and_no_wildcard_actions() {
    let d = doc("dev", &[]);
    for (role, _) in of_type(&d, "AWS::IAM::Role") {
        for (actions, resources) in statements(&d, role) {
            for a in &actions {
                assert!(!a.ends_with(":*") && a != "*", "{role} has wildcard action {a}");
            }
            if role != "ReplicationRole" {
                assert!(!resources.contains(&json!("*")), "{role} grants {actions:?} on *");
            }
        }
    }
    let actions = |role: &str| -> Vec<String> { statements(&d, role).into_iter().flat_map(|(a, _)| a).collect() };
    assert_eq!(
        actions("ListTablesRole"),
        [
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
            "rds-db:connect",
            "states:ListExecutions",
            "states:DescribeExecution"
        ],
        "the DAP key, the preflight's login to the database, the overlap check (and this run's start)"
    );
    assert_eq!(actions("ListTablesRole")[..3], actions("SyncTableRole")[..3], "the same login as the tables' calls");
    let mut overlap = statements(&d, "ListTablesRole");
    let own_start = overlap.pop().unwrap().1;
    assert_eq!(
        overlap.pop().unwrap().1,
        [
            json!({"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-Replication"})
        ],
        "only this stack's state machine, named so that its ARN is known before it exists"
    );
    assert_eq!(
        own_start,
        [
            json!({"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-Replication:*"})
        ],
        "its own executions only, not the Map's children"
    );
    assert_eq!(props(&d, "Replication")["StateMachineName"], json!({"Fn::Sub": "${AWS::StackName}-Replication"}));
    let children: Vec<String> = actions("ReplicationRole").into_iter().filter(|a| a.contains("Execution")).collect();
    assert_eq!(
        children,
        ["states:StartExecution", "states:DescribeExecution", "states:StopExecution"],
        "the Distributed Map starts child executions of its own state machine"
    );
    let results_objects = json!({"Fn::Join": ["", [{"Fn::GetAtt": ["RunResults", "Arn"]}, "/*"]]});
    assert_eq!(
        statements(&d, "SummarizeRole"),
        [
            (vec!["s3:GetObject".to_owned()], vec![results_objects.clone()]),
            (vec!["kms:Decrypt".to_owned()], vec![json!({"Fn::GetAtt": ["DataKey", "Arn"]})]),
            (
                vec!["s3:PutObject".to_owned()],
                vec![json!({"Fn::Join": ["", [{"Fn::GetAtt": ["RunResults", "Arn"]}, "/freshness.json"]]})]
            ),
            (vec!["s3:ListBucket".to_owned()], vec![json!({"Fn::GetAtt": ["RunResults", "Arn"]})]),
            (vec!["kms:GenerateDataKey".to_owned()], vec![json!({"Fn::GetAtt": ["DataKey", "Arn"]})]),
        ],
        "summarize reads the run's results and writes the tables' freshness, and nothing else"
    );
    let writes: Vec<(Vec<String>, Vec<Value>)> =
        statements(&d, "ReplicationRole").into_iter().filter(|(a, _)| a.iter().any(|a| a.starts_with("s3:"))).collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].1, [results_objects], "the Map's ResultWriter writes only to the results bucket");
    for role in ["SyncTableRole", "InitTableRole"] {
        assert_eq!(
            actions(role),
            ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "rds-db:connect"],
            "{role}: the DAP secret (AWS-managed key) and an IAM login, no database password"
        );
    }
    let connect = &statements(&d, "SyncTableRole")[1].1;
    assert_eq!(
        connect,
        &[json!({"Fn::Join": ["", [
            {"Fn::Sub": "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"},
            {"Fn::GetAtt": ["DatabaseCluster", "DBClusterResourceId"]},
            "/cd2_app"
        ]]})],
        "only the application user of this cluster"
    );
    assert_eq!(
        statements(&d, "DbBootstrapRole"),
        [
            (
                vec!["secretsmanager:GetSecretValue".to_owned(), "secretsmanager:DescribeSecret".to_owned()],
                vec![json!({"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]})]
            ),
            (vec!["kms:Decrypt".to_owned()], vec![json!({"Fn::GetAtt": ["DataKey", "Arn"]})]),
            (
                vec!["secretsmanager:GetSecretValue".to_owned(), "secretsmanager:DescribeSecret".to_owned()],
                vec![json!({"Ref": "DatabaseReaderBiSecret"})]
            ),
        ],
        "the bootstrap reads the admin secret RDS manages and the password readers' secrets, and nothing else"
    );
    let dap = &statements(&d, "InitTableRole")[0].1[0];
    assert_eq!(
        dap["Fn::Sub"],
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:cd2-dev/dap-??????"
    );
    assert_eq!(actions("ScheduleRole"), ["states:StartExecution"]);
}

#[test]
fn the_database_is_bootstrapped_by_a_custom_resource_before_any_run() {
    let d = doc("dev", &["lambda.max_calls=40"]);
    let bootstrap = &d["Resources"]["DatabaseBootstrap"];
    assert_eq!(bootstrap["Type"], "Custom::DatabaseBootstrap");
    assert_eq!(
        bootstrap["Properties"],
        json!({
            "ServiceToken": {"Fn::GetAtt": ["DbBootstrap", "Arn"]},
            "ServiceTimeout": 600,
            "AppUser": "cd2_app",
            "Namespaces": ["canvas", "canvas_logs", "catalog", "new_quizzes"],
            "IamAuth": "true",
            "Readers": ["analyst"],
            "PasswordReaders": [{
                "Name": "bi",
                "SecretArn": {"Ref": "DatabaseReaderBiSecret"},
                "Generation": bootstrap["Properties"]["PasswordReaders"][0]["Generation"]
            }],
            "Endpoint": {"Fn::GetAtt": ["DatabaseCluster", "Endpoint.Address"]},
            "Port": {"Fn::GetAtt": ["DatabaseCluster", "Endpoint.Port"]},
            "ResourceId": {"Fn::GetAtt": ["DatabaseCluster", "DBClusterResourceId"]}
        }),
        "a new cluster changes the properties, so CloudFormation sends the bootstrap an Update"
    );
    // A secret generated anew (its settings changed) is an Update too.
    let generation = bootstrap["Properties"]["PasswordReaders"][0]["Generation"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(generation).unwrap(),
        props(&d, "DatabaseReaderBiSecret")["GenerateSecretString"]
    );
    let own = &props(&d, "DbBootstrap")["Environment"]["Variables"];
    assert_eq!(own["STACK_ID"], json!({"Fn::Sub": "${AWS::StackId}"}), "it answers its own stack only");
    assert_eq!(own["BOOTSTRAP_RESOURCE"], "DatabaseBootstrap", "and only for this resource");
    assert_eq!(
        bootstrap["DependsOn"],
        json!([
            "DatabaseWriter",
            "NetworkPrivateDefaultRouteA",
            "NetworkPrivateDefaultRouteB",
            "NetworkS3Endpoint",
            "FunctionsSecurityGroupToDatabaseSecurityGroupEgress5432",
            "DatabaseSecurityGroupFromFunctionsSecurityGroupIngress5432",
            "FunctionsSecurityGroupHttpsEgress"
        ]),
        "after the writer and the network path its function needs, so its Delete can still answer"
    );
    for f in ["SyncTable", "InitTable"] {
        assert_eq!(d["Resources"][f]["DependsOn"], json!(["DatabaseBootstrap"]), "{f} logs in as the role it makes");
    }
    let byo = doc("dev", &stack::app::envs::EXISTING_VPC_OVERRIDES);
    assert_eq!(
        byo["Resources"]["DatabaseBootstrap"]["DependsOn"].as_array().unwrap().len(),
        4,
        "an existing VPC's routes are not the stack's: the writer and the three rules"
    );
    assert_eq!(
        d["Resources"]["Replication"]["DependsOn"],
        json!(["DatabaseBootstrap"]),
        "no run before the role exists"
    );
    assert_eq!(
        of_type(&d, "AWS::SecretsManager::Secret").iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["DatabaseReaderBiSecret"],
        "no application password is stored: the one secret is a password reader's"
    );
    assert!(d["Outputs"].get("AppSecretArn").is_none());
    let env = &props(&d, "InitTable")["Environment"]["Variables"];
    assert_eq!(env["DB_USER"], "cd2_app");
    assert_eq!(env["DB_AUTH"], "iam");
    assert_eq!(env["MAX_CALLS"], "40");
    assert_eq!(env["MAX_IDLE_CALLS"], "8");
    assert!(env.get("DB_SECRET_ARN").is_none());
    let admin = &props(&d, "DbBootstrap")["Environment"]["Variables"];
    assert_eq!(admin["ADMIN_SECRET_ARN"], json!({"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]}));
}

#[test]
fn each_role_trusts_its_service_for_this_account_and_writes_only_its_own_logs() {
    let d = doc("dev", &[]);
    // EC2 names no source account when an instance takes its role: the NAT's role is
    // handed out by its instance profile alone (tests/nat.rs).
    for (id, role) in of_type(&d, "AWS::IAM::Role").into_iter().filter(|(id, _)| *id != "NetworkNatRole") {
        let p = &role["Properties"];
        assert!(p.get("ManagedPolicyArns").is_none(), "{id}: no managed policy (logs:* on every group)");
        let trust = &p["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(
            trust["Condition"]["StringEquals"]["aws:SourceAccount"],
            json!({"Fn::Sub": "${AWS::AccountId}"}),
            "{id}"
        );
    }
    assert_eq!(
        props(&d, "ReplicationRole")["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-Replication*"})
    );
    for f in Function::ALL {
        let id = f.logical_id();
        let all = props(&d, &format!("{id}Role"))["Policies"][0]["PolicyDocument"]["Statement"].clone();
        let logs = all.as_array().unwrap().iter().find(|s| s["Sid"] == "OwnLogs").expect("own logs");
        assert_eq!(logs["Resource"], json!([{"Fn::GetAtt": [format!("{id}LogGroup"), "Arn"]}]), "{id}");
    }
}

#[test]
fn data_outlives_the_stack_and_rds_logs_are_the_stack_s() {
    let d = doc("dev", &[]);
    assert_eq!(
        (&d["Resources"]["DataKey"]["DeletionPolicy"], &d["Resources"]["DataKey"]["UpdateReplacePolicy"]),
        (&json!("Retain"), &json!("Retain")),
        "the final snapshot is encrypted with it"
    );
    assert_eq!(d["Resources"]["DatabaseCluster"]["DeletionPolicy"], "Snapshot");
    assert_eq!(props(&d, "DatabaseCluster")["DBClusterIdentifier"], "cd2-dev-db");
    let logs = props(&d, "DatabaseLogGroup");
    assert_eq!(logs["LogGroupName"], "/aws/rds/cluster/cd2-dev-db/postgresql");
    assert_eq!(logs["KmsKeyId"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    assert!(d["Resources"]["DatabaseCluster"]["DependsOn"].as_array().unwrap().contains(&json!("DatabaseLogGroup")));
    let policy = props(&d, "AlertsTopicPolicy");
    assert_eq!(policy["Topics"], json!([{"Ref": "AlertsTopic"}]));
    let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(statements[0]["Effect"], "Deny");
    assert_eq!(statements[0]["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(statements[1]["Principal"]["Service"], json!(["cloudwatch.amazonaws.com"]));
}

#[test]
fn the_state_machine_runs_the_pipeline_with_configured_concurrency() {
    let s = common::synth("dev", &["map_concurrency=3", "network.nat=\"gateway\""]);
    let asl = &s.state_machine;
    assert_eq!(asl["StartAt"], "ListTables");
    let map = &asl["States"]["ReplicateTables"];
    assert_eq!(map["Type"], "Map");
    assert_eq!(map["MaxConcurrency"], 3);
    assert_eq!(map["ItemProcessor"]["ProcessorConfig"]["Mode"], "DISTRIBUTED", "each table has its own history");
    assert_eq!(
        map["ResultSelector"],
        json!({"written.$": "$.ResultWriterDetails", "results": []}),
        "the tables' states go to S3; only where they are goes on"
    );
    assert_eq!(asl["States"]["IsSkipped"]["Choices"][0]["Variable"], "$.skipped_because");
    let inner = &map["ItemProcessor"]["States"];
    assert_eq!(
        inner["AfterSync"]["Choices"][0],
        json!({"Variable": "$.status", "StringEquals": "init_needed", "Next": "InitTable"})
    );
    assert_eq!(inner["AfterSync"]["Choices"][1]["Next"], "SyncTable", "in_progress loops with the cursor");
    assert_eq!(inner["AfterInit"]["Choices"][0]["Next"], "InitTable");
    assert_eq!(inner["SyncTable"]["Catch"][0]["Next"], "TableFailed", "a failing table does not stop the others");
    assert_eq!(inner["SyncTable"]["Retry"][1]["ErrorEquals"], json!(["TransientError"]));
    assert_eq!(inner["TableFailed"]["ResultPath"], "$.status");
    assert_eq!(inner["TableFailed"]["Result"], "failed");
    assert_eq!(asl["States"]["AnyFailed"]["Choices"][0]["Next"], "PublishAlert");
    assert_eq!(asl["States"]["PublishAlert"]["Next"], "RunFailed");
    assert_eq!(asl["States"]["RunFailed"]["Type"], "Fail");

    let d = s.template.to_json();
    let sm = props(&d, "Replication");
    assert_eq!(&sm["Definition"], asl, "the template carries the same definition that is written out");
    let subs = sm["DefinitionSubstitutions"].as_object().unwrap();
    assert_eq!(subs["SyncTableArn"], json!({"Fn::GetAtt": ["SyncTable", "Arn"]}));
    assert_eq!(subs["AlertsTopicArn"], json!({"Ref": "AlertsTopic"}));
    assert_eq!(
        sm["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"],
        json!({"Fn::GetAtt": ["ReplicationLogGroup", "Arn"]})
    );
}

#[test]
fn success_reports_are_optional() {
    let quiet = common::synth("dev", &[]).state_machine;
    assert!(quiet["States"].get("PublishReport").is_none());
    assert_eq!(quiet["States"]["AnyFailed"]["Default"], "CountSuccess");
    assert_eq!(quiet["States"]["CountSuccess"]["Next"], "Done");
    let chatty = common::synth("dev", &["notify_on_success=true"]).state_machine;
    assert_eq!(chatty["States"]["CountSuccess"]["Next"], "PublishReport");
}

#[test]
fn alerts_go_to_an_encrypted_topic_with_an_optional_email_and_alarms() {
    let d = doc("dev", &["alert_email=ops@example.edu"]);
    assert_eq!(d["Parameters"]["AlertEmail"]["Default"], "ops@example.edu");
    assert_eq!(props(&d, "AlertsTopic")["KmsMasterKeyId"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    let sub = &d["Resources"]["AlertsEmailSubscription"];
    assert_eq!(sub["Condition"], "HasAlertEmail");
    assert_eq!(sub["Properties"]["Endpoint"], json!({"Ref": "AlertEmail"}));
    let alarms = of_type(&d, "AWS::CloudWatch::Alarm");
    let metrics: Vec<&str> = alarms.iter().map(|(_, a)| a["Properties"]["MetricName"].as_str().unwrap()).collect();
    assert_eq!(
        metrics,
        [
            "ExecutionsTimedOut",
            "ExecutionsAborted",
            "AlertsNotSent",
            "RunsSucceeded",
            "OldestTableAgeHours",
            "TableAgeHours"
        ],
        "a failed run sends its own alert; alarms only for what it cannot report, and for the tables' freshness"
    );
    for (_, a) in &alarms {
        assert_eq!(a["Properties"]["AlarmActions"], json!([{"Ref": "AlertsTopic"}]));
        assert_eq!(a["Properties"]["Dimensions"][0]["Value"], json!({"Ref": "Replication"}));
    }
    // The workflow's own counts: what it records is what the alarms watch.
    let sm = common::synth("dev", &[]).state_machine;
    for (state, alarm) in
        [("CountSuccess", "ReplicationNoSuccessAlarm"), ("CountAlertNotSent", "ReplicationAlertsNotSentAlarm")]
    {
        let recorded = &sm["States"][state]["Parameters"];
        let watched = props(&d, alarm);
        assert_eq!(recorded["Namespace"], watched["Namespace"], "{state}");
        assert_eq!(recorded["MetricData"][0]["MetricName"], watched["MetricName"], "{state}");
        assert_eq!(recorded["MetricData"][0]["Dimensions"][0]["Name"], watched["Dimensions"][0]["Name"], "{state}");
        assert_eq!(
            recorded["MetricData"][0]["Dimensions"][0]["Value.$"], "$$.StateMachine.Id",
            "the state machine's ARN"
        );
    }
    for publish in ["PublishAlert", "SummaryFailed"] {
        assert_eq!(sm["States"][publish]["Catch"][0]["Next"], "CountAlertNotSent", "{publish} failing is not silent");
    }
    let count = statements(&d, "ReplicationRole").into_iter().find(|(a, _)| a == &["cloudwatch:PutMetricData"]);
    assert!(count.is_some(), "the workflow may count its runs");
    let role = props(&d, "ReplicationRole")["Policies"][0]["PolicyDocument"]["Statement"].clone();
    let count = role.as_array().unwrap().iter().find(|s| s["Sid"] == "CountRuns").unwrap().clone();
    assert_eq!(
        count["Condition"],
        json!({"StringEquals": {"cloudwatch:namespace": "cd2-aws"}}),
        "in its namespace only"
    );
    let quiet = &props(&d, "ReplicationNoSuccessAlarm");
    assert_eq!(
        (&quiet["Period"], &quiet["EvaluationPeriods"], &quiet["DatapointsToAlarm"]),
        (&json!(3600), &json!(24), &json!(24)),
        "24 hours in a row without a success"
    );
    assert_eq!(
        (&quiet["ComparisonOperator"], &quiet["TreatMissingData"]),
        (&json!("LessThanThreshold"), &json!("breaching"))
    );
    let six = doc("dev", &["no_success_alarm_hours=6"]);
    assert_eq!(props(&six, "ReplicationNoSuccessAlarm")["EvaluationPeriods"], 6);
    let unscheduled = doc("dev", &["schedule_enabled=false"]);
    assert!(unscheduled["Resources"].get("ReplicationNoSuccessAlarm").is_none(), "no schedule, no run expected");
}

#[test]
fn the_schedule_starts_the_state_machine() {
    let d = doc("dev", &["schedule=rate(6 hours)", "schedule_enabled=false"]);
    let rule = props(&d, "Schedule");
    assert_eq!(rule["ScheduleExpression"], "rate(6 hours)");
    assert_eq!(rule["State"], "DISABLED");
    assert_eq!(rule["Targets"][0]["Arn"], json!({"Ref": "Replication"}));
}

#[test]
fn log_groups_are_encrypted_and_kept_as_configured() {
    let d = doc("prod", &[]);
    let groups = of_type(&d, "AWS::Logs::LogGroup");
    assert_eq!(groups.len(), Function::ALL.len() + 2, "each function's, the state machine's and Aurora's");
    for (id, g) in groups {
        assert_eq!(g["Properties"]["RetentionInDays"], 365, "{id}");
        assert_eq!(g["Properties"]["KmsKeyId"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}), "{id}");
        assert!(g.get("Metadata").is_none(), "{id}: a year of retention needs no checkov skip");
    }
}

#[test]
fn an_existing_database_gets_only_an_ingress_rule_and_the_grants() {
    let d = doc("existing", &[]);
    for kind in ["AWS::RDS::DBCluster", "AWS::RDS::DBInstance", "AWS::RDS::DBSubnetGroup", "AWS::EC2::VPC"] {
        assert!(of_type(&d, kind).is_empty(), "{kind} should not be created");
    }
    let rule = props(&d, "DatabaseSecurityGroupFromFunctionsSecurityGroupIngress5432");
    assert_eq!(rule["GroupId"], "sg-0123456789abcdef0");
    assert_eq!(rule["SourceSecurityGroupId"], json!({"Fn::GetAtt": ["FunctionsSecurityGroup", "GroupId"]}));
    let env = &props(&d, "SyncTable")["Environment"]["Variables"];
    assert_eq!(env["DB_HOST"], "replica.cluster-c0ffee123456.us-east-1.rds.amazonaws.com");
    assert_eq!(env["DB_PORT"], "5432");
    let connect = statements(&d, "SyncTableRole").into_iter().find(|(a, _)| a == &["rds-db:connect"]).unwrap();
    assert_eq!(
        connect.1,
        vec![json!({"Fn::Join": ["", [
            {"Fn::Sub": "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"},
            "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY0",
            "/cd2_app"
        ]]})]
    );
    // The bootstrap reads the configured admin secret, and waits only for the network path.
    let admin = &props(&d, "DbBootstrap")["Environment"]["Variables"];
    assert_eq!(admin["ADMIN_SECRET_ARN"], "arn:aws:secretsmanager:us-east-1:123456789012:secret:replica-admin-AbCdEf");
    assert_eq!(d["Resources"]["DatabaseBootstrap"]["DependsOn"].as_array().unwrap().len(), 3);
    let named = &props(&d, "DatabaseBootstrap");
    assert_eq!(
        (&named["Endpoint"], &named["Port"], &named["ResourceId"]),
        (
            &json!("replica.cluster-c0ffee123456.us-east-1.rds.amazonaws.com"),
            &json!("5432"),
            &json!("cluster-ABCDEFGHIJKLMNOPQRSTUVWXY0")
        ),
        "pointing the stack at another database runs the bootstrap again"
    );
    assert_eq!(
        d["Outputs"]["AdminSecretArn"]["Value"],
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:replica-admin-AbCdEf"
    );
}

#[test]
fn an_existing_database_on_another_port_is_opened_on_that_port() {
    let d = doc("existing", &["database.port=6543"]);
    let rule = props(&d, "DatabaseSecurityGroupFromFunctionsSecurityGroupIngress6543");
    assert_eq!((rule["FromPort"].clone(), rule["ToPort"].clone()), (json!(6543), json!(6543)));
    assert_eq!(props(&d, "FunctionsSecurityGroupToDatabaseSecurityGroupEgress6543")["ToPort"], 6543);
    assert_eq!(props(&d, "SyncTable")["Environment"]["Variables"]["DB_PORT"], "6543");
}

#[test]
fn without_the_bootstrap_there_is_no_bootstrap_function_or_its_code_parameter() {
    let d = doc("existing", &["database.bootstrap=false", "database.admin_secret_arn=", "database.resource_id="]);
    assert!(d["Resources"].get("DbBootstrap").is_none());
    assert!(d["Resources"].get("DatabaseBootstrap").is_none());
    assert!(d["Outputs"].get("AdminSecretArn").is_none());
    for f in ["SyncTable", "InitTable", "Replication"] {
        assert!(d["Resources"][f].get("DependsOn").is_none(), "{f} waits for nothing");
    }
    let parameters: Vec<&String> = d["Parameters"].as_object().unwrap().keys().collect();
    assert_eq!(
        parameters,
        ["AlertEmail", "AssetsBucket", "ListTablesCodeKey", "SyncTableCodeKey", "InitTableCodeKey", "SummarizeCodeKey"]
    );
    // Without a resource id, the grant names the user on any database of the account.
    let connect = statements(&d, "InitTableRole").into_iter().find(|(a, _)| a == &["rds-db:connect"]).unwrap();
    assert_eq!(connect.1[0]["Fn::Join"][1][1], "*");
    let created = doc("dev", &[]);
    assert!(created["Parameters"].get("DbBootstrapCodeKey").is_some());
}

#[test]
fn run_results_are_private_encrypted_tls_only_and_expire() {
    let d = doc("dev", &[]);
    let bucket = props(&d, "RunResults");
    let rule = &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms");
    assert_eq!(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][flag], true, "{flag}");
    }
    assert_eq!(bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"], 30);
    let policy = &props(&d, "RunResultsPolicy")["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Effect"], "Deny");
    assert_eq!(policy["Condition"]["Bool"]["aws:SecureTransport"], "false");
    // The Map writes there, and the state keeps only where.
    let map = &common::synth("dev", &[]).state_machine["States"]["ReplicateTables"];
    assert_eq!(map["ResultWriter"]["Resource"], "arn:aws:states:::s3:putObject");
    assert_eq!(map["ResultWriter"]["Parameters"]["Bucket"], "${ResultsBucket}");
    assert_eq!(props(&d, "Replication")["DefinitionSubstitutions"]["ResultsBucket"], json!({"Ref": "RunResults"}));
    assert_eq!(map["ResultSelector"]["written.$"], "$.ResultWriterDetails");
}

/// The readers reach the bootstrap, and what their IAM policies need is an output.
#[test]
fn readers_reach_the_bootstrap_and_their_connect_arns_are_an_output() {
    let d = doc("dev", &[]);
    assert_eq!(props(&d, "DatabaseBootstrap")["Readers"], json!(["analyst"]));
    let arns = &d["Outputs"]["ReaderConnectArns"]["Value"]["Fn::Join"];
    assert_eq!(arns[0], ",");
    let analyst = arns[1][0].to_string();
    assert!(analyst.contains(":dbuser:") && analyst.contains("/analyst"), "{analyst}");
    assert!(analyst.contains("ResourceId"), "narrowed to the cluster: {analyst}");
    let none = doc("dev", &["database.readers=[]"]);
    assert!(none["Outputs"].get("ReaderConnectArns").is_none());
}

/// A password reader's password is generated by CloudFormation into a secret under the
/// stack's key (never in the template), which the bootstrap alone reads, and whose ARN is
/// an output for the query editor and BI tools.
#[test]
fn a_password_reader_gets_a_generated_secret_that_only_the_bootstrap_reads() {
    let d = doc("dev", &[]);
    let secret = &d["Resources"]["DatabaseReaderBiSecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    let p = &secret["Properties"];
    assert_eq!(p["KmsKeyId"], json!({"Fn::GetAtt": ["DataKey", "Arn"]}));
    assert!(p.get("SecretString").is_none(), "generated, not written");
    let generated = &p["GenerateSecretString"];
    assert_eq!(generated["GenerateStringKey"], "password");
    let fields: Value = serde_json::from_str(generated["SecretStringTemplate"].as_str().unwrap()).unwrap();
    assert_eq!(fields["username"], "bi", "what the Data API and the query editor read");
    assert_eq!(
        d["Outputs"][stack::app::READER_SECRET_ARNS]["Value"],
        json!({"Fn::Join": [",", [{"Ref": "DatabaseReaderBiSecret"}]]})
    );
    let readers_of_it = d["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role" && r.to_string().contains("DatabaseReaderBiSecret"))
        .map(|(id, _)| id.as_str())
        .collect::<Vec<_>>();
    assert_eq!(readers_of_it, ["DbBootstrapRole"]);
    let none = doc("dev", &["database.password_readers=[]"]);
    assert!(none["Outputs"].get(stack::app::READER_SECRET_ARNS).is_none());
    assert_eq!(props(&none, "DatabaseBootstrap")["PasswordReaders"], json!([]));
}

/// The tables' freshness: `summarize` publishes it in its log (embedded metric format, no
/// IAM action), and two alarms watch it, the canvas_logs one naming its table; the
/// dashboard shows the pipeline from the same metrics, and deploy prints its link.
#[test]
fn freshness_has_alarms_and_the_pipeline_a_dashboard() {
    let d = doc("dev", &["stale_table_alarm_hours=30", "logs_age_alarm_days=10"]);
    let stale = props(&d, "ReplicationStaleTableAlarm");
    assert_eq!((&stale["MetricName"], &stale["Threshold"]), (&json!("OldestTableAgeHours"), &json!(30.0)));
    assert_eq!(stale["TreatMissingData"], "ignore", "metrics come with runs only: the state holds between them");
    let logs = props(&d, "ReplicationCanvasLogsWebLogsAgeAlarm");
    assert_eq!((&logs["MetricName"], &logs["Threshold"]), (&json!("TableAgeHours"), &json!(240.0)));
    assert_eq!(logs["Dimensions"][1], json!({"Name": "Table", "Value": "canvas_logs.web_logs"}));
    assert!(logs["AlarmDescription"].as_str().unwrap().starts_with("canvas_logs.web_logs is more than 10 days"));
    let without_logs = doc("dev", &["namespaces=[\"canvas\"]"]);
    assert!(without_logs["Resources"].get("ReplicationCanvasLogsWebLogsAgeAlarm").is_none());
    let summarize = &props(&d, "Summarize")["Environment"]["Variables"];
    assert_eq!(summarize["RESULTS_BUCKET"], json!({"Ref": "RunResults"}));
    assert!(
        !statements(&d, "SummarizeRole").iter().any(|(a, _)| a.iter().any(|a| a.starts_with("cloudwatch:"))),
        "the metrics are in the log"
    );
    let sm = common::synth("dev", &[]).state_machine;
    assert_eq!(sm["States"]["Summarize"]["Parameters"]["Payload"]["state_machine.$"], "$$.StateMachine.Id");
    // A key not there yet is NoSuchKey only to a role that may list it: that key alone.
    let role = props(&d, "SummarizeRole")["Policies"][0]["PolicyDocument"]["Statement"].clone();
    let list = role.as_array().unwrap().iter().find(|s| s["Action"] == json!(["s3:ListBucket"])).unwrap().clone();
    assert_eq!(list["Condition"], json!({"StringEquals": {"s3:prefix": "freshness.json"}}));
    // The runs' results expire; the freshness file does not.
    let rules = &props(&d, "RunResults")["LifecycleConfiguration"]["Rules"];
    assert_eq!(rules[0]["Prefix"], "runs/");
    assert_eq!(props(&d, "Dashboard")["DashboardName"], json!({"Fn::Sub": "${AWS::StackName}-${AWS::Region}"}));

    let dashboard = &props(&d, "Dashboard");
    let (body, vars) = (&dashboard["DashboardBody"]["Fn::Sub"][0], &dashboard["DashboardBody"]["Fn::Sub"][1]);
    let body: Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
    let titles: Vec<&str> =
        body["widgets"].as_array().unwrap().iter().map(|w| w["properties"]["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 6, "{titles:?}");
    let text = body.to_string();
    for metric in [
        "ExecutionsFailed",
        "ExecutionTime",
        "TablesFailed",
        "RowsInserted",
        "RowsUpdated",
        "RowsDeleted",
        "OldestTableAgeHours",
        "ServerlessDatabaseCapacity",
    ] {
        assert!(text.contains(metric), "{metric}");
    }
    assert_eq!(vars, &json!({"Machine": {"Ref": "Replication"}, "Cluster": {"Ref": "DatabaseCluster"}}));
    let url = d["Outputs"][stack::app::DASHBOARD_URL]["Value"]["Fn::Sub"].clone();
    assert!(url[0].as_str().unwrap().contains("#dashboards/dashboard/${Dashboard}"), "{url}");
    let existing = doc("existing", &[]);
    let body = props(&existing, "Dashboard")["DashboardBody"]["Fn::Sub"][0].as_str().unwrap().to_owned();
    assert!(!body.contains("ServerlessDatabaseCapacity"), "an existing database's capacity is not the stack's to show");
}

/// The stack's own cluster answers the RDS Data API (query editor, `cargo xtask sql`), and
/// its ARN is an output; an existing database has neither.
#[test]
fn the_stack_s_cluster_has_the_data_api_and_says_where_it_is() {
    let d = doc("dev", &[]);
    assert_eq!(props(&d, "DatabaseCluster")["EnableHttpEndpoint"], json!(true));
    assert_eq!(
        d["Outputs"][stack::app::DATABASE_CLUSTER_ARN]["Value"],
        json!({"Fn::GetAtt": ["DatabaseCluster", "DBClusterArn"]})
    );
    let existing = doc("existing", &[]);
    assert!(existing["Outputs"].get(stack::app::DATABASE_CLUSTER_ARN).is_none());
}

#[test]
fn the_functions_are_the_workspaces_lambda_binaries() {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lambdas/functions/src/bin");
    let binaries: std::collections::BTreeSet<String> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    let known: std::collections::BTreeSet<String> = Function::ALL.map(|f| f.binary().to_owned()).into();
    assert_eq!(binaries, known, "stack::app::Function and lambdas/functions/src/bin list the same functions");
    for f in Function::ALL {
        assert_eq!(Function::from_binary(f.binary()), Some(f));
        assert_eq!(f.logical_id(), stack::app::pascal_case(f.binary()), "{f}");
    }
}
