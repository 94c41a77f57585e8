//! `cargo xtask synth`: configuration -> stack -> validated template and ASL on disk.

use crate::{EnvFlags, project, review};
use anyhow::{Context, Result, bail};
use stack::app::{self, Config, Synthesized};
use std::fs;
use std::path::{Path, PathBuf};

/// The files one synth writes.
#[derive(Debug)]
pub struct Written {
    pub template_json: PathBuf,
    pub template_yaml: PathBuf,
    pub asl: PathBuf,
    /// The state machine as a Mermaid flowchart.
    pub diagram: PathBuf,
}

pub fn run(flags: &EnvFlags, out: &Path) -> Result<()> {
    let config = load_config(flags)?;
    let synthesized = app::build(&config)?;
    let written = write(&config, &synthesized, out)?;
    print!("{}", review::render(&config, &synthesized));
    println!("\nwrote {}", written.template_json.display());
    println!("wrote {}", written.template_yaml.display());
    println!("wrote {}", written.asl.display());
    println!("wrote {}", written.diagram.display());
    Ok(())
}

/// Reads `stack/envs/<env>.toml` and applies the `--set` overrides.
pub fn load_config(flags: &EnvFlags) -> Result<Config> {
    let path = project::env_file(&flags.env);
    if !path.exists() {
        bail!(
            "no environment `{}`: {} does not exist (known: {})",
            flags.env,
            path.display(),
            project::environments().join(", ")
        );
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let shown = path.strip_prefix(project::root()).unwrap_or(&path).display().to_string();
    Ok(Config::from_toml(&text, &shown, &flags.overrides)?)
}

/// The template as written: pretty JSON with a final newline.
pub fn template_json(synthesized: &Synthesized) -> String {
    let mut s = serde_json::to_string_pretty(&synthesized.template.to_json()).expect("JSON values serialize");
    s.push('\n');
    s
}

pub fn write(config: &Config, synthesized: &Synthesized, out: &Path) -> Result<Written> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let name = &config.stack_name;
    let written = Written {
        template_json: out.join(format!("{name}.template.json")),
        template_yaml: out.join(format!("{name}.template.yaml")),
        asl: out.join(format!("{name}.asl.json")),
        diagram: out.join(format!("{name}.asl.mmd")),
    };
    let json = template_json(synthesized);
    let yaml = serde_yaml::to_string(&synthesized.template.to_json()).context("rendering the YAML copy")?;
    let mut asl = serde_json::to_string_pretty(&synthesized.state_machine).expect("JSON values serialize");
    asl.push('\n');
    let files = [
        (&written.template_json, json),
        (&written.template_yaml, yaml),
        (&written.asl, asl),
        (&written.diagram, synthesized.diagram.clone()),
    ];
    for (path, text) in files {
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(written)
}
