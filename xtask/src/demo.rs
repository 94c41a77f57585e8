//! `cargo xtask demo`: the whole workflow on this machine, with nothing but the README's
//! prerequisites: the state machine synth writes, run by moto's Step Functions interpreter
//! against the real function binaries, the DAP emulator's demo tables and a throwaway
//! PostgreSQL. The demo itself is `lambdas/functions/examples/demo.rs`, on the end-to-end
//! test's stage; this builds it and the functions, and gives it a database server and
//! moto's Python.
//!
//! It is built with the whole workspace's targets (`cargo build --workspace --all-targets`),
//! which resolves features as `cargo test --workspace --all-targets` does, so the demo and
//! the tests share every artifact: a build of the one package alone would unify other
//! features (tokio's, aws-config's) and rebuild half the workspace at each switch. (`cargo
//! test` itself builds the example only as a test harness, which cannot run the demo.)
//! `cargo xtask test` runs it too: it exits non-zero when the run did not go as the
//! workflow should, so what the README promises a newcomer is tested.

use crate::{project, validators::Validators};
use anyhow::{Context, Result, bail};

pub fn run() -> Result<()> {
    let tools = Validators::ensure()?;
    let server = testkit::PgServer::start(&project::target_dir("demo-postgres"))
        .map_err(anyhow::Error::msg)
        .context("starting PostgreSQL for the demo")?;
    let result = run_with(&server, &tools);
    let stopped = server.stop().map_err(anyhow::Error::msg).context("stopping the demo's PostgreSQL");
    result.and(stopped)
}

/// Builds the demo and runs it against a running server (the tests' own, under `cargo
/// xtask test`).
pub fn run_with(server: &testkit::PgServer, tools: &Validators) -> Result<()> {
    println!("building the workspace as the tests do (a few minutes the first time) ...");
    let built = testkit::cargo()
        .args(["build", "--quiet", "--workspace", "--all-targets"])
        .current_dir(project::root())
        .status()
        .context("running cargo build")?;
    if !built.success() {
        bail!("building the functions and the demo failed (cargo's errors above)");
    }
    let exe = project::cargo_target().join("debug/examples/demo");
    let mut demo = std::process::Command::new(&exe);
    demo.env(testkit::PYTHON_TOOLS_VAR, tools.bin()).env(testkit::DATABASE_URL_VAR, server.url());
    if let Some(ca) = server.ca_cert() {
        demo.env(testkit::DATABASE_CA_VAR, ca);
    }
    let status = demo.current_dir(project::root()).status().with_context(|| format!("running {}", exe.display()))?;
    if !status.success() {
        bail!("the demo failed (its reason above)");
    }
    Ok(())
}
