//! Where things are in the repository, wherever `cargo xtask` is run from.

use std::path::{Path, PathBuf};

/// The workspace root: xtask's manifest lives one level below it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits inside the workspace").to_path_buf()
}

/// The configuration file of environment `env`.
pub fn env_file(env: &str) -> PathBuf {
    root().join("stack").join("envs").join(format!("{env}.toml"))
}

/// The environments that have a file, sorted.
pub fn environments() -> Vec<String> {
    let mut envs: Vec<String> = std::fs::read_dir(root().join("stack").join("envs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_owned))
        .collect();
    envs.sort();
    envs
}

/// Scratch space under `target/`, ignored by git.
pub fn target_dir(name: &str) -> PathBuf {
    root().join("target").join(name)
}
