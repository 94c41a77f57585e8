//! How long a deploy that changes nothing takes against moto on loopback, and synth as a
//! whole process. Three figures for the deploy: cd2-ops alone (the AWS conversation), the
//! whole `cargo xtask deploy` (cargo, the credential check, the Lambda build check, then
//! cd2-ops), and the anchor, `cd2-ops check`: three API calls (STS, Secrets Manager,
//! CloudFormation) in one process, measured in the same run.

use crate::project;
use anyhow::{Context, Result, bail};
use stack::app::{Function, Manifest};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

pub fn run() -> Result<()> {
    let built = testkit::cargo()
        .args(["build", "--quiet", "-p", "cd2-ops", "-p", "xtask"])
        .current_dir(project::root())
        .status()
        .context("building cd2-ops")?;
    if !built.success() {
        bail!("cargo build -p cd2-ops failed ({built})");
    }
    synth_process()?;
    switches()?;

    // moto and its launcher come with the Python tools.
    crate::validators::Validators::ensure()?;
    let moto = testkit::Moto::start(None).map_err(anyhow::Error::msg)?;
    let dir = project::target_dir("bench-deploy");
    let _ = std::fs::remove_dir_all(&dir);
    let manifest: Manifest =
        testkit::empty_lambda_zips(&dir.join("zips"), Function::ALL.map(Function::binary))?.into_iter().collect();
    std::fs::write(dir.join("zips").join(Manifest::FILE), manifest.to_json())?;
    let mut profile: Vec<String> = vec!["--env".into(), "existing".into()];
    for o in moto.existing_profile().map_err(anyhow::Error::msg)? {
        profile.extend(["--set".into(), o]);
    }
    let out = dir.join("out").display().to_string();
    let zips = dir.join("zips").display().to_string();
    // A fresh command each time: moto's endpoint, test credentials, the profile.
    let command = |mut c: Command, args: &[&str]| {
        c.args(args).args(&profile).env("DAP_CLIENT_ID", "bench").env("DAP_CLIENT_SECRET", "bench");
        if args[0] != "set-key" {
            c.args(["--out", &out]);
        }
        // cd2-ops's deploy; `cargo xtask deploy` passes the zips it builds.
        if args[0] == "deploy" {
            c.args(["--zips", &zips]);
        }
        moto.isolate(&mut c, &dir);
        c.current_dir(project::root());
        c
    };
    let ops = project::target_dir("debug").join("cd2-ops");
    let ops = || Command::new(&ops);
    timed(command(ops(), &["set-key"]))?;
    let create = timed(command(ops(), &["deploy", "--yes"]))?;
    let anchor = median((0..RUNS).map(|_| timed(command(ops(), &["check", "--yes"]))).collect::<Result<Vec<_>>>()?);
    let noop = median((0..RUNS).map(|_| timed(command(ops(), &["deploy", "--yes"]))).collect::<Result<Vec<_>>>()?);
    let whole = median(
        (0..3).map(|_| timed(command(testkit::cargo(), &["xtask", "deploy", "--yes"]))).collect::<Result<Vec<_>>>()?,
    );
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
fn synth_process() -> Result<()> {
    let out = project::target_dir("bench-synth");
    let synth = |mut c: Command, args: &[&str]| {
        c.args(args).arg("--out").arg(&out).current_dir(project::root()).stdin(Stdio::null());
        timed(c)
    };
    let whole = median((0..RUNS).map(|_| synth(testkit::cargo(), &["xtask", "synth"])).collect::<Result<Vec<_>>>()?);
    let xtask = project::target_dir("debug").join("xtask");
    let binary = median((0..RUNS).map(|_| synth(Command::new(&xtask), &["synth"])).collect::<Result<Vec<_>>>()?);
    println!("synth as a whole process, median of {RUNS}:");
    println!("  `cargo xtask synth`:        {:>7.0} ms", whole.as_secs_f64() * 1e3);
    println!("  target/debug/xtask synth:   {:>7.0} ms", binary.as_secs_f64() * 1e3);
    Ok(())
}

/// Switching between the two packages as an operator does: `cargo xtask synth` (xtask alone)
/// right after `cargo xtask status --help` (which builds and runs cd2-ops through xtask), and
/// the other way round. Once both are built, nothing should be built again.
fn switches() -> Result<()> {
    let out = project::target_dir("bench-synth");
    let xtask = |args: &[&str]| {
        let mut c = testkit::cargo();
        c.arg("xtask").args(args).current_dir(project::root()).stdin(Stdio::null());
        timed(c)
    };
    let synth = ["synth", "--out", &out.display().to_string()].map(str::to_owned);
    let synth: Vec<&str> = synth.iter().map(String::as_str).collect();
    xtask(&["status", "--help"])?;
    let (mut to_synth, mut to_ops) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        to_synth.push(xtask(&synth)?);
        to_ops.push(xtask(&["status", "--help"])?);
    }
    println!("switching commands, both built, median of {RUNS} (goal: under 3 s each):");
    println!("  `cargo xtask synth` after `cargo xtask status`: {:>7.0} ms", median(to_synth).as_secs_f64() * 1e3);
    println!("  `cargo xtask status` after `cargo xtask synth`: {:>7.0} ms", median(to_ops).as_secs_f64() * 1e3);
    Ok(())
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
