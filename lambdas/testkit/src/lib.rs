//! Real services on loopback for tests and benchmarks: a PostgreSQL server, moto's AWS
//! APIs ([`Moto`]) and the functions' binaries behind `cargo lambda watch`
//! ([`LambdaWatch`]).
//!
//! `cargo xtask test` starts one for the whole run and passes its URL in
//! [`DATABASE_URL_VAR`]; a plain `cargo test` starts one per test binary, which a watchdog
//! stops when the binary exits.
//!
//! The server listens on 127.0.0.1 and 127.0.0.2, with a certificate for `localhost` and
//! 127.0.0.1 only (so 127.0.0.2 is a host name mismatch), and refuses plain-text
//! connections of [`TLS_ONLY_USER`] (so libpq's `allow` has something to fall back from).

mod lambda_watch;

pub use lambda_watch::LambdaWatch;

use sqlx::Connection as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set to `postgresql://user@127.0.0.1:port` to use a running server.
pub const DATABASE_URL_VAR: &str = "CD2_TEST_DATABASE_URL";
/// Set to the PEM file of the CA that signed that server's certificate.
pub const DATABASE_CA_VAR: &str = "CD2_TEST_DATABASE_CA";
/// The scale run's size (`cargo xtask bench run --tables N` sets it; the test's own is small).
pub const SCALE_TABLES_VAR: &str = "CD2_SCALE_TABLES";
/// The fewest tables the scale run's checks need (a refused one, a drifting one).
pub const SCALE_MIN_TABLES: usize = 8;
/// The scale run's DAP rate-limit window in milliseconds: DAP's minute, shortened.
pub const SCALE_WINDOW_MS_VAR: &str = "CD2_SCALE_WINDOW_MS";
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

/// A `cargo` of the toolchain running this (`$CARGO`), without the variables cargo sets for
/// the program it runs (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...). A build script that
/// watches one of them (ring's watches `CARGO_MANIFEST_DIR`) would otherwise run again in the
/// nested build, and every crate above it be rebuilt, both there and at the next build from
/// a shell: `cargo xtask synth` after `cargo xtask status` took 11 s instead of a fraction.
pub fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_the_program = matches!(
            name.as_ref(),
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "CARGO_TARGET_TMPDIR"
        ) || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_");
        if set_for_the_program {
            cargo.env_remove(name.as_ref());
        }
    }
    cargo
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

/// A port free now, for a server started next. Chosen below the kernel's ephemeral range
/// (32768 and up on Linux), which every port-0 bind draws from (the emulator's, other
/// tests'): otherwise a server bound to port 0 in the moment between this choice and the
/// start could take it, and the test would talk to the wrong server.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1000 {
        // xorshift: spread the tries over the range.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits until something listens on `port` of 127.0.0.1.
