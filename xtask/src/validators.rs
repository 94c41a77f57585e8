//! cfn-lint, statelint and checkov: real validators on the synthesized files, and the
//! official `dap` client for the interchange test, installed into a virtualenv under
//! `target/` the first time they are needed (pip is the only way to get them; no Rust
//! crate does what they do).

use crate::project;
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug)]
pub struct Validators {
    bin: PathBuf,
}

/// What one validator said about one file.
#[derive(Debug)]
pub struct Verdict {
    pub tool: &'static str,
    pub file: PathBuf,
    pub passed: bool,
    pub output: String,
}

fn requirements() -> PathBuf {
    project::root().join("xtask").join("python-tools.txt")
}

impl Validators {
    /// The pinned Python tools, installing them when missing or when the pins changed.
    pub fn ensure() -> Result<Self> {
        let venv = project::target_dir("validators").join("venv");
        let stamp = venv.join("installed-requirements.txt");
        let wanted = fs::read_to_string(requirements()).context("reading xtask/python-tools.txt")?;
        let bin = venv.join("bin");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            eprintln!("installing the Python tools into {} (once; about a minute) ...", venv.display());
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            run_checked(
                Command::new(&python).arg("-m").arg("venv").arg("--clear").arg(&venv),
                "creating the validators' virtualenv (is python3 with venv installed?)",
            )?;
            run_checked(
                Command::new(bin.join("pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(requirements()),
                "installing cfn-lint, checkov, statelint and the official dap client with pip",
            )?;
            fs::write(&stamp, wanted).context("recording the installed validators")?;
        }
        Ok(Self { bin })
    }

    /// The virtualenv's `bin` directory (moto, cargo-lambda).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn run(&self, tool: &'static str, args: &[&str], file: &Path) -> Result<Output> {
        Command::new(self.bin.join(tool))
            .args(args)
            .arg(file)
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .with_context(|| format!("running {tool}"))
    }

    /// cfn-lint: its exit code is a bitmask (2 error, 4 warning, 8 informational); errors
    /// and warnings fail.
    pub fn cfn_lint(&self, template: &Path) -> Result<Verdict> {
        let out = self.run("cfn-lint", &["--"], template)?;
        let code = out.status.code().unwrap_or(1);
        Ok(verdict("cfn-lint", template, code & 0b111 == 0, &out))
    }

    /// statelint on the definition alone; FLOAT is ignored because it rejects integer
    /// BackoffRates that AWS accepts.
    pub fn statelint(&self, asl: &Path) -> Result<Verdict> {
        let out = self.run("statelint", &["--ignore=FLOAT"], asl)?;
        Ok(verdict("statelint", asl, out.status.success(), &out))
    }

    /// checkov's CloudFormation checks, offline; skips need a reason in the resource's Metadata.
    pub fn checkov(&self, template: &Path) -> Result<Verdict> {
        let out = self.run(
            "checkov",
            &["--framework", "cloudformation", "--skip-download", "--compact", "--quiet", "-f"],
            template,
        )?;
        Ok(verdict("checkov", template, out.status.success(), &out))
    }
}

fn verdict(tool: &'static str, file: &Path, passed: bool, out: &Output) -> Verdict {
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Verdict { tool, file: file.to_path_buf(), passed, output }
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| what.to_owned())?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
