//! TLS to the database, as libpq's `sslmode` means it, against a real server whose
//! certificate a test CA signed for `localhost` and 127.0.0.1. The server also listens on
//! 127.0.0.2 (a name its certificate does not carry) and admits `testkit::TLS_ONLY_USER`
//! only over TLS.

use replica::{ConnectOptions, TlsMode, connect, parse_connection_string};
use std::path::PathBuf;

struct Server {
    port: u16,
    database: String,
    ca: PathBuf,
    other_ca: PathBuf,
}

async fn server() -> Server {
    let db = testkit::fresh_database().await;
    let Some(ca) = testkit::server_ca() else {
        panic!("the test server has no TLS certificate: is openssl installed?");
    };
    let dir = std::env::temp_dir().join(format!("cd2-tls-test-{}", std::process::id()));
    let other_ca = testkit::unrelated_ca(&dir).expect("a second CA");
    let rest = db.rsplit('@').next().unwrap();
    let (port, database) = rest.split_once(':').unwrap().1.split_once('/').unwrap();
    let server = Server { port: port.parse().unwrap(), database: database.to_owned(), ca, other_ca };
    // The role that may only use TLS (the server's rules name it); created once per server.
    let mut admin = connect::connect(&server.options("127.0.0.1", "cd2", TlsMode::Disable)).await.unwrap();
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {} LOGIN", testkit::TLS_ONLY_USER)))
        .execute(&mut admin)
        .await;
    server
}

impl Server {
    fn options(&self, host: &str, user: &str, mode: TlsMode) -> ConnectOptions {
        ConnectOptions::new(host, &self.database, user).port(self.port).tls(mode)
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgresql://cd2@{host}:{}/{}?{query}", self.port, self.database)
    }
}

