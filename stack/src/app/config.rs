//! The typed configuration of one environment (`stack/envs/<env>.toml`) with `key=value`
//! overrides from the command line.
//!
//! Unknown keys are errors, so a typo cannot silently fall back to a default; every
//! message names the key and what it accepts.

use crate::constructs::archive::MIN_ARCHIVE_AFTER_DAYS;
use crate::constructs::database::{ClusterProps, DatabaseProps, ExistingProps};
use crate::constructs::nat::{NatInstanceProps, NatMode};
use crate::constructs::network::NetworkProps;
pub use contract::Namespace;
use serde::Deserialize;
use std::fmt;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// CloudFormation stack name.
    pub stack_name: String,
    /// Where `deploy` puts the stack; the template itself is region-agnostic.
    pub region: String,
    /// EventBridge schedule expression: `rate(...)` or `cron(...)`.
    pub schedule: String,
    #[serde(default = "yes")]
    pub schedule_enabled: bool,
    /// The DAP namespaces to replicate.
    pub namespaces: Vec<Namespace>,
    /// Tables never replicated, as `namespace.table`.
    #[serde(default)]
    pub skip_tables: Vec<String>,
    /// How many tables replicate at once (the Map state's MaxConcurrency).
    pub map_concurrency: u32,
    /// Retention of every log group, in days (a value CloudWatch Logs accepts).
    pub log_retention_days: u32,
    /// Where failure alerts go; empty for none (the topic still exists).
    #[serde(default)]
    pub alert_email: String,
    /// Also email the summary of runs that succeeded.
    #[serde(default)]
    pub notify_on_success: bool,
    /// Longest a whole run may take before Step Functions stops it.
    pub run_timeout_hours: u32,
    /// Hours without a successful run before the stale-replica alarm emails (default 24).
    #[serde(default = "default_quiet_hours")]
    pub no_success_alarm_hours: u32,
    /// Hours a table may fall behind DAP before the stale-table alarm emails (default 36).
    #[serde(default = "default_stale_hours")]
    pub stale_table_alarm_hours: u32,
    /// Days `canvas_logs`' tables may fall behind DAP, which keeps them 30 days, before
    /// their alarm emails (default 14).
    #[serde(default = "default_logs_days")]
    pub logs_age_alarm_days: u32,
    pub dap: DapConfig,
    pub database: DatabaseProps,
    pub network: NetworkConfig,
    pub lambda: LambdaConfig,
    /// The raw zone (optional; off when absent).
    #[serde(default)]
    pub archive: ArchiveConfig,
}

fn yes() -> bool {
    true
}

fn default_quiet_hours() -> u32 {
    24
}

fn default_nat_instance_type() -> String {
    "t4g.nano".into()
}

fn default_nat_idle_minutes() -> u32 {
    30
}

fn default_stale_hours() -> u32 {
    36
}

fn default_logs_days() -> u32 {
    14
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DapConfig {
    /// The DAP API base URL.
    pub api_url: String,
    /// Name of the Secrets Manager secret `set_key.sh` writes the client id and secret to.
    pub secret_name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// `create` a VPC, or use an `existing` one.
    pub mode: NetworkMode,
    /// With `create`: the VPC's CIDR block (a /16 to /24).
    #[serde(default)]
    pub cidr: Option<String>,
    /// With `create`: 1 (cheaper) or 2 (one per AZ): how many NATs, gateways or instances.
    #[serde(default)]
    pub nat_gateways: Option<u8>,
    /// With `create`: `gateway` (the default), `instance`, or `instance-on-demand`.
    #[serde(default)]
    pub nat: NatMode,
    /// With an instance `nat`: an arm64 (Graviton) type (default `t4g.nano`).
    #[serde(default = "default_nat_instance_type")]
    pub nat_instance_type: String,
    /// With `instance-on-demand`: minutes with nothing forwarded and no run under way before
    /// the instance stops itself (default 30).
    #[serde(default = "default_nat_idle_minutes")]
    pub nat_idle_minutes: u32,
    /// With `create` (optional): the two Availability Zone ids to use (`use1-az1`), the
    /// same zones in every account; by default the region's first two zone names, which
    /// may include one where Lambda cannot run (deploy checks).
    #[serde(default)]
    pub availability_zone_ids: Vec<String>,
    /// With `existing`: the VPC id.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// With `existing`: private subnets in at least two AZs, with a route to the internet.
    #[serde(default)]
    pub private_subnet_ids: Vec<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    Create,
    Existing,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    /// Memory of `init_table` and `sync_table` (CPU scales with it).
    pub replicate_memory_mb: u32,
    /// Seconds a replication call works before it returns `in_progress` with a cursor;
    /// kept well under Lambda's 900 s limit.
    pub time_budget_seconds: u32,
    /// Calls one table may take in a run before it fails with `NoProgressError`
    /// (optional, default 200: at 12 minutes a call, more than a day of loading).
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    /// Calls in a row that load nothing (a DAP job that never completes) before the table
    /// fails with `NoProgressError` (optional, default 8).
    #[serde(default = "default_max_idle_calls")]
    pub max_idle_calls: u32,
}

/// The raw zone: every object DAP serves kept in an S3 bucket of the stack's, as received.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Write every DAP object to the archive bucket as it loads (optional, default false).
    #[serde(default)]
    pub enabled: bool,
    /// Days before an object moves to Glacier Instant Retrieval (optional, default 90, at
    /// least 60: S3 keeps it 30 days in Standard, then 30 in Standard-IA).
    #[serde(default = "default_glacier_after_days")]
    pub glacier_after_days: u32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self { enabled: false, glacier_after_days: default_glacier_after_days() }
    }
}

