//! `summarize`: the run report, rendered with the handlebars templates in
//! `assets/templates` (subject and body). Failures come first, each with the error name,
//! the DAP error type and uuid when DAP sent them, and a hint saying what to do;
//! successes are summed, and only the tables that changed most are listed, so a run over
//! 500 tables stays a readable email.

use crate::error::FunctionError;
use contract::{CaughtError, Counts, ErrorDetail, ErrorName, Status, Summary, SummaryRequest, TableState};
use handlebars::Handlebars;
use serde::Serialize;

const SUBJECT: &str = include_str!("../../../assets/templates/summary-subject.hbs");
const BODY: &str = include_str!("../../../assets/templates/summary-body.hbs");

/// Tables listed by name among the successes (the ones with the most changed rows).
pub const LISTED_SUCCESSES: usize = 25;
/// Failed tables listed in full; the rest are counted by error. With the message cap
/// below this keeps the report (a state of the run, and an SNS message) small at any
/// number of tables.
pub const LISTED_FAILURES: usize = 50;
/// The longest error message quoted for one table, in bytes (our errors are shorter; a
/// cause Step Functions or Lambda wrote may not be).
const MAX_ERROR_BYTES: usize = 600;
/// Schema notes listed.
const LISTED_NOTES: usize = 50;
/// The longest report, in bytes: SNS takes 256 KB, and the report is part of the run's state.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// SNS takes subjects under 100 characters.
const MAX_SUBJECT: usize = 99;

#[derive(Debug)]
pub struct Summarizer {
    templates: Handlebars<'static>,
    stack: String,
}

#[derive(Serialize)]
struct Failure {
    table: String,
    error: String,
    message: String,
    dap_type: Option<String>,
    dap_uuid: Option<String>,
    hint: &'static str,
    calls: String,
    duration: String,
}

/// Failed tables beyond those listed, by error.
#[derive(Serialize)]
struct MoreFailures {
    error: String,
    tables: usize,
}

#[derive(Serialize)]
struct Changed {
    table: String,
    outcome: &'static str,
    inserted: u64,
    updated: u64,
    deleted: u64,
    calls: String,
    duration: String,
}

#[derive(Serialize)]
struct RunError {
    name: String,
    message: String,
    hint: &'static str,
}

#[derive(Serialize)]
struct Report {
    stack: String,
    execution: String,
    total: usize,
    failed: usize,
    succeeded: usize,
    changed: u64,
    totals: Counts,
    run_error: Option<RunError>,
    failures: Vec<Failure>,
    more_failures: Vec<MoreFailures>,
    changed_tables: Vec<Changed>,
    more: usize,
    unchanged: usize,
    notes: Vec<String>,
}

/// "1 call", "4 calls".
fn calls(n: u32) -> String {
    if n == 1 { "1 call".into() } else { format!("{n} calls") }
}

/// `1h 02m`, `3m 05s`, `12s`.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// What the operator should do about an error.
pub fn hint(error: &str, dap_type: Option<&str>) -> &'static str {
    if dap_type.is_some_and(|t| t.contains("Authentication") || t.contains("Unauthorized")) {
        return "check the DAP client id and secret, and store them again with set_key.sh";
    }
    match ErrorName::parse(error) {
        Some(ErrorName::Transient) => {
            "DAP, the database or the way out to the internet stayed unavailable (or the table stayed busy in another run) through the retries; the next run tries again (and starts an on-demand NAT instance that stopped). If it repeats, check DAP's status, the database's metrics and the NAT"
        }
        Some(ErrorName::Dap) => {
            "DAP refused or failed the request; if it repeats, give Instructure support the DAP error type and uuid"
        }
        Some(ErrorName::Schema) => {
            "the table's schema cannot be replicated as it is; add it to skip_tables and report it with the message above"
        }
        Some(ErrorName::Data) => {
            "DAP sent a record that cannot be loaded and nothing of that object was kept; report the table, object and line to Instructure support"
        }
        Some(ErrorName::Database) => {
            "the database refused: check its free storage, the application role's privileges and any object users created in the replicated schemas"
        }
        Some(ErrorName::TableState) => {
            "the replica's record of this table contradicts the call; follow the message above"
        }
        Some(ErrorName::NoProgress) => {
            "the table made no progress for several calls (a DAP job not completing); the next run starts again from what the replica holds"
        }
        Some(ErrorName::Configuration) => "fix the setting or secret the message names, then deploy again",
        None if error == "States.Timeout" || error.starts_with("Lambda.") => {
            "the function did not answer in time or crashed; its log group has the details at this execution's time"
        }
        None => "see the message; the state machine's execution history has the details",
    }
}

fn failure(state: &TableState) -> Failure {
    let caught = state.error.clone().unwrap_or_default();
    let detail = ErrorDetail::parse(&caught.message());
    Failure {
        table: state.table_ref().to_string(),
        hint: hint(&caught.Error, detail.dap_type.as_deref()),
        error: caught.Error,
        message: clip(&detail.message, MAX_ERROR_BYTES),
        dap_type: detail.dap_type,
        dap_uuid: detail.dap_uuid,
        // The state is the one the failed call was given: that call counts too.
        calls: calls(state.calls + 1),
        duration: duration(state.duration_ms),
    }
}

