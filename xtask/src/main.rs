//! The cd2-aws operator CLI, run as `cargo xtask <command>`.
//!
//! One module per command; each exposes one `run` function taking its parsed flags.

mod bench;
mod build_lambdas;
mod db;
mod demo;
mod ops;
mod project;
mod replicate;
mod review;
mod synth;
mod test;
mod validators;

use clap::{Parser, Subcommand};
pub use stack::app::envs::EnvFlags;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build, check and run the Canvas Data 2 replica stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the CloudFormation template (JSON and YAML) and the state machine definition, and print a review.
    Synth {
        #[command(flatten)]
        env: EnvFlags,
        /// Output directory.
        #[arg(long, default_value = "cdk.out")]
        out: PathBuf,
    },
    /// Run the whole workflow on this machine: the DAP emulator's demo tables, a throwaway PostgreSQL, moto's Step Functions with the real functions; no AWS account, no DAP key.
    Demo,
    /// Build the Lambda functions as arm64 zips (cargo lambda), named by content hash, into target/lambda-zips.
    BuildLambdas,
    /// Run the tests (real PostgreSQL, DAP emulator), cfn-lint, statelint and checkov on every environment's synth output, and the interchange test with the official dap client.
    Test {
        /// Only the cargo tests: skip the validators and the interchange test with the official client.
        #[arg(long)]
        no_validators: bool,
    },
    /// Replicate DAP tables into PostgreSQL from this machine (init new tables, sync the others).
    Replicate(replicate::ReplicateFlags),
    /// Benchmarks: synth time; Lambda zip sizes and start-up; replication rows per second, peak memory and the COPY ceiling; a no-op deploy against moto; the scale run (`run`, not in `all`).
    Bench {
        #[arg(value_enum, default_value = "all")]
        which: bench::Which,
        /// Synth iterations.
        #[arg(long, default_value_t = 200)]
        iterations: u32,
        /// Rows of the generated table (a quarter of it is measured too, to show memory stays flat).
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Tables of the scale run (`bench run`).
        #[arg(long, default_value_t = 500)]
        tables: usize,
        /// DAP's one-minute limit window, shortened, in milliseconds (`bench run`).
        #[arg(long, default_value_t = 6000)]
        window_ms: u64,
    },
    #[command(flatten)]
    Aws(ops::Command),
    /// The replicating side of `bench replication`, in its own process.
    #[command(hide = true)]
    BenchChild {
        #[arg(long)]
        dap: String,
        #[arg(long)]
        db: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth { env, out } => synth::run(&env, &out),
        Command::Demo => demo::run(),
        Command::Test { no_validators } => test::run(no_validators),
        Command::BuildLambdas => build_lambdas::run(),
        Command::Replicate(flags) => replicate::run(&flags),
        Command::Bench { which, iterations, rows, tables, window_ms } => {
            bench::run(which, bench::Sizes { iterations, rows, tables, window_ms })
        }
        Command::BenchChild { dap, db } => bench::replication_child(&dap, &db),
        // cd2-ops has said why it failed: its exit code is enough.
        Command::Aws(command) => {
            return command.run().unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            });
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
