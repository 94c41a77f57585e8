//! A real PostgreSQL server on loopback.
//!
//! `cargo xtask test` starts one for the whole run and passes its URL in
//! [`DATABASE_URL_VAR`]; a plain `cargo test` starts one per test binary, which a watchdog
//! stops when the binary exits.
//!
//! The server listens on 127.0.0.1 and 127.0.0.2, with a certificate for `localhost` and
//! 127.0.0.1 only (so 127.0.0.2 is a host name mismatch), and refuses plain-text
//! connections of [`TLS_ONLY_USER`] (so libpq's `allow` has something to fall back from).

use crate::free_port;
use crate::tls::{EC_KEY, make_ca, run};
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set to `postgresql://user@127.0.0.1:port` to use a running server.
pub const DATABASE_URL_VAR: &str = "CD2_TEST_DATABASE_URL";
/// Set to the PEM file of the CA that signed that server's certificate.
pub const DATABASE_CA_VAR: &str = "CD2_TEST_DATABASE_CA";
/// A role the server admits only over TLS (the tests create it).
pub const TLS_ONLY_USER: &str = "cd2_tls_only";
/// A group whose members log in over loopback with their password (SCRAM-SHA-256) rather
/// than being trusted: a test makes a role a member to check the password it was given
/// (the tests create the group).
pub const PASSWORD_LOGIN_GROUP: &str = "cd2_password_login";

/// A server this process started (stopped by `stop`, or by the watchdog).
#[derive(Debug)]
pub struct PgServer {
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    bin: PathBuf,
    as_postgres: bool,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Where `initdb` and `pg_ctl` live: `$PG_BIN`, the newest `/usr/lib/postgresql/*/bin`, or PATH.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    let found = Command::new("sh").args(["-c", "command -v initdb"]).output().map_err(|e| e.to_string())?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    match Path::new(&path).parent() {
        Some(dir) if !path.is_empty() => Ok(dir.to_path_buf()),
        _ => {
            Err("PostgreSQL server binaries not found: install them (apt-get install postgresql) or set PG_BIN".into())
        }
    }
}

