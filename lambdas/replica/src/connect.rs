//! Database connections on sqlx: the official client's connection string, or options built
//! in code (for an IAM auth token as the password, or the RDS CA bundle as PEM bytes), with
//! TLS as libpq means it and a connect timeout that outlasts a paused Aurora's resume.
//!
//! `ssl=` (the official client's option) or `sslmode=` take libpq's six modes:
//! - `disable`: no TLS.
//! - `allow`: plain first; TLS (unchecked) if the server refuses a plain connection.
//! - `prefer` (the default): TLS when the server offers it, certificate unchecked.
//! - `require`: TLS always, certificate unchecked; with a root certificate given, checked as
//!   `verify-ca` checks it (libpq does the same).
//! - `verify-ca`: the certificate must chain to a trusted root; the host name is not checked.
//! - `verify-full`: the chain and the host name.
//!
//! Trusted roots are `sslrootcert` and, unlike libpq, also the Mozilla roots that sqlx
//! bundles (webpki-roots); a private CA (such as RDS's) is trusted only when given.

use crate::error::ReplicaError;
use contract::Backoff;
use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a connection attempt may take: long enough for Aurora Serverless v2 to resume
/// from 0 ACU (about 15 s), which it answers with `57P03 cannot_connect_now` meanwhile.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => TlsMode::Disable,
            "allow" => TlsMode::Allow,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(format!(
                    "ssl mode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }
}

/// The CA certificates to trust, from a file or as PEM bytes (a bundle shipped with a Lambda).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    Path(PathBuf),
    Pem(Vec<u8>),
}

/// Where and how to connect. Built by [`parse_connection_string`] or in code:
///
/// ```
/// # use replica::{ConnectOptions, TlsMode};
/// let options = ConnectOptions::new("db.example.internal", "canvas", "cd2_app")
///     .password("an IAM auth token")
///     .tls(TlsMode::VerifyFull)
///     .root_cert_pem(b"-----BEGIN CERTIFICATE-----...".to_vec());
/// assert!(!format!("{options:?}").contains("IAM auth token"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// A password or an IAM database auth token; `Debug` never shows it.
    pub password: Option<String>,
    pub tls: TlsMode,
    pub root_cert: Option<RootCert>,
    pub application_name: String,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("root_cert", &self.root_cert.as_ref().map(|r| matches!(r, RootCert::Path(_))))
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl ConnectOptions {
    pub fn new(host: &str, database: &str, user: &str) -> Self {
        Self {
            host: host.to_owned(),
            port: 5432,
            database: database.to_owned(),
            user: user.to_owned(),
            password: None,
            tls: TlsMode::default(),
            root_cert: None,
            application_name: "cd2-aws".to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// A password, or an IAM auth token (which holds `&` and `=`: give it here, not in a URL).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    pub fn tls(mut self, mode: TlsMode) -> Self {
        self.tls = mode;
        self
    }

    pub fn root_cert_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_cert = Some(RootCert::Path(path.into()));
        self
    }

    pub fn root_cert_pem(mut self, pem: Vec<u8>) -> Self {
        self.root_cert = Some(RootCert::Pem(pem));
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// `host:port/database`, for messages.
    pub fn target(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }

    /// The mode sqlx is asked for: libpq's `require` with a root certificate is `verify-ca`.
    fn effective_tls(&self) -> TlsMode {
        match (self.tls, &self.root_cert) {
            (TlsMode::Require, Some(_)) => TlsMode::VerifyCa,
            (mode, _) => mode,
        }
    }

    /// sqlx's options for one attempt in `mode`; the root certificate is read here so that a
    /// missing or empty file is named, instead of silently trusting only the bundled roots.
    fn sqlx_options(&self, mode: TlsMode) -> Result<PgConnectOptions, ReplicaError> {
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&self.user)
            .application_name(&self.application_name)
            .ssl_mode(match mode {
                TlsMode::Disable | TlsMode::Allow => PgSslMode::Disable,
                TlsMode::Prefer => PgSslMode::Prefer,
                TlsMode::Require => PgSslMode::Require,
                TlsMode::VerifyCa => PgSslMode::VerifyCa,
                TlsMode::VerifyFull => PgSslMode::VerifyFull,
            });
        if let Some(password) = &self.password {
            options = options.password(password);
        }
        if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
            && let Some(root) = &self.root_cert
        {
            let (pem, source) = match root {
                RootCert::Path(path) => (
                    std::fs::read(path).map_err(|e| {
                        ReplicaError::BadConnectionString(format!("reading sslrootcert {}: {e}", path.display()))
                    })?,
                    format!("sslrootcert {}", path.display()),
                ),
                RootCert::Pem(pem) => (pem.clone(), "the root certificate given".to_owned()),
            };
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(ReplicaError::BadConnectionString(format!("{source} holds no PEM certificate")));
            }
            options = options.ssl_root_cert_from_pem(pem);
        }
        Ok(options)
    }
}

