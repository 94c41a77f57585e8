//! Shared by the integration tests: the repository's environment files.

#![allow(dead_code)]

use stack::app::{self, Config, Synthesized};
use std::path::PathBuf;

pub fn env_path(env: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envs").join(format!("{env}.toml"))
}

pub fn config(env: &str, overrides: &[&str]) -> Config {
    let text = std::fs::read_to_string(env_path(env)).expect("env file");
    let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
    Config::from_toml(&text, &format!("{env}.toml"), &overrides).unwrap_or_else(|e| panic!("{e}"))
}

pub fn config_error(env: &str, overrides: &[&str]) -> String {
    let text = std::fs::read_to_string(env_path(env)).expect("env file");
    let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
    Config::from_toml(&text, &format!("{env}.toml"), &overrides).unwrap_err().to_string()
}

pub fn synth(env: &str, overrides: &[&str]) -> Synthesized {
    app::build(&config(env, overrides)).unwrap_or_else(|e| panic!("{e}"))
}
