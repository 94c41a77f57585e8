//! The AWS SDK's configuration, loaded once per container: the standard chain (the
//! function's role on Lambda; profiles or the environment elsewhere; `AWS_ENDPOINT_URL`
//! for a local server), over rustls with ring, the one crypto provider of the build.

use crate::error::FunctionError;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

pub async fn load() -> SdkConfig {
    loader().load().await
}

/// The standard loader over our HTTP client, for settings of one's own (tests point it at moto).
pub fn loader() -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// A secret's text from Secrets Manager. Its value never goes into an error or a log.
pub async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    what: &str,
) -> Result<String, FunctionError> {
    let answer = client.get_secret_value().secret_id(id).send().await.map_err(|e| {
        let doing = format!("reading the {what} secret `{id}` from Secrets Manager");
        if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
            FunctionError::config(format!(
                "{doing} failed: it does not exist; create it (set_key.sh for the DAP key) or fix the name"
            ))
        } else {
            sdk_error(&doing, e)
        }
    })?;
    answer
        .secret_string
        .ok_or_else(|| FunctionError::config(format!("the {what} secret `{id}` has no text value (a binary secret?)")))
}

/// An AWS SDK failure: throttling, a 5xx answer and failures to reach the service are
/// transient; the rest (access denied, a key that cannot decrypt, a missing resource) need
/// the operator.
pub fn sdk_error<E>(doing: &str, e: aws_sdk_sfn::error::SdkError<E>) -> FunctionError
where
    E: aws_sdk_sfn::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sfn::error::SdkError;
    match &e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("unknown");
            let message = format!("{doing} failed: {code}: {}", err.message().unwrap_or_default());
            let busy = ["Throttl", "TooManyRequests", "ServiceUnavailable"].iter().any(|c| code.contains(c));
            if busy || service.raw().status().is_server_error() {
                FunctionError::transient(message)
            } else {
                FunctionError::config(format!("{message}; check the function's IAM permissions and the stack"))
            }
        }
        _ => FunctionError::transient(format!("{doing} failed: {}", dap::chain(&e))),
    }
}

/// A field of a JSON secret, e.g. `client_secret` of the DAP key. The error names the
/// field, never the secret's content.
pub fn secret_field(text: &str, field: &str, id: &str) -> Result<String, FunctionError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| FunctionError::config(format!("the secret `{id}` is not a JSON object")))?;
    value
        .get(field)
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| FunctionError::config(format!("the secret `{id}` has no `{field}` string")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_errors_never_quote_the_secret() {
        let e = secret_field(r#"{"client_id": "hunter2-id"}"#, "client_secret", "cd2/dap").unwrap_err();
        assert_eq!(e.detail.message, "the secret `cd2/dap` has no `client_secret` string");
        let e = secret_field("hunter2 not json", "client_id", "cd2/dap").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert_eq!(secret_field(r#"{"client_id": "x"}"#, "client_id", "s").unwrap(), "x");
    }
}
