//! TLS to the database, as libpq's `sslmode` means it, against a real server with a
//! certificate from a test CA.

use replica::{connect, parse_connection_string};

async fn uses_tls(url: &str) -> Result<bool, String> {
    let options = parse_connection_string(url).map_err(|e| e.to_string())?;
    let (client, _task) = connect::connect(&options).await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn each_ssl_mode_does_what_libpq_does() {
    let db = tokio::task::spawn_blocking(testkit::fresh_database).await.unwrap();
    let Some(ca) = testkit::server_ca() else {
        panic!("the test server has no TLS certificate: is openssl installed?");
    };
    assert!(!uses_tls(&format!("{db}?ssl=disable")).await.unwrap());
    assert!(uses_tls(&format!("{db}?ssl=require")).await.unwrap(), "require encrypts");
    assert!(uses_tls(&db).await.unwrap(), "prefer (the default) encrypts when the server can");
    let verified = format!("{db}?sslmode=verify-full&sslrootcert={}", ca.display());
    assert!(uses_tls(&verified).await.unwrap(), "the test CA vouches for the server");
    let err = uses_tls(&format!("{db}?ssl=verify-full")).await.unwrap_err();
    assert!(err.contains("certificate"), "without the CA the certificate is refused: {err}");
    // Reached under a name the certificate does not carry: verify-ca passes, verify-full refuses.
    let port = db.rsplit(':').next().unwrap().split('/').next().unwrap();
    let database = db.rsplit('/').next().unwrap();
    let aliased = format!(
        "postgresql://cd2@db.example.invalid:{port}/{database}?hostaddr=127.0.0.1&sslrootcert={}",
        ca.display()
    );
    assert!(uses_tls(&format!("{aliased}&sslmode=verify-ca")).await.unwrap());
    let err = uses_tls(&format!("{aliased}&sslmode=verify-full")).await.unwrap_err();
    assert!(err.contains("not valid for name") || err.contains("NotValidForName"), "{err}");
    let err = uses_tls(&format!("{db}?ssl=verify-full&sslrootcert=/nonexistent.pem")).await.unwrap_err();
    assert!(err.contains("reading sslrootcert /nonexistent.pem"), "{err}");
}
