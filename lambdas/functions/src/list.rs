//! `list_tables`: the tables of the configured namespaces minus the skip list (or the ones
//! the execution input names), each a [`TableRef`] for the Map (the first call's state).
//! Errors are raised, never swallowed into an empty list; more than [`MAX_TABLES`] is one.
//!
//! It is also the run's preflight: listing logs in to DAP with the stored key, and at the
//! same time the database is asked for the connection every table's call will make (TLS
//! as configured, the IAM token, the metadata tables). A setting to fix in either ends the
//! run here with one alert, before any table is attempted, instead of once per table after
//! each has spent its retries.
//!
//! Two runs must never replicate at once (a big init can outlast the schedule's period):
//! when an earlier execution of the same state machine is still running, this one is
//! *skipped* and says which execution holds the tables.

use crate::DapAccess;
use crate::database::Credentials;
use crate::error::FunctionError;
use aws_sdk_sfn::types::ExecutionStatus;
use contract::{ErrorName, ListRequest, MAX_TABLES, TableList, TableRef};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, SystemTime};

/// Kept back from the invocation's time to answer in.
const ANSWER_TIME: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct Lister {
    pub dap: DapAccess,
    pub sfn: aws_sdk_sfn::Client,
    pub namespaces: Vec<String>,
    /// `namespace.table` entries never replicated.
    pub skip: Vec<String>,
    /// How the tables' calls reach the database, checked before any of them runs (the
    /// stack always sets it; `None` lists without the check).
    pub database: Option<Credentials>,
}

impl Lister {
    /// `DAP_API_URL`, `DAP_SECRET_ID`, `NAMESPACES` and `SKIP_TABLES` (comma-separated),
    /// and the database as the replication functions reach it ([`crate::database::DbSettings`]).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, FunctionError> {
        let dap = crate::settings::DapSettings::from_env()?;
        let namespaces = crate::settings::list("NAMESPACES");
        if namespaces.is_empty() {
            return Err(FunctionError::config("the environment variable NAMESPACES is empty (the stack sets it)"));
        }
        Ok(Self {
            dap: DapAccess::new(dap, aws_sdk_secretsmanager::Client::new(sdk)).await?,
            sfn: aws_sdk_sfn::Client::new(sdk),
            namespaces,
            skip: crate::settings::list("SKIP_TABLES"),
            database: Some(Credentials::new(crate::database::DbSettings::from_env()?, sdk)),
        })
    }

    /// Answers before `deadline` (the invocation's): a listing still waiting on DAP (its 429
    /// pauses last up to two minutes, a slow answer three) just before it ends with a
    /// transient error the state machine retries, rather than being killed by Lambda
    /// without an answer. When DAP refuses the key and the secret holds a new one, the
    /// listing is tried once more with it.
    pub async fn handle(&mut self, request: ListRequest, deadline: SystemTime) -> Result<TableList, FunctionError> {
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let stop = tokio::time::Instant::now() + left.saturating_sub(ANSWER_TIME);
        let attempts = async {
            match self.list(&request).await {
                Err(e) if self.dap.renewed_after(&e).await? => self.list(&request).await,
                answer => answer,
            }
        };
        match tokio::time::timeout_at(stop, attempts).await {
            Ok(answer) => answer,
            Err(_) => Err(FunctionError::transient(format!(
                "listing the tables of {} was still waiting on DAP (its rate limit, or a slow answer) after {} s, just before the function's timeout; the run tries again",
                self.namespaces.join(", "),
                left.saturating_sub(ANSWER_TIME).as_secs()
            ))),
        }
    }

    async fn list(&self, request: &ListRequest) -> Result<TableList, FunctionError> {
        if let Some(holder) = self.earlier_run(request).await? {
            tracing::warn!(execution = %request.execution, holder = %holder, "an earlier run is still going: skipped");
            return Ok(TableList { tables: vec![], skipped_because: Some(holder) });
        }
        let listing = async {
            match &request.input.tables {
                Some(wanted) => self.check_wanted(wanted.clone()).await,
                None => self.configured().await,
            }
        };
        let (listed, database) = tokio::join!(listing, self.check_database());
        let tables = preflight(listed, database)?;
        tracing::info!(tables = tables.len(), "tables to replicate");
        if tables.len() > MAX_TABLES {
            return Err(FunctionError::new(
                ErrorName::Configuration,
                format!(
                    "the namespaces {} hold {} tables, more than the {MAX_TABLES} one run carries in its state: list fewer namespaces, or add tables to skip_tables",
                    self.namespaces.join(", "),
                    tables.len()
                ),
            ));
        }
        Ok(TableList { tables, skipped_because: None })
    }

    /// The connection a table's call makes, made once and closed.
    async fn check_database(&self) -> Result<(), FunctionError> {
        let Some(credentials) = &self.database else { return Ok(()) };
        let password = credentials.password().await?;
        replica::Replicator::check_access(&credentials.options(&password)).await?;
        tracing::info!("the database accepts the functions' connection");
        Ok(())
    }

    async fn configured(&self) -> Result<Vec<TableRef>, FunctionError> {
        let mut tables = Vec::new();
        for namespace in &self.namespaces {
            for table in self.dap.client().list_tables(namespace).await? {
                let t = TableRef { namespace: namespace.clone(), table };
                if !self.skip.contains(&t.to_string()) {
                    tables.push(t);
                }
            }
        }
        tables.sort();
        Ok(tables)
    }

    /// The tables an execution input names, each checked against DAP's list.
    async fn check_wanted(&self, mut wanted: Vec<TableRef>) -> Result<Vec<TableRef>, FunctionError> {
        wanted.sort();
        wanted.dedup();
        // Each namespace listed once (listings count against DAP's rate limit).
        let mut known: HashMap<String, Vec<String>> = HashMap::new();
        for t in &wanted {
            if let Entry::Vacant(slot) = known.entry(t.namespace.clone()) {
                slot.insert(self.dap.client().list_tables(&t.namespace).await?);
            }
            if !known[&t.namespace].contains(&t.table) {
                return Err(FunctionError::new(
                    ErrorName::Dap,
                    format!("DAP has no table {t}; check the name in the execution input (`cargo xtask run --table`)"),
                ));
            }
        }
        Ok(wanted)
    }

    /// The ARN of an execution of this state machine that started before this one and is
    /// still running, if any.
    async fn earlier_run(&self, request: &ListRequest) -> Result<Option<String>, FunctionError> {
        let mut pages = self
            .sfn
            .list_executions()
            .state_machine_arn(&request.state_machine)
            .status_filter(ExecutionStatus::Running)
            .into_paginator()
            .items()
            .send();
        let mut running = Vec::new();
        while let Some(item) = pages.next().await {
            let e = item.map_err(|e| crate::aws::sdk_error("listing the running executions (overlap check)", e))?;
            running.push((e.start_date().as_nanos(), e.execution_arn().to_owned()));
        }
        let ours = running.iter().find(|(_, arn)| *arn == request.execution).map(|(at, _)| *at);
        let earlier = running
            .into_iter()
            .filter(|(at, arn)| {
                *arn != request.execution && ours.is_none_or(|mine| (*at, arn.as_str()) < (mine, &request.execution))
            })
            .min();
        Ok(earlier.map(|(_, arn)| arn))
    }
}

