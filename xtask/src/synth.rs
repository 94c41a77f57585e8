//! `cargo xtask synth`: configuration -> stack -> validated template and ASL on disk.

use crate::{EnvFlags, project, review};
use anyhow::{Context, Result};
use stack::app::{self, Config};
use std::path::Path;

pub fn run(flags: &EnvFlags, out: &Path) -> Result<()> {
    let config = load_config(flags)?;
    let synthesized = app::build(&config)?;
    let written = synthesized.write(&config.stack_name, out).context("writing the synth output")?;
    print!("{}", review::render(&config, &synthesized));
    println!("\nwrote {}", written.template_json.display());
    println!("wrote {}", written.template_yaml.display());
    println!("wrote {}", written.asl.display());
    println!("wrote {}", written.diagram.display());
    Ok(())
}

/// Reads `stack/envs/<env>.toml` and applies the `--set` overrides.
pub fn load_config(flags: &EnvFlags) -> Result<Config> {
    Ok(flags.load(&project::root())?)
}
