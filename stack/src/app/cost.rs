//! What the stack costs a month while idle, from one table of list prices: what `deploy`
//! prints before it asks, and the last line of synth's review. Replication itself (Lambda,
//! Step Functions, the runs' metrics, an on-demand NAT's running minutes, DAP traffic
//! through a NAT) is paid per use and not in the total.

use crate::app::Config;
use crate::app::config::NetworkMode;
use crate::constructs::database::DatabaseProps;
use crate::constructs::nat::NatMode;
use std::fmt::Write as _;

/// When the prices below were read (AWS's pricing pages as 2026 summaries quote them), and
/// where they hold (other regions differ a little).
pub const PRICES_READ: &str = "2026-11-24";
pub const PRICE_REGION: &str = "us-east-1";

const HOURS_A_MONTH: f64 = 730.0;

/// US dollars, list prices in us-east-1.
pub mod usd {
    pub const NAT_GATEWAY_HOUR: f64 = 0.045;
    pub const PUBLIC_IPV4_HOUR: f64 = 0.005;
    /// Aurora Serverless v2, Aurora Standard.
    pub const AURORA_ACU_HOUR: f64 = 0.12;
    pub const AURORA_STORAGE_GB_MONTH: f64 = 0.10;
    /// Backup storage beyond the retention period's free share, and kept snapshots.
    pub const SNAPSHOT_GB_MONTH: f64 = 0.021;
    pub const KMS_KEY_MONTH: f64 = 1.00;
    pub const SECRET_MONTH: f64 = 0.40;
    pub const ALARM_MONTH: f64 = 0.10;
    /// A custom metric published every hour of the month (prorated by the hour).
    pub const CUSTOM_METRIC_MONTH: f64 = 0.30;
    pub const LOG_STORAGE_GB_MONTH: f64 = 0.03;
    /// Beyond an account's first three dashboards.
    pub const DASHBOARD_MONTH: f64 = 3.00;
    /// gp3, the NAT instances' root volumes.
    pub const EBS_GP3_GB_MONTH: f64 = 0.08;
    /// The archive's classes: S3 Standard, Standard-IA, Glacier Instant Retrieval.
    pub const S3_STANDARD_GB_MONTH: f64 = 0.023;
    pub const S3_STANDARD_IA_GB_MONTH: f64 = 0.0125;
    pub const S3_GLACIER_IR_GB_MONTH: f64 = 0.004;

    /// On-demand Linux prices of the arm64 types a NAT instance is likely to be.
    pub fn instance_hour(instance_type: &str) -> Option<f64> {
        Some(match instance_type {
            "t4g.nano" => 0.0042,
            "t4g.micro" => 0.0084,
            "t4g.small" => 0.0168,
            "t4g.medium" => 0.0336,
            "c7g.medium" => 0.0363,
            "c6g.medium" => 0.034,
            _ => return None,
        })
    }
}

/// The root volume of Amazon Linux 2023 minimal, which a NAT instance keeps.
pub const NAT_VOLUME_GB: f64 = 2.0;

/// One line of the estimate: a monthly amount in the total, or a price paid per use
/// (`per`: "per GB", "per run") that is not.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: String,
    pub monthly: Option<f64>,
    pub per: &'static str,
    pub note: String,
}

