//! `deploy` and `diff`: preflight, the assets bucket and the zips, synth, a change set shown
//! with its replacements, wider access and the idle cost; then (deploy) a confirmation, the
//! stack events followed to the end, and the outputs saved next to the template.

use crate::assets;
use crate::aws::{Aws, Caller, Explain, is_code};
use crate::changes::{self, Prepared, TemplateSource};
use crate::events;
use crate::project::EnvFlags;
use crate::prompt;
use crate::stacks::{self, StackInfo};
use anyhow::{Context, Result, bail};
use aws_sdk_cloudformation::types::{ChangeSetType, Parameter};
use sha2::{Digest, Sha256};
use stack::app::cost;
use stack::app::envs::Written;
use stack::app::{Config, Function};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// CloudFormation takes at most this much template inline; larger ones go through S3.
const TEMPLATE_BODY_LIMIT: usize = 51_200;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// Subscribe this address to the failure alerts (AWS emails it to confirm). It stays
    /// subscribed on later deploys unless the environment names another.
    #[arg(long)]
    pub email: Option<String>,
    /// Ask nothing (a deploy or a delete of a failed stack goes ahead).
    #[arg(long)]
    pub yes: bool,
    /// Where the template and the outputs are written.
    #[arg(long, default_value = "cdk.out")]
    pub out: PathBuf,
    /// The Lambda zips and their manifest.json, from `cargo xtask build-lambdas`.
    #[arg(long, default_value = "target/lambda-zips")]
    pub zips: PathBuf,
    /// `check` before a diff: change nothing, ask nothing.
    #[arg(long, hide = true)]
    pub for_diff: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Diff,
}

/// What the checks found, for the steps after them.
#[derive(Debug)]
pub struct Preflight {
    pub config: Config,
    pub aws: Aws,
    pub caller: Caller,
    pub stack: Option<StackInfo>,
}

/// `check`: what would make a deploy fail later, before the Lambdas are built.
pub async fn check(flags: &Flags) -> Result<()> {
    let pre = preflight(flags, if flags.for_diff { Mode::Diff } else { Mode::Apply }).await?;
    println!(
        "ok: account {} ({}), region {}, DAP secret {}, stack {} {}",
        pre.caller.account,
        pre.caller.arn,
        pre.aws.region,
        pre.config.dap.secret_name,
        pre.config.stack_name,
        pre.stack.as_ref().map_or("not created yet", |s| s.status.as_str())
    );
    Ok(())
}

/// Configuration, credentials, the DAP secret, and a stack in a state that takes a change
/// set (for a deploy, a failed first create is deleted, after asking).
pub async fn preflight(flags: &Flags, mode: Mode) -> Result<Preflight> {
    let mut env = flags.env.clone();
    if let Some(email) = &flags.email {
        env.overrides.push(format!("alert_email={email}"));
    }
    let config = env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    let caller = aws.caller().await?;
    // Before anything is built or uploaded: a deploy will have to ask.
    if mode == Mode::Apply && !flags.yes && !prompt::can_ask() {
        bail!("deploy asks before it changes the stack, and there is no terminal to ask on: pass --yes");
    }
    let secret = &config.dap.secret_name;
    match aws.secrets().describe_secret().secret_id(secret).send().await {
        Ok(d) if d.deleted_date().is_some() => bail!(
            "the DAP secret {secret} in {} is scheduled for deletion: run ./set_key.sh --env {} to restore and set it",
            aws.region,
            flags.env.env
        ),
        Ok(_) => {}
        Err(e) if is_code(&e, &["ResourceNotFoundException"]) => bail!(
            "the DAP secret {secret} does not exist in {}: store the DAP client id and secret with ./set_key.sh --env {}",
            aws.region,
            flags.env.env
        ),
        Err(e) => return Err(e).doing(format!("looking for the DAP secret {secret}")),
    }
    crate::offers::check(&aws, &config).await?;
    let name = &config.stack_name;
    let mut stack = stacks::describe(&aws, name).await?;
    if let Some(s) = &stack {
        match s.status.as_str() {
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" if mode == Mode::Diff => bail!(
                "stack {name} is {}: its first create failed; `cargo xtask deploy --env {}` offers to delete it and create it again",
                s.status,
                flags.env.env
            ),
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => {
                let why = stacks::first_failure(&aws, name).await.unwrap_or_else(|| "no reason recorded".into());
                eprintln!(
                    "stack {name} is {}: its first create failed ({why}); it holds nothing that runs and must be deleted before it can be created again",
                    s.status
                );
                if !prompt::confirm(&format!("delete the failed stack {name} now?"), flags.yes)? {
                    bail!(
                        "stack {name} left in {}: `cargo xtask destroy --env {}` deletes it",
                        s.status,
                        flags.env.env
                    );
                }
                let total = stacks::resources(&aws, &s.id).await.map(|r| r.len()).unwrap_or(0);
                let outcome = events::delete_stack(&aws, &s.id, total).await?;
                if !outcome.succeeded() {
                    bail!("deleting the failed stack {name}: {}", outcome.cause());
                }
                stack = None;
            }
            "REVIEW_IN_PROGRESS" => {}
            "UPDATE_ROLLBACK_FAILED" => bail!(
                "stack {name} is UPDATE_ROLLBACK_FAILED: continue the rollback (CloudFormation console, \"Continue update rollback\"), then deploy again"
            ),
            "DELETE_FAILED" => bail!(
                "stack {name} is DELETE_FAILED: `cargo xtask destroy --env {}` finishes the delete",
                flags.env.env
            ),
            status if status.ends_with("_IN_PROGRESS") => bail!(
                "stack {name} is {status}: another operation is running on it; wait until it ends (the CloudFormation console shows it) and deploy again"
            ),
            _ => {}
        }
    }
    Ok(Preflight { config, aws, caller, stack })
}

