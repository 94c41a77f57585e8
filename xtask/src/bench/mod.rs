//! `cargo xtask bench`: figures, not tests; nothing here fails on a number.
//!
//! - `synth`: how long building and validating the template takes.
//! - `lambdas`: each function's arm64 zip size and its start-up to the first runtime API
//!   request.
//! - `replication`: rows per second of init and of a 10% sync of a generated table served
//!   by the emulator (in its own process), the replicating process's peak memory at two
//!   table sizes, and a plain `COPY FROM STDIN` of the same rows as the ceiling; then init
//!   with the archive off and on (moto's S3 taking the parts).
//! - `deploy`: a deploy that changes nothing, against moto, and synth as a whole process.
//! - `run`: the scale run, the whole workflow over `--tables` tables inside DAP's limits
//!   (not part of `all`: it takes most of an hour at 500 tables).

mod deploy;
mod lambdas;
mod replication;
mod run;
mod synth;

pub use replication::child as replication_child;

use anyhow::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Synth,
    Lambdas,
    Replication,
    Deploy,
    Run,
    All,
}

/// What the benchmarks are given.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub iterations: u32,
    pub rows: u64,
    pub tables: usize,
    pub window_ms: u64,
}

pub fn run(which: Which, sizes: Sizes) -> Result<()> {
    let Sizes { iterations, rows, tables, window_ms } = sizes;
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
    if which == Which::Run {
        run::run(tables, window_ms)?;
    }
    Ok(())
}
