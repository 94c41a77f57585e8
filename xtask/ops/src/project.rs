//! What every command starts from: the checkout it was built in, and the environment flags
//! (`--env`, `--set`) that choose and adjust its configuration.

pub use stack::app::envs::EnvFlags;
use std::path::{Path, PathBuf};

/// The checkout this binary was built in.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace exists")
}