pub async fn run(flags: &Flags, mode: Mode) -> Result<()> {
    let started = Instant::now();
    let Preflight { config, aws, caller, stack } = preflight(flags, mode).await?;
    let name = config.stack_name.clone();
    let bucket = assets::bucket_name(&caller.account, &aws.region);

    let synthesized = stack::app::build(&config)?;
    let written = synthesized.write(&name, &flags.out).context("writing the synth output")?;
    let template = synthesized.template.to_json();
    let needed: Vec<Function> =
        Function::ALL.into_iter().filter(|f| template["Parameters"].get(f.code_key_parameter()).is_some()).collect();

    let keys = match mode {
        Mode::Apply => {
            if assets::ensure_bucket(&aws, &bucket, &caller.account).await? {
                println!("made the assets bucket s3://{bucket} (private, encrypted, versioned, TLS only)");
            }
            let up = assets::upload_zips(&aws, &bucket, &name, &flags.zips, &needed).await?;
            println!(
                "zips: {} uploaded, {} already there (s3://{bucket}/{name}/)",
                up.uploaded.len(),
                up.unchanged.len()
            );
            up.keys
        }
        Mode::Diff => planned_keys(&name, &flags.zips, &needed)?,
    };
    let mut parameters = vec![parameter(stack::app::ASSETS_BUCKET_PARAMETER, &bucket)];
    for (f, key) in &keys {
        parameters.push(parameter(&f.code_key_parameter(), key));
    }
    parameters.push(match (&config.alert_email, &stack) {
        (email, Some(s)) if email.is_empty() && s.parameter(stack::app::ALERT_EMAIL_PARAMETER).is_some() => {
            Parameter::builder().parameter_key(stack::app::ALERT_EMAIL_PARAMETER).use_previous_value(true).build()
        }
        (email, _) => parameter(stack::app::ALERT_EMAIL_PARAMETER, email),
    });

    let body = serde_json::to_string(&template)?;
    let source = if body.len() <= TEMPLATE_BODY_LIMIT {
        TemplateSource::Body(body)
    } else {
        assets::ensure_bucket(&aws, &bucket, &caller.account).await?;
        let key = format!("{name}/templates/{}.json", &format!("{:x}", Sha256::digest(body.as_bytes()))[..16]);
        TemplateSource::Url(assets::upload_template(&aws, &bucket, &key, body).await?)
    };
    let kind = match &stack {
        Some(s) if s.status != "REVIEW_IN_PROGRESS" => ChangeSetType::Update,
        _ => ChangeSetType::Create,
    };
    let old_template = match (&stack, &kind) {
        (Some(s), ChangeSetType::Update) => current_template(&aws, &s.id).await?,
        _ => None,
    };
    let change_set = format!("cd2-{}", crate::clock::unix_millis());
    let prepared = changes::create(&aws, &name, &change_set, kind.clone(), &source, parameters).await?;
    let (stack_id, changes) = match prepared {
        Prepared::NoChanges => {
            println!(
                "no changes: stack {name} in {} is up to date ({:.1} s)",
                aws.region,
                started.elapsed().as_secs_f64()
            );
            if mode == Mode::Apply {
                save_outputs(&aws, &name, &flags.out).await?;
            }
            return Ok(());
        }
        Prepared::Ready { stack_id, changes } => (stack_id, changes),
    };
    let verb = if kind == ChangeSetType::Create { "create" } else { "update" };
    let shown = async {
        println!("\nchanges to {verb} stack {name} (account {}, region {}):", caller.account, aws.region);
        print!("{}", changes::report(&changes, old_template.as_ref(), &template));
        println!("\n{}", cost::render(&cost::idle(&config)));
        if mode == Mode::Diff {
            return Ok(false);
        }
        prompt::confirm(&format!("{verb} stack {name} with these changes?"), flags.yes)
    };
    let go = match shown.await {
        Ok(go) => go,
        Err(e) => {
            changes::abandon(&aws, &stack_id, &change_set).await;
            return Err(e);
        }
    };
    if !go {
        changes::abandon(&aws, &stack_id, &change_set).await;
        if mode == Mode::Diff {
            println!("diff only: nothing was changed (wrote {})", written.template_json.display());
            return Ok(());
        }
        bail!("not deployed: the change set was deleted and stack {name} is as it was");
    }
    // An update may run the database bootstrap, which needs the internet: on-demand NAT
    // instances may have stopped since the last run. (A new stack's start running.)
    let on_demand = config.network.nat == stack::constructs::nat::NatMode::InstanceOnDemand;
    if kind == ChangeSetType::Update
        && on_demand
        && let Err(e) = crate::nat::wake(&aws, &name).await
    {
        changes::abandon(&aws, &stack_id, &change_set).await;
        return Err(e);
    }
    let since = events::latest_event(&aws, &stack_id).await?;
    let executed = aws
        .cloudformation()
        .execute_change_set()
        .stack_name(&stack_id)
        .change_set_name(&change_set)
        .client_request_token(&change_set)
        .send()
        .await;
    if let Err(e) = executed {
        changes::abandon(&aws, &stack_id, &change_set).await;
        return Err(e).doing(format!("executing change set {change_set} on {name}"));
    }
    let outcome = events::follow(&aws, &stack_id, since, changes.len()).await?;
    if !outcome.succeeded() {
        let way_out = match outcome.status.as_str() {
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => format!(
                "the first create was rolled back and the stack is {}; fix the cause and deploy again (it offers to delete the failed stack first)",
                outcome.status
            ),
            "UPDATE_ROLLBACK_COMPLETE" => "the stack was rolled back to its previous state, which still runs".into(),
            other => format!("the stack is {other}"),
        };
        bail!("deploy of {name} failed: {}; {way_out}", outcome.cause());
    }
    println!("{verb}d stack {name} in {:.0} s", started.elapsed().as_secs_f64());
    save_outputs(&aws, &name, &flags.out).await?;
    if let Some(email) = flags.email.as_ref().filter(|_| kind == ChangeSetType::Create || !changes.is_empty()) {
        println!("AWS has emailed {email} to confirm the alerts subscription: follow its link");
    }
    Ok(())
}

