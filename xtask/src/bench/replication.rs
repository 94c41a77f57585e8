//! The replication benchmark. Runs optimized: from a debug build it re-runs itself with
//! `--release`. The replicating side runs in a child process of its own so that its peak
//! RSS is its own.

use crate::db::{connect, create_database};
use crate::project;
use anyhow::{Context, Result, bail};
use dap::{ClientConfig, Credentials, DapClient};
use emulator::bench;
use replica::{Budget, Replicator, TableModel, TableRef, ddl};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Objects per generated table: DAP splits large tables into several.
const OBJECTS: u64 = 8;

/// Runs per size; the table shows each figure's median, and the largest RSS seen.
const RUNS: usize = 3;

/// The archive's target: init with it on at this fraction of init with it off, at least
/// (issue 20: within 10%).
const ARCHIVE_TARGET: f64 = 0.90;

fn median_of(runs: usize, mut measure: impl FnMut() -> Result<Value>) -> Result<Value> {
    let results: Vec<Value> = (0..runs).map(|_| measure()).collect::<Result<_>>()?;
    let mut out = results[0].clone();
    for key in ["init_rows_per_s", "copy_rows_per_s", "sync_rows_per_s", "init_seconds", "init_cpu_seconds"] {
        let mut v: Vec<f64> = results.iter().map(|r| r[key].as_f64().unwrap_or(0.0)).collect();
        v.sort_by(f64::total_cmp);
        out[key] = json!(v[v.len() / 2]);
    }
    for key in ["init_peak_rss_kb", "sync_peak_rss_kb"] {
        out[key] = json!(results.iter().map(|r| r[key].as_u64().unwrap_or(0)).max());
    }
    let ratios: Vec<String> = results
        .iter()
        .map(|r| {
            let ratio = r["init_rows_per_s"].as_f64().unwrap_or(0.0) / r["copy_rows_per_s"].as_f64().unwrap_or(1.0);
            format!("{:.0}%", 100.0 * ratio)
        })
        .collect();
    out["ratios"] = json!(ratios.join(" "));
    Ok(out)
}

