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
    /// DAP, [`contract::env::list_tables`], and the database as the replication functions
    /// reach it ([`crate::database::DbSettings`]).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, FunctionError> {
        let dap = crate::settings::DapSettings::from_env()?;
        let v: contract::env::list_tables::Vars<String> = crate::settings::read()?;
        let namespaces = crate::settings::list(Some(&v.namespaces));
        if namespaces.is_empty() {
            return Err(FunctionError::config(format!(
                "the environment variable {} is empty (the stack sets it)",
                contract::env::list_tables::NAMESPACES
            )));
        }
        Ok(Self {
            dap: DapAccess::new(dap, aws_sdk_secretsmanager::Client::new(sdk)).await?,
            sfn: aws_sdk_sfn::Client::new(sdk),
            namespaces,
            skip: crate::settings::list(v.skip_tables.as_deref()),
            database: Some(Credentials::new(crate::database::DbSettings::from_env()?, sdk)),
        })
    }

    /// Answers before `deadline` (the invocation's): a listing still waiting on DAP (its 429
    /// pauses last up to two minutes, a slow answer three) just before it ends with a
    /// transient error the state machine retries, rather than being killed by Lambda
    /// without an answer. When DAP refuses the key and the secret holds a new one, the
    /// listing is tried once more with it. A database check that fails with a setting to
    /// fix answers at once, without waiting for DAP.
    pub async fn handle(&mut self, request: ListRequest, deadline: SystemTime) -> Result<TableList, FunctionError> {
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(ANSWER_TIME);
        let stop = tokio::time::Instant::now() + left;
        let late = |waiting_on: &str| {
            FunctionError::transient(format!(
                "listing the tables of {} was still waiting on {waiting_on} after {} s, just before the function's timeout; the run tries again",
                self.namespaces.join(", "),
                left.as_secs()
            ))
        };
        match tokio::time::timeout_at(stop, self.earlier_run(&request)).await {
            Err(_) => return Err(late("Step Functions (the overlap check)")),
            Ok(holder) => {
                if let Some(holder) = holder? {
                    tracing::warn!(execution = %request.execution, holder = %holder, "an earlier run is still going: skipped");
                    return Ok(TableList { tables: vec![], skipped_because: Some(holder) });
                }
            }
        }
        let late_for_dap = late("DAP (its rate limit, or a slow answer)");
        let late_for_database = late("the database (the run's check of its connection)");
        let Self { dap, namespaces, skip, database, .. } = self;
        let (namespaces, skip) = (&*namespaces, &*skip);
        let listing = async {
            match listed(dap, namespaces, skip, &request).await {
                Err(e) => {
                    dap.renew_key_after(e).await?;
                    listed(dap, namespaces, skip, &request).await
                }
                answer => answer,
            }
        };
        let checking = check_database(database.as_ref());
        tokio::pin!(listing, checking);
        let mut checked = None;
        let listed = loop {
            tokio::select! {
                listed = &mut listing => break listed,
                check = &mut checking, if checked.is_none() => match check {
                    Err(e) if e.name != ErrorName::Transient => return Err(database_failed(e)),
                    check => checked = Some(check),
                },
                () = tokio::time::sleep_until(stop) => return Err(with_database(late_for_dap, checked.unwrap_or(Ok(())))),
            }
        };
        let checked = match checked {
            Some(check) => check,
            None => tokio::time::timeout_at(stop, checking).await.unwrap_or(Err(late_for_database)),
        };
        let tables = preflight(listed, checked)?;
        tracing::info!(tables = tables.len(), "tables to replicate");
        if tables.len() > MAX_TABLES {
            return Err(FunctionError::new(
                ErrorName::Configuration,
                format!(
                    "the namespaces {} hold {} tables, more than the {MAX_TABLES} one run carries in its state: list fewer namespaces, or add tables to skip_tables",
                    namespaces.join(", "),
                    tables.len()
                ),
            ));
        }
        Ok(TableList { tables, skipped_because: None })
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
        // This run's own start, from the listing or (when the listing does not show it yet)
        // asked for: two runs started together must order each other the same way, or
        // each would skip for the other.
        let ours = match running.iter().find(|(_, arn)| *arn == request.execution) {
            Some((at, _)) => *at,
            None => self
                .sfn
                .describe_execution()
                .execution_arn(&request.execution)
                .send()
                .await
                .map_err(|e| crate::aws::sdk_error("reading this run's start (overlap check)", e))?
                .start_date()
                .as_nanos(),
        };
        let earlier = running.into_iter().filter(|(at, arn)| (*at, arn.as_str()) < (ours, &request.execution)).min();
        Ok(earlier.map(|(_, arn)| arn))
    }
}

