//! `cargo xtask build-lambdas`: the functions as arm64 zips for `provided.al2023`, built by
//! cargo-lambda (`--release --arm64 --output-format zip`), each copied to
//! `target/lambda-zips/<function>-<sha256 prefix>.zip` (content-addressed, so the deploy
//! uploads only what changed), with `manifest.json` naming them.

use crate::project;
use crate::validators::Validators;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use stack::app::{Function, Manifest};
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug)]
pub struct Zip {
    pub function: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
}

pub fn run() -> Result<()> {
    for zip in build()? {
        println!("{:<13} {:>6.2} MB  {}", zip.function, zip.bytes as f64 / 1e6, zip.path.display());
    }
    Ok(())
}

pub fn build() -> Result<Vec<Zip>> {
    let tools = Validators::ensure()?;
    // cargo-lambda links with zig for glibc 2.17+, which `provided.al2023` satisfies.
    let _ = Command::new("rustup").args(["target", "add", "aarch64-unknown-linux-gnu"]).output();
    let lambda_dir = project::target_dir("lambda-arm64");
    let path = std::env::join_paths(
        std::iter::once(tools.bin().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let status = testkit::cargo()
        .args([
            "lambda",
            "build",
            "--release",
            "--arm64",
            "--output-format",
            "zip",
            "-p",
            "cd2-functions",
            "--lambda-dir",
        ])
        .arg(&lambda_dir)
        .env("PATH", path)
        .current_dir(project::root())
        .status()
        .context("running cargo lambda build (installed with the Python tools)")?;
    if !status.success() {
        bail!("cargo lambda build failed ({status})");
    }
    let out = project::target_dir("lambda-zips");
    std::fs::create_dir_all(&out)?;
    let mut zips = Vec::new();
    let mut manifest = Manifest::default();
    for function in Function::ALL {
        let built = lambda_dir.join(function.binary()).join("bootstrap.zip");
        let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        let hash = Sha256::digest(&bytes);
        // The first 8 bytes of the SHA-256, in hex.
        let name = format!("{function}-{}.zip", &format!("{hash:x}")[..16]);
        let path = out.join(&name);
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        manifest.insert(function, name);
        zips.push(Zip { function: function.binary(), path, bytes: bytes.len() as u64 });
    }
    std::fs::write(out.join(Manifest::FILE), manifest.to_json())?;
    Ok(zips)
}
