//! `cd2-ops`: the cd2-aws commands that talk to AWS, run by `cargo xtask deploy | diff |
//! destroy | run | status | sql | set-key | delete-key`. A package of its own so that `cargo xtask
//! synth` never compiles the AWS SDK.
//!
//! One module per command, each with one `run`; what several share (clients, the assets
//! bucket, change sets, stack events, the cost table) has a module of its own.

mod archive;
mod assets;
mod aws;
mod changes;
mod clock;
mod deploy;
mod destroy;
mod events;
mod nat;
mod offers;
mod project;
mod prompt;
mod restore;
mod run;
mod secret;
mod sql;
mod stacks;
mod status;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Deploy and run the Canvas Data 2 replica stack on AWS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check credentials, region, the DAP secret and the stack's state (deploy's first step).
    Check(deploy::Flags),
    /// Upload the Lambda zips, synthesize, show the change set and the idle cost, and apply it.
    Deploy(deploy::Flags),
    /// Show what a deploy would change, without changing anything.
    Diff(deploy::Flags),
    /// Delete the stack, keeping a final database snapshot and its key unless --delete-data.
    Destroy(destroy::Flags),
    /// Start a replication run and follow it table by table.
    Run(run::Flags),
    /// The recent runs: outcome, duration and counts.
    Status(status::Flags),
    /// Run one SQL statement on the stack's Aurora cluster through the RDS Data API.
    Sql(sql::Flags),
    /// Rebuild a table from the archive alone in a database you can reach.
    Restore(restore::Flags),
    /// Create or update the DAP credential secret from DAP_CLIENT_ID and DAP_CLIENT_SECRET.
    SetKey(secret::Flags),
    /// Delete the DAP credential secret (with a recovery window).
    DeleteKey(secret::DeleteFlags),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Check(flags) => deploy::check(&flags).await,
            Command::Deploy(flags) => deploy::run(&flags, deploy::Mode::Apply).await,
            Command::Diff(flags) => deploy::run(&flags, deploy::Mode::Diff).await,
            Command::Destroy(flags) => destroy::run(&flags).await,
            Command::Run(flags) => run::run(&flags).await,
            Command::Status(flags) => status::run(&flags).await,
            Command::Sql(flags) => sql::run(&flags).await,
            Command::Restore(flags) => restore::run(&flags).await,
            Command::SetKey(flags) => secret::set(&flags).await,
            Command::DeleteKey(flags) => secret::delete(&flags).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
