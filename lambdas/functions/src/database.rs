//! How the functions reach the replica: TLS `verify-full` against the RDS certificate
//! authorities shipped with them, as the application user, with a fresh IAM database
//! auth token for every connection (no application password exists to store or rotate).
//! A secret holding a password is the other way in, for a database without IAM
//! authentication (and for the tests against a local server); the rest is the same.

use crate::aws;
use crate::error::FunctionError;
use crate::settings::{parsed, var, var_opt};
use aws_config::SdkConfig;
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
/// `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_TLS` (default `verify-full`) and `DB_ROOT_CERT` (a
/// PEM file of certificate authorities; default: the RDS ones shipped with the functions).
pub fn target_from_env(user: &str) -> Result<ConnectOptions, FunctionError> {
    let tls = match var_opt("DB_TLS") {
        None => TlsMode::VerifyFull,
        Some(v) => v.parse().map_err(|e| FunctionError::config(format!("the environment variable DB_TLS: {e}")))?,
    };
    let options = ConnectOptions::new(&var("DB_HOST")?, &var("DB_NAME")?, user).port(parsed("DB_PORT", 5432)?).tls(tls);
    Ok(match var_opt("DB_ROOT_CERT") {
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
    /// [`target_from_env`] as `DB_USER`, who logs in as `DB_AUTH` says: `iam` (the default),
    /// or `secret` with the password in the secret `DB_SECRET_ARN`.
    pub fn from_env() -> Result<Self, FunctionError> {
        let auth = match var_opt("DB_AUTH").as_deref().unwrap_or("iam") {
            "iam" => DbAuth::Iam,
            "secret" => DbAuth::Secret(var("DB_SECRET_ARN")?),
            other => {
                return Err(FunctionError::config(format!(
                    "the environment variable DB_AUTH is `{other}`; expected `iam` or `secret`"
                )));
            }
        };
        Ok(Self { target: target_from_env(&var("DB_USER")?)?, auth })
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
