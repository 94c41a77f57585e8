//! `sync_table` and `init_table`: one budgeted call on one table.
//!
//! The budget comes from the invocation's deadline: the call stops starting objects, and
//! abandons (rolls back) the one in flight, `margin` before it, and answers `in_progress`;
//! whatever still runs a few seconds before the deadline (a DAP request that hangs) is
//! dropped with its connection, and the call fails as transient with nothing lost. So no
//! invocation ever reaches its timeout, where Lambda would kill it without an answer.
//!
//! Each call makes its own database connection and closes it when it ends, so a warm
//! container holds none between calls and Aurora can pause once the run is over; the DAP
//! client stays, and takes a new key when DAP refuses the old one and `set_key.sh` stored
//! another ([`crate::DapAccess`]).
//!
//! The state carries the table's calls: a table that loads nothing in `max_idle_calls`
//! calls in a row (a DAP job that never completes) or is still going after `max_calls`
//! fails with `NoProgressError` instead of looping until the execution times out.

use crate::DapAccess;
use crate::database::Credentials;
use crate::error::FunctionError;
use crate::settings::CallLimits;
use contract::{ErrorName, Status, TableState, env};
use replica::{Budget, Outcome, Replicator};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sync,
    Init,
}

/// Kept in the container between invocations: the DAP client and how to make a database
/// connection (a fresh credential each call).
#[derive(Debug)]
pub struct Replication {
    dap: DapAccess,
    credentials: Credentials,
    limits: CallLimits,
    /// Objects loaded (and batches of a column's type change done) by the call under way.
    loaded: Arc<AtomicU64>,
    /// The raw zone, when the stack has one.
    archive: Option<Arc<dyn replica::Archive>>,
    /// The same, read by a restore.
    reader: Option<Arc<dyn replica::ArchiveReader>>,
}

// A job id the DAP client takes fits the cap the state's size is computed with.
const _: () = assert!(dap::MAX_JOB_ID_LEN <= contract::MAX_DAP_ID);

/// What is kept free after the hard stop, for the answer to reach Lambda (at most half
/// the margin, so that the hard stop comes after the budget's end).
const ANSWER_TIME: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

impl Replication {
    /// The DAP settings and secret, the database settings ([`crate::database::DbSettings`])
    /// and the call limits, from the environment.
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, FunctionError> {
        let dap =
            DapAccess::new(crate::settings::DapSettings::from_env()?, aws_sdk_secretsmanager::Client::new(sdk)).await?;
        let credentials = Credentials::new(crate::database::DbSettings::from_env()?, sdk);
        let replication = Self::new(dap, credentials, CallLimits::from_env()?);
        let archive_vars: env::archive::Vars<String> = crate::settings::read()?;
        Ok(match archive_vars.bucket {
            Some(bucket) => {
                let s3 = crate::results::s3_client(sdk);
                let mut archive = s3_archive::S3Archive::new(s3, bucket);
                if let Some(database) = archive_vars.catalog {
                    let glue = s3_archive::aws_sdk_glue::Client::new(sdk);
                    archive = archive.with_catalog(s3_archive::Catalog::new(glue, database));
                }
                let archive = Arc::new(archive);
                replication.with_archive(archive.clone()).with_reader(archive)
            }
            None => replication,
        })
    }

    pub fn new(dap: DapAccess, credentials: Credentials, limits: CallLimits) -> Self {
        Self { dap, credentials, limits, loaded: Arc::new(AtomicU64::new(0)), archive: None, reader: None }
    }

    /// Every object loaded is also written to `archive`.
    pub fn with_archive(mut self, archive: Arc<dyn replica::Archive>) -> Self {
        self.archive = Some(archive);
        self
    }

    /// A state with `restore` set rebuilds its table from `reader` ([`Kind::Init`] only).
    pub fn with_reader(mut self, reader: Arc<dyn replica::ArchiveReader>) -> Self {
        self.reader = Some(reader);
        self
    }

    /// One call, ending well before `deadline` (the invocation's).
    pub async fn handle(
        &mut self,
        kind: Kind,
        state: TableState,
        deadline: SystemTime,
    ) -> Result<TableState, FunctionError> {
        let started_ms = now_ms();
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let now = Instant::now();
        let hard_stop = now + left.saturating_sub(ANSWER_TIME.min(self.limits.margin / 2));
        let budget_end = now + self.limits.budget.min(left.saturating_sub(self.limits.margin));
        if budget_end <= now + Budget::MIN_STATEMENT {
            return Err(FunctionError::config(format!(
                "the invocation has {left:?} left, less than the margin of {:?}: raise the function's timeout",
                self.limits.margin
            )));
        }
        let table = state.table_ref().to_string();
        tracing::info!(%table, ?kind, call = state.calls + 1, budget_s = (budget_end - now).as_secs(), "call starts");
        let budget = Budget::until(budget_end);
        // Counted over the whole call: objects a first try loaded before DAP refused the
        // key are progress too.
        self.loaded.store(0, Ordering::Relaxed);
        let attempts = async {
            match self.call(kind, &state, budget).await {
                Err(e) => {
                    self.dap.renew_key_after(e).await?;
                    self.call(kind, &state, budget).await
                }
                answer => answer,
            }
        };
        let (outcome, freshness) = match tokio::time::timeout_at(hard_stop.into(), attempts).await {
            Ok(outcome) => outcome?,
            Err(_) => {
                // The call's connection was dropped with it, rolling back what it was doing.
                return Err(FunctionError::transient(format!(
                    "{table}: the call was still waiting (on DAP or the database) just before the invocation's deadline and was stopped; nothing was lost, the next call resumes"
                )));
            }
        };
        let mut state = self.next_state(state, outcome, started_ms)?;
        if state.status == Status::Success {
            state.current_to_s = freshness.current_to_s;
            state.rows = freshness.rows;
        }
        Ok(state)
    }

