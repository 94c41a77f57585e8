//! Real services on loopback for tests, benchmarks and the demo: a PostgreSQL server
//! ([`postgres`]), moto's AWS APIs ([`Moto`]), the functions' binaries behind `cargo lambda
//! watch` ([`LambdaWatch`]), TLS certificates and servers ([`tls`]), and the cargo that nested
//! builds run ([`cargo`]).

mod lambda_watch;
mod moto;
mod postgres;
pub mod tls;

pub use lambda_watch::LambdaWatch;
pub use moto::{LambdaAnswer, Moto, PYTHON_TOOLS_VAR, empty_lambda_zips, python_tools};
pub use postgres::{
    DATABASE_CA_VAR, DATABASE_URL_VAR, PASSWORD_LOGIN_GROUP, PgServer, TLS_ONLY_USER, bin_dir, fresh_database,
    server_ca, server_url,
};
pub use tls::{UntrustedHttps, unrelated_ca};

use std::net::TcpListener;
use std::process::Command;

/// The scale run's size (`cargo xtask bench run --tables N` sets it; the test's own is small).
pub const SCALE_TABLES_VAR: &str = "CD2_SCALE_TABLES";
/// The fewest tables the scale run's checks need (a refused one, a drifting one).
pub const SCALE_MIN_TABLES: usize = 8;
/// The scale run's DAP rate-limit window in milliseconds: DAP's minute, shortened.
pub const SCALE_WINDOW_MS_VAR: &str = "CD2_SCALE_WINDOW_MS";

/// The archive benchmark's rows (`cargo xtask bench replication` sets its `--rows`; the
/// test's own is small).
pub const ARCHIVE_BENCH_ROWS_VAR: &str = "CD2_ARCHIVE_BENCH_ROWS";

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
