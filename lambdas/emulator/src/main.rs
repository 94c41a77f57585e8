//! `cd2-emulator`: the DAP API emulator as a server, for demos and benchmarks.
//!
//! ```text
//! cd2-emulator [--port P] [--fixture FILE] [--bench-rows N] [--rows-per-object N]
//! ```
//! A fixture is `{"tables": [{"namespace", "table", "schema", "rows": [...]}]}`.
//! `POST /_emulator/touch/{namespace}/{table}` moves a generated table to its next revision.

use emulator::{Emulator, Generated, Settings, bench};
use std::net::SocketAddr;
use std::process::ExitCode;

struct Args {
    port: u16,
    fixture: Option<String>,
    bench_rows: Option<u64>,
    rows_per_object: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { port: 0, fixture: None, bench_rows: None, rows_per_object: 100_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--fixture" => args.fixture = Some(value()?),
            "--bench-rows" => args.bench_rows = Some(value()?.parse().map_err(|e| format!("--bench-rows: {e}"))?),
            "--rows-per-object" => {
                args.rows_per_object = value()?.parse().map_err(|e| format!("--rows-per-object: {e}"))?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: cd2-emulator [--port P] [--fixture FILE] [--bench-rows N] [--rows-per-object N]".into()
                );
            }
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let settings = Settings { rows_per_object: args.rows_per_object, polls_before_complete: 1, ..Settings::default() };
    let emulator = match Emulator::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)), settings.clone()).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.fixture
        && let Err(e) = emulator.load_fixture(std::path::Path::new(path))
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    if let Some(rows) = args.bench_rows {
        emulator.put_generated(
            bench::NAMESPACE,
            bench::TABLE,
            bench::schema(),
            Generated { rows, change_every: 10, revision: 0 },
        );
    }
    println!("{}", emulator.base_url());
    println!("client id: {}", settings.client_id);
    println!("client secret: {}", settings.client_secret);
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
