//! `deploy`, `diff`, `destroy`, `run`, `status`, `set-key`, `delete-key`: the commands that
//! talk to AWS live in their own package (`xtask/ops`, cd2-ops) and run as
//! `cargo run -p cd2-ops`, so that synth and the other commands never compile the AWS SDK.
//! deploy and diff check credentials, the DAP secret and the stack first, then build the
//! Lambda zips, then go on.

use crate::{build_lambdas, project};
use anyhow::{Context, Result};
use std::process::{Command, ExitCode};

/// Runs `command` with `args`; the exit code is cd2-ops's, which has already said why.
pub fn run(command: &str, args: &[String]) -> Result<ExitCode> {
    let help = args.iter().any(|a| a == "-h" || a == "--help");
    if matches!(command, "deploy" | "diff") && !help {
        let mut check = args.to_vec();
        if command == "diff" {
            check.push("--for-diff".into());
        }
        let code = ops("check", &check)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        build_lambdas::run()?;
        let mut args = args.to_vec();
        args.push("--zips".into());
        args.push(project::target_dir("lambda-zips").display().to_string());
        return ops(command, &args);
    }
    ops(command, args)
}

fn ops(command: &str, args: &[String]) -> Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = project::root().join("Cargo.toml");
    let status = Command::new(cargo)
        .args(["run", "--quiet", "--package", "cd2-ops", "--manifest-path"])
        .arg(manifest)
        .arg("--")
        .arg(command)
        .args(args)
        .status()
        .context("running cargo run -p cd2-ops")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8)
    })
}