/// The stack of `config`, idle.
pub fn idle(config: &Config) -> Vec<Line> {
    let fixed =
        |item: &str, monthly: f64, note: String| Line { item: item.into(), monthly: Some(monthly), per: "", note };
    let per_use = |item: &str, per: &'static str, note: String| Line { item: item.into(), monthly: None, per, note };
    let mut lines = Vec::new();
    if config.network.mode == NetworkMode::Create {
        let n = f64::from(config.network.nat_gateways.unwrap_or(1));
        let instance = config.network.nat_instance_type.as_str();
        let volume = n * NAT_VOLUME_GB * usd::EBS_GP3_GB_MONTH;
        let volume_note = format!("{n} x {NAT_VOLUME_GB} GB gp3 root volume at ${}", usd::EBS_GP3_GB_MONTH);
        match (config.network.nat, usd::instance_hour(instance)) {
            (NatMode::Gateway, _) => lines.push(fixed(
                "NAT gateways",
                n * (usd::NAT_GATEWAY_HOUR + usd::PUBLIC_IPV4_HOUR) * HOURS_A_MONTH,
                format!("{n} x (${} + ${} public IPv4) an hour", usd::NAT_GATEWAY_HOUR, usd::PUBLIC_IPV4_HOUR),
            )),
            (NatMode::Instance, hour) => {
                let running = hour.map(|h| n * (h + usd::PUBLIC_IPV4_HOUR) * HOURS_A_MONTH);
                lines.push(match running {
                    Some(monthly) => fixed(
                        "NAT instances",
                        monthly + volume,
                        format!("{n} x {instance} always on with its public IPv4; {volume_note}"),
                    ),
                    None => per_use(
                        "NAT instances",
                        "see EC2",
                        format!("{n} x {instance} always on (not in the price table), {volume_note}"),
                    ),
                });
            }
            (NatMode::InstanceOnDemand, hour) => {
                lines.push(fixed(
                    "NAT instances (stopped)",
                    volume,
                    format!("{volume_note}; no instance hours or public IPv4 while stopped"),
                ));
                let minutes = config.network.nat_idle_minutes;
                let note = match hour {
                    Some(h) => {
                        let an_hour = n * (h + usd::PUBLIC_IPV4_HOUR);
                        format!(
                            "${an_hour:.4} an hour while a run needs it, and {minutes} minutes after: about ${:.3} a run of 15 minutes",
                            an_hour * f64::from(15 + minutes) / 60.0
                        )
                    }
                    None => format!(
                        "{instance} is not in the price table: its hours while a run needs it, and {minutes} minutes after"
                    ),
                };
                lines.push(per_use("NAT instances (running)", "per run", note));
            }
        }
    }
    let mut secrets = 1.0 + config.database.password_readers().len() as f64;
    match &config.database {
        DatabaseProps::Create(db) => {
            let note = if db.min_capacity == 0.0 {
                format!("pauses after {} s idle: no compute charge", db.auto_pause_seconds)
            } else {
                format!("{} ACU minimum x ${} an ACU-hour", db.min_capacity, usd::AURORA_ACU_HOUR)
            };
            lines.push(fixed("Aurora minimum capacity", db.min_capacity * usd::AURORA_ACU_HOUR * HOURS_A_MONTH, note));
            lines.push(per_use(
                "Aurora storage",
                "per GB",
                format!("${} per GB-month of replica data", usd::AURORA_STORAGE_GB_MONTH),
            ));
            secrets += 1.0;
        }
        DatabaseProps::Existing(_) => {
            lines.push(fixed("Database", 0.0, "your own: billed as it is today".into()));
        }
    }
    lines.push(fixed("KMS key", usd::KMS_KEY_MONTH, "one customer-managed key".into()));
    let readers = config.database.password_readers().len();
    let admin = matches!(&config.database, DatabaseProps::Create(_));
    lines.push(fixed(
        "Secrets",
        secrets * usd::SECRET_MONTH,
        format!(
            "the DAP credential{}{}",
            if admin { ", the admin credential" } else { "" },
            if readers > 0 { format!(", {readers} password reader(s)") } else { String::new() }
        ),
    ));
    // Timed out, stopped, alert not sent, a stale table, and canvas_logs' table; and no
    // success when runs are scheduled.
    let logs = config.namespaces.contains(&crate::app::Namespace::CanvasLogs);
    let alarms = 4 + u32::from(logs) + u32::from(config.schedule_enabled);
    lines.push(fixed("CloudWatch alarms", f64::from(alarms) * usd::ALARM_MONTH, format!("{alarms} standard alarms")));
    // Sent only with runs, and billed only for the hours they are sent in.
    let metrics = 7 + u32::from(logs);
    let share = match crate::app::config::rate_seconds(&config.schedule).filter(|_| config.schedule_enabled) {
        Some(interval) => (3600.0 / interval as f64).min(1.0),
        None => 1.0,
    };
    lines.push(per_use(
        "CloudWatch metrics",
        "per run",
        format!(
            "{metrics} of the runs' own, billed for the hours a run sends them: about ${:.2} a month on this schedule",
            f64::from(metrics) * usd::CUSTOM_METRIC_MONTH * share
        ),
    ));
    lines.push(fixed(
        "CloudWatch dashboard",
        0.0,
        format!("free within an account's first three; ${:.2} a month beyond", usd::DASHBOARD_MONTH),
    ));
    if config.archive.enabled {
        lines.push(per_use(
            "Archive storage",
            "per GB",
            format!(
                "${} per GB-month of DAP files (gzip) for 30 days, ${} to day {}, ${} after; kept when the stack goes",
                usd::S3_STANDARD_GB_MONTH,
                usd::S3_STANDARD_IA_GB_MONTH,
                config.archive.glacier_after_days,
                usd::S3_GLACIER_IR_GB_MONTH
            ),
        ));
    }
    lines.push(per_use(
        "Log storage",
        "per GB",
        format!("${} per GB-month kept ({} days)", usd::LOG_STORAGE_GB_MONTH, config.log_retention_days),
    ));
    lines
}

