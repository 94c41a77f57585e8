//! Where things are in the repository, wherever `cargo xtask` is run from.

use std::path::{Path, PathBuf};

/// The workspace root: xtask's manifest lives one level below it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits inside the workspace").to_path_buf()
}

/// The environments that have a file, sorted.
pub fn environments() -> Vec<String> {
    stack::app::envs::names(&root())
}

/// Scratch space under `target/`, ignored by git.
pub fn target_dir(name: &str) -> PathBuf {
    root().join("target").join(name)
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/` of the workspace.
pub fn cargo_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}
