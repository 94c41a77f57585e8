//! The AWS clients, built once per command from the standard credential chain
//! (environment, profiles, SSO, credential_process) in the environment's region, and the
//! one-line explanations of what goes wrong talking to AWS.
//!
//! `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`) is honoured by the SDK itself, so
//! every command runs against a local AWS API server as well.

use anyhow::{Result, anyhow};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use std::fmt;

/// The clients, made once from one configuration (making one does no I/O).
#[derive(Debug, Clone)]
pub struct Aws {
    pub config: SdkConfig,
    pub region: String,
    cloudformation: aws_sdk_cloudformation::Client,
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
    secrets: aws_sdk_secretsmanager::Client,
    rds: aws_sdk_rds::Client,
    kms: aws_sdk_kms::Client,
    lambda: aws_sdk_lambda::Client,
    sns: aws_sdk_sns::Client,
    ec2: aws_sdk_ec2::Client,
    rdsdata: aws_sdk_rdsdata::Client,
}

/// Who the credentials belong to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: String,
    pub arn: String,
}

/// The S3 endpoint set for this run (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), when
/// it is not AWS's own.
fn s3_endpoint(config: &SdkConfig) -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| config.endpoint_url().map(str::to_owned))
}

impl Aws {
    pub async fn connect(region: &str) -> Self {
        Self::from_loader(aws_config::defaults(BehaviorVersion::latest()), region).await
    }

    /// Clients of a local AWS API server (moto) with test credentials, whatever the
    /// environment says: for tests inside this binary.
    #[cfg(test)]
    pub async fn local(region: &str, endpoint: &str) -> Self {
        let credentials = aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "tests");
        let loader =
            aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint).credentials_provider(credentials);
        Self::from_loader(loader, region).await
    }

    async fn from_loader(loader: aws_config::ConfigLoader, region: &str) -> Self {
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let config = loader.http_client(http).region(Region::new(region.to_owned())).load().await;
        // Path-style addressing against a local endpoint, which has no bucket host names.
        let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(s3_endpoint(&config).is_some()).build();
        Self {
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sfn: aws_sdk_sfn::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            rdsdata: aws_sdk_rdsdata::Client::new(&config),
            config,
            region: region.to_owned(),
        }
    }

    pub fn cloudformation(&self) -> &aws_sdk_cloudformation::Client {
        &self.cloudformation
    }

    pub fn s3_endpoint(&self) -> Option<String> {
        s3_endpoint(&self.config)
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    pub fn sfn(&self) -> &aws_sdk_sfn::Client {
        &self.sfn
    }

    pub fn secrets(&self) -> &aws_sdk_secretsmanager::Client {
        &self.secrets
    }

    pub fn rds(&self) -> &aws_sdk_rds::Client {
        &self.rds
    }

    pub fn kms(&self) -> &aws_sdk_kms::Client {
        &self.kms
    }

    pub fn lambda(&self) -> &aws_sdk_lambda::Client {
        &self.lambda
    }

    pub fn sns(&self) -> &aws_sdk_sns::Client {
        &self.sns
    }

    pub fn rdsdata(&self) -> &aws_sdk_rdsdata::Client {
        &self.rdsdata
    }

    pub fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.ec2
    }

    /// The first call of every command: credentials that work, and whose they are.
    pub async fn caller(&self) -> Result<Caller> {
        let sts = aws_sdk_sts::Client::new(&self.config);
        let me = sts.get_caller_identity().send().await.map_err(|e| {
            let why = explain(&e);
            if why.contains("credentials") || is_code(&e, &["InvalidClientTokenId", "SignatureDoesNotMatch"]) {
                anyhow!(
                    "no working AWS credentials ({why}): set AWS_PROFILE to a configured profile (for SSO, run `aws sso login --profile NAME` first), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
            } else if is_code(&e, &["ExpiredToken", "ExpiredTokenException"]) {
                anyhow!("the AWS credentials have expired ({why}): log in again (aws sso login) and rerun")
            } else {
                anyhow!("checking the AWS credentials in {}: {why}", self.region)
            }
        })?;
        Ok(Caller {
            account: me.account().unwrap_or_default().to_owned(),
            arn: me.arn().unwrap_or_default().to_owned(),
        })
    }
}

/// One line for an SDK error: the service's code and message, or why the request never got
/// an answer (no credentials, no network). Never the request itself.
pub fn explain<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E, HttpResponse>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => format!("HTTP {} with no error code", s.raw().status().as_u16()),
            }
        }
        SdkError::TimeoutError(_) => "AWS did not answer in time".into(),
        other => {
            // The innermost cause says it best ("no credentials in the provider chain",
            // "connection refused").
            let mut source: Option<&dyn std::error::Error> = Some(other);
            let mut last = other.to_string();
            while let Some(s) = source {
                last = s.to_string();
                source = s.source();
            }
            last
        }
    }
}

/// The service error code, if the service answered with one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

pub fn is_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, codes: &[&str]) -> bool {
    code(e).is_some_and(|c| codes.contains(&c))
}

/// `result`'s error as one line that says what was being done.
pub trait Explain<T> {
    fn doing(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static> Explain<T>
    for std::result::Result<T, SdkError<E, HttpResponse>>
{
    fn doing(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| anyhow!("{what}: {}", explain(&e)))
    }
}