impl PgServer {
    /// Initializes and starts a server in `dir` (created; emptied first), on a free port,
    /// trusting loopback connections, tuned for tests (no fsync).
    ///
    /// As root the server runs as the `postgres` user, who may not be able to enter `dir`
    /// (a checkout under `/root`, or in a `mktemp -d` directory): its files then go in a
    /// directory of its own under the system's temporary directory instead.
    pub fn start(dir: &Path) -> Result<Self, String> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = &if as_postgres { postgres_dir(dir) } else { dir.to_path_buf() };
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if as_postgres {
            // initdb refuses to run as root; the server runs as the postgres user.
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir))?;
        }
        let server = Self { dir: dir.to_path_buf(), port: free_port(), user: "cd2".into(), bin, as_postgres };
        let data = dir.join("data");
        server.pg(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                &server.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )?;
        // Plain-text connections of the TLS-only role are refused, the password group's
        // members give their password (not the administrator, a member of the groups it
        // makes since PostgreSQL 16); the rest of loopback is trusted.
        let hba = data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).map_err(|e| format!("reading {}: {e}", hba.display()))?;
        let rules = format!(
            "hostnossl all {TLS_ONLY_USER} 0.0.0.0/0 reject\nhost all {user} 127.0.0.0/8 trust\nhost all +{PASSWORD_LOGIN_GROUP} 127.0.0.0/8 scram-sha-256\nhost all all 127.0.0.0/8 trust\n{rules}",
            user = server.user
        );
        std::fs::write(&hba, rules).map_err(|e| format!("writing {}: {e}", hba.display()))?;
        let mut options = format!(
            "-h 127.0.0.1,127.0.0.2 -p {} -k {} -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200",
            server.port,
            dir.display()
        );
        if server.make_certificates()? {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
        }
        server.pg(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &dir.join("server.log").to_string_lossy(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        )?;
        Ok(server)
    }

    /// The CA that signed the server's certificate (for `localhost` and `127.0.0.1`), when
    /// openssl was there to make one.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        Some(self.dir.join("ca.crt")).filter(|p| p.exists())
    }

    /// A test CA and a server certificate it signs; false without openssl (TLS is then off).
    fn make_certificates(&self) -> Result<bool, String> {
        if Command::new("openssl").arg("version").output().is_err() {
            return Ok(false);
        }
        let d = |f: &str| self.dir.join(f).to_string_lossy().into_owned();
        std::fs::write(
            self.dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        make_ca(&self.dir.join("ca.key"), &self.dir.join("ca.crt"), "cd2-test-ca")?;
        run(Command::new("openssl").arg("req").args(EC_KEY).args([
            "-keyout",
            &d("server.key"),
            "-out",
            &d("server.csr"),
            "-subj",
            "/CN=localhost",
        ]))?;
        run(Command::new("openssl")
            .args(["x509", "-req", "-in", &d("server.csr"), "-CA", &d("ca.crt"), "-CAkey", &d("ca.key")])
            .args(["-CAcreateserial", "-out", &d("server.crt"), "-days", "2", "-extfile", &d("server.ext")]))?;
        if self.as_postgres {
            run(Command::new("chown").args(["postgres:postgres", &d("server.key"), &d("server.crt")]))?;
        }
        run(Command::new("chmod").args(["600", &d("server.key")]))?;
        Ok(true)
    }

    fn pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        run(&mut cmd)
    }

    pub fn url(&self) -> String {
        format!("postgresql://{}@127.0.0.1:{}", self.user, self.port)
    }

    pub fn stop(&self) -> Result<(), String> {
        self.pg("pg_ctl", &["-D", &self.dir.join("data").to_string_lossy(), "-m", "immediate", "-w", "stop"])?;
        // Its files too (a gigabyte after the tests): they would pile up run after run.
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }

    /// Stops the server when process `pid` exits (test binaries never run destructors of
    /// statics), and removes its files: each test binary's server would otherwise leave a
    /// data directory in the temporary directory, run after run, until the disk is full.
    pub fn stop_when_gone(&self, pid: u32) {
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
            runuser = if self.as_postgres { "runuser -u postgres -- " } else { "" },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

/// A directory under the temporary directory (world-traversable), named after `dir`, for a
/// server run by the `postgres` user.
fn postgres_dir(dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::env::temp_dir().join(format!("cd2-aws-{name}-{:016x}", hasher.finish()))
}

/// The test server: its URL and its CA certificate, if it has TLS.
fn server() -> &'static (String, Option<PathBuf>) {
    static SERVER: OnceLock<(String, Option<PathBuf>)> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var(DATABASE_URL_VAR) {
            return (url, std::env::var_os(DATABASE_CA_VAR).map(PathBuf::from));
        }
        let dir = std::env::temp_dir().join(format!("cd2-test-pg-{}", std::process::id()));
        let server = PgServer::start(&dir).unwrap_or_else(|e| panic!("starting PostgreSQL for the tests: {e}"));
        server.stop_when_gone(std::process::id());
        (server.url(), server.ca_cert())
    })
}

/// The server URL for tests: [`DATABASE_URL_VAR`], or a server this process starts once.
pub fn server_url() -> String {
    server().0.clone()
}

/// The CA of the test server's TLS certificate; `None` when it runs without TLS.
pub fn server_ca() -> Option<PathBuf> {
    server().1.clone()
}

/// A fresh, empty database on the test server; returns its connection string.
pub async fn fresh_database() -> String {
    let url = tokio::task::spawn_blocking(server_url).await.expect("the test server starts");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{url}/postgres?sslmode=disable"))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server at {url}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating a test database: {e}"));
    let _ = admin.close().await;
    format!("{url}/{name}")
}