fn default_glacier_after_days() -> u32 {
    90
}

fn default_max_calls() -> u32 {
    contract::env::replicate::DEFAULT_MAX_CALLS
}

fn default_max_idle_calls() -> u32 {
    contract::env::replicate::DEFAULT_MAX_IDLE_CALLS
}

/// A bad configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {message}")]
    Parse { source_name: String, message: String },
    #[error("override `{0}` is not `key=value` (for example `map_concurrency=4` or `database.max_capacity=8`)")]
    OverrideSyntax(String),
    #[error("override `{key}`: `{prefix}` is not a table of settings")]
    OverridePath { key: String, prefix: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Invalid>),
}

/// One key with a value out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// The retention values CloudWatch Logs accepts.
pub const LOG_RETENTION_DAYS: [u32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// Lambda's hard limit; a call must finish its batch and commit before it.
const LAMBDA_MAX_SECONDS: u32 = 900;

impl Config {
    /// Parses `text` (named `source_name` in errors), applies `overrides`, and validates.
    pub fn from_toml(text: &str, source_name: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            source_name: source_name.into(),
            message: e.to_string().trim_end().to_owned(),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let config: Config = table.try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            source_name: if overrides.is_empty() {
                source_name.into()
            } else {
                format!("{source_name} with overrides")
            },
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                bad.push(Invalid { key: key.into(), message });
            }
        };
        // It also names the database cluster (`<stack_name>-db`), which RDS limits to 63
        // characters without `--` or a final `-`.
        let name_ok = self.stack_name.len() <= 60
            && self.stack_name.starts_with(|c: char| c.is_ascii_alphabetic())
            && self.stack_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !self.stack_name.contains("--")
            && !self.stack_name.ends_with('-');
        check(
            name_ok,
            "stack_name",
            format!(
                "`{}` must start with a letter and hold only letters, digits and single `-` inside (at most 60: it names the database cluster too)",
                self.stack_name
            ),
        );
        let region_ok = {
            let parts: Vec<&str> = self.region.split('-').collect();
            parts.len() >= 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
                && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
        };
        check(region_ok, "region", format!("`{}` is not an AWS region name like `us-east-1`", self.region));
        check(
            !region_ok || super::rds_ca::regions(super::rds_ca::BUNDLE).contains(&self.region),
            "region",
            format!(
                "`{}` has no certificate authority in the RDS bundle the functions trust (assets/rds-ca-bundle.pem), so they could not verify its database: replace that file with AWS's current global bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem), or choose another region",
                self.region
            ),
        );
        check(
            is_schedule(&self.schedule),
            "schedule",
            format!("`{}` must be `rate(N minutes|hours|days)` or `cron(...)` with six fields", self.schedule),
        );
        check(
            !self.namespaces.is_empty(),
            "namespaces",
            "name at least one of canvas, canvas_logs, catalog, new_quizzes".into(),
        );
        for t in &self.skip_tables {
            let ok = t
                .split_once('.')
                .is_some_and(|(ns, table)| self.namespaces.iter().any(|n| n.as_str() == ns) && !table.is_empty());
            check(
                ok,
                "skip_tables",
                format!("`{t}` must be `namespace.table` with a namespace listed in `namespaces`"),
            );
        }
        check(
            (1..=40).contains(&self.map_concurrency),
            "map_concurrency",
            format!(
                "{} is out of range 1..=40 (DAP allows 5 job creations a minute; 5 is a good value)",
                self.map_concurrency
            ),
        );
        check(
            LOG_RETENTION_DAYS.contains(&self.log_retention_days),
            "log_retention_days",
            format!("{} is not one of {LOG_RETENTION_DAYS:?}", self.log_retention_days),
        );
        check(
            self.alert_email.is_empty() || is_email(&self.alert_email),
            "alert_email",
            format!("`{}` is not an email address (leave it empty for no subscription)", self.alert_email),
        );
        // The alarms that count hours since a run leave room for the next scheduled one.
        if let Some(interval) = rate_seconds(&self.schedule) {
            let needed = interval.div_ceil(3600) + 1;
            for (key, hours) in [
                ("no_success_alarm_hours", self.no_success_alarm_hours),
                ("stale_table_alarm_hours", self.stale_table_alarm_hours),
            ] {
                check(
                    u64::from(hours) >= needed,
                    key,
                    format!(
                        "{hours} would alarm between two scheduled runs of {}: at least {needed} (the interval and an hour for the run)",
                        self.schedule
                    ),
                );
            }
        }
        check(
            (1..=720).contains(&self.stale_table_alarm_hours),
            "stale_table_alarm_hours",
            format!("{} is out of range 1..=720", self.stale_table_alarm_hours),
        );
        check(
            (1..=29).contains(&self.logs_age_alarm_days),
            "logs_age_alarm_days",
            format!(
                "{} is out of range 1..=29: DAP keeps canvas_logs 30 days, and the alarm must come before that",
                self.logs_age_alarm_days
            ),
        );
        check(
            (1..=168).contains(&self.no_success_alarm_hours),
            "no_success_alarm_hours",
            format!(
                "{} is out of range 1..=168 (CloudWatch evaluates at most 7 days of hourly periods)",
                self.no_success_alarm_hours
            ),
        );
        check(
            (1..=8760).contains(&self.run_timeout_hours),
            "run_timeout_hours",
            format!("{} is out of range 1..=8760", self.run_timeout_hours),
        );
        check(
            self.dap.api_url.starts_with("https://"),
            "dap.api_url",
            format!("`{}` must be an https:// URL", self.dap.api_url),
        );
        check(
            is_secret_name(&self.dap.secret_name),
            "dap.secret_name",
            format!("`{}` must be 1-512 of letters, digits and /_+=.@-", self.dap.secret_name),
        );

        let db = &self.database;
        let mut names = vec![("database.name", db.database_name()), ("database.app_username", db.app_username())];
        if let DatabaseProps::Create(cluster) = db {
            names.insert(1, ("database.admin_username", cluster.admin_username.as_str()));
        }
        for (key, value) in names {
            check(
                is_pg_identifier(value) && value != "postgres" && value != "rdsadmin",
                key,
                format!(
                    "`{value}` must be a lower-case identifier of 1-63 letters, digits and `_`, starting with a letter"
                ),
            );
        }
        let every_reader: Vec<(&str, &String)> = db
            .readers()
            .iter()
            .map(|r| ("database.readers", r))
            .chain(db.password_readers().iter().map(|r| ("database.password_readers", r)))
            .collect();
        for (i, &(key, reader)) in every_reader.iter().enumerate() {
            let reserved = [
                db.app_username().to_owned(),
                format!("{}_readers", db.app_username()),
                format!("{}_keeper", db.app_username()),
            ];
            check(
                is_pg_identifier(reader)
                    && !reader.starts_with("pg_")
                    && !["postgres", "rdsadmin", "public", "instructure_dap"].contains(&reader.as_str())
                    && !reader.starts_with("cd2_aws")
                    && !reserved.contains(reader)
                    && !self.namespaces.iter().any(|ns| ns.as_str() == reader)
                    && !every_reader[..i].iter().any(|(_, r)| *r == reader),
                key,
                format!(
                    "`{reader}` must be a lower-case identifier of 1-63 letters, digits and `_`, starting with a letter, named once in readers and password_readers, and not a role or schema the replication uses"
                ),
            );
        }
        // Each password reader's secret has a logical id made of its name.
        let ids: Vec<String> = db.password_readers().iter().map(|r| crate::intrinsics::pascal_case(r)).collect();
        for (i, reader) in db.password_readers().iter().enumerate() {
            if let Some(j) = ids[..i].iter().position(|id| *id == ids[i]) {
                check(
                    false,
                    "database.password_readers",
                    format!(
                        "`{reader}` and `{}` would name the same secret ({}): rename one",
                        db.password_readers()[j],
                        ids[i]
                    ),
                );
            }
        }
        let bootstrapped = match db {
            DatabaseProps::Create(_) => true,
            DatabaseProps::Existing(e) => e.bootstrap,
        };
        check(
            bootstrapped || db.password_readers().is_empty(),
            "database.password_readers",
            "the bootstrap sets the readers' passwords: with bootstrap = false, give the readers passwords yourself and list them in database.readers".into(),
        );
        match db {
            DatabaseProps::Create(db) => validate_cluster(db, &mut check),
            DatabaseProps::Existing(db) => validate_existing(db, &mut check),
        }

        let net = &self.network;
        match net.mode {
            NetworkMode::Create => {
                let cidr = net.cidr.as_deref().map(crate::constructs::network::subnet_blocks);
                check(
                    matches!(cidr, Some(Ok(_))),
                    "network.cidr",
                    match cidr {
                        Some(Err(why)) => format!(
                            "{why}; with mode = \"create\", set an IPv4 block from /16 to /24, e.g. 10.42.0.0/16"
                        ),
                        _ => "with mode = \"create\", set an IPv4 block from /16 to /24, e.g. 10.42.0.0/16".into(),
                    },
                );
                check(
                    matches!(net.nat_gateways, Some(1 | 2)),
                    "network.nat_gateways",
                    "with mode = \"create\", set 1 (cheaper) or 2 (one per availability zone)".into(),
                );
                check(
                    net.vpc_id.is_none() && net.private_subnet_ids.is_empty(),
                    "network.vpc_id",
                    "vpc_id and private_subnet_ids go with mode = \"existing\"".into(),
                );
                let zones = &net.availability_zone_ids;
                check(
                    zones.is_empty()
                        || (zones.len() == 2 && zones[0] != zones[1] && zones.iter().all(|z| is_zone_id(z))),
                    "network.availability_zone_ids",
                    format!(
                        "{zones:?}: list two different Availability Zone ids of the region, like [\"use1-az1\", \"use1-az2\"], or leave it out"
                    ),
                );
            }
            NetworkMode::Existing => {
                check(
                    net.vpc_id.as_deref().is_some_and(|v| is_aws_id(v, "vpc-")),
                    "network.vpc_id",
                    "with mode = \"existing\", set the VPC id (vpc-...)".into(),
                );
                check(
                    net.private_subnet_ids.len() >= 2 && net.private_subnet_ids.iter().all(|s| is_aws_id(s, "subnet-")),
                    "network.private_subnet_ids",
                    "with mode = \"existing\", list at least two subnet ids (subnet-...) in different AZs".into(),
                );
                check(
                    net.cidr.is_none() && net.nat_gateways.is_none() && net.availability_zone_ids.is_empty(),
                    "network.cidr",
                    "cidr, nat_gateways and availability_zone_ids go with mode = \"create\"".into(),
                );
                check(
                    net.nat == NatMode::Gateway,
                    "network.nat",
                    "goes with mode = \"create\": an existing VPC's subnets reach the internet their own way".into(),
                );
            }
        }
        if net.nat.is_instance() {
            check(
                is_arm64_instance_type(&net.nat_instance_type),
                "network.nat_instance_type",
                format!(
                    "`{}` is not an arm64 (Graviton) type like t4g.nano, t4g.micro or c7g.medium: the image is Amazon Linux 2023 for arm64",
                    net.nat_instance_type
                ),
            );
        }
        check(
            (10..=240).contains(&net.nat_idle_minutes),
            "network.nat_idle_minutes",
            format!(
                "{} is out of range 10..=240 (a table's call can go 15 minutes without the internet, loading from S3)",
                net.nat_idle_minutes
            ),
        );
        check(
            (128..=10_240).contains(&self.lambda.replicate_memory_mb),
            "lambda.replicate_memory_mb",
            format!("{} is out of range 128..=10240", self.lambda.replicate_memory_mb),
        );
        check(
            (60..=LAMBDA_MAX_SECONDS - 60).contains(&self.lambda.time_budget_seconds),
            "lambda.time_budget_seconds",
            format!(
                "{} must leave at least a minute of Lambda's {LAMBDA_MAX_SECONDS} s to commit: 60..={}",
                self.lambda.time_budget_seconds,
                LAMBDA_MAX_SECONDS - 60
            ),
        );
        check(
            (1..=1000).contains(&self.lambda.max_calls),
            "lambda.max_calls",
            format!("{} is out of range 1..=1000", self.lambda.max_calls),
        );
        check(
            (1..=self.lambda.max_calls).contains(&self.lambda.max_idle_calls),
            "lambda.max_idle_calls",
            format!("{} is out of range 1..=lambda.max_calls ({})", self.lambda.max_idle_calls, self.lambda.max_calls),
        );
        check(
            self.archive.glacier_after_days >= MIN_ARCHIVE_AFTER_DAYS,
            "archive.glacier_after_days",
            format!(
                "{} is too soon: S3 moves an object to Glacier Instant Retrieval after {MIN_ARCHIVE_AFTER_DAYS} days at the earliest (30 in Standard, 30 in Standard-IA)",
                self.archive.glacier_after_days
            ),
        );
        if bad.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(bad)) }
    }

    pub fn network_props(&self) -> NetworkProps {
        match self.network.mode {
            NetworkMode::Create => NetworkProps::Create {
                cidr: self.network.cidr.clone().unwrap_or_default(),
                nat_gateways: self.network.nat_gateways.unwrap_or(1),
                zone_ids: self.network.availability_zone_ids.clone(),
                nat: self.network.nat,
                nat_instance: NatInstanceProps {
                    instance_type: self.network.nat_instance_type.clone(),
                    idle_minutes: self.network.nat_idle_minutes,
                },
            },
            NetworkMode::Existing => NetworkProps::Existing {
                vpc_id: self.network.vpc_id.clone().unwrap_or_default(),
                private_subnet_ids: self.network.private_subnet_ids.clone(),
            },
        }
    }
}

