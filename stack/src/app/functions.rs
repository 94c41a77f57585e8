//! The Lambda functions, one per binary of `lambdas/functions/src/bin`, with every name each
//! has across a process boundary: the binary (and its zip in the manifest), the logical id,
//! the template parameter holding its zip's S3 key, and the placeholder of its ARN in the
//! state machine's definition. A sixth function is one more variant here, and every `match`
//! below fails to compile until it has its names; `tests/constructs.rs` checks the list
//! against the workspace's binaries.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    ListTables,
    SyncTable,
    InitTable,
    Summarize,
    /// Only when the stack sets the database up.
    DbBootstrap,
}

impl Function {
    pub const ALL: [Function; 5] =
        [Function::ListTables, Function::SyncTable, Function::InitTable, Function::Summarize, Function::DbBootstrap];

    /// The binary's name, which is also the function's name in the zips' manifest.
    pub const fn binary(self) -> &'static str {
        match self {
            Function::ListTables => "list_tables",
            Function::SyncTable => "sync_table",
            Function::InitTable => "init_table",
            Function::Summarize => "summarize",
            Function::DbBootstrap => "db_bootstrap",
        }
    }

    /// The logical id of its `AWS::Lambda::Function` (and the prefix of its role's and log
    /// group's).
    pub const fn logical_id(self) -> &'static str {
        match self {
            Function::ListTables => "ListTables",
            Function::SyncTable => "SyncTable",
            Function::InitTable => "InitTable",
            Function::Summarize => "Summarize",
            Function::DbBootstrap => "DbBootstrap",
        }
    }

    /// The template parameter holding the S3 key of its zip (present when the stack has
    /// the function), which deploy fills.
    pub fn code_key_parameter(self) -> String {
        format!("{}CodeKey", self.logical_id())
    }

    /// The `${...}` placeholder of its ARN in the state machine's definition: the four the
    /// workflow invokes (the bootstrap is CloudFormation's).
    pub const fn arn_placeholder(self) -> Option<&'static str> {
        match self {
            Function::ListTables => Some("ListTablesArn"),
            Function::SyncTable => Some("SyncTableArn"),
            Function::InitTable => Some("InitTableArn"),
            Function::Summarize => Some("SummarizeArn"),
            Function::DbBootstrap => None,
        }
    }

    pub fn from_binary(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.binary() == name)
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

/// `manifest.json` beside the zips: each function's zip file name (content-addressed),
/// written by `cargo xtask build-lambdas` (and by the tests' empty zips), read by deploy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Manifest {
    /// By binary name.
    pub zips: BTreeMap<String, String>,
}

/// From (binary name, zip file) pairs.
impl<'a> FromIterator<(&'a str, String)> for Manifest {
    fn from_iter<I: IntoIterator<Item = (&'a str, String)>>(pairs: I) -> Self {
        Manifest { zips: pairs.into_iter().map(|(f, file)| (f.to_owned(), file)).collect() }
    }
}

impl Manifest {
    /// Its file name in the zips' folder.
    pub const FILE: &'static str = "manifest.json";

    pub fn insert(&mut self, function: Function, file: String) {
        self.zips.insert(function.binary().to_owned(), file);
    }

    /// The zip file of `function`, when the manifest names one.
    pub fn zip(&self, function: Function) -> Option<&str> {
        self.zips.get(function.binary()).map(String::as_str)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a map of strings serializes") + "\n"
    }
}