/// At most `bytes` of `text` (cut at a character), marked when cut.
fn clip(text: &str, bytes: usize) -> String {
    if text.len() <= bytes {
        return text.to_owned();
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [...]", &text[..end])
}

/// At most `bytes` of `text`, cut at a line (or character) boundary, saying so.
fn cap_message(text: String, bytes: usize) -> String {
    if text.len() <= bytes {
        return text;
    }
    let note =
        "\n[... the report was cut here to fit an email; the execution's Summarize output has the start of it too]\n";
    let mut end = bytes.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').unwrap_or(end);
    format!("{}{note}", &text[..end])
}

fn run_error(caught: &CaughtError) -> RunError {
    let detail = ErrorDetail::parse(&caught.message());
    let mut message = detail.message;
    if let Some(t) = &detail.dap_type {
        message.push_str(&format!(" (DAP error type {t}, uuid {})", detail.dap_uuid.as_deref().unwrap_or("none")));
    }
    RunError { hint: hint(&caught.Error, detail.dap_type.as_deref()), name: caught.Error.clone(), message }
}

impl Summarizer {
    /// For the stack [`contract::env::summarize`] names.
    pub fn from_env(vars: &contract::env::summarize::Vars<String>) -> Result<Self, FunctionError> {
        Self::new(vars.stack_name.as_deref().unwrap_or(contract::env::summarize::DEFAULT_STACK_NAME))
    }

    pub fn new(stack: &str) -> Result<Self, FunctionError> {
        let mut templates = Handlebars::new();
        templates.set_strict_mode(true);
        templates.register_escape_fn(handlebars::no_escape);
        for (name, text) in [("subject", SUBJECT), ("body", BODY)] {
            templates
                .register_template_string(name, text)
                .map_err(|e| FunctionError::config(format!("the summary template `{name}` does not parse: {e}")))?;
        }
        Ok(Self { templates, stack: stack.to_owned() })
    }

    pub fn handle(&self, request: SummaryRequest) -> Result<Summary, FunctionError> {
        let results = request.run.results;
        let (failed, ok): (Vec<&TableState>, Vec<&TableState>) =
            results.iter().partition(|s| s.status == Status::Failed || s.error.is_some());
        let mut totals = Counts::default();
        for s in &ok {
            totals += s.counts;
        }
        let rows = |s: &TableState| s.counts.inserted + s.counts.updated + s.counts.deleted;
        let mut by_change = ok.clone();
        by_change.sort_by(|a, b| rows(b).cmp(&rows(a)).then_with(|| a.table_ref().cmp(&b.table_ref())));
        let changed_tables: Vec<Changed> = by_change
            .iter()
            .filter(|s| rows(s) > 0)
            .take(LISTED_SUCCESSES)
            .map(|s| Changed {
                table: s.table_ref().to_string(),
                outcome: if s.calls > 1 && s.counts.updated == 0 && s.counts.deleted == 0 {
                    "loaded"
                } else {
                    "synced"
                },
                inserted: s.counts.inserted,
                updated: s.counts.updated,
                deleted: s.counts.deleted,
                calls: calls(s.calls),
                duration: duration(s.duration_ms),
            })
            .collect();
        let unchanged = ok.iter().filter(|s| rows(s) == 0).count();
        let notes: Vec<String> = results
            .iter()
            .flat_map(|s| s.notes.iter().map(move |n| format!("{}: {n}", s.table_ref())))
            .take(LISTED_NOTES)
            .collect();
        let mut more_failures: Vec<MoreFailures> = Vec::new();
        for s in failed.iter().skip(LISTED_FAILURES) {
            let error = s.error.as_ref().map(|e| e.Error.clone()).unwrap_or_default();
            match more_failures.iter_mut().find(|m| m.error == error) {
                Some(m) => m.tables += 1,
                None => more_failures.push(MoreFailures { error, tables: 1 }),
            }
        }
        let run_error = request.run.run_error.as_ref().map(run_error);
        let report = Report {
            stack: self.stack.clone(),
            execution: request.execution,
            total: results.len(),
            failed: failed.len(),
            succeeded: ok.len(),
            changed: totals.inserted + totals.updated + totals.deleted,
            totals,
            failures: failed.iter().take(LISTED_FAILURES).map(|s| failure(s)).collect(),
            more_failures,
            more: ok.len() - changed_tables.len(),
            changed_tables,
            unchanged,
            notes,
            run_error,
        };
        let render = |name: &str| {
            self.templates
                .render(name, &report)
                .map_err(|e| FunctionError::config(format!("rendering the summary template `{name}` failed: {e}")))
        };
        let mut subject: String =
            render("subject")?.trim().chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        if report.run_error.is_some() {
            subject = format!("[{}] Canvas Data 2 replication FAILED: no table was replicated", self.stack);
        }
        subject.truncate(MAX_SUBJECT);
        let failed = report.failed + usize::from(report.run_error.is_some());
        let message = cap_message(render("body")?, MAX_MESSAGE_BYTES);
        Ok(Summary { failed: failed as u32, succeeded: report.succeeded as u32, subject, message })
    }
}