/// Whether the connection is encrypted, or the connect error.
async fn uses_tls(options: &ConnectOptions) -> Result<bool, String> {
    let mut conn = connect::connect(options).await.map_err(|e| e.to_string())?;
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

async fn url_uses_tls(url: &str) -> Result<bool, String> {
    uses_tls(&parse_connection_string(url).map_err(|e| e.to_string())?).await
}

fn refused_certificate(result: Result<bool, String>) -> String {
    let err = result.expect_err("the certificate must be refused");
    assert!(err.contains("certificate") || err.contains("UnknownIssuer") || err.contains("NotValidForName"), "{err}");
    err
}

#[tokio::test]
async fn each_ssl_mode_does_what_libpq_does() {
    let s = server().await;
    let (ca, other) = (s.ca.display(), s.other_ca.display());
    let local = "127.0.0.1";

    assert!(!url_uses_tls(&s.url(local, "ssl=disable")).await.unwrap());
    assert!(!url_uses_tls(&s.url(local, "sslmode=allow")).await.unwrap(), "allow tries plain text first");
    assert!(url_uses_tls(&s.url(local, "")).await.unwrap(), "prefer (the default) encrypts when the server can");
    assert!(url_uses_tls(&s.url(local, "ssl=require")).await.unwrap(), "require encrypts, certificate unchecked");
    assert!(url_uses_tls(&s.url(local, &format!("ssl=verify-ca&sslrootcert={ca}"))).await.unwrap());
    assert!(url_uses_tls(&s.url(local, &format!("ssl=verify-full&sslrootcert={ca}"))).await.unwrap());
    assert!(url_uses_tls(&s.url("localhost", &format!("ssl=verify-full&sslrootcert={ca}"))).await.unwrap());

    // A role the server admits only over TLS: allow falls back to TLS; disable is refused.
    let tls_only = testkit::TLS_ONLY_USER;
    assert!(uses_tls(&s.options(local, tls_only, TlsMode::Allow)).await.unwrap(), "allow falls back to TLS");
    assert!(uses_tls(&s.options(local, tls_only, TlsMode::Prefer)).await.unwrap());
    let err = uses_tls(&s.options(local, tls_only, TlsMode::Disable)).await.unwrap_err();
    assert!(err.contains("no encryption") || err.contains("pg_hba.conf rejects"), "{err}");

    // A certificate from another private CA: verify-ca, verify-full, and require given that
    // CA (libpq then verifies as verify-ca) all refuse it; without any sslrootcert the
    // private CA is not trusted at all.
    refused_certificate(url_uses_tls(&s.url(local, &format!("ssl=verify-ca&sslrootcert={other}"))).await);
    refused_certificate(url_uses_tls(&s.url(local, &format!("ssl=verify-full&sslrootcert={other}"))).await);
    refused_certificate(url_uses_tls(&s.url(local, &format!("ssl=require&sslrootcert={other}"))).await);
    assert!(url_uses_tls(&s.url(local, &format!("ssl=require&sslrootcert={ca}"))).await.unwrap());
    refused_certificate(url_uses_tls(&s.url(local, "ssl=verify-ca")).await);
    refused_certificate(url_uses_tls(&s.url(local, "ssl=verify-full")).await);

    // Reached under a name the certificate does not carry: verify-ca passes, verify-full refuses.
    let other_name = "127.0.0.2";
    assert!(url_uses_tls(&s.url(other_name, &format!("sslmode=verify-ca&sslrootcert={ca}"))).await.unwrap());
    assert!(url_uses_tls(&s.url(other_name, "sslmode=require")).await.unwrap());
    let err =
        refused_certificate(url_uses_tls(&s.url(other_name, &format!("sslmode=verify-full&sslrootcert={ca}"))).await);
    assert!(err.contains("NotValidForName") || err.contains("not valid for name"), "{err}");

    // The root certificate as PEM bytes (a bundle shipped with a function), through the builder.
    let pem = std::fs::read(&s.ca).unwrap();
    assert!(uses_tls(&s.options(local, "cd2", TlsMode::VerifyFull).root_cert_pem(pem)).await.unwrap());
    let err = uses_tls(&s.options(local, "cd2", TlsMode::VerifyFull).root_cert_pem(b"not a certificate".to_vec()))
        .await
        .unwrap_err();
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let err = url_uses_tls(&s.url(local, "ssl=verify-full&sslrootcert=/nonexistent.pem")).await.unwrap_err();
    assert!(err.contains("reading sslrootcert /nonexistent.pem"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_and_names_the_target() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = ConnectOptions::new("127.0.0.1", "canvas", "cd2").port(port).password("s3cret-password");
    let started = std::time::Instant::now();
    let err = connect::connect(&options).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "a refused connection is not waited on");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}/canvas")), "{text}");
    assert!(!text.contains("s3cret") && !format!("{err:?}").contains("s3cret"), "{text}");
}

/// A certificate refused, a name it does not carry, a login refused, a database that does
/// not exist: each a setting to fix, said at once and never retried as if passing.
#[tokio::test]
async fn a_refused_certificate_or_login_is_a_configuration_error_at_once() {
    let s = server().await;
    let started = std::time::Instant::now();
    let cases = [
        (s.options("127.0.0.1", "cd2", TlsMode::VerifyFull).root_cert_pem(std::fs::read(&s.other_ca).unwrap()), "Tls"),
        (s.options("127.0.0.2", "cd2", TlsMode::VerifyFull).root_cert_pem(std::fs::read(&s.ca).unwrap()), "Tls"),
        (s.options("127.0.0.1", testkit::TLS_ONLY_USER, TlsMode::Disable), "Login"),
        (ConnectOptions::new("127.0.0.1", "no_such_database", "cd2").port(s.port).tls(TlsMode::Disable), "Login"),
    ];
    for (options, want) in cases {
        let err = connect::connect(&options).await.unwrap_err();
        let got = match &err {
            replica::ReplicaError::Tls { .. } => "Tls",
            replica::ReplicaError::Login { .. } => "Login",
            _ => "other",
        };
        assert_eq!(got, want, "{err:?}");
        assert!(err.is_configuration() && !err.is_transient(), "{err}");
        assert_eq!(err.kind(), "ConfigurationError");
        assert!(err.to_string().contains(&options.target()), "names the database: {err}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no waiting: {:?}", started.elapsed());
}
