//! `set-key` and `delete-key`: the environment's DAP credential in Secrets Manager, the one
//! place it lives. The values come from the environment (`set_key.sh` reads them without
//! echo) and are never printed.

use crate::aws::{Aws, Explain, is_code};
use crate::project::EnvFlags;
use crate::prompt;
use anyhow::{Result, bail};

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// Read the client id and the client secret as two lines of standard input (how
    /// set_key.sh hands them over, so they sit in no environment or argument list).
    #[arg(long)]
    pub stdin: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeleteFlags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// Ask nothing.
    #[arg(long)]
    pub yes: bool,
    /// Days Secrets Manager keeps it restorable (7-30).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(7..=30))]
    pub recovery_days: i64,
}

pub const CLIENT_ID_VAR: &str = "DAP_CLIENT_ID";
pub const CLIENT_SECRET_VAR: &str = "DAP_CLIENT_SECRET";

/// `value` as the DAP credential part `name`; the message never holds the value.
fn credential_part(name: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        bail!("{name} is not set: run ./set_key.sh, which asks for the DAP client id and secret without echo");
    }
    if value.len() > 1024 || value.chars().any(char::is_whitespace) {
        bail!("{name} does not look like a DAP credential part (it holds spaces or is over 1024 characters)");
    }
    Ok(value.to_owned())
}

pub async fn set(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let (client_id, client_secret) = if flags.stdin {
        let mut lines = std::io::stdin().lines();
        let mut next = || lines.next().transpose().map(Option::unwrap_or_default);
        (credential_part("the client id (line 1)", &next()?)?, credential_part("the client secret (line 2)", &next()?)?)
    } else {
        let var = |name| std::env::var(name).unwrap_or_default();
        (
            credential_part(CLIENT_ID_VAR, &var(CLIENT_ID_VAR))?,
            credential_part(CLIENT_SECRET_VAR, &var(CLIENT_SECRET_VAR))?,
        )
    };
    let value = serde_json::to_string(&contract::DapCredential { client_id, client_secret })?;
    let aws = Aws::connect(&config.region).await;
    aws.caller().await?;
    let name = &config.dap.secret_name;
    let sm = aws.secrets();
    let version = match sm.describe_secret().secret_id(name).send().await {
        Ok(d) => {
            if d.deleted_date().is_some() {
                sm.restore_secret().secret_id(name).send().await.doing(format!("restoring secret {name}"))?;
            }
            let put = sm.put_secret_value().secret_id(name).secret_string(value).send().await;
            put.doing(format!("updating secret {name}"))?.version_id().unwrap_or_default().to_owned()
        }
        Err(e) if is_code(&e, &["ResourceNotFoundException"]) => {
            let made = sm
                .create_secret()
                .name(name)
                .description(format!("DAP API client id and secret of cd2-aws stack {}", config.stack_name))
                .secret_string(value)
                .tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key("cd2-aws:stack")
                        .value(&config.stack_name)
                        .build(),
                )
                .send()
                .await;
            made.doing(format!("creating secret {name}"))?.version_id().unwrap_or_default().to_owned()
        }
        Err(e) => return Err(e).doing(format!("looking for secret {name}")),
    };
    println!("stored the DAP credential in secret {name} ({}), version {version}", aws.region);
    Ok(())
}

pub async fn delete(flags: &DeleteFlags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    aws.caller().await?;
    let name = &config.dap.secret_name;
    let sm = aws.secrets();
    match sm.describe_secret().secret_id(name).send().await {
        Ok(d) if d.deleted_date().is_some() => {
            println!("secret {name} is already scheduled for deletion");
            return Ok(());
        }
        Ok(_) => {}
        Err(e) if is_code(&e, &["ResourceNotFoundException"]) => {
            println!("secret {name} does not exist in {}: nothing to delete", aws.region);
            return Ok(());
        }
        Err(e) => return Err(e).doing(format!("looking for secret {name}")),
    }
    if !prompt::confirm(&format!("delete the DAP secret {name}?"), flags.yes)? {
        bail!("secret {name} kept");
    }
    let d = sm
        .delete_secret()
        .secret_id(name)
        .recovery_window_in_days(flags.recovery_days)
        .send()
        .await
        .doing(format!("deleting secret {name}"))?;
    let when = d
        .deletion_date()
        .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
        .unwrap_or_else(|| format!("in {} days", flags.recovery_days));
    println!("secret {name} is scheduled for deletion ({when}); until then ./set_key.sh restores it");
    Ok(())
}