/// The monthly total of `lines` (what is paid per use apart).
pub fn total(lines: &[Line]) -> f64 {
    lines.iter().filter_map(|l| l.monthly).sum()
}

/// The table deploy prints.
pub fn render(lines: &[Line]) -> String {
    let mut out = format!("estimated monthly cost while idle (list prices in {PRICE_REGION}, read {PRICES_READ}):\n");
    for l in lines {
        let amount = match l.monthly {
            Some(m) => format!("${m:>7.2}"),
            None => format!("{:>8}", l.per),
        };
        let _ = writeln!(out, "  {:<26} {amount}  {}", l.item, l.note);
    }
    let _ = writeln!(out, "  {:<26} ${:>7.2}  plus storage; runs are paid per use", "total", total(lines));
    out
}

/// The line synth's review ends with: `idle cost: $2.96 a month ...`.
pub fn idle_line(config: &Config) -> String {
    format!(
        "idle cost: ${:.2} a month (list prices in {PRICE_REGION}, read {PRICES_READ}; storage and runs apart; cargo xtask deploy shows each item)",
        total(&idle(config))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &str, overrides: &[&str]) -> Config {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
        crate::app::envs::load(&root, env, &overrides).unwrap()
    }

    #[test]
    fn dev_idles_for_less_than_three_dollars_with_its_nat_stopped() {
        let lines = idle(&config("dev", &[]));
        // Its stopped NAT's volume 0.16, no compute while paused, key 1, three secrets 1.20
        // (DAP, admin, the bi reader), six alarms 0.60.
        assert!((total(&lines) - 2.96).abs() < 0.005, "{lines:?}");
        assert!(total(&lines) < 3.00);
        let unscheduled = idle(&config("dev", &["schedule_enabled=false"]));
        assert!((total(&unscheduled) - 2.86).abs() < 0.005, "no no-success alarm: {unscheduled:?}");
        let table = render(&lines);
        assert!(table.contains("read 2026-11-24"), "{table}");
        assert!(table.contains("no compute charge"), "{table}");
        assert!(table.contains("per run") && table.contains("a run of 15 minutes"), "{table}");
        assert_eq!(idle_line(&config("dev", &[])).split(' ').take(3).collect::<Vec<_>>(), ["idle", "cost:", "$2.96"]);
    }

    #[test]
    fn each_nat_mode_costs_what_it_keeps_running() {
        let nat = |mode: &str| {
            let lines = idle(&config("dev", &[&format!("network.nat=\"{mode}\"")]));
            lines.iter().filter(|l| l.item.starts_with("NAT")).filter_map(|l| l.monthly).sum::<f64>()
        };
        assert!((nat("gateway") - 36.50).abs() < 0.005);
        // t4g.nano 0.0042 + IPv4 0.005 an hour, 730 hours, and the volume.
        assert!((nat("instance") - (0.0092 * 730.0 + 0.16)).abs() < 0.005);
        assert!((nat("instance-on-demand") - 0.16).abs() < 0.005);
    }

    #[test]
    fn prod_pays_for_two_nat_gateways_and_its_minimum_capacity() {
        let lines = idle(&config("prod", &[]));
        let aurora = lines.iter().find(|l| l.item == "Aurora minimum capacity").unwrap();
        assert!((aurora.monthly.unwrap() - 0.5 * 0.12 * 730.0).abs() < 1e-9);
        let nat = lines.iter().find(|l| l.item == "NAT gateways").unwrap();
        assert!((nat.monthly.unwrap() - 73.0).abs() < 1e-9);
        let archive = lines.iter().find(|l| l.item == "Archive storage").expect("prod archives");
        assert_eq!((archive.monthly, archive.per), (None, "per GB"));
        assert!(archive.note.contains("$0.023") && archive.note.contains("to day 90, $0.004"), "{archive:?}");
        assert!(idle(&config("dev", &[])).iter().all(|l| l.item != "Archive storage"), "dev does not");
    }

    #[test]
    fn an_existing_vpc_and_database_leave_only_the_small_items() {
        let lines = idle(&config("existing", &[]));
        assert!(lines.iter().all(|l| !l.item.starts_with("NAT")));
        assert!((total(&lines) - 2.00).abs() < 0.005, "key, secret, six alarms: {lines:?}");
    }
}