/// `postgresql://user:password@host:port/database[?sslmode=mode][&sslrootcert=file]`, as the
/// official client and libpq take it (`ssl=` is the official client's name for `sslmode=`).
pub fn parse_connection_string(s: &str) -> Result<ConnectOptions, ReplicaError> {
    let bad = |why: String| ReplicaError::BadConnectionString(why);
    let Some(rest) = s.strip_prefix("postgresql://").or_else(|| s.strip_prefix("postgres://")) else {
        return Err(bad("it must start with postgresql://".into()));
    };
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = base.split_once('/').unwrap_or((base, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, password)) => (decode(user, "the user name")?, Some(decode(password, "the password")?)),
            None => (decode(u, "the user name")?, None),
        },
        None => (String::new(), None),
    };
    let (host, port) = match hostport.strip_prefix('[') {
        // An IPv6 address: [::1]:5432.
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
            None => return Err(bad("an IPv6 host lacks its closing `]`".into())),
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad(NOT_A_PORT.into()))?,
        None => 5432,
    };
    let mut options = ConnectOptions::new(
        if host.is_empty() { "localhost" } else { host },
        &decode(database, "the database name")?,
        &user,
    )
    .port(port);
    options.password = password;
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let value = decode(value, "a parameter")?;
        match key {
            "ssl" | "sslmode" => options.tls = value.parse().map_err(bad)?,
            "sslrootcert" => options.root_cert = Some(RootCert::Path(value.into())),
            "application_name" => options.application_name = value,
            "user" => options.user = value,
            "password" => options.password = Some(value),
            "dbname" => options.database = value,
            "host" => options.host = value,
            "port" => options.port = value.parse().map_err(|_| bad(NOT_A_PORT.into()))?,
            "connect_timeout" => {
                let seconds: u64 =
                    value.parse().map_err(|_| bad(format!("connect_timeout `{value}` is not whole seconds")))?;
                options.connect_timeout = Duration::from_secs(seconds);
            }
            // Only well-formed names are quoted: a stray `?` in a password must not show it.
            other if other.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                return Err(bad(format!("parameter `{other}` is not supported")));
            }
            _ => {
                return Err(bad(
                    "a parameter is not supported (is a `?`, `/` or `@` in the password not %-escaped?)".into()
                ));
            }
        }
    }
    if options.user.is_empty() {
        return Err(bad("it names no user".into()));
    }
    if options.database.is_empty() {
        return Err(bad("it names no database".into()));
    }
    Ok(options)
}

const NOT_A_PORT: &str = "the port is not a number (is a `/`, `?` or `@` in the password not %-escaped?)";

/// Percent-decoding of a URL part; errors name the part (`what`), never its text.
fn decode(part: &str, what: &str) -> Result<String, ReplicaError> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                return Err(ReplicaError::BadConnectionString(format!("{what} has a malformed %-escape")));
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ReplicaError::BadConnectionString(format!("{what} is not UTF-8")))
}

/// The pause between connections while the server is starting up (`57P03`), until the
/// connection's timeout.
const STARTING_UP: Backoff = Backoff::every(Duration::from_secs(1));

