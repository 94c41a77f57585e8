//! How the functions reach the replica: TLS `verify-full` against the RDS certificate
//! authorities shipped with them, as the application user, with a fresh IAM database
//! auth token for every connection (no application password exists to store or rotate).
//! A secret holding a password is the other way in, for a database without IAM
//! authentication (and for the tests against a local server); the rest is the same.

use crate::aws;
use crate::error::FunctionError;
use crate::settings::{parsed, read};
use aws_config::SdkConfig;
use contract::env;
use replica::{ConnectOptions, TlsMode};

/// The Amazon RDS certificate authorities (public certificates, from `assets/`).
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../../../assets/rds-ca-bundle.pem");

/// How the application user proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbAuth {
    /// IAM database authentication: a token signed with the function's role.
    Iam,
    /// The `password` field of this Secrets Manager secret.
    Secret(String),
}

/// Where the database is and how its certificate is checked, for `user` (no password yet):
/// [`env::database`] (by default `verify-full` against the RDS authorities shipped with the
/// functions).
pub fn target_from_env(user: &str) -> Result<ConnectOptions, FunctionError> {
    use env::database::*;
    let v: Vars<String> = read()?;
    let tls = match v.tls {
        None => TlsMode::VerifyFull,
        Some(t) => t.parse().map_err(|e| FunctionError::config(format!("the environment variable {TLS}: {e}")))?,
    };
    let options = ConnectOptions::new(&v.host, &v.name, user).port(parsed(PORT, v.port, DEFAULT_PORT)?).tls(tls);
    Ok(match v.root_cert {
        Some(path) => options.root_cert_path(path),
        None => options.root_cert_pem(RDS_CA_BUNDLE.to_vec()),
    })
}

#[derive(Clone, Debug)]
pub struct DbSettings {
    /// Where, as whom, and the certificate check; the password is added per connection.
    pub target: ConnectOptions,
    pub auth: DbAuth,
}

impl DbSettings {
    /// [`target_from_env`] as [`env::login`]'s user, who logs in with IAM (the default) or
    /// with the password in a secret.
    pub fn from_env() -> Result<Self, FunctionError> {
        use env::login::*;
        let v: Vars<String> = read()?;
        let auth = match v.auth.as_deref().unwrap_or(AUTH_IAM) {
            AUTH_IAM => DbAuth::Iam,
            AUTH_SECRET => DbAuth::Secret(v.secret_arn.ok_or_else(|| {
                FunctionError::config(format!(
                    "the environment variable {SECRET_ARN} is not set, and {AUTH} is `{AUTH_SECRET}`"
                ))
            })?),
            other => {
                return Err(FunctionError::config(format!(
                    "the environment variable {AUTH} is `{other}`; expected `{AUTH_IAM}` or `{AUTH_SECRET}`"
                )));
            }
        };
        Ok(Self { target: target_from_env(&v.user)?, auth })
    }
}

/// Makes connection options with a fresh credential each time it is asked.
#[derive(Debug)]
pub struct Credentials {
    settings: DbSettings,
    sdk: SdkConfig,
    secrets: aws_sdk_secretsmanager::Client,
}

impl Credentials {
    pub fn new(settings: DbSettings, sdk: &SdkConfig) -> Self {
        Self { settings, sdk: sdk.clone(), secrets: aws_sdk_secretsmanager::Client::new(sdk) }
    }

    pub fn settings(&self) -> &DbSettings {
        &self.settings
    }

    /// The password for a new connection: an IAM token (valid 15 minutes), or the secret's.
    pub async fn password(&self) -> Result<String, FunctionError> {
        let s = &self.settings;
        match &s.auth {
            DbAuth::Iam => {
                let config = aws_sdk_rds::auth_token::Config::builder()
                    .hostname(&s.target.host)
                    .port(u64::from(s.target.port))
                    .username(&s.target.user)
                    .build()
                    .map_err(|e| FunctionError::config(format!("IAM database auth token settings: {e}")))?;
                let token = aws_sdk_rds::auth_token::AuthTokenGenerator::new(config)
                    .auth_token(&self.sdk)
                    .await
                    .map_err(|e| FunctionError::config(format!("signing an IAM database auth token failed: {e}")))?;
                Ok(token.as_str().to_owned())
            }
            DbAuth::Secret(arn) => {
                let text = aws::secret_string(&self.secrets, arn, "database").await?;
                aws::secret_field(&text, "password", arn)
            }
        }
    }

    /// Options for a new connection with `password` (from [`password`](Self::password)).
    pub fn options(&self, password: &str) -> ConnectOptions {
        self.settings.target.clone().password(password)
    }
}