pub(crate) fn wait_for_port(port: u16, what: &str) -> Result<(), String> {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            return Err(format!("{what} did not start listening within 60 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
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
        self.pg("pg_ctl", &["-D", &self.dir.join("data").to_string_lossy(), "-m", "immediate", "-w", "stop"])
    }

    /// Stops the server when process `pid` exits (test binaries never run destructors of statics).
    pub fn stop_when_gone(&self, pid: u32) {
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1",
            runuser = if self.as_postgres { "runuser -u postgres -- " } else { "" },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.dir.join("data").display(),
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

/// A CA certificate that signed nothing this server has, in `dir` (for tests that a
/// certificate from another private CA is refused).
pub fn unrelated_ca(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let cert = dir.join("other-ca.crt");
    make_ca(&dir.join("other-ca.key"), &cert, "cd2-other-test-ca")?;
    Ok(cert)
}

/// An HTTPS server on loopback whose certificate a private CA signed (`openssl s_server`):
/// what a client that trusts only the public CAs meets behind a proxy inspecting TLS.
/// Stopped when dropped.
#[derive(Debug)]
pub struct UntrustedHttps {
    pub port: u16,
    child: std::process::Child,
}

impl UntrustedHttps {
    pub fn start(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let (key, cert) = (dir.join("https.key"), dir.join("https.crt"));
        make_ca(&key, &cert, "localhost")?;
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting openssl s_server: {e}"))?;
        let server = Self { port, child };
        wait_for_port(port, "openssl s_server")?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for UntrustedHttps {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// openssl's arguments for a new unencrypted P-256 key.
const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// A self-signed CA (P-256 key), valid two days.
fn make_ca(key: &Path, cert: &Path, name: &str) -> Result<(), String> {
    run(Command::new("openssl").args(["req", "-x509"]).args(EC_KEY).args([
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &cert.to_string_lossy(),
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
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

/// Set to the `bin` directory of the Python tools' virtualenv (moto); `cargo xtask test` sets it.
pub const PYTHON_TOOLS_VAR: &str = "CD2_PYTHON_TOOLS";

/// One Lambda invocation as moto's launcher records it ([`Moto::start_recording`]).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LambdaAnswer {
    /// The function's name (its binary's).
    pub function: String,
    /// The event, as sent.
    pub request: String,
    /// The function's answer, or its error's JSON.
    pub answer: String,
    /// Lambda's `X-Amz-Function-Error`, when the function failed.
    pub error: Option<String>,
}

/// moto's server on loopback (AWS APIs for the tests), stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    pub port: u16,
    child: std::process::Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python tools' `bin` directory: [`PYTHON_TOOLS_VAR`], or where `cargo xtask test`
/// installs them in this checkout.
pub fn python_tools() -> Result<PathBuf, String> {
    let bin = match std::env::var_os(PYTHON_TOOLS_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/validators/venv/bin"),
    };
    if bin.join("python").exists() {
        Ok(bin)
    } else {
        Err(format!(
            "the Python tools (moto, cargo-lambda) are not installed at {}: run `cargo xtask test` once, or set {PYTHON_TOOLS_VAR}",
            bin.display()
        ))
    }
}

impl Moto {
    /// Starts moto on a free port; with `forward_lambda` (the address of `cargo lambda
    /// watch`), Lambda invocations reach the real handlers there.
    pub fn start(forward_lambda: Option<&str>) -> Result<Self, String> {
        Self::launch(forward_lambda, None)
    }

    /// Starts moto forwarding Lambda invocations to `forward_lambda`, and appending each to
    /// `answers` as one JSON line ([`LambdaAnswer`]): how a caller sees a table's calls end,
    /// since moto's interpreter does not list a distributed Map's child executions.
    pub fn start_recording(forward_lambda: &str, answers: &Path) -> Result<Self, String> {
        Self::launch(Some(forward_lambda), Some(answers))
    }

    fn launch(forward_lambda: Option<&str>, answers: Option<&Path>) -> Result<Self, String> {
        let bin = python_tools()?;
        let port = free_port();
        let mut cmd = Command::new(bin.join("python"));
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("moto_launcher.py"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match forward_lambda {
            Some(url) => cmd.env("CD2_LAMBDA_FORWARD", url),
            None => cmd.env_remove("CD2_LAMBDA_FORWARD"),
        };
        match answers {
            Some(path) => cmd.env("CD2_LAMBDA_ANSWERS", path),
            None => cmd.env_remove("CD2_LAMBDA_ANSWERS"),
        };
        let child = cmd.spawn().map_err(|e| format!("starting moto: {e}"))?;
        let mut moto = Self { port, child };
        wait_for_port(port, "moto")?;
        // Listening, but moto itself? A moto that could not bind its port has exited.
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!("moto exited ({status}) on port {port}, which another server holds"));
        }
        Ok(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points `command` (an AWS SDK program) at this server with test credentials and none
    /// of this machine's AWS configuration; `scratch` holds the (absent) config files.
    pub fn isolate(&self, command: &mut Command, scratch: &Path) {
        command
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", scratch.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", scratch.join("no-aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION");
    }

    /// Runs Python `code` with boto3 on this server: `kw` (the client arguments), `ec2`,
    /// `s3`, `cfn`, `sm` and `json` are there. Answers what it printed.
    pub fn boto(&self, code: &str) -> Result<String, String> {
        let o = self.boto_command(code)?.output().map_err(|e| format!("running boto3: {e}"))?;
        if !o.status.success() {
            return Err(format!("boto3: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }

    /// What only a real NAT instance runs: its boot script's last step, `ready_tag` set on
    /// `instance` once it runs (and forwards), again after each start. A boto3 loop on this
    /// server, its output dropped; the caller kills it.
    pub fn play_nat_boot(&self, instance: &str, ready_tag: &str) -> Result<std::process::Child, String> {
        let code = format!(
            "import time\n\
             while True:\n\
             \x20   i = ec2.describe_instances(InstanceIds=['{instance}'])['Reservations'][0]['Instances'][0]\n\
             \x20   tags = {{t['Key'] for t in i.get('Tags', [])}}\n\
             \x20   if i['State']['Name'] == 'running' and '{ready_tag}' not in tags:\n\
             \x20       ec2.create_tags(Resources=['{instance}'], Tags=[{{'Key': '{ready_tag}', 'Value': 'yes'}}])\n\
             \x20   time.sleep(0.3)"
        );
        self.boto_command(&code)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("running boto3: {e}"))
    }

    fn boto_command(&self, code: &str) -> Result<Command, String> {
        let script = format!(
            "import boto3, json\n\
             kw = dict(endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             ec2 = boto3.client('ec2', **kw); s3 = boto3.client('s3', **kw); cfn = boto3.client('cloudformation', **kw)\n\
             sm = boto3.client('secretsmanager', **kw)\n{code}",
            self.endpoint()
        );
        let mut command = Command::new(python_tools()?.join("python"));
        command.arg("-c").arg(script);
        Ok(command)
    }

    /// `--set` overrides that make the `existing` environment one moto can deploy: its
    /// default VPC and two of its subnets, a security group made here for the database, and
    /// no bootstrap (moto's CloudFormation would wait for ever on the custom resource).
    pub fn existing_profile(&self) -> Result<Vec<String>, String> {
        let lines = self.boto(
            "vpc = ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs'][0]['VpcId']\n\
             subnets = [s['SubnetId'] for s in ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [vpc]}])['Subnets']][:2]\n\
             sg = ec2.create_security_group(GroupName='replica-db', Description='the database', VpcId=vpc)['GroupId']\n\
             print(f'network.vpc_id={vpc}')\n\
             print('network.private_subnet_ids=' + json.dumps(subnets))\n\
             print(f'database.security_group_id={sg}')",
        )?;
        let mut overrides: Vec<String> = lines.lines().map(str::to_owned).collect();
        overrides.extend(
            ["database.bootstrap=false", "database.admin_secret_arn=", "database.resource_id="].map(str::to_owned),
        );
        Ok(overrides)
    }
}

/// An empty zip in `dir` for each of `functions` (moto's Lambda takes any code), named as
/// `cargo xtask build-lambdas` names them: answers each function's file, for the manifest.
pub fn empty_lambda_zips<'a>(
    dir: &Path,
    functions: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<Vec<(&'a str, String)>> {
    const EMPTY_ZIP: [u8; 22] = [0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for f in functions {
        let file = format!("{f}-0123456789abcdef.zip");
        std::fs::write(dir.join(&file), EMPTY_ZIP)?;
        files.push((f, file));
    }
    Ok(files)
}