/// Connects within the options' timeout. While the server answers `cannot_connect_now`
/// (Aurora resuming), tries again; `allow` falls back to TLS when refused in plain text.
pub async fn connect(options: &ConnectOptions) -> Result<PgConnection, ReplicaError> {
    let started = Instant::now();
    let deadline = started + options.connect_timeout;
    let mode = options.effective_tls();
    let mut pauses = STARTING_UP.pauses();
    let attempt = async {
        loop {
            let result = match mode {
                TlsMode::Allow => match options.sqlx_options(TlsMode::Disable)?.connect().await {
                    // A server that takes only TLS refuses the plain start-up with an error.
                    Err(sqlx::Error::Database(_)) => options.sqlx_options(TlsMode::Require)?.connect().await,
                    other => other,
                },
                mode => options.sqlx_options(mode)?.connect().await,
            };
            match result {
                Ok(mut conn) => {
                    // Comments and enum labels in DDL are quoted literals: backslashes must stay
                    // literal. Set here rather than as a start-up option, which poolers refuse.
                    sqlx::query("SET standard_conforming_strings = on")
                        .execute(&mut conn)
                        .await
                        .map_err(|e| ReplicaError::Connect { target: options.target(), cause: e })?;
                    return Ok(conn);
                }
                Err(e) if crate::error::sqlstate(&e).as_deref() == Some("57P03") && Instant::now() < deadline => {
                    tracing::info!(target = %options.target(), "the database is starting up; waiting");
                    tokio::time::sleep(pauses.next().unwrap_or(STARTING_UP.max)).await;
                }
                Err(e) => return Err(crate::error::connect_error(options.target(), e)),
            }
        }
    };
    match tokio::time::timeout_at(deadline.into(), attempt).await {
        Ok(result) => result,
        Err(_) => Err(ReplicaError::ConnectTimeout { target: options.target(), waited: started.elapsed() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_follow_libpq() {
        let o = parse_connection_string("postgresql://u:p%40ss@h:5433/d?ssl=require").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.database.as_str(), o.user.as_str()), ("h", 5433, "d", "u"));
        assert_eq!(o.password.as_deref(), Some("p@ss"));
        assert_eq!(o.tls, TlsMode::Require);
        assert_eq!(o.effective_tls(), TlsMode::Require);
        let o =
            parse_connection_string("postgresql://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert_eq!((o.tls, o.port), (TlsMode::VerifyFull, 5432));
        assert_eq!(o.root_cert, Some(RootCert::Path("/ca.pem".into())));
        assert_eq!(o.application_name, "x");
        let o = parse_connection_string("postgresql://u@h/d?ssl=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(o.effective_tls(), TlsMode::VerifyCa, "require with a root certificate verifies the chain");
        assert_eq!(parse_connection_string("postgresql://u@h/d").unwrap().tls, TlsMode::Prefer);
        assert_eq!(parse_connection_string("postgres://u@h/d?ssl=allow").unwrap().tls, TlsMode::Allow);
        let err = parse_connection_string("postgresql://u@h/d?ssl=maybe").unwrap_err().to_string();
        assert!(err.contains("ssl mode `maybe`"), "{err}");
        assert!(parse_connection_string("mysql://u@h/d").unwrap_err().to_string().contains("postgresql://"));
        assert!(parse_connection_string("postgresql://h/d").unwrap_err().to_string().contains("no user"));
        assert!(parse_connection_string("postgresql://u@h:x/d").unwrap_err().to_string().contains("port is not"));
        // A password with an unescaped `/` or `?` is never quoted back.
        for bad in ["postgresql://u:pa/Zq9@h/d", "postgresql://u:pa?Zq9@h/d", "postgresql://u:p%zzZq9@h/d"] {
            let err = parse_connection_string(bad).unwrap_err().to_string();
            assert!(!err.contains("Zq9") && !err.contains("pa/") && !err.contains("pa?"), "{err}");
        }
        let o = parse_connection_string("postgresql://u:secret@[::1]:6000/d").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 6000));
        assert!(!format!("{o:?}").contains("secret"));
    }
}