    /// One call on its own connection, closed when it ends whatever the outcome.
    async fn call(
        &self,
        kind: Kind,
        state: &TableState,
        budget: Budget,
    ) -> Result<(Outcome, replica::Freshness), FunctionError> {
        let password = self.credentials.password().await?;
        let mut replicator =
            Replicator::connect(&self.credentials.options(&password), self.dap.client().clone()).await?;
        if let Some(archive) = &self.archive {
            replicator.set_archive(archive.clone());
        }
        let loaded = self.loaded.clone();
        replicator.on_progress(Arc::new(move |_: &replica::Progress<'_>| {
            loaded.fetch_add(1, Ordering::Relaxed);
        }));
        let table = state.table_ref();
        let outcome = match (kind, state.restore, &self.reader) {
            (Kind::Init, true, Some(reader)) => replicator.restore(&table, reader.clone(), budget).await,
            (_, true, _) => {
                replicator.close().await;
                return Err(FunctionError::config(format!(
                    "{table}: a restore needs init_table and the stack's archive (archive.enabled); this is {kind:?}{}",
                    if self.reader.is_none() { ", without an archive" } else { "" }
                )));
            }
            (Kind::Sync, false, _) => replicator.sync(&table, budget).await,
            (Kind::Init, false, _) => replicator.init(&table, budget).await,
        };
        // How fresh the table now is, for the run's report and metrics: worth a line in the
        // log when it cannot be read, not the table's failure.
        let freshness = match &outcome {
            Ok(o) if o.status == replica::Status::Success => replicator.freshness(&table).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "how fresh the table is could not be read");
                replica::Freshness::default()
            }),
            _ => replica::Freshness::default(),
        };
        replicator.close().await;
        Ok((outcome?, freshness))
    }

    fn next_state(
        &self,
        mut state: TableState,
        outcome: Outcome,
        call_started_ms: u64,
    ) -> Result<TableState, FunctionError> {
        let name = state.table_ref().to_string();
        state.status = match outcome.status {
            replica::Status::Success => Status::Success,
            replica::Status::InitNeeded => Status::InitNeeded,
            replica::Status::InProgress => Status::InProgress,
        };
        state.cursor = outcome.cursor;
        state.calls += 1;
        state.counts += outcome.counts;
        if state.started_ms == 0 {
            state.started_ms = call_started_ms;
        }
        state.duration_ms = now_ms().saturating_sub(state.started_ms);
        for note in &outcome.notes {
            state.add_note(note);
        }

        let loaded = self.loaded.load(Ordering::Relaxed);
        state.idle_calls = if state.status == Status::InProgress && loaded == 0 { state.idle_calls + 1 } else { 0 };
        tracing::info!(table = %name, status = ?state.status, objects = loaded, calls = state.calls, "call ends");
        if state.status == Status::InProgress {
            let job = state.cursor.as_deref().map(|j| format!(" (DAP job {j})")).unwrap_or_default();
            if state.idle_calls >= self.limits.max_idle_calls {
                let why = if state.cursor.is_some() {
                    "the DAP job is not completing"
                } else {
                    "no DAP job could be started: the job limit DAP gives the client, shared with the other tables, stayed full"
                };
                return Err(FunctionError::new(
                    ErrorName::NoProgress,
                    format!(
                        "{name}: nothing loaded in {} calls in a row{job}: {why}; the next run starts again from what the replica holds",
                        state.idle_calls
                    ),
                ));
            }
            if state.calls >= self.limits.max_calls {
                return Err(FunctionError::new(
                    ErrorName::NoProgress,
                    format!(
                        "{name}: still in progress after {} calls{job}; the next run resumes it (raise MAX_CALLS or the function's memory for very large tables)",
                        state.calls
                    ),
                ));
            }
        }
        Ok(state)
    }
}

/// The `main` of `sync_table` and `init_table`: the SDK configuration at start-up, the
/// rest on the first invocation, each event one call of `kind`.
pub async fn serve(kind: Kind) -> Result<(), lambda_runtime::Error> {
    crate::init_logging();
    let sdk = crate::aws::load().await;
    let replication = crate::PerContainer::<Replication>::default();
    let (sdk, replication) = (&sdk, &replication);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<TableState>| {
        // Boxed: the call's future is deep, and rustc's layout queries overflow on it inline.
        Box::pin(async move {
            let deadline = crate::deadline(&event.context);
            replication
                .with(
                    async || Replication::from_env(sdk).await,
                    async |r| r.handle(kind, event.payload, deadline).await,
                )
                .await
        })
    }))
    .await
}