/// The listing (which logged in to DAP) and the database check as one answer: both errors
/// when both failed, the database's said as the run's check. A setting to fix in either
/// makes the whole answer one (no retry), since retrying the other cannot save the run.
fn preflight(
    listed: Result<Vec<TableRef>, FunctionError>,
    database: Result<(), FunctionError>,
) -> Result<Vec<TableRef>, FunctionError> {
    let database = database.map_err(|mut e| {
        e.detail.message = format!(
            "before any table, the run's check of the database failed: {}; no table was attempted",
            e.detail.message
        );
        e
    });
    match (listed, database) {
        (Ok(tables), Ok(())) => Ok(tables),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(dap), Err(db)) => {
            let name = if dap.name == ErrorName::Configuration || db.name == ErrorName::Configuration {
                ErrorName::Configuration
            } else if dap.name == ErrorName::Transient && db.name == ErrorName::Transient {
                ErrorName::Transient
            } else {
                dap.name
            };
            let mut both = FunctionError { name, ..dap };
            both.detail.message = format!("{}; and {}", both.detail.message, db.detail.message);
            Err(both)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: ErrorName, message: &str) -> FunctionError {
        FunctionError::new(name, message)
    }

    #[test]
    fn a_setting_to_fix_on_either_side_is_the_answer_and_both_are_said() {
        let ok = || Ok(vec![TableRef { namespace: "canvas".into(), table: "accounts".into() }]);
        assert_eq!(preflight(ok(), Ok(())).unwrap().len(), 1);

        let db = preflight(ok(), Err(err(ErrorName::Configuration, "TLS refused"))).unwrap_err();
        assert_eq!(db.name, ErrorName::Configuration);
        assert!(db.detail.message.starts_with("before any table, the run's check of the database failed: TLS refused"));
        assert!(db.detail.message.ends_with("no table was attempted"), "{db}");

        let dap = preflight(Err(err(ErrorName::Transient, "DAP 503")), Ok(())).unwrap_err();
        assert_eq!((dap.name, dap.detail.message.as_str()), (ErrorName::Transient, "DAP 503"));

        let both = preflight(Err(err(ErrorName::Transient, "DAP 503")), Err(err(ErrorName::Configuration, "login")))
            .unwrap_err();
        assert_eq!(both.name, ErrorName::Configuration, "retrying cannot mend the database's side");
        assert!(both.detail.message.starts_with("DAP 503; and before any table"), "{both}");
        let transient = preflight(Err(err(ErrorName::Transient, "a")), Err(err(ErrorName::Transient, "b")));
        assert_eq!(transient.unwrap_err().name, ErrorName::Transient);
    }
}
