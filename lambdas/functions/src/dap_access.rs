//! The DAP client and the key it logs in with, read from Secrets Manager.
//!
//! A warm container keeps both between invocations. When DAP refuses the key, the secret
//! is read again: after `set_key.sh` stored a new key and Instructure revoked the old one,
//! the next call uses the new key at once instead of failing until Lambda recycles the
//! container. When the secret still holds the refused key, nothing is retried.

use crate::aws;
use crate::error::FunctionError;
use crate::settings::DapSettings;
use dap::{ClientConfig, Credentials, DapClient};

async fn read_key(
    settings: &DapSettings,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<Credentials, FunctionError> {
    let id = &settings.secret_id;
    let text = aws::secret_string(secrets, id, "DAP").await?;
    Ok(Credentials {
        client_id: aws::secret_field(&text, contract::DapCredential::client_id, id)?,
        client_secret: aws::secret_field(&text, contract::DapCredential::client_secret, id)?,
    })
}

fn client_for(settings: &DapSettings, credentials: Credentials) -> Result<DapClient, FunctionError> {
    let mut config = ClientConfig::new(&settings.api_url, credentials);
    if let Some(p) = settings.poll_interval {
        config.poll_interval = p;
    }
    if let Some(w) = settings.rate_window {
        // DAP's clock shortened: its limits' window, and the pause after a bare 429 with it.
        config.job_limit.per = w;
        config.list_limit.per = w;
        config.default_retry_after = w / 2;
    }
    DapClient::new(config).map_err(FunctionError::from)
}

/// The client, and the key it was made with so that a key read again can be told apart.
#[derive(Debug)]
pub struct DapAccess {
    settings: DapSettings,
    secrets: aws_sdk_secretsmanager::Client,
    key: Credentials,
    client: DapClient,
}

impl DapAccess {
    pub async fn new(settings: DapSettings, secrets: aws_sdk_secretsmanager::Client) -> Result<Self, FunctionError> {
        let key = read_key(&settings, &secrets).await?;
        let client = client_for(&settings, key.clone())?;
        Ok(Self { settings, secrets, key, client })
    }

    pub fn client(&self) -> &DapClient {
        &self.client
    }

    /// After `error`: when it is DAP refusing the key and the secret now holds another one,
    /// the client takes the new key and the answer is `Ok` (worth one more try). Otherwise
    /// `error` comes back, with why the secret could not be read again when that failed
    /// (the refusal stays the answer: it is what the operator has to act on).
    pub async fn renew_key_after(&mut self, error: FunctionError) -> Result<(), FunctionError> {
        if !error.dap_key_refused {
            return Err(error);
        }
        let key = match read_key(&self.settings, &self.secrets).await {
            Ok(key) => key,
            Err(read) => {
                tracing::warn!(secret = %self.settings.secret_id, error = %read, "DAP refused the key, and the secret could not be read again");
                return Err(
                    error.and(&format!("reading the secret again for a new key failed too: {}", read.detail.message))
                );
            }
        };
        if key.client_id == self.key.client_id && key.client_secret == self.key.client_secret {
            tracing::warn!(secret = %self.settings.secret_id, "DAP refused the key, and the secret still holds it");
            return Err(error);
        }
        tracing::info!(secret = %self.settings.secret_id, "DAP refused the key; the secret holds another: using it");
        self.client = client_for(&self.settings, key.clone())?;
        self.key = key;
        Ok(())
    }
}
