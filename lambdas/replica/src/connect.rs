//! Database connections: the official client's connection string, with TLS as libpq
//! means it.
//!
//! `ssl=` (the official client's option) or `sslmode=` take libpq's modes: `disable`;
//! `prefer` (the default) and `require` encrypt without checking the certificate, as libpq
//! does; `verify-ca` checks it against the public roots and the PEM file in `sslrootcert=`
//! (for Aurora, the RDS CA bundle), and `verify-full` checks the host name as well.

use crate::error::{ReplicaError, describe};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS when the server offers it, without checking the certificate.
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS always, certificate checked, and the host name too with `check_host`
    /// (`verify-full`; `verify-ca` checks only the chain).
    Verify {
        root_cert: Option<PathBuf>,
        check_host: bool,
    },
}

/// A parsed connection string.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub config: tokio_postgres::Config,
    pub tls: TlsMode,
}

/// `postgresql://user:password@host:port/database[?ssl=mode][&sslrootcert=file]`.
pub fn parse_connection_string(s: &str) -> Result<ConnectOptions, ReplicaError> {
    let bad = |why: String| {
        ReplicaError::Connect(format!(
            "the connection string is not valid: {why}; expected postgresql://user:password@host:port/database[?ssl=require]"
        ))
    };
    if !s.starts_with("postgresql://") && !s.starts_with("postgres://") {
        return Err(bad("it must start with postgresql://".into()));
    }
    let (base, query) = s.split_once('?').unwrap_or((s, ""));
    let mut mode = None;
    let mut root_cert = None;
    let mut rest = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("ssl" | "sslmode", m)) => mode = Some(m.to_owned()),
            Some(("sslrootcert", path)) => root_cert = Some(PathBuf::from(path)),
            _ => rest.push(param),
        }
    }
    let tls = match mode.as_deref() {
        None | Some("prefer") | Some("allow") => TlsMode::Prefer,
        Some("disable") => TlsMode::Disable,
        Some("require") => TlsMode::Require,
        Some("verify-ca") => TlsMode::Verify { root_cert, check_host: false },
        Some("verify-full") => TlsMode::Verify { root_cert, check_host: true },
        Some(other) => {
            return Err(bad(format!(
                "ssl mode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    let mut config = url.parse::<tokio_postgres::Config>().map_err(|e| bad(e.to_string()))?;
    config.ssl_mode(match tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::Verify { .. } => SslMode::Require,
    });
    Ok(ConnectOptions { config, tls })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(tls: &TlsMode) -> Result<ClientConfig, ReplicaError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ReplicaError::Connect(format!("setting up TLS: {e}")))?;
    let config = match tls {
        TlsMode::Verify { root_cert, check_host } => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = root_cert {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| ReplicaError::Connect(format!("reading sslrootcert {}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(ReplicaError::Connect(format!("sslrootcert {} holds no certificate", path.display())));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| ReplicaError::Connect(format!("sslrootcert {}: {e}", path.display())))?;
                }
            }
            if *check_host {
                builder.with_root_certificates(roots).with_no_client_auth()
            } else {
                let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(|e| ReplicaError::Connect(format!("setting up TLS: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient::chain_only(chain)))
                    .with_no_client_auth()
            }
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient::any_certificate()))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Connects and drives the connection in a task; returns the client and that task.
pub async fn connect(options: &ConnectOptions) -> Result<(Client, tokio::task::JoinHandle<()>), ReplicaError> {
    let failed = |e: tokio_postgres::Error| {
        let host = options.config.get_hosts().first().map(|h| format!("{h:?}")).unwrap_or_default();
        let db = options.config.get_dbname().unwrap_or("?");
        ReplicaError::Connect(format!("{} (host {host}, database {db})", describe(&e)))
    };
    let report = |e: tokio_postgres::Error| tracing::error!(error = %describe(&e), "database connection closed");
    if options.tls == TlsMode::Disable {
        let (client, connection) = options.config.connect(NoTls).await.map_err(failed)?;
        let task = tokio::spawn(async move { connection.await.unwrap_or_else(report) });
        return Ok((client, task));
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&options.tls)?);
    let (client, connection) = options.config.connect(tls).await.map_err(failed)?;
    let task = tokio::spawn(async move { connection.await.unwrap_or_else(report) });
    Ok((client, task))
}

/// The checks libpq's weaker modes make: `require` checks no certificate (`chain: None`),
/// `verify-ca` checks the chain but not the name. The handshake signatures are always
/// checked, which keeps the session itself sound.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Lenient {
    fn any_certificate() -> Self {
        Self { chain: None, algorithms: provider().signature_verification_algorithms }
    }

    fn chain_only(chain: Arc<WebPkiServerVerifier>) -> Self {
        Self { chain: Some(chain), algorithms: provider().signature_verification_algorithms }
    }
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_options_follow_libpq() {
        let o = parse_connection_string("postgresql://u:p@h:5432/d?ssl=require").unwrap();
        assert_eq!(o.tls, TlsMode::Require);
        assert_eq!(o.config.get_dbname(), Some("d"));
        let o =
            parse_connection_string("postgresql://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert_eq!(o.tls, TlsMode::Verify { root_cert: Some("/ca.pem".into()), check_host: true });
        assert_eq!(o.config.get_application_name(), Some("x"));
        let o = parse_connection_string("postgresql://u@h/d?ssl=verify-ca").unwrap();
        assert_eq!(o.tls, TlsMode::Verify { root_cert: None, check_host: false });
        assert_eq!(parse_connection_string("postgresql://u@h/d").unwrap().tls, TlsMode::Prefer);
        let err = parse_connection_string("postgresql://u@h/d?ssl=maybe").unwrap_err().to_string();
        assert!(err.contains("ssl mode `maybe`"), "{err}");
        assert!(parse_connection_string("mysql://u@h/d").unwrap_err().to_string().contains("postgresql://"));
    }
}
