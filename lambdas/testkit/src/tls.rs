//! Certificates from private CAs, and an HTTPS server whose certificate one signed.

use crate::{free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
pub(crate) const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// A self-signed CA (P-256 key), valid two days.
pub(crate) fn make_ca(key: &Path, cert: &Path, name: &str) -> Result<(), String> {
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

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}
