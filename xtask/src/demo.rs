//! `cargo xtask demo`: the whole workflow on this machine, with nothing but the README's
//! prerequisites: the state machine synth writes, run by moto's Step Functions interpreter
//! against the real function binaries, the DAP emulator's demo tables and a throwaway
//! PostgreSQL. The demo itself is `lambdas/functions/examples/demo.rs`, on the end-to-end
//! test's stage; this builds it and the functions, and gives it a database server and
//! moto's Python.
//!
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

/// The demo against a running server (the tests' own, under `cargo xtask test`).
pub fn run_with(server: &testkit::PgServer, tools: &Validators) -> Result<()> {
    println!("building the Lambda functions and the demo (a few minutes the first time) ...");
    let built = testkit::cargo()
        .args(["build", "--quiet", "-p", "cd2-functions", "--bins", "--example", "demo"])
        .current_dir(project::root())
        .status()
        .context("running cargo build")?;
    if !built.success() {
        bail!("building the functions and the demo failed (cargo's errors above)");
    }
    let mut demo = testkit::cargo();
    demo.args(["run", "--quiet", "-p", "cd2-functions", "--example", "demo"])
        .env(testkit::PYTHON_TOOLS_VAR, tools.bin())
        .env(testkit::DATABASE_URL_VAR, server.url())
        .current_dir(project::root());
    if let Some(ca) = server.ca_cert() {
        demo.env(testkit::DATABASE_CA_VAR, ca);
    }
    if !demo.status().context("running the demo")?.success() {
        bail!("the demo failed (its reason above)");
    }
    Ok(())
}
