//! `cargo xtask test`: the project's one test command (the README's and CI's).
//!
//! First `cargo test` for the whole workspace against a real PostgreSQL server it starts
//! on loopback (the interchange test with the official `dap` client and the demo among
//! them), then the real validators on the synth output of every environment and of a
//! bring-your-own-VPC variant.

use crate::validators::{Validators, Verdict};
use crate::{EnvFlags, project, synth};
use anyhow::{Context, Result, bail};

pub fn run(no_validators: bool) -> Result<()> {
    // One PostgreSQL server for every test binary of the run and the interchange test.
    let server = testkit::PgServer::start(&project::target_dir("test-postgres"))
        .map_err(anyhow::Error::msg)
        .context("starting PostgreSQL for the tests")?;
    let result = run_with(&server, no_validators);
    let stopped = server.stop().map_err(anyhow::Error::msg).context("stopping the test PostgreSQL");
    result.and(stopped)
}

fn run_with(server: &testkit::PgServer, no_validators: bool) -> Result<()> {
    let database = &server.url();
    // moto and cargo-lambda, which the Lambda tests use, come with the validators.
    let tools = Validators::ensure()?;
    let mut command = testkit::cargo();
    command.env(testkit::PYTHON_TOOLS_VAR, tools.bin());
    if let Some(ca) = server.ca_cert() {
        command.env(testkit::DATABASE_CA_VAR, ca);
    }
    let status = command
        .args(["test", "--workspace", "--all-targets"])
        .env(testkit::DATABASE_URL_VAR, database)
        .current_dir(project::root())
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed");
    }
    if no_validators {
        return Ok(());
    }
    let validated = validate_synth_outputs(&tools)?;
    println!("checks: {validated} passed, 0 failed");
    Ok(())
}

/// The configurations whose synth output must pass every validator.
fn cases() -> Vec<(String, EnvFlags)> {
    let mut cases: Vec<(String, EnvFlags)> =
        project::environments().into_iter().map(|env| (env.clone(), EnvFlags { env, overrides: vec![] })).collect();
    cases.push((
        "dev-existing-vpc".into(),
        EnvFlags {
            env: "dev".into(),
            overrides: stack::app::envs::EXISTING_VPC_OVERRIDES
                .into_iter()
                .chain(["notify_on_success=true", "alert_email=ops@example.edu"])
                .map(str::to_owned)
                .collect(),
        },
    ));
    // Always-on NAT instances, one per AZ (dev has one on demand, prod gateways).
    cases.push((
        "dev-nat-instances".into(),
        EnvFlags {
            env: "dev".into(),
            overrides: ["network.nat=instance", "network.nat_gateways=2", "network.nat_instance_type=t4g.micro"]
                .map(str::to_owned)
                .to_vec(),
        },
    ));
    cases
}

/// Returns how many validator runs passed (all of them, or an error).
fn validate_synth_outputs(tools: &Validators) -> Result<usize> {
    let mut verdicts: Vec<Verdict> = Vec::new();
    for (name, flags) in cases() {
        let config = synth::load_config(&flags).with_context(|| format!("configuration `{name}`"))?;
        let synthesized = stack::app::build(&config).with_context(|| format!("synth of `{name}`"))?;
        let out = project::target_dir("synth-check").join(&name);
        let written = synthesized.write(&config.stack_name, &out)?;
        verdicts.push(tools.cfn_lint(&written.template_json)?);
        verdicts.push(tools.statelint(&written.asl)?);
        verdicts.push(tools.checkov(&written.template_json)?);
    }
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.passed).collect();
    for v in &verdicts {
        let file = v.file.strip_prefix(project::root()).unwrap_or(&v.file);
        println!("{:<4} {:<9} {}", if v.passed { "ok" } else { "FAIL" }, v.tool, file.display());
    }
    for v in &failed {
        println!("\n--- {} on {}:\n{}", v.tool, v.file.display(), v.output.trim_end());
    }
    println!("validators: {} passed, {} failed", verdicts.len() - failed.len(), failed.len());
    if !failed.is_empty() {
        bail!("{} validator run(s) failed", failed.len());
    }
    Ok(verdicts.len())
}
