//! `cargo xtask demo`: the whole workflow on this machine, with nothing but the README's
//! prerequisites: the state machine synth writes, run by moto's Step Functions interpreter
//! against the real function binaries, the DAP emulator's demo tables and a throwaway
//! PostgreSQL. The demo itself is the test `lambdas/functions/tests/demo.rs` (without
//! libtest's harness), on the end-to-end test's stage; this runs it alone, built as
//! `cargo test --workspace` builds it, and gives it a database server and moto's Python.
//! (A build of the one package would unify other features, tokio's and aws-config's, and
//! build half the workspace a second time.)

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

fn run_with(server: &testkit::PgServer, tools: &Validators) -> Result<()> {
    println!("building the workspace as the tests do (a few minutes the first time) ...");
    let mut demo = testkit::cargo();
    demo.args(["test", "--quiet", "--workspace", "--test", "demo"])
        .env(testkit::PYTHON_TOOLS_VAR, tools.bin())
        .env(testkit::DATABASE_URL_VAR, server.url())
        .current_dir(project::root());
    if let Some(ca) = server.ca_cert() {
        demo.env(testkit::DATABASE_CA_VAR, ca);
    }
    if !demo.status().context("running cargo test --test demo")?.success() {
        bail!("the demo failed (its reason above)");
    }
    Ok(())
}
