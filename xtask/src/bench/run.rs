//! The scale run: the whole workflow (the synthesized state machine in moto's Step
//! Functions interpreter, the real function binaries, the DAP emulator enforcing DAP's
//! limits on a shortened clock, PostgreSQL) over `--tables` tables, an init run then a
//! sync run. It is `lambdas/functions/tests/scale.rs`, which CI runs small, here at full
//! size in an optimized build; its last line is the figure:
//!
//! `run-bench: tables=500 wall_s=W rate_bound_s=B ratio=W/B create_attempts=A ...`
//!
//! where the rate bound is what DAP's job-creation limit alone needs for the run's
//! attempts on the shortened clock (5 a window, the first at once).

use crate::{project, validators::Validators};
use anyhow::{Context, Result, bail};

pub fn run(tables: usize, window_ms: u64) -> Result<()> {
    if tables < testkit::SCALE_MIN_TABLES {
        bail!("--tables {tables}: the scale run needs at least {}", testkit::SCALE_MIN_TABLES);
    }
    let server = testkit::PgServer::start(&project::target_dir("bench-run-postgres"))
        .map_err(anyhow::Error::msg)
        .context("starting PostgreSQL for the scale run")?;
    let result = run_with(&server, tables, window_ms);
    let stopped = server.stop().map_err(anyhow::Error::msg).context("stopping the scale run's PostgreSQL");
    result.and(stopped)
}

fn run_with(server: &testkit::PgServer, tables: usize, window_ms: u64) -> Result<()> {
    let tools = Validators::ensure()?;
    println!(
        "scale run: {tables} tables, DAP's minute shortened to {window_ms} ms (a few minutes to build, then the runs)"
    );
    let mut command = testkit::cargo();
    command
        .args(["test", "--release", "-p", "cd2-functions", "--test", "scale", "--", "--nocapture"])
        .env(testkit::PYTHON_TOOLS_VAR, tools.bin())
        .env(testkit::DATABASE_URL_VAR, server.url())
        .env(testkit::SCALE_TABLES_VAR, tables.to_string())
        .env(testkit::SCALE_WINDOW_MS_VAR, window_ms.to_string())
        .current_dir(project::root());
    if let Some(ca) = server.ca_cert() {
        command.env(testkit::DATABASE_CA_VAR, ca);
    }
    let output = command.output().context("running the scale run")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.starts_with("run-bench:"));
    if !output.status.success() {
        eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
        bail!("the scale run failed{}", line.map(|l| format!(" after measuring: {l}")).unwrap_or_default());
    }
    println!("{}", line.context("the scale run printed no run-bench line")?);
    Ok(())
}
