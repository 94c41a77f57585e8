//! moto's server on loopback: the AWS APIs for the tests, its Step Functions interpreter
//! reaching the real functions through `cargo lambda watch`.

use crate::{free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set to the `bin` directory of the Python tools' virtualenv (moto); `cargo xtask test` sets it.
pub const PYTHON_TOOLS_VAR: &str = "CD2_PYTHON_TOOLS";

/// One Lambda invocation as moto's launcher records it ([`Moto::start_recording`]).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LambdaAnswer {
    /// The function's name (its binary's).
    pub function: String,
    /// The event, as sent.
    pub request: String,
    /// The function's answer, or its error's JSON.
    pub answer: String,
    /// Lambda's `X-Amz-Function-Error`, when the function failed.
    pub error: Option<String>,
}

/// moto's server on loopback (AWS APIs for the tests), stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    pub port: u16,
    child: std::process::Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python tools' `bin` directory: [`PYTHON_TOOLS_VAR`], or where `cargo xtask test`
/// installs them in this checkout.
pub fn python_tools() -> Result<PathBuf, String> {
    let bin = match std::env::var_os(PYTHON_TOOLS_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/validators/venv/bin"),
    };
    if bin.join("python").exists() {
        Ok(bin)
    } else {
        Err(format!(
            "the Python tools (moto, cargo-lambda) are not installed at {}: run `cargo xtask test` once, or set {PYTHON_TOOLS_VAR}",
            bin.display()
        ))
    }
}

impl Moto {
    /// Starts moto on a free port; with `forward_lambda` (the address of `cargo lambda
    /// watch`), Lambda invocations reach the real handlers there.
    pub fn start(forward_lambda: Option<&str>) -> Result<Self, String> {
        Self::launch(forward_lambda, None)
    }

    /// Starts moto forwarding Lambda invocations to `forward_lambda`, and appending each to
    /// `answers` as one JSON line ([`LambdaAnswer`]): how a caller sees a table's calls end,
    /// since moto's interpreter does not list a distributed Map's child executions.
    pub fn start_recording(forward_lambda: &str, answers: &Path) -> Result<Self, String> {
        Self::launch(Some(forward_lambda), Some(answers))
    }

    fn launch(forward_lambda: Option<&str>, answers: Option<&Path>) -> Result<Self, String> {
        let bin = python_tools()?;
        let port = free_port();
        let mut cmd = Command::new(bin.join("python"));
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("moto_launcher.py"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match forward_lambda {
            Some(url) => cmd.env("CD2_LAMBDA_FORWARD", url),
            None => cmd.env_remove("CD2_LAMBDA_FORWARD"),
        };
        match answers {
            Some(path) => cmd.env("CD2_LAMBDA_ANSWERS", path),
            None => cmd.env_remove("CD2_LAMBDA_ANSWERS"),
        };
        let child = cmd.spawn().map_err(|e| format!("starting moto: {e}"))?;
        let mut moto = Self { port, child };
        wait_for_port(port, "moto")?;
        // Listening, but moto itself? A moto that could not bind its port has exited.
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!("moto exited ({status}) on port {port}, which another server holds"));
        }
        Ok(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points `command` (an AWS SDK program) at this server with test credentials and none
    /// of this machine's AWS configuration; `scratch` holds the (absent) config files.
    pub fn isolate(&self, command: &mut Command, scratch: &Path) {
        command
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", scratch.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", scratch.join("no-aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION");
    }

    /// Runs Python `code` with boto3 on this server: `kw` (the client arguments), `ec2`,
    /// `s3`, `cfn`, `sm` and `json` are there. Answers what it printed.
    pub fn boto(&self, code: &str) -> Result<String, String> {
        let o = self.boto_command(code)?.output().map_err(|e| format!("running boto3: {e}"))?;
        if !o.status.success() {
            return Err(format!("boto3: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }

    /// What only a real NAT instance runs: its boot script's last step, `ready_tag` set on
    /// `instance` once it runs (and forwards), again after each start. A boto3 loop on this
    /// server, its output dropped; the caller kills it.
    pub fn play_nat_boot(&self, instance: &str, ready_tag: &str) -> Result<std::process::Child, String> {
        let code = format!(
            "import time\n\
             while True:\n\
             \x20   i = ec2.describe_instances(InstanceIds=['{instance}'])['Reservations'][0]['Instances'][0]\n\
             \x20   tags = {{t['Key'] for t in i.get('Tags', [])}}\n\
             \x20   if i['State']['Name'] == 'running' and '{ready_tag}' not in tags:\n\
             \x20       ec2.create_tags(Resources=['{instance}'], Tags=[{{'Key': '{ready_tag}', 'Value': 'yes'}}])\n\
             \x20   time.sleep(0.3)"
        );
        self.boto_command(&code)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("running boto3: {e}"))
    }

    fn boto_command(&self, code: &str) -> Result<Command, String> {
        let script = format!(
            "import boto3, json\n\
             kw = dict(endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             ec2 = boto3.client('ec2', **kw); s3 = boto3.client('s3', **kw); cfn = boto3.client('cloudformation', **kw)\n\
             sm = boto3.client('secretsmanager', **kw)\n{code}",
            self.endpoint()
        );
        let mut command = Command::new(python_tools()?.join("python"));
        command.arg("-c").arg(script);
        Ok(command)
    }

    /// `--set` overrides that make the `existing` environment one moto can deploy: its
    /// default VPC and two of its subnets, a security group made here for the database, and
    /// no bootstrap (moto's CloudFormation would wait for ever on the custom resource).
    pub fn existing_profile(&self) -> Result<Vec<String>, String> {
        let lines = self.boto(
            "vpc = ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs'][0]['VpcId']\n\
             subnets = [s['SubnetId'] for s in ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [vpc]}])['Subnets']][:2]\n\
             sg = ec2.create_security_group(GroupName='replica-db', Description='the database', VpcId=vpc)['GroupId']\n\
             print(f'network.vpc_id={vpc}')\n\
             print('network.private_subnet_ids=' + json.dumps(subnets))\n\
             print(f'database.security_group_id={sg}')",
        )?;
        let mut overrides: Vec<String> = lines.lines().map(str::to_owned).collect();
        overrides.extend(
            ["database.bootstrap=false", "database.admin_secret_arn=", "database.resource_id="].map(str::to_owned),
        );
        Ok(overrides)
    }
}

/// An empty zip in `dir` for each of `functions` (moto's Lambda takes any code), named as
/// `cargo xtask build-lambdas` names them: answers each function's file, for the manifest.
pub fn empty_lambda_zips<'a>(
    dir: &Path,
    functions: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<Vec<(&'a str, String)>> {
    const EMPTY_ZIP: [u8; 22] = [0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for f in functions {
        let file = format!("{f}-0123456789abcdef.zip");
        std::fs::write(dir.join(&file), EMPTY_ZIP)?;
        files.push((f, file));
    }
    Ok(files)
}