fn parameter(key: &str, value: &str) -> Parameter {
    Parameter::builder().parameter_key(key).parameter_value(value).build()
}

/// The keys the zips get, without uploading them (diff).
fn planned_keys(stack: &str, zips: &Path, needed: &[Function]) -> Result<std::collections::BTreeMap<Function, String>> {
    Ok(assets::needed_zips(zips, needed)?.into_iter().map(|(f, file)| (f, assets::zip_key(stack, &file))).collect())
}

async fn current_template(aws: &Aws, stack_id: &str) -> Result<Option<serde_json::Value>> {
    let t =
        aws.cloudformation().get_template().stack_name(stack_id).send().await.doing("reading the deployed template")?;
    Ok(t.template_body().and_then(|b| serde_json::from_str(b).ok()))
}

/// Prints the stack's outputs and saves them as JSON next to the template.
async fn save_outputs(aws: &Aws, name: &str, out: &Path) -> Result<()> {
    let Some(stack) = stacks::describe(aws, name).await? else { return Ok(()) };
    let mut json = serde_json::Map::new();
    if !stack.outputs.is_empty() {
        println!("\noutputs:");
    }
    for (key, value) in &stack.outputs {
        println!("  {key:<18} {value}");
        json.insert(key.clone(), serde_json::Value::String(value.clone()));
    }
    let path = Written::outputs(out, name);
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("saved {}", path.display());
    println!("dashboard: {}", stack::constructs::dashboard::console_url(&aws.region, name));
    Ok(())
}