/// The tables to replicate: the ones the execution input names, each checked against
/// DAP's list, or else every table of the namespaces but the skipped ones.
async fn listed(
    dap: &DapAccess,
    namespaces: &[String],
    skip: &[String],
    request: &ListRequest,
) -> Result<Vec<TableRef>, FunctionError> {
    match &request.input.tables {
        Some(wanted) => check_wanted(dap, wanted.clone()).await,
        None => configured(dap, namespaces, skip).await,
    }
}

async fn configured(dap: &DapAccess, namespaces: &[String], skip: &[String]) -> Result<Vec<TableRef>, FunctionError> {
    let mut tables = Vec::new();
    for namespace in namespaces {
        for table in dap.client().list_tables(namespace).await? {
            let t = TableRef { namespace: namespace.clone(), table };
            if !skip.contains(&t.to_string()) {
                tables.push(t);
            }
        }
    }
    tables.sort();
    Ok(tables)
}

/// The tables an execution input names, each checked against DAP's list.
async fn check_wanted(dap: &DapAccess, mut wanted: Vec<TableRef>) -> Result<Vec<TableRef>, FunctionError> {
    wanted.sort();
    wanted.dedup();
    // Each namespace listed once (listings count against DAP's rate limit).
    let mut known: HashMap<String, Vec<String>> = HashMap::new();
    for t in &wanted {
        if let Entry::Vacant(slot) = known.entry(t.namespace.clone()) {
            slot.insert(dap.client().list_tables(&t.namespace).await?);
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

/// The connection a table's call makes, made once and closed.
async fn check_database(database: Option<&Credentials>) -> Result<(), FunctionError> {
    let Some(credentials) = database else { return Ok(()) };
    let password = credentials.password().await?;
    replica::Replicator::check_access(&credentials.options(&password)).await?;
    tracing::info!("the database accepts the functions' connection");
    Ok(())
}

/// The listing (which logged in to DAP) and the database check as one answer.
fn preflight(
    listed: Result<Vec<TableRef>, FunctionError>,
    database: Result<(), FunctionError>,
) -> Result<Vec<TableRef>, FunctionError> {
    match (listed, database) {
        (Ok(tables), Ok(())) => Ok(tables),
        (Ok(_), Err(db)) => Err(database_failed(db)),
        (Err(dap), database) => Err(with_database(dap, database)),
    }
}

/// The database check's failure, said as the run's.
fn database_failed(mut e: FunctionError) -> FunctionError {
    e.detail.message = format!(
        "before any table, the run's check of the database failed: {}; no table was attempted",
        e.detail.message
    );
    e
}

/// The listing's error, and the database check's when that failed too: a retry only when
/// both are worth one (retrying cannot mend the other side), a setting to fix named first.
fn with_database(dap: FunctionError, database: Result<(), FunctionError>) -> FunctionError {
    let Err(db) = database else { return dap };
    let name = if dap.name == ErrorName::Configuration || db.name == ErrorName::Configuration {
        ErrorName::Configuration
    } else if dap.name != ErrorName::Transient {
        dap.name
    } else {
        db.name
    };
    FunctionError { name, ..dap }.and(&format!("and {}", database_failed(db).detail.message))
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
        let refused = preflight(Err(err(ErrorName::Transient, "DAP 503")), Err(err(ErrorName::Database, "no grant")));
        assert_eq!(refused.unwrap_err().name, ErrorName::Database, "a permanent failure on either side is the answer");
        let dap = preflight(Err(err(ErrorName::Dap, "no such table")), Err(err(ErrorName::Transient, "reset")));
        assert_eq!(dap.unwrap_err().name, ErrorName::Dap);
        let transient = preflight(Err(err(ErrorName::Transient, "a")), Err(err(ErrorName::Transient, "b")));
        assert_eq!(transient.unwrap_err().name, ErrorName::Transient);
    }
}
