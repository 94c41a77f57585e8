//! `cargo xtask bench`: figures, not tests; nothing here fails on a number.
//!
//! - `synth`: how long building and validating the template takes.
//! - `lambdas`: each function's arm64 zip size and its start-up to the first runtime API
//!   request.
//! - `replication`: rows per second of init and of a 10% sync of a generated table served
//!   by the emulator (in its own process), the replicating process's peak memory at two
//!   table sizes, and a plain `COPY FROM STDIN` of the same rows as the ceiling.
//! - `deploy`: a deploy that changes nothing, against moto, and synth as a whole process.

mod deploy;
mod lambdas;
mod replication;
mod synth;

pub use replication::child as replication_child;

use anyhow::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Synth,
    Lambdas,
    Replication,
    Deploy,
    All,
}

pub fn run(which: Which, iterations: u32, rows: u64) -> Result<()> {
    if matches!(which, Which::Synth | Which::All) {
        synth::run(iterations)?;
    }
    if matches!(which, Which::Lambdas | Which::All) {
        lambdas::run()?;
    }
    if matches!(which, Which::Replication | Which::All) {
        replication::run(rows)?;
    }
    if matches!(which, Which::Deploy | Which::All) {
        deploy::run()?;
    }
    Ok(())
}