/// `t4g.nano`, `c7gn.large`, `m8g.xlarge`: a family whose generation is followed by `g`.
fn is_arm64_instance_type(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else { return false };
    let letters = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let after = letters.trim_start_matches(|c: char| c.is_ascii_digit());
    letters.len() < family.len()
        && after.len() < letters.len()
        && after.starts_with('g')
        && after.chars().all(|c| c.is_ascii_lowercase())
        && !size.is_empty()
        && size.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The keys of `mode = "create"`.
fn validate_cluster(db: &ClusterProps, check: &mut impl FnMut(bool, &str, String)) {
    let major: Option<u32> = db.engine_version.split('.').next().and_then(|m| m.parse().ok());
    check(
        major.is_some_and(|m| m >= 15) && db.engine_version.split('.').count() == 2,
        "database.engine_version",
        format!("`{}` must be an Aurora PostgreSQL version `MAJOR.MINOR`, 15 or newer (e.g. 17.7)", db.engine_version),
    );
    check(
        db.admin_username != db.app_username,
        "database.app_username",
        "must differ from database.admin_username".into(),
    );
    let acu_ok = |v: f64| (0.0..=256.0).contains(&v) && (v * 2.0).fract() == 0.0;
    check(
        acu_ok(db.min_capacity),
        "database.min_capacity",
        format!("{} must be 0 to 256 in steps of 0.5", db.min_capacity),
    );
    check(
        acu_ok(db.max_capacity) && db.max_capacity >= 1.0,
        "database.max_capacity",
        format!("{} must be 1 to 256 in steps of 0.5", db.max_capacity),
    );
    check(
        db.min_capacity <= db.max_capacity,
        "database.min_capacity",
        format!("{} is above database.max_capacity {}", db.min_capacity, db.max_capacity),
    );
    check(
        (300..=86_400).contains(&db.auto_pause_seconds),
        "database.auto_pause_seconds",
        format!("{} is out of range 300..=86400", db.auto_pause_seconds),
    );
    check(
        (1..=35).contains(&db.backup_retention_days),
        "database.backup_retention_days",
        format!("{} is out of range 1..=35", db.backup_retention_days),
    );
}

/// The keys of `mode = "existing"`.
fn validate_existing(db: &ExistingProps, check: &mut impl FnMut(bool, &str, String)) {
    let host_ok = (1..=253).contains(&db.endpoint.len())
        && db.endpoint.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    check(
        host_ok,
        "database.endpoint",
        format!("`{}` must be the writer endpoint's host name (no scheme or port)", db.endpoint),
    );
    check(db.port != 0, "database.port", "must be 1-65535 (PostgreSQL's default is 5432)".into());
    check(
        is_aws_id(&db.security_group_id, "sg-"),
        "database.security_group_id",
        format!("`{}` must be the database's security group id (sg-...)", db.security_group_id),
    );
    let arn_ok = |arn: &Option<String>, service: &str| {
        arn.as_deref().is_none_or(|a| a.starts_with("arn:aws") && a.split(':').nth(2) == Some(service))
    };
    check(
        arn_ok(&db.admin_secret_arn, "secretsmanager"),
        "database.admin_secret_arn",
        "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:...)".into(),
    );
    check(
        !db.bootstrap || db.admin_secret_arn.is_some(),
        "database.admin_secret_arn",
        "with bootstrap = true, name the admin credential's secret; or set bootstrap = false once a DBA has run the SQL in lambdas/replica/README.md".into(),
    );
    check(
        arn_ok(&db.admin_secret_kms_key_arn, "kms"),
        "database.admin_secret_kms_key_arn",
        "must be a KMS key ARN (arn:aws:kms:...)".into(),
    );
    check(
        db.resource_id.as_deref().is_none_or(|id| {
            ["cluster-", "db-"].iter().any(|p| {
                id.strip_prefix(p).is_some_and(|rest| {
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                })
            })
        }),
        "database.resource_id",
        "must be the cluster's or instance's resource id (cluster-... or db-..., as RDS shows it)".into(),
    );
}

/// Sets `a.b.c = value` in `table`; `value` is read as TOML, or as a string when it is not.
/// An empty value (`key=`) removes the key, so an optional setting can be unset; a key
/// that holds a string in the file keeps taking strings.
fn apply_override(table: &mut toml::Table, item: &str) -> Result<(), ConfigError> {
    let (key, raw) = item.split_once('=').ok_or_else(|| ConfigError::OverrideSyntax(item.into()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::OverrideSyntax(item.into()));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_owned()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("split yields one part at least");
    let mut current = table;
    let mut prefix = String::new();
    for part in parts {
        prefix = if prefix.is_empty() { part.to_owned() } else { format!("{prefix}.{part}") };
        let entry = current.entry(part).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError::OverridePath { key: key.into(), prefix: prefix.clone() })?;
    }
    if raw.trim().is_empty() {
        current.remove(last);
        return Ok(());
    }
    // `engine_version=17.7` means the string, not a float, when the file holds a string.
    let value = match (current.get(last), value) {
        (Some(toml::Value::String(_)), v) if !v.is_str() => toml::Value::String(raw.trim().to_owned()),
        (_, v) => v,
    };
    current.insert(last.to_owned(), value);
    Ok(())
}

fn is_schedule(s: &str) -> bool {
    if s.starts_with("rate(") {
        return rate_seconds(s).is_some();
    }
    s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')).is_some_and(|inner| inner.split_whitespace().count() == 6)
}

/// The interval of a well-formed `rate(...)` expression, in seconds.
pub fn rate_seconds(s: &str) -> Option<u64> {
    let inner = s.strip_prefix("rate(")?.strip_suffix(')')?;
    let mut it = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    let n = n.parse::<u64>().ok().filter(|n| *n > 0)?;
    // EventBridge wants the singular for 1 and the plural otherwise.
    let seconds = match (unit, n == 1) {
        ("minute", true) | ("minutes", false) => 60,
        ("hour", true) | ("hours", false) => 3600,
        ("day", true) | ("days", false) => 86_400,
        _ => return None,
    };
    Some(n * seconds)
}

fn is_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
    })
}

fn is_secret_name(s: &str) -> bool {
    (1..=512).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
}

fn is_pg_identifier(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|hex| (8..=17).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// An Availability Zone id: `use1-az1`, `apse2-az3`.
fn is_zone_id(id: &str) -> bool {
    id.split_once("-az").is_some_and(|(region, n)| {
        !region.is_empty()
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}
