//! `summarize`: the report and alert, from the templates in `assets/`.

use contract::{CaughtError, Counts, ErrorDetail, RunResults, Status, SummaryRequest, TableState};
use functions::summary::Summarizer;
use serde_json::json;

fn done(table: &str, inserted: u64, calls: u32) -> TableState {
    TableState {
        namespace: "canvas".into(),
        table: table.into(),
        status: Status::Success,
        calls,
        counts: Counts { inserted, updated: 0, deleted: 0 },
        duration_ms: 65_000,
        ..TableState::default()
    }
}

fn failed(table: &str, error: &str, detail: ErrorDetail) -> TableState {
    TableState {
        status: Status::Failed,
        error: Some(CaughtError {
            Error: error.into(),
            Cause: json!({"errorType": error, "errorMessage": detail.to_line()}).to_string(),
        }),
        ..done(table, 0, 2)
    }
}

fn request(results: Vec<TableState>) -> SummaryRequest {
    SummaryRequest {
        execution: "arn:aws:states:us-east-1:123456789012:execution:cd2-dev-Replication:run-1".into(),
        state_machine: "arn:aws:states:us-east-1:123456789012:stateMachine:cd2-dev-Replication".into(),
        run: RunResults { results, ..RunResults::default() },
    }
}

#[test]
fn failures_come_first_with_their_dap_error_and_what_to_do() {
    let s = Summarizer::new("cd2-dev").unwrap();
    let dap = ErrorDetail {
        message: "the DAP job j-1 for snapshot of canvas.users failed".into(),
        dap_type: Some("ValidationError".into()),
        dap_uuid: Some("0b7e-uuid".into()),
    };
    let summary = s
        .handle(request(vec![
            done("accounts", 3, 1),
            failed("users", "DapError", dap),
            done("courses", 25, 4),
            failed("grades", "States.Timeout", ErrorDetail::default()),
        ]))
        .unwrap();
    assert_eq!((summary.failed, summary.succeeded), (2, 2));
    assert_eq!(summary.subject, "[cd2-dev] Canvas Data 2 replication FAILED: 2 of 4 tables");
    let m = &summary.message;
    let failures = m.find("FAILED: 2 of 4 tables").expect(m);
    assert!(failures < m.find("SUCCEEDED").unwrap(), "failures first:\n{m}");
    assert!(m.contains("- canvas.users: DapError\n  the DAP job j-1 for snapshot of canvas.users failed\n"), "{m}");
    assert!(m.contains("DAP error type ValidationError, uuid 0b7e-uuid"), "{m}");
    assert!(m.contains("give Instructure support the DAP error type and uuid"), "{m}");
    assert!(m.contains("- canvas.grades: States.Timeout"), "{m}");
    assert!(m.contains("did not answer in time"), "{m}");
    assert!(m.contains("canvas.courses: loaded, +25 ~0 -0 rows (4 calls, 1m 05s)"), "{m}");
    assert!(m.contains("rows inserted 28, updated 0, deleted 0"), "{m}");
}

#[test]
fn a_clean_run_is_a_report_not_an_alert() {
    let s = Summarizer::new("cd2-dev").unwrap();
    let summary = s.handle(request(vec![done("accounts", 3, 1), done("courses", 0, 1)])).unwrap();
    assert_eq!(summary.failed, 0);
    assert_eq!(summary.subject, "[cd2-dev] Canvas Data 2 replication succeeded: 2 tables, 3 rows changed");
    assert!(!summary.message.contains("FAILED"), "{}", summary.message);
    assert!(summary.message.contains("1 more tables (1 of them without changes)"), "{}", summary.message);
}

#[test]
fn a_run_that_listed_nothing_is_an_alert() {
    let s = Summarizer::new("cd2-dev").unwrap();
    let mut r = request(vec![]);
    r.run.run_error = Some(CaughtError {
        Error: "DapError".into(),
        Cause: json!({"errorType": "DapError", "errorMessage": "DAP rejected the client id or secret [DAP error AuthenticationError 77]"}).to_string(),
    });
    let summary = s.handle(r).unwrap();
    assert_eq!(summary.failed, 1);
    assert!(summary.subject.contains("no table was replicated"), "{}", summary.subject);
    assert!(summary.message.contains("set_key.sh"), "{}", summary.message);
}

#[test]
fn five_hundred_tables_make_a_readable_email_and_fit_a_state() {
    let s = Summarizer::new("cd2-prod").unwrap();
    let mut results: Vec<TableState> = (0..495).map(|i| done(&format!("table_{i:03}"), i, 1)).collect();
    for i in 0..5 {
        results.push(failed(
            &format!("broken_{i}"),
            "DataError",
            ErrorDetail { message: "x".repeat(2000), ..ErrorDetail::default() },
        ));
    }
    let input = serde_json::to_string(&request(results.clone())).unwrap();
    assert!(input.len() < 256 * 1024, "the summarize input is {} bytes", input.len());
    let all_failed: Vec<TableState> = (0..500)
        .map(|i| {
            failed(
                &format!("table_{i:03}"),
                "TransientError",
                ErrorDetail { message: "y".repeat(5000), ..ErrorDetail::default() },
            )
        })
        .collect();
    let worst = serde_json::to_string(&request(all_failed)).unwrap();
    assert!(worst.len() < 256 * 1024, "500 failed tables with long errors make {} bytes", worst.len());

    let summary = s.handle(request(results)).unwrap();
    assert_eq!((summary.failed, summary.succeeded), (5, 495));
    let lines = summary.message.lines().count();
    assert!(lines < 120, "{lines} lines");
    assert!(summary.message.contains("... and 470 more tables (1 of them without changes)"), "{}", summary.message);
    assert!(summary.message.contains("canvas.table_494: synced"), "the biggest changes are listed");
}

#[test]
fn a_thousand_failed_tables_make_a_bounded_report() {
    let s = Summarizer::new("cd2-prod").unwrap();
    let mut results: Vec<TableState> = (0..contract::MAX_TABLES)
        .map(|i| {
            let error = if i % 2 == 0 { "TransientError" } else { "DapError" };
            let detail = ErrorDetail { message: "z".repeat(5000), ..ErrorDetail::default() };
            failed(&format!("table_{i:04}_{}", "n".repeat(50)), error, detail)
        })
        .collect();
    for r in &mut results {
        r.notes = vec!["é".repeat(200); 5];
    }
    let summary = s.handle(request(results)).unwrap();
    assert_eq!(summary.failed as usize, contract::MAX_TABLES);
    let m = &summary.message;
    assert!(m.len() <= functions::summary::MAX_MESSAGE_BYTES, "{} bytes", m.len());
    let listed = m.lines().filter(|l| l.starts_with("- canvas.")).count();
    assert_eq!(listed, functions::summary::LISTED_FAILURES, "{m}");
    assert!(m.contains("- and 475 more with TransientError"), "{m}");
    assert!(m.contains("- and 475 more with DapError"), "{m}");
    let state = serde_json::to_vec(&summary).unwrap().len();
    assert!(state < contract::STATE_LIMIT / 2, "the summary state is {state} bytes");
}
