//! `deploy`, `diff`, `destroy`, `run`, `status`, `sql`, `restore`, `set-key`, `delete-key`: the commands that
//! talk to AWS live in their own package (`xtask/ops`, cd2-ops) and run as
//! `cargo run -p cd2-ops`, so that synth and the other commands never compile the AWS SDK.
//! deploy and diff check credentials, the DAP secret and the stack first, then build the
//! Lambda zips, then go on.

use crate::{build_lambdas, project};
use anyhow::{Context, Result};
use std::process::ExitCode;

/// The commands that talk to AWS, each handed unchanged to the cd2-ops command of the same
/// name: `--help` is cd2-ops's, with the command's real flags.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build the Lambdas, upload them, show the change set and the idle cost, and deploy (--env, --set, --email, --yes).
    #[command(disable_help_flag = true)]
    Deploy(Passed),
    /// Show what a deploy would change, without changing anything (--env, --set).
    #[command(disable_help_flag = true)]
    Diff(Passed),
    /// Delete the stack; keeps a final snapshot and its key unless --delete-data (--env, --yes).
    #[command(disable_help_flag = true)]
    Destroy(Passed),
    /// Start a replication run and follow it table by table (--table NS.TABLE, --no-wait).
    #[command(disable_help_flag = true)]
    Run(Passed),
    /// The recent runs: outcome, duration and counts (--tables: each table's freshness).
    #[command(disable_help_flag = true)]
    Status(Passed),
    /// Run one SQL statement on the stack's Aurora cluster through the RDS Data API ("SELECT ...", --csv).
    #[command(disable_help_flag = true)]
    Sql(Passed),
    /// Rebuild a table from the archive alone in a database you can reach (--table NS.TABLE, --into CONNECTION).
    #[command(disable_help_flag = true)]
    Restore(Passed),
    /// Store the DAP client id and secret (from DAP_CLIENT_ID, DAP_CLIENT_SECRET; set_key.sh asks for them).
    #[command(disable_help_flag = true)]
    SetKey(Passed),
    /// Delete the DAP secret, with a recovery window (destroy.sh runs it).
    #[command(disable_help_flag = true)]
    DeleteKey(Passed),
}

/// A command's arguments, as given.
#[derive(Debug, clap::Args)]
pub struct Passed {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl Command {
    /// Runs it in cd2-ops; the exit code is cd2-ops's, which has already said why.
    pub fn run(&self) -> Result<ExitCode> {
        let (name, Passed { args }) = match self {
            Command::Deploy(p) => ("deploy", p),
            Command::Diff(p) => ("diff", p),
            Command::Destroy(p) => ("destroy", p),
            Command::Run(p) => ("run", p),
            Command::Status(p) => ("status", p),
            Command::Sql(p) => ("sql", p),
            Command::Restore(p) => ("restore", p),
            Command::SetKey(p) => ("set-key", p),
            Command::DeleteKey(p) => ("delete-key", p),
        };
        run(name, args)
    }
}

/// Runs `command` with `args`: deploy and diff check first, then build the zips.
fn run(command: &str, args: &[String]) -> Result<ExitCode> {
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
    let manifest = project::root().join("Cargo.toml");
    let status = testkit::cargo()
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
