//! `cargo xtask replicate` end to end: the real binary against the DAP emulator and a real
//! PostgreSQL, for a good run and for each kind of bad input.

use emulator::{Emulator, Settings};
use std::process::{Command, Output};

struct Setup {
    emulator: Emulator,
    db: String,
}

async fn setup() -> Setup {
    let emulator = Emulator::start(Settings { rows_per_object: 10, ..Settings::default() }).await.unwrap();
    emulator.load_fixture(std::path::Path::new(emulator::DEMO_FIXTURE)).unwrap();
    let db = testkit::fresh_database().await;
    Setup { emulator, db }
}

async fn xtask(s: &Setup, args: &[&str], env: &[(&str, &str)]) -> Output {
    let settings = s.emulator.settings();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("replicate")
        .args(args)
        .env("DAP_API_URL", s.emulator.base_url())
        .env("DAP_CLIENT_ID", &settings.client_id)
        .env("DAP_CLIENT_SECRET", &settings.client_secret)
        .env("DAP_CONNECTION_STRING", &s.db);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn replicates_every_table_then_syncs_and_summarizes() {
    let s = setup().await;
    let out = xtask(&s, &["--namespace", "canvas", "--table", "all"], &[]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("canvas.courses                           object 3/3"), "{stdout}");
    let summary: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("table ")).collect();
    assert!(
        summary.iter().any(|l| l.starts_with("canvas.courses") && l.contains(" 25 ") && l.ends_with("ok")),
        "{stdout}"
    );

    s.emulator.commit("canvas", "courses", vec![], vec![serde_json::json!({"id": 101})]);
    let out = xtask(&s, &["--namespace", "canvas", "--table", "courses,accounts"], &[]).await;
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("canvas.courses                           done in") && stdout.contains("1 deleted"),
        "{stdout}"
    );
}

/// Arguments, environment overrides, and what the one error line must say.
type BadInput = (&'static [&'static str], &'static [(&'static str, &'static str)], &'static str);

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_one_line_and_a_failing_exit_code() {
    let s = setup().await;
    let cases: [BadInput; 5] = [
        (&["--namespace", "canvas", "--table", "all"], &[("DAP_CLIENT_SECRET", "wrong")], "check the credentials"),
        (&["--namespace", "canvass", "--table", "all"], &[], "unknown namespace `canvass`: use one of canvas"),
        (
            &["--namespace", "canvas", "--table", "all"],
            &[("DAP_CONNECTION_STRING", "postgresql://nobody@127.0.0.1:1/x")],
            "could not connect to the database",
        ),
        (
            &["--namespace", "canvas", "--table", "all"],
            &[("DAP_CONNECTION_STRING", "mysql://x")],
            "must start with postgresql://",
        ),
        (&["--namespace", "canvas", "--table", "all"], &[("DAP_CLIENT_ID", "")], "--client-id is missing"),
    ];
    for (args, env, expected) in cases {
        let out = xtask(&s, args, env).await;
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{expected}: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line for {expected}: {stderr}");
        assert!(lines[0].starts_with("error: ") && lines[0].contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("wrong") && !stderr.contains("emulator-secret"), "no secret in errors: {stderr}");
    }
    // An unknown table fails that table, names it in the summary, and the exit code.
    let out = xtask(&s, &["--namespace", "canvas", "--table", "accounts,nope"], &[]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.lines().any(|l| l.starts_with("canvas.nope") && l.contains("failed: [DapError]")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("canvas.accounts") && l.ends_with("ok")), "{stdout}");
    assert!(stderr.contains("1 of 2 table(s) failed"), "{stderr}");
}