pub fn run(rows: u64) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("building optimized binaries for the benchmark ...");
        let status = testkit::cargo()
            .args(["run", "--release", "--quiet", "--package", "xtask", "--", "bench", "replication", "--rows"])
            .arg(rows.to_string())
            .current_dir(project::root())
            .status()
            .context("running the optimized benchmark")?;
        if !status.success() {
            bail!("the optimized benchmark failed");
        }
        return Ok(());
    }
    let emulator_bin = build_emulator()?;
    let server = testkit::PgServer::start(&project::target_dir("bench-postgres")).map_err(anyhow::Error::msg)?;
    // A quarter of the table too, to show that memory does not grow with it.
    let result: Result<Vec<Value>> =
        [rows / 4, rows].iter().map(|&n| median_of(RUNS, || measure(n, &emulator_bin, &server.url()))).collect();
    let archived = result.as_ref().ok().map(|_| with_the_archive(&server, rows));
    let _ = server.stop();
    let results = result?;
    let archived = archived.expect("measured after the table")?;
    println!(
        "\nreplication of canvas.{} (16 columns), optimized build, PostgreSQL {} on loopback, median of {RUNS} runs:",
        bench::TABLE,
        pg_version()
    );
    println!(
        "{:>10} {:>14} {:>14} {:>9} {:>14} {:>12} {:>12}",
        "rows", "init rows/s", "COPY rows/s", "init/COPY", "sync rows/s", "peak RSS MB", "sync RSS MB"
    );
    let cpu: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{:.1} of {:.1}",
                r["init_cpu_seconds"].as_f64().unwrap_or(0.0),
                r["init_seconds"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    for r in &results {
        println!(
            "{:>10} {:>14.0} {:>14.0} {:>8.0}% {:>14.0} {:>12.1} {:>12.1}",
            r["rows"].as_u64().unwrap_or(0),
            r["init_rows_per_s"].as_f64().unwrap_or(0.0),
            r["copy_rows_per_s"].as_f64().unwrap_or(0.0),
            100.0 * r["init_rows_per_s"].as_f64().unwrap_or(0.0) / r["copy_rows_per_s"].as_f64().unwrap_or(1.0),
            r["sync_rows_per_s"].as_f64().unwrap_or(0.0),
            r["init_peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
            r["sync_peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    println!("CPU seconds of the replicating process during init (of wall seconds): {}", cpu.join(", "));
    let ratios: Vec<String> =
        results.iter().map(|r| format!("{}: {}", r["rows"], r["ratios"].as_str().unwrap_or_default())).collect();
    println!("init/COPY of each run ({RUNS} per size; the table shows medians): {}", ratios.join(", "));
    println!(
        "with the archive (every object also to moto's S3 on this machine; init alternating off and on, medians of 3):\n{archived}"
    );
    let ratio = archived
        .split_whitespace()
        .find_map(|f| f.strip_prefix("on_over_off="))
        .and_then(|r| r.parse::<f64>().ok())
        .context("the archive-bench line has no on_over_off")?;
    // Not at least the target, NaN included.
    if ratio.is_nan() || ratio < ARCHIVE_TARGET {
        bail!(
            "init with the archive runs at {ratio:.3} of init without it: the target is {ARCHIVE_TARGET:.2} at least"
        );
    }
    println!("target met: init with the archive at {ratio:.3} of init without it (at least {ARCHIVE_TARGET:.2})");
    Ok(())
}

/// Init with the archive off and on: the figure line of the test that checks it
/// (`the_archive_loads_the_same_rows_and_its_cost_is_measured`), run optimized at `rows`.
fn with_the_archive(server: &testkit::PgServer, rows: u64) -> Result<String> {
    let tools = crate::validators::Validators::ensure()?;
    eprintln!("{rows} rows with the archive off and on (an optimized build of the functions' tests first) ...");
    let mut command = testkit::cargo();
    command
        .args(["test", "--release", "--quiet", "-p", "cd2-functions", "--test", "replicate", "--"])
        .args(["the_archive_loads_the_same_rows_and_its_cost_is_measured", "--exact", "--nocapture"])
        .env(testkit::PYTHON_TOOLS_VAR, tools.bin())
        .env(testkit::DATABASE_URL_VAR, server.url())
        .env(testkit::ARCHIVE_BENCH_ROWS_VAR, rows.to_string())
        .current_dir(project::root());
    if let Some(ca) = server.ca_cert() {
        command.env(testkit::DATABASE_CA_VAR, ca);
    }
    let output = command.output().context("running the archive benchmark")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the archive benchmark failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
    }
    stdout.lines().find(|l| l.starts_with("archive-bench:")).map(str::to_owned).context("no archive-bench line")
}

fn pg_version() -> String {
    testkit::bin_dir()
        .ok()
        .and_then(|d| Command::new(d.join("postgres")).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(2).unwrap_or("?").to_owned())
        .unwrap_or_else(|| "?".into())
}

fn build_emulator() -> Result<PathBuf> {
    let status = testkit::cargo()
        .args(["build", "--release", "--quiet", "--package", "cd2-emulator"])
        .current_dir(project::root())
        .status()?;
    if !status.success() {
        bail!("building the emulator failed");
    }
    Ok(project::root().join("target/release/cd2-emulator"))
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure(rows: u64, emulator_bin: &Path, server: &str) -> Result<Value> {
    eprintln!("{rows} rows: starting the emulator ...");
    let mut emulator = Guard(
        Command::new(emulator_bin)
            .args(["--bench-rows", &rows.to_string(), "--rows-per-object", &rows.div_ceil(OBJECTS).max(1).to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the emulator")?,
    );
    let mut first = String::new();
    BufReader::new(emulator.0.stdout.as_mut().expect("piped")).read_line(&mut first)?;
    let base_url = first.trim().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let db = runtime.block_on(create_database(server, &format!("bench_{rows}")))?;
    let ceiling_db = runtime.block_on(create_database(server, &format!("bench_copy_{rows}")))?;

    eprintln!("{rows} rows: init and sync in a child process ...");
    let out = Command::new(std::env::current_exe()?)
        .args(["bench-child", "--dap", &base_url, "--db", &db])
        .stderr(Stdio::inherit())
        .output()
        .context("running the replicating child")?;
    if !out.status.success() {
        bail!("the replicating child failed:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    let mut result: Value = serde_json::from_slice(&out.stdout).context("reading the child's figures")?;

    eprintln!("{rows} rows: plain COPY of the same rows ...");
    let copy_seconds = runtime.block_on(ceiling(&ceiling_db, rows))?;
    result["copy_rows_per_s"] = json!(rows as f64 / copy_seconds);
    result["rows"] = json!(rows);
    drop(emulator);
    Ok(result)
}

/// The ceiling: the same rows, already in COPY text in a file, into the same table with
/// one `COPY FROM STDIN`. Writing the file is not timed.
async fn ceiling(db: &str, rows: u64) -> Result<f64> {
    let model = TableModel::from_schema(&TableRef::new(bench::NAMESPACE, bench::TABLE), &bench::schema())?;
    let path = project::target_dir("bench-copy.txt");
    {
        let header = format!("meta.ts\t{}", bench::FIELDS.join("\t"));
        let layout = replica::tsv::Layout::from_header(&header, &model, false).map_err(anyhow::Error::msg)?;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let (mut line, mut out) = (String::new(), Vec::new());
        for i in 0..rows {
            line.clear();
            line.push_str("2024-05-01T10:00:00Z\t");
            bench::write_row(i, 0, &mut line);
            out.clear();
            layout.transform(line.as_bytes(), &mut out).map_err(|e| anyhow::anyhow!("row {i}: {e}"))?;
            file.write_all(&out)?;
        }
        file.flush()?;
    }
    let mut conn = connect(db).await?;
    let mut ddl_sql = String::new();
    for (schema, name, labels) in model.enums() {
        ddl_sql.push_str(&ddl::create_enum(schema, name, labels));
    }
    ddl_sql.push_str(&ddl::create_table(&model, bench::NAMESPACE));
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl_sql)).execute(&mut conn).await?;
    let columns: Vec<String> = model.columns.iter().map(|c| replica::model::quote_ident(&c.name)).collect();
    let sql = format!("COPY {} ({}) FROM STDIN", ddl::qualified(bench::NAMESPACE, bench::TABLE), columns.join(", "));
    let start = Instant::now();
    stream_file(&mut conn, &sql, &path).await?;
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(seconds)
}

/// The file into one `COPY ... FROM STDIN`, in 256 KiB sends, as the replicator sends.
async fn stream_file(conn: &mut sqlx::PgConnection, sql: &str, path: &Path) -> Result<()> {
    let mut copy = conn.copy_in_raw(sql).await?;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The replicating side: init, then a sync after the emulator changes 10% of the rows.
/// Prints its figures as JSON.
pub fn child(dap_url: &str, db: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let s = emulator::Settings::default();
        let mut config =
            ClientConfig::new(dap_url, Credentials { client_id: s.client_id, client_secret: s.client_secret });
        config.poll_interval = Duration::from_millis(100);
        let dap = DapClient::new(config)?;
        let mut replicator = Replicator::connect(&replica::parse_connection_string(db)?, dap.clone()).await?;
        let table = TableRef::new(bench::NAMESPACE, bench::TABLE);
        // DAP prepares a job before any byte moves; that is the server's time, not ours.
        // An identical query then gets the completed job back at once.
        dap.run_job(bench::NAMESPACE, bench::TABLE, &dap::Query::snapshot()).await?;
        let start = Instant::now();
        let cpu = cpu_seconds();
        let init = replicator.init(&table, Budget::unlimited()).await?;
        let init_seconds = start.elapsed().as_secs_f64();
        let init_rss = peak_rss_kb();
        let init_cpu = cpu_seconds() - cpu;

        let touched =
            post_on_loopback(&format!("{dap_url}/_emulator/touch/{}/{}", bench::NAMESPACE, bench::TABLE)).await?;
        if !touched {
            bail!("the emulator did not change the generated table");
        }
        let since = replicator.last_timestamp(&table).await?.context("the table is registered")?;
        dap.run_job(bench::NAMESPACE, bench::TABLE, &dap::Query::incremental(since)).await?;
        let start = Instant::now();
        let sync = replicator.sync(&table, Budget::unlimited()).await?;
        let sync_seconds = start.elapsed().as_secs_f64();
        let synced = sync.counts.inserted + sync.counts.updated + sync.counts.deleted;
        println!(
            "{}",
            json!({
                "init_rows": init.counts.inserted,
                "init_seconds": init_seconds,
                "init_rows_per_s": init.counts.inserted as f64 / init_seconds,
                "init_peak_rss_kb": init_rss,
                "init_cpu_seconds": init_cpu,
                "sync_rows": synced,
                "sync_seconds": sync_seconds,
                "sync_rows_per_s": synced as f64 / sync_seconds,
                "sync_peak_rss_kb": peak_rss_kb(),
            })
        );
        Ok(())
    })
}

/// A bare HTTP/1.1 POST on loopback (the emulator's control route), so xtask needs no HTTP client.
async fn post_on_loopback(url: &str) -> Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (host, path) = rest.split_once('/').context("a path")?;
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer.starts_with("HTTP/1.1 200"))
}
