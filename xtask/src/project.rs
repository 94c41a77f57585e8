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
