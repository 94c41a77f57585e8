//! How long a deploy that changes nothing takes against moto on loopback, and synth as a
//! whole process. Three figures for the deploy: cd2-ops alone (the AWS conversation), the
//! whole `cargo xtask deploy` (cargo, the credential check, the Lambda build check, then
//! cd2-ops), and the anchor, `cd2-ops check`: three API calls (STS, Secrets Manager,
//! CloudFormation) in one process, measured in the same run.

use crate::project;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

pub fn run() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "cd2-ops", "-p", "xtask"])
        .current_dir(project::root())
        .status()
        .context("building cd2-ops")?;
    if !built.success() {
        bail!("cargo build -p cd2-ops failed ({built})");
    }
    synth_process(&cargo)?;

    let tools = crate::validators::Validators::ensure()?;
    let moto = testkit::Moto::start(None).map_err(anyhow::Error::msg)?;
    let dir = project::target_dir("bench-deploy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("zips"))?;
    let mut manifest = serde_json::Map::new();
    for f in stack::app::FUNCTIONS {
        let file = format!("{f}-bench.zip");
        // An empty zip: moto takes any code.
        std::fs::write(
            dir.join("zips").join(&file),
            [0x50, 0x4b, 0x05, 0x06].iter().chain(&[0u8; 18]).copied().collect::<Vec<u8>>(),
        )?;
        manifest.insert(f.to_owned(), file.into());
    }
    std::fs::write(dir.join("zips/manifest.json"), serde_json::Value::Object(manifest).to_string())?;
    let net = boto(
        &tools.bin().join("python"),
        &moto.endpoint(),
        "vpc = ec2.describe_vpcs()['Vpcs'][0]['VpcId']\n\
         subnets = [s['SubnetId'] for s in ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [vpc]}])['Subnets']][:2]\n\
         sg = ec2.create_security_group(GroupName='db', Description='db', VpcId=vpc)['GroupId']\n\
         print(vpc, json.dumps(subnets).replace(' ', ''), sg)",
    )?;
    let parts: Vec<&str> = net.split_whitespace().collect();
    let [vpc, subnets, sg] = parts[..] else { bail!("unexpected answer from boto3: {net}") };
    let profile: Vec<String> = [
        "--env",
        "existing",
        "--set",
        &format!("network.vpc_id={vpc}"),
        "--set",
        &format!("network.private_subnet_ids={subnets}"),
        "--set",
        &format!("database.security_group_id={sg}"),
        "--set",
        "database.bootstrap=false",
        "--set",
        "database.admin_secret_arn=",
        "--set",
        "database.resource_id=",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let ops = project::target_dir("debug").join("cd2-ops");
    let with_aws = |mut c: Command| {
        c.env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", dir.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("DAP_CLIENT_ID", "bench")
            .env("DAP_CLIENT_SECRET", "bench")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        c
    };
    let out = dir.join("out").display().to_string();
    let zips = dir.join("zips").display().to_string();
    let ops_run = |args: &[&str]| -> Result<Duration> {
        let mut c = with_aws(Command::new(&ops));
        c.args(args).args(&profile);
        if args[0] != "set-key" {
            c.args(["--out", &out]);
        }
        if args[0] == "deploy" {
            c.args(["--zips", &zips]);
        }
        timed(c)
    };
    ops_run(&["set-key"])?;
    let create = ops_run(&["deploy", "--yes"])?;
    let anchor = median((0..RUNS).map(|_| ops_run(&["check", "--yes"])).collect::<Result<Vec<_>>>()?);
    let noop = median((0..RUNS).map(|_| ops_run(&["deploy", "--yes"])).collect::<Result<Vec<_>>>()?);
    let whole = {
        let mut c = with_aws(Command::new(&cargo));
        c.args(["xtask", "deploy"]).args(&profile).args(["--yes", "--out", &out]).current_dir(project::root());
        median((0..3).map(|_| timed(with_aws(clone(&c)))).collect::<Result<Vec<_>>>()?)
    };
    println!("deploy against moto on loopback (bring-your-own VPC and database profile, 29 resources):");
    println!("  first deploy (create), cd2-ops:          {:>8.2} s", create.as_secs_f64());
    println!("  no-op deploy, cd2-ops, median of {RUNS}:     {:>8.2} s", noop.as_secs_f64());
    println!("  anchor: cd2-ops check (3 API calls):     {:>8.2} s", anchor.as_secs_f64());
    println!(
        "  no-op `cargo xtask deploy`, median of 3: {:>8.2} s  (cargo, check, the Lambda build check, cd2-ops)",
        whole.as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask synth` as a user runs it (cargo's freshness check included), and the
/// built binary alone.
fn synth_process(cargo: &str) -> Result<()> {
    let out = project::target_dir("bench-synth");
    let mut c = Command::new(cargo);
    c.args(["xtask", "synth", "--out"]).arg(&out).current_dir(project::root());
    let whole = median((0..RUNS).map(|_| timed(clone(&c))).collect::<Result<Vec<_>>>()?);
    let mut b = Command::new(project::target_dir("debug").join("xtask"));
    b.args(["synth", "--out"]).arg(&out);
    let binary = median((0..RUNS).map(|_| timed(clone(&b))).collect::<Result<Vec<_>>>()?);
    println!("synth as a whole process, median of {RUNS}:");
    println!("  `cargo xtask synth`:        {:>7.0} ms", whole.as_secs_f64() * 1e3);
    println!("  target/debug/xtask synth:   {:>7.0} ms", binary.as_secs_f64() * 1e3);
    Ok(())
}

fn clone(c: &Command) -> Command {
    let mut n = Command::new(c.get_program());
    n.args(c.get_args());
    if let Some(dir) = c.get_current_dir() {
        n.current_dir(dir);
    }
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => n.env(k, v),
            None => n.env_remove(k),
        };
    }
    n.stdin(Stdio::null());
    n
}

fn timed(mut c: Command) -> Result<Duration> {
    let start = Instant::now();
    let o: Output = c.output().with_context(|| format!("running {:?}", c.get_program()))?;
    let elapsed = start.elapsed();
    if !o.status.success() {
        bail!(
            "{:?} failed:\n{}{}",
            c.get_program(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(elapsed)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Runs boto3 against moto; `code` prints the answer.
fn boto(python: &Path, endpoint: &str, code: &str) -> Result<String> {
    let script = format!(
        "import boto3, json\nec2 = boto3.client('ec2', endpoint_url='{endpoint}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}"
    );
    let o = Command::new(python).arg("-c").arg(script).output().context("running boto3")?;
    if !o.status.success() {
        bail!("boto3: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}
