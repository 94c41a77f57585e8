//! The AWS commands against moto's server on loopback, through the real binary with
//! `AWS_ENDPOINT_URL`: the profile moto can deploy (moto's default VPC and subnets, an
//! existing database reached through a security group made here, no bootstrap).

use serde_json::Value;
use stack::app::{Function, Manifest};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    moto: testkit::Moto,
    dir: PathBuf,
    overrides: Vec<String>,
}

const SECRET_VALUE: &str = "s3cr3t-value-never-printed";

impl Env {
    fn start(name: &str) -> Env {
        let moto = testkit::Moto::start(None).expect("moto starts");
        let dir = std::env::temp_dir().join(format!("cd2-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let zips = dir.join("zips");
        let manifest: Manifest =
            testkit::empty_lambda_zips(&zips, Function::ALL.map(Function::binary)).unwrap().into_iter().collect();
        std::fs::write(zips.join(Manifest::FILE), manifest.to_json()).unwrap();
        let overrides = moto.existing_profile().unwrap();
        Env { moto, dir, overrides }
    }

    /// Runs boto3 against moto; `code` sets `out`, answered as JSON.
    fn boto(&self, code: &str) -> Value {
        let printed = self.moto.boto(&format!("out = None\n{code}\nprint(json.dumps(out, default=str))")).unwrap();
        serde_json::from_str(&printed).unwrap()
    }

    /// The binary with moto's endpoint and test credentials, and nothing of this machine's
    /// AWS configuration.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cd2-ops"));
        c.args(args).env_remove("DAP_CLIENT_ID").env_remove("DAP_CLIENT_SECRET").stdin(Stdio::null());
        self.moto.isolate(&mut c, &self.dir);
        c
    }

    /// `command args --env existing --set (the moto profile) extra...`
    fn ops(&self, command: &str, extra: &[&str]) -> Output {
        let out = self.dir.join("out");
        let zips = self.dir.join("zips");
        let mut args: Vec<String> = vec![command.into(), "--env".into(), "existing".into()];
        for o in &self.overrides {
            args.push("--set".into());
            args.push(o.clone());
        }
        if matches!(command, "deploy" | "diff" | "check") {
            args.extend(["--out".into(), out.display().to_string(), "--zips".into(), zips.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(&refs).output().unwrap()
    }

    fn set_key(&self) -> Output {
        let mut c = self.command(&["set-key", "--env", "existing"]);
        c.env("DAP_CLIENT_ID", "client-id-1").env("DAP_CLIENT_SECRET", SECRET_VALUE);
        c.output().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "expected success:\n{t}");
    assert!(!t.contains(SECRET_VALUE), "the DAP secret was printed:\n{t}");
    t
}

/// Fails with exactly one `error:` line, which holds `expected`.
fn fails(o: Output, expected: &str) -> String {
    let t = text(&o);
    assert!(!o.status.success(), "expected a failure:\n{t}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{t}");
    assert!(errors[0].contains(expected), "`{expected}` not in: {}", errors[0]);
    t
}

fn stack_status(env: &Env) -> Value {
    env.boto(
        "try:\n    out = cfn.describe_stacks(StackName='cd2-existing')['Stacks'][0]['StackStatus']\n\
         except Exception as e:\n    out = 'none'",
    )
}

#[test]
fn deploy_update_run_status_and_destroy_a_stack() {
    let env = Env::start("lifecycle");
    fails(env.ops("deploy", &["--yes"]), "the DAP secret cd2-existing/dap does not exist in us-east-1: store");

    let t = ok(env.set_key());
    assert!(t.contains("stored the DAP credential in secret cd2-existing/dap"), "{t}");
    // A diff of a stack not yet made leaves nothing behind (no empty REVIEW_IN_PROGRESS stack).
    let t = ok(env.ops("diff", &[]));
    assert!(t.contains("changes to create stack cd2-existing"), "{t}");
    assert_eq!(stack_status(&env), "none");
    fails(env.ops("deploy", &[]), "there is no terminal to ask on: pass --yes");
    let stored = env.boto("out = json.loads(sm.get_secret_value(SecretId='cd2-existing/dap')['SecretString'])");
    assert_eq!(stored, serde_json::json!({"client_id": "client-id-1", "client_secret": SECRET_VALUE}));

    let t = ok(env.ops("deploy", &["--yes"]));
    assert!(t.contains("made the assets bucket s3://cd2-aws-assets-123456789012-us-east-1"), "{t}");
    assert!(t.contains("zips: 4 uploaded"), "{t}");
    assert!(t.contains("changes to create stack cd2-existing"), "{t}");
    assert!(t.contains("+ Replication"), "{t}");
    assert!(t.contains("estimated monthly cost while idle"), "{t}");
    assert!(
        t.contains("dashboard: https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/cd2-existing-us-east-1"),
        "deploy prints the dashboard's link:\n{t}"
    );
    assert!(t.contains("created stack cd2-existing"), "{t}");
    assert_eq!(stack_status(&env), "CREATE_COMPLETE");
    assert!(env.dir.join("out/cd2-existing.outputs.json").exists());
    assert!(env.dir.join("out/cd2-existing.template.json").exists());
    let bucket = env.boto(
        "b = 'cd2-aws-assets-123456789012-us-east-1'\n\
         out = {'versioning': s3.get_bucket_versioning(Bucket=b).get('Status'),\n\
                'encryption': s3.get_bucket_encryption(Bucket=b)['ServerSideEncryptionConfiguration']['Rules'][0]['ApplyServerSideEncryptionByDefault']['SSEAlgorithm'],\n\
                'public': s3.get_public_access_block(Bucket=b)['PublicAccessBlockConfiguration'],\n\
                'keys': sorted(o['Key'] for o in s3.list_objects_v2(Bucket=b)['Contents'])}",
    );
    assert_eq!(bucket["versioning"], "Enabled");
    assert_eq!(bucket["encryption"], "AES256");
    assert!(bucket["public"].as_object().unwrap().values().all(|v| v == true), "{bucket}");
    // moto enforces bucket policies, and it speaks plain http: the TLS-only policy stays off here.
    assert!(t.contains("gets no TLS-only policy: the AWS endpoint is plain http"), "{t}");
    // No bootstrap: the four replication zips, not db_bootstrap's.
    assert_eq!(bucket["keys"].as_array().unwrap().len(), 4, "{bucket}");

    // Who gets the alerts (alert_email is empty here; moto's CloudFormation makes no
    // AWS::SNS::Subscription, and confirms an email subscription at once where AWS waits
    // for its link to be followed).
    let t = ok(env.ops("status", &[]));
    assert!(t.contains("alerts: the alerts topic has no subscriber"), "{t}");
    env.boto(
        "resources = cfn.list_stack_resources(StackName='cd2-existing')['StackResourceSummaries']\n\
         topic = next(r['PhysicalResourceId'] for r in resources if r['ResourceType'] == 'AWS::SNS::Topic')\n\
         boto3.client('sns', **kw).subscribe(TopicArn=topic, Protocol='email', Endpoint='ops@example.org')",
    );
    let t = ok(env.ops("status", &[]));
    assert!(t.contains("alerts: email ops@example.org (confirmed)"), "{t}");

    // Each table's freshness, as summarize writes it into the results bucket.
    let t = ok(env.ops("status", &["--tables"]));
    assert!(t.contains("no run has finished yet"), "{t}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let fresh = contract::freshness::Freshness {
        written_s: now,
        tables: vec![contract::freshness::TableFreshness {
            namespace: "canvas".into(),
            table: "users".into(),
            current_to_s: Some(now - 5 * 3600),
            rows: Some(48_213),
            last_run: "run-1".into(),
            last_run_s: now,
            last_outcome: "success".into(),
            first_seen_s: now - 86_400,
        }],
    };
    env.boto(&format!(
        "resources = cfn.list_stack_resources(StackName='cd2-existing')['StackResourceSummaries']\n\
         bucket = next(r['PhysicalResourceId'] for r in resources if r['LogicalResourceId'] == '{}')\n\
         s3.put_object(Bucket=bucket, Key='{}', Body={:?})",
        stack::app::RESULTS_BUCKET_ID,
        contract::freshness::FRESHNESS_KEY,
        serde_json::to_string(&fresh).unwrap()
    ));
    let t = ok(env.ops("status", &["--tables"]));
    assert!(
        t.contains("canvas.users") && t.contains("5h 0") && t.contains("run-1: success") && t.contains("48,213"),
        "{t}"
    );
    assert!(t.contains("1 table; the least current, canvas.users, is 5h 0"), "{t}");

    let t = ok(env.ops("deploy", &["--yes"]));
    assert!(t.contains("no changes: stack cd2-existing in us-east-1 is up to date"), "{t}");
    assert!(t.contains("zips: 0 uploaded, 4 already there"), "{t}");

    let t = ok(env.ops("diff", &["--set", "map_concurrency=3"]));
    assert!(t.contains("~ Replication"), "{t}");
    assert!(t.contains("diff only: nothing was changed"), "{t}");
    let t = ok(env.ops("deploy", &["--yes"]));
    assert!(t.contains("no changes"), "the diff changed nothing:\n{t}");

    let t = ok(env.ops(
        "deploy",
        &[
            "--yes",
            "--set",
            "map_concurrency=3",
            "--set",
            "lambda.replicate_memory_mb=2048",
            "--set",
            "archive.enabled=true",
        ],
    ));
    assert!(t.contains("changes to update stack cd2-existing"), "{t}");
    assert!(t.contains("~ SyncTable"), "{t}");
    assert!(t.contains("+ Archive"), "{t}");
    assert!(t.contains("updated stack cd2-existing"), "{t}");
    assert_eq!(stack_status(&env), "UPDATE_COMPLETE");

    let t = ok(env.ops("run", &["--no-wait", "--table", "canvas.accounts"]));
    assert!(t.contains("started run manual-"), "{t}");
    fails(env.ops("run", &["--table", "accounts"]), "`accounts` is not NAMESPACE.TABLE");
    let t = ok(env.ops("status", &[]));
    assert!(t.contains("manual-"), "{t}");
    // An existing database has no Data API of the stack's: sql says how to reach it instead.
    fails(env.ops("sql", &["SELECT 1"]), "uses a database it does not own");

    // The raw zone outlives the stack, and destroy says what it holds.
    env.boto(&format!(
        "resources = cfn.list_stack_resources(StackName='cd2-existing')['StackResourceSummaries']\n\
         bucket = next(r['PhysicalResourceId'] for r in resources if r['LogicalResourceId'] == '{}')\n\
         s3.put_object(Bucket=bucket, Key='canvas/users/kind=snapshot/part-0.tsv.gz', Body=b'x' * 2048)",
        stack::app::ARCHIVE_BUCKET_ID,
    ));
    // A bucket merely named like the stack's archive is not taken for it.
    env.boto("s3.create_bucket(Bucket='cd2-existing-archive-impostor')");
    fails(env.ops("destroy", &[]), "pass --yes");
    let t = ok(env.ops("destroy", &["--yes"]));
    assert!(!t.contains("cd2-existing-archive-impostor"), "{t}");
    assert!(t.contains("keeps: the archive bucket cd2-existing-archive-"), "{t}");
    assert!(t.contains("deleted stack cd2-existing"), "{t}");
    let kept = t.lines().find(|l| l.trim_start().starts_with("archive cd2-existing-archive-")).expect(&t);
    assert!(kept.contains("1 objects, 0.0 GB, about $0.00/month"), "{kept}");
    assert!(t.contains("secret cd2-existing/dap"), "the DAP secret is a documented leftover:\n{t}");
    assert!(t.contains("your database replica.cluster-"), "{t}");
    assert_eq!(stack_status(&env), "none");
    let left =
        env.boto("out = s3.list_object_versions(Bucket='cd2-aws-assets-123456789012-us-east-1').get('Versions', [])");
    assert_eq!(left, serde_json::json!([]), "the stack's zips are gone");

    let t = ok(env.ops("destroy", &["--yes"]));
    assert!(t.contains("stack cd2-existing does not exist in us-east-1: nothing to delete"), "{t}");
    assert!(t.contains("archive cd2-existing-archive-"), "a kept archive is listed after the stack too:\n{t}");

    // restore finds the kept archive; the database is the one thing missing here.
    let t = fails(
        env.ops("restore", &["--table", "canvas.users", "--into", "postgresql://cd2:hunter2@127.0.0.1:9/cd2"]),
        "could not connect to the database at 127.0.0.1:9",
    );
    assert!(t.contains("restoring canvas.users from s3://cd2-existing-archive-") && !t.contains("hunter2"), "{t}");

    // --delete-data takes the archive with it, before its key.
    ok(env.ops("deploy", &["--yes", "--set", "archive.enabled=true"]));
    let buckets = || {
        let names =
            env.boto("out = sorted(b['Name'] for b in s3.list_buckets()['Buckets'] if '-archive-' in b['Name'])");
        names.as_array().unwrap().len()
    };
    assert_eq!(buckets(), 3, "the impostor, the kept archive and the new stack's");
    // An archive this stack kept when the archive was turned off, under the stack's key, its
    // name shortened as CloudFormation shortens long ones: found by its tag.
    env.boto(&format!(
        "resources = cfn.list_stack_resources(StackName='cd2-existing')['StackResourceSummaries']\n\
         key = next(r['PhysicalResourceId'] for r in resources if r['LogicalResourceId'] == '{}')\n\
         s3.create_bucket(Bucket='cd2-exis-archive-earlier')\n\
         s3.put_bucket_tagging(Bucket='cd2-exis-archive-earlier', Tagging={{'TagSet': [{{'Key': '{}', 'Value': 'cd2-existing'}}]}})\n\
         s3.put_bucket_encryption(Bucket='cd2-exis-archive-earlier', ServerSideEncryptionConfiguration={{'Rules': [{{'ApplyServerSideEncryptionByDefault': {{'SSEAlgorithm': 'aws:kms', 'KMSMasterKeyID': key}}}}]}})",
        stack::app::DATA_KEY_ID,
        stack::constructs::archive::ARCHIVE_TAG,
    ));
    let t = ok(env.ops("destroy", &["--yes", "--delete-data"]));
    assert!(t.contains("DELETES THE ARCHIVE: bucket cd2-existing-archive-"), "{t}");
    assert!(t.contains("deleted the archive bucket cd2-existing-archive-"), "{t}");
    assert_eq!(
        t.matches("kept when the archive was turned off").count(),
        1,
        "the first destroy's archive has its own key:\n{t}"
    );
    assert!(t.contains("the archive bucket cd2-exis-archive-earlier, kept when the archive was turned off, is encrypted with KMS key"), "{t}");
    assert!(!t.contains("scheduled KMS key"), "the key stays while an archive needs it:\n{t}");
    assert_eq!(buckets(), 3, "the deleted archive is gone; the others are left");
    let t = ok(env.ops("delete-key", &["--yes"]));
    assert!(t.contains("secret cd2-existing/dap is scheduled for deletion"), "{t}");
}

#[test]
fn a_failing_resource_is_named_and_the_rolled_back_stack_offers_its_way_out() {
    let mut env = Env::start("rollback");
    ok(env.set_key());
    let good = env.overrides.clone();
    env.overrides.retain(|o| !o.starts_with("database.security_group_id"));
    env.overrides.push("database.security_group_id=sg-0000000000000dead".into());
    let t = fails(
        env.ops("deploy", &["--yes"]),
        "deploy of cd2-existing failed: DatabaseSecurityGroupFromFunctionsSecurityGroupIngress5432 (AWS::EC2::SecurityGroupIngress) failed",
    );
    assert!(t.contains("ROLLBACK_COMPLETE"), "{t}");
    assert_eq!(stack_status(&env), "ROLLBACK_COMPLETE");

    env.overrides = good;
    fails(env.ops("deploy", &[]), "there is no terminal to ask on: pass --yes");
    fails(
        env.ops("diff", &[]),
        "is ROLLBACK_COMPLETE: its first create failed; `cargo xtask deploy --env existing` offers",
    );
    assert_eq!(stack_status(&env), "ROLLBACK_COMPLETE", "neither asked nor changed anything");
    let t = ok(env.ops("deploy", &["--yes"]));
    assert!(t.contains("is ROLLBACK_COMPLETE: its first create failed"), "{t}");
    assert!(t.contains("created stack cd2-existing"), "{t}");
    assert_eq!(stack_status(&env), "CREATE_COMPLETE");
}

#[test]
fn without_credentials_or_with_a_bad_setting_there_is_one_clear_line() {
    let env = Env::start("preflight");
    let mut c = env.command(&["check", "--env", "existing"]);
    c.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    fails(c.output().unwrap(), "no working AWS credentials");
    fails(env.ops("check", &["--set", "map_concurrency=0"]), "`map_concurrency`: 0 is out of range");
    fails(
        env.command(&["set-key", "--env", "existing"]).output().unwrap(),
        "DAP_CLIENT_ID is not set: run ./set_key.sh",
    );
}

#[test]
fn the_scripts_store_and_remove_the_secret_without_printing_it() {
    let env = Env::start("scripts");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The scripts with the binary in place of `cargo xtask`, and the same environment.
    let script = |name: &str, args: &[&str]| {
        let base = env.command(&[]);
        let mut cmd = Command::new("bash");
        cmd.arg(root.join(name)).args(args).env("CD2_XTASK", env!("CARGO_BIN_EXE_cd2-ops")).stdin(Stdio::null());
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    };
    let mut set = script("set_key.sh", &["--env", "existing"]);
    fails(set.output().unwrap(), "set DAP_CLIENT_ID and DAP_CLIENT_SECRET");
    let mut set = script("set_key.sh", &["--env", "existing"]);
    set.env("DAP_CLIENT_ID", "client-id-2").env("DAP_CLIENT_SECRET", SECRET_VALUE);
    ok(set.output().unwrap());
    assert_eq!(
        env.boto("out = json.loads(sm.get_secret_value(SecretId='cd2-existing/dap')['SecretString'])['client_id']"),
        "client-id-2"
    );
    fails(script("destroy.sh", &["--env", "existing"]).output().unwrap(), "pass --yes");
    let t = ok(script("destroy.sh", &["--env", "existing", "--yes"]).output().unwrap());
    assert!(t.contains("nothing to delete"), "{t}");
    assert!(t.contains("secret cd2-existing/dap is scheduled for deletion"), "{t}");
    let deleted = env.boto("out = 'DeletedDate' in sm.describe_secret(SecretId='cd2-existing/dap')");
    assert_eq!(deleted, true);
}

/// A deployed stack whose state machine ends as a run does: moto executes only state
/// machines made through its API (those of its CloudFormation stay RUNNING), so the stack's
/// is made again through the API, under its name (and so its ARN, the stack's resource's).
fn replication_machine(env: &Env, end_state: &str) {
    ok(env.set_key());
    ok(env.ops("deploy", &["--yes"]));
    env.boto(&format!(
        "import urllib.request\n\
         urllib.request.urlopen(urllib.request.Request(kw['endpoint_url'] + '/moto-api/config', data=json.dumps({{'stepfunctions': {{'execute_state_machine': True}}}}).encode(), method='POST'))\n\
         sfn = boto3.client('stepfunctions', **kw)\n\
         arn = 'arn:aws:states:us-east-1:123456789012:stateMachine:cd2-existing-Replication'\n\
         try:\n    sfn.delete_state_machine(stateMachineArn=arn)\n\
         except Exception:\n    pass\n\
         definition = {{'StartAt': 'End', 'States': {{'End': {end_state}}}}}\n\
         sfn.create_state_machine(name='cd2-existing-Replication', definition=json.dumps(definition), roleArn='arn:aws:iam::123456789012:role/sfn')"
    ));
}

#[test]
fn run_follows_a_run_to_its_end_and_fails_when_it_failed() {
    let env = Env::start("run");
    fails(env.ops("run", &[]), "stack cd2-existing has no state machine in us-east-1: deploy it first");
    replication_machine(
        &env,
        "{'Type': 'Pass', 'Result': {'failed': 0, 'succeeded': 2, 'subject': 's', 'message': 'm'}, 'End': True}",
    );
    let t = ok(env.ops("run", &["--table", "canvas.accounts"]));
    assert!(t.contains("succeeded: 2 tables replicated, 0 failed"), "{t}");
    let t = ok(env.ops("status", &[]));
    assert!(t.contains("succeeded") && t.contains("2 ok, 0 failed"), "{t}");

    let env = Env::start("run-failed");
    replication_machine(&env, "{'Type': 'Fail', 'Error': 'ReplicationFailed', 'Cause': 'One or more tables failed'}");
    fails(env.ops("run", &[]), "ended FAILED: ReplicationFailed: One or more tables failed");
}

/// What moto's EC2 holds of stack `stack`'s network: the types of the stack's resources, its
/// NAT gateways, its NAT instances, the NAT security group's inbound rules, and the targets of
/// the default routes. (moto's CloudFormation does not apply an instance's network interface,
/// metadata options or source/destination check: `stack/tests/nat.rs` checks those in the
/// template.)
fn network_of(env: &Env, stack: &str) -> Value {
    env.boto(&format!(
        "resources = cfn.list_stack_resources(StackName='{stack}')['StackResourceSummaries']\n\
         physical = {{r['LogicalResourceId']: r['PhysicalResourceId'] for r in resources}}\n\
         f = [{{'Name': 'vpc-id', 'Values': [physical['{network}']]}}]\n\
         ids = [r['PhysicalResourceId'] for r in resources if r['ResourceType'] == 'AWS::EC2::Instance']\n\
         insts = [{{'id': i['InstanceId'], 'state': i['State']['Name'], 'type': i['InstanceType'], 'key': i.get('KeyName')}}\n\
         \x20   for r in (ec2.describe_instances(InstanceIds=ids)['Reservations'] if ids else []) for i in r['Instances']]\n\
         nat_group = physical.get('{network}NatSecurityGroup')\n\
         out = {{'types': sorted({{r['ResourceType'] for r in resources if r['ResourceType']}}),\n\
         \x20   'gateways': [g['NatGatewayId'] for g in ec2.describe_nat_gateways(Filters=f)['NatGateways'] if g['State'] != 'deleted'],\n\
         \x20   'instances': insts,\n\
         \x20   'inbound': [(p['IpProtocol'], p.get('FromPort'), p.get('ToPort'), [r['CidrIp'] for r in p['IpRanges']], len(p['UserIdGroupPairs']))\n\
         \x20       for g in (ec2.describe_security_groups(GroupIds=[nat_group])['SecurityGroups'] if nat_group else []) for p in g['IpPermissions']],\n\
         \x20   'routes': sorted(r.get('NatGatewayId') or r.get('InstanceId') or r.get('GatewayId')\n\
         \x20       for t in ec2.describe_route_tables(Filters=f)['RouteTables'] for r in t['Routes'] if r.get('DestinationCidrBlock') == '0.0.0.0/0')}}",
        network = stack::app::NETWORK_ID
    ))
}

/// The stack's own network (moto's database stand-in stays in moto's default VPC) in each
/// NAT mode: gateways and their addresses, or instances with no address of the stack's and
/// only the VPC's HTTPS in; the idle cost deploy prints; and an update of an on-demand stack
/// whose instance has stopped itself starts it first and waits until it forwards.
#[test]
fn deploy_makes_the_network_in_each_nat_mode() {
    let mut env = Env::start("nat");
    env.overrides.retain(|o| !o.starts_with("network."));
    env.overrides.extend(
        [
            "network.mode=create",
            "network.vpc_id=",
            "network.private_subnet_ids=[]",
            "network.cidr=10.42.0.0/16",
            "network.nat_gateways=1",
        ]
        .map(str::to_owned),
    );
    ok(env.set_key());
    let deploy = |stack: &str, mode: &str, extra: &[&str]| {
        let (name, nat) = (format!("stack_name={stack}"), format!("network.nat={mode}"));
        let mut args = vec!["--yes", "--set", &name, "--set", &nat];
        args.extend(extra);
        ok(env.ops("deploy", &args))
    };
    let idle = |t: &str| t.lines().find(|l| l.trim_start().starts_with("total")).unwrap_or_default().to_owned();

    let t = deploy("cd2-gateway", "gateway", &[]);
    assert!(idle(&t).contains("$  38.50"), "{t}");
    let net = network_of(&env, "cd2-gateway");
    let gateways = net["gateways"].as_array().unwrap();
    assert_eq!(gateways.len(), 1, "{net}");
    let types = net["types"].as_array().unwrap();
    assert!(types.contains(&"AWS::EC2::EIP".into()) && !types.contains(&"AWS::EC2::Instance".into()), "{net}");
    // The public subnets' route to the internet gateway, the private subnets' to the NAT gateway.
    assert_eq!(net["routes"].as_array().unwrap().iter().filter(|r| *r == &gateways[0]).count(), 2, "{net}");

    for (mode, idle_cost) in [("instance", "$   8.88"), ("instance-on-demand", "$   2.16")] {
        let stack = format!("cd2-{mode}");
        let t = deploy(&stack, mode, &[]);
        assert!(idle(&t).contains(idle_cost), "{mode}: {t}");
        assert!(t.contains(&format!("created stack {stack}")), "{t}");
        let net = network_of(&env, &stack);
        assert_eq!(net["gateways"], serde_json::json!([]), "{mode}: {net}");
        let types = net["types"].as_array().unwrap();
        assert!(!types.contains(&"AWS::EC2::EIP".into()), "no Elastic IP: {net}");
        let instances = net["instances"].as_array().unwrap();
        assert_eq!(instances.len(), 1, "{net}");
        let nat = &instances[0];
        assert_eq!(
            (nat["type"].as_str(), nat["key"].as_str(), nat["state"].as_str()),
            (Some("t4g.nano"), None, Some("running"))
        );
        assert_eq!(net["routes"].as_array().unwrap().iter().filter(|r| *r == &nat["id"]).count(), 2, "{net}");
        assert_eq!(
            net["inbound"],
            serde_json::json!([["tcp", 443, 443, ["10.42.0.0/16"], 0]]),
            "HTTPS from the VPC alone: {net}"
        );
    }

    // The on-demand instance stopped itself (its ready tag goes on the way down); an update
    // starts it, and goes ahead once the instance says it forwards.
    let nat = network_of(&env, "cd2-instance-on-demand")["instances"][0]["id"].as_str().unwrap().to_owned();
    let tag = stack::constructs::nat::READY_TAG;
    env.boto(&format!(
        "ec2.stop_instances(InstanceIds=['{nat}'])\nec2.delete_tags(Resources=['{nat}'], Tags=[{{'Key': '{tag}'}}])"
    ));
    let mut booting = env.moto.play_nat_boot(&nat, tag).unwrap();
    let t = deploy("cd2-instance-on-demand", "instance-on-demand", &["--set", "map_concurrency=3"]);
    booting.kill().ok();
    booting.wait().ok();
    let woke =
        t.find(&format!("NAT instance(s) {nat} forwarding")).unwrap_or_else(|| panic!("deploy wakes the NAT:\n{t}"));
    assert!(t[woke..].contains("updated stack cd2-instance-on-demand"), "woken before the update:\n{t}");
    assert_eq!(network_of(&env, "cd2-instance-on-demand")["instances"][0]["state"], "running");
    // run starts it too, without waiting: the run's first step waits until it forwards.
    env.boto(&format!("ec2.stop_instances(InstanceIds=['{nat}'])"));
    let on_demand = ["--set", "stack_name=cd2-instance-on-demand", "--set", "network.nat=instance-on-demand"];
    let t = ok(env.ops("run", &[&on_demand[..], &["--no-wait"]].concat()));
    assert!(t.contains(&format!("starting NAT instance(s) {nat}: the run waits until they forward")), "{t}");
    assert!(t.contains("started run manual-"), "{t}");
    assert_eq!(network_of(&env, "cd2-instance-on-demand")["instances"][0]["state"], "running");
    // Always-on instances and gateways need no waking.
    let t = deploy("cd2-instance", "instance", &["--set", "map_concurrency=3"]);
    assert!(!t.contains("NAT instance(s)") && t.contains("updated stack cd2-instance"), "{t}");

    // A gateway stack moved to an on-demand instance: the gateway and its address leave the
    // stack. (moto's EC2 keeps the gateway and the routes to it, which CloudFormation deletes
    // and updates.)
    let t = deploy("cd2-gateway", "instance-on-demand", &[]);
    assert!(t.contains("- NetworkNatGatewayA") && t.contains("+ NetworkNatInstanceA"), "{t}");
    assert!(t.contains("updated stack cd2-gateway"), "{t}");
    let net = network_of(&env, "cd2-gateway");
    let types = net["types"].as_array().unwrap();
    assert!(!types.contains(&"AWS::EC2::EIP".into()) && !types.contains(&"AWS::EC2::NatGateway".into()), "{net}");
    assert_eq!(net["instances"].as_array().unwrap().len(), 1, "{net}");
}
