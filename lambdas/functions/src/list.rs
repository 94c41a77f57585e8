//! `list_tables`: the tables of the configured namespaces minus the skip list (or the ones
//! the execution input names), each a [`TableRef`] for the Map (the first call's state).
//! Errors are raised, never swallowed into an empty list; more than [`MAX_TABLES`] is one.
//!
//! Two runs must never replicate at once (a big init can outlast the schedule's period):
//! when an earlier execution of the same state machine is still running, this one is
//! *skipped* and says which execution holds the tables.

use crate::error::FunctionError;
use aws_sdk_sfn::types::ExecutionStatus;
use contract::{ErrorName, ListRequest, MAX_TABLES, TableList, TableRef};
use dap::DapClient;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, SystemTime};

/// Kept back from the invocation's time to answer in.
const ANSWER_TIME: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct Lister {
    pub dap: DapClient,
    pub sfn: aws_sdk_sfn::Client,
    pub namespaces: Vec<String>,
    /// `namespace.table` entries never replicated.
    pub skip: Vec<String>,
}

impl Lister {
    /// `DAP_API_URL`, `DAP_SECRET_ID`, `NAMESPACES` and `SKIP_TABLES` (comma-separated).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, FunctionError> {
        let dap = crate::settings::DapSettings::from_env()?;
        let namespaces = crate::settings::list("NAMESPACES");
        if namespaces.is_empty() {
            return Err(FunctionError::config("the environment variable NAMESPACES is empty (the stack sets it)"));
        }
        Ok(Self {
            dap: crate::dap_client(&dap, &aws_sdk_secretsmanager::Client::new(sdk)).await?,
            sfn: aws_sdk_sfn::Client::new(sdk),
            namespaces,
            skip: crate::settings::list("SKIP_TABLES"),
        })
    }

    /// Answers before `deadline` (the invocation's): a listing still waiting on DAP (its 429
    /// pauses last up to two minutes, a slow answer three) just before it ends with a
    /// transient error the state machine retries, rather than being killed by Lambda
    /// without an answer.
    pub async fn handle(&self, request: ListRequest, deadline: SystemTime) -> Result<TableList, FunctionError> {
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let stop = tokio::time::Instant::now() + left.saturating_sub(ANSWER_TIME);
        match tokio::time::timeout_at(stop, self.list(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(FunctionError::transient(format!(
                "listing the tables of {} was still waiting on DAP (its rate limit, or a slow answer) after {} s, just before the function's timeout; the run tries again",
                self.namespaces.join(", "),
                left.saturating_sub(ANSWER_TIME).as_secs()
            ))),
        }
    }

    async fn list(&self, request: ListRequest) -> Result<TableList, FunctionError> {
        if let Some(holder) = self.earlier_run(&request).await? {
            tracing::warn!(execution = %request.execution, holder = %holder, "an earlier run is still going: skipped");
            return Ok(TableList { tables: vec![], skipped_because: Some(holder) });
        }
        let tables = match request.input.tables {
            Some(wanted) => self.check_wanted(wanted).await?,
            None => self.configured().await?,
        };
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

    async fn configured(&self) -> Result<Vec<TableRef>, FunctionError> {
        let mut tables = Vec::new();
        for namespace in &self.namespaces {
            for table in self.dap.list_tables(namespace).await? {
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
                slot.insert(self.dap.list_tables(&t.namespace).await?);
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
