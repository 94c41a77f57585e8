//! The environment files (`stack/envs/<env>.toml`) and the files a synth writes, shared by
//! `cargo xtask synth` and the deploy commands so that both read and write the same.

use super::{Config, ConfigError, Synthesized};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no environment `{env}`: {} does not exist (known: {known})", path.display())]
    Unknown { env: String, path: PathBuf, known: String },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Overrides that put an environment in an existing VPC (`network.mode = "existing"`, made-up
/// ids): the variant of dev the validators check and the stack's tests synthesize, besides
/// the environment files.
pub const EXISTING_VPC_OVERRIDES: [&str; 6] = [
    "network.mode=existing",
    "network.vpc_id=vpc-0123456789abcdef0",
    "network.private_subnet_ids=[\"subnet-0123456789abcdef0\", \"subnet-0fedcba9876543210\"]",
    "network.cidr=",
    "network.nat_gateways=",
    "network.nat=",
];

/// Which environment file to use, and overrides of its keys: the flags of synth and of
/// every AWS command.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EnvFlags {
    /// Environment: the file stack/envs/<ENV>.toml.
    #[cfg_attr(feature = "cli", arg(long = "env", default_value = "dev"))]
    pub env: String,
    /// Override one configuration key for this run, e.g. --set map_concurrency=3 --set database.max_capacity=8.
    #[cfg_attr(feature = "cli", arg(long = "set", value_name = "KEY=VALUE"))]
    pub overrides: Vec<String>,
}

impl EnvFlags {
    /// The environment's configuration in the checkout rooted at `root`.
    pub fn load(&self, root: &Path) -> Result<Config, LoadError> {
        load(root, &self.env, &self.overrides)
    }
}

/// Where the environment files live in a checkout rooted at `root`.
pub fn dir(root: &Path) -> PathBuf {
    root.join("stack").join("envs")
}

/// The environments that have a file, sorted.
pub fn names(root: &Path) -> Vec<String> {
    let mut envs: Vec<String> = fs::read_dir(dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_owned))
        .collect();
    envs.sort();
    envs
}

/// Reads environment `env` and applies the `--set` overrides; errors name the file by its
/// path under `root`.
pub fn load(root: &Path, env: &str, overrides: &[String]) -> Result<Config, LoadError> {
    let path = dir(root).join(format!("{env}.toml"));
    if !path.exists() {
        return Err(LoadError::Unknown { env: env.to_owned(), path, known: names(root).join(", ") });
    }
    let text = fs::read_to_string(&path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
    let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
    Ok(Config::from_toml(&text, &shown, overrides)?)
}

/// The files one synth writes, named after the stack.
#[derive(Debug)]
pub struct Written {
    pub template_json: PathBuf,
    pub template_yaml: PathBuf,
    pub asl: PathBuf,
    /// The state machine as a Mermaid flowchart.
    pub diagram: PathBuf,
}

impl Written {
    pub fn new(out: &Path, stack_name: &str) -> Self {
        Self {
            template_json: out.join(format!("{stack_name}.template.json")),
            template_yaml: out.join(format!("{stack_name}.template.yaml")),
            asl: out.join(format!("{stack_name}.asl.json")),
            diagram: out.join(format!("{stack_name}.asl.mmd")),
        }
    }

    /// Where deploy saves the stack's outputs, next to the template.
    pub fn outputs(out: &Path, stack_name: &str) -> PathBuf {
        out.join(format!("{stack_name}.outputs.json"))
    }
}

impl Synthesized {
    /// The template as written: pretty JSON with a final newline.
    pub fn template_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.template.to_json()).expect("JSON values serialize");
        s.push('\n');
        s
    }

    /// Writes the template (JSON and YAML), the state machine definition and its diagram.
    pub fn write(&self, stack_name: &str, out: &Path) -> std::io::Result<Written> {
        fs::create_dir_all(out)?;
        let written = Written::new(out, stack_name);
        let yaml = serde_yaml::to_string(&self.template.to_json()).map_err(std::io::Error::other)?;
        let mut asl = serde_json::to_string_pretty(&self.state_machine).expect("JSON values serialize");
        asl.push('\n');
        let files = [
            (&written.template_json, self.template_json()),
            (&written.template_yaml, yaml),
            (&written.asl, asl),
            (&written.diagram, self.diagram.clone()),
        ];
        for (path, text) in files {
            fs::write(path, text)
                .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
        }
        Ok(written)
    }
}
