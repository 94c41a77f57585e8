//! The functions as shipped and as they start: each arm64 zip's size (goal: under 10 MB),
//! and each binary's start-up, from process start to its first request for work from the
//! runtime API (goal: under 50 ms), on this machine's native release build of the same
//! code. The anchor is the time to start and reap `true`, measured in the same run.

use crate::{build_lambdas, project};
use anyhow::{Context, Result, bail};
use stack::app::Function;
use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

pub fn run() -> Result<()> {
    println!("Lambda zips (cargo lambda build --release --arm64):");
    for zip in build_lambdas::build()? {
        println!("  {:<13} {:>6.2} MB", zip.function, zip.bytes as f64 / 1e6);
    }

    let status = testkit::cargo()
        .args(["build", "--release", "-p", "cd2-functions", "--bins"])
        .current_dir(project::root())
        .status()
        .context("building the functions for this machine")?;
    if !status.success() {
        bail!("cargo build of the functions failed ({status})");
    }
    let anchor = median(&(0..RUNS).map(|_| spawn_true()).collect::<Result<Vec<_>>>()?);
    println!(
        "start-up to the first runtime API request, native release build, median of {RUNS} (anchor: `true` starts and exits in {:.1} ms):",
        ms(anchor)
    );
    for function in Function::ALL.map(Function::binary) {
        let exe = project::target_dir("release").join(function);
        let times = (0..RUNS).map(|_| first_request(&exe)).collect::<Result<Vec<_>>>()?;
        let max = times.iter().max().copied().unwrap_or_default();
        println!("  {function:<13} {:>6.1} ms   (max {:.1} ms)", ms(median(&times)), ms(max));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn spawn_true() -> Result<Duration> {
    let start = Instant::now();
    Command::new("true").status().context("running `true`")?;
    Ok(start.elapsed())
}

/// Every group the stack sets, values made up (each function reads its own).
fn stack_env() -> Vec<(&'static str, String)> {
    use contract::env;
    let secret = |name: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}");
    let mut vars = vec![(env::RUST_LOG, "info".to_owned())];
    vars.extend(
        env::dap::Vars { api_url: None, secret_id: "bench/dap".into(), poll_interval_ms: None, rate_window_ms: None }
            .pairs(),
    );
    vars.extend(
        env::database::Vars {
            host: "db.invalid".into(),
            port: Some("5432".into()),
            name: "cd2".into(),
            tls: None,
            root_cert: None,
        }
        .pairs(),
    );
    vars.extend(env::login::Vars { user: "cd2_app".into(), auth: None, secret_arn: None }.pairs());
    vars.extend(env::list_tables::Vars { namespaces: "canvas".into(), skip_tables: None }.pairs());
    vars.extend(
        env::replicate::Vars {
            time_budget_seconds: None,
            budget_margin_seconds: None,
            max_calls: None,
            max_idle_calls: None,
        }
        .pairs(),
    );
    vars.extend(env::summarize::Vars { stack_name: None, results_bucket: "bench-results".into() }.pairs());
    vars.extend(
        env::bootstrap::Vars {
            admin_secret_arn: secret("bench-admin"),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/bench/1".into(),
            resource: "DatabaseBootstrap".into(),
        }
        .pairs(),
    );
    vars
}

/// Starts `exe` as Lambda would (with the environment the stack sets, values made up) and
/// times the arrival of its first `GET .../invocation/next`.
fn first_request(exe: &std::path::Path) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let start = Instant::now();
    let mut child = Command::new(exe)
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
            ("AWS_LAMBDA_FUNCTION_NAME", "bench".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "bench".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench".into()),
        ])
        .envs(stack_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    listener.set_nonblocking(true)?;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    bail!("{} exited ({status}) before asking for work", exe.display());
                }
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    bail!("{} did not ask for work within 10 s", exe.display());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e).context("waiting for the first runtime API request"),
        }
    };
    stream.set_nonblocking(false)?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    if !buf[..n].starts_with(b"GET ") {
        bail!("{}: the first request was not a GET: {:?}", exe.display(), String::from_utf8_lossy(&buf[..n]));
    }
    Ok(elapsed)
}
