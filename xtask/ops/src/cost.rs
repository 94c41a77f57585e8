//! What the stack costs a month while idle, from one table of list prices. Replication
//! itself (Lambda, Step Functions, DAP traffic through NAT) is paid per use and not counted.

use stack::app::Config;
use stack::app::config::NetworkMode;
use stack::constructs::database::DatabaseProps;
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
    /// A custom metric published at least once in the month.
    pub const CUSTOM_METRIC_MONTH: f64 = 0.30;
    pub const LOG_STORAGE_GB_MONTH: f64 = 0.03;
}

/// One line of the estimate: a fixed monthly amount, or a price per GB not in the total.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: String,
    pub monthly: Option<f64>,
    pub note: String,
}

/// The stack of `config`, idle.
pub fn idle(config: &Config) -> Vec<Line> {
    let fixed = |item: &str, monthly: f64, note: String| Line { item: item.into(), monthly: Some(monthly), note };
    let per_gb = |item: &str, note: String| Line { item: item.into(), monthly: None, note };
    let mut lines = Vec::new();
    if config.network.mode == NetworkMode::Create {
        let n = f64::from(config.network.nat_gateways.unwrap_or(1));
        lines.push(fixed(
            "NAT gateways",
            n * (usd::NAT_GATEWAY_HOUR + usd::PUBLIC_IPV4_HOUR) * HOURS_A_MONTH,
            format!("{n} x (${} + ${} public IPv4) an hour", usd::NAT_GATEWAY_HOUR, usd::PUBLIC_IPV4_HOUR),
        ));
    }
    let mut secrets = 1.0;
    match &config.database {
        DatabaseProps::Create(db) => {
            let note = if db.min_capacity == 0.0 {
                format!("pauses after {} s idle: no compute charge", db.auto_pause_seconds)
            } else {
                format!("{} ACU minimum x ${} an ACU-hour", db.min_capacity, usd::AURORA_ACU_HOUR)
            };
            lines.push(fixed("Aurora minimum capacity", db.min_capacity * usd::AURORA_ACU_HOUR * HOURS_A_MONTH, note));
            lines.push(per_gb(
                "Aurora storage",
                format!("${} per GB-month of replica data", usd::AURORA_STORAGE_GB_MONTH),
            ));
            secrets += 1.0;
        }
        DatabaseProps::Existing(_) => {
            lines.push(fixed("Database", 0.0, "your own: billed as it is today".into()));
        }
    }
    lines.push(fixed("KMS key", usd::KMS_KEY_MONTH, "one customer-managed key".into()));
    lines.push(fixed(
        "Secrets",
        secrets * usd::SECRET_MONTH,
        if secrets > 1.0 { "the DAP credential and the admin credential".into() } else { "the DAP credential".into() },
    ));
    // Timed out, stopped, alert not sent; and no success when runs are scheduled.
    let alarms = 3 + u32::from(config.schedule_enabled);
    lines.push(fixed("CloudWatch alarms", f64::from(alarms) * usd::ALARM_MONTH, format!("{alarms} standard alarms")));
    lines.push(fixed(
        "CloudWatch metrics",
        usd::CUSTOM_METRIC_MONTH,
        "the workflow's count of successful runs (and of unsent alerts, in a month that has one)".into(),
    ));
    lines.push(per_gb(
        "Log storage",
        format!("${} per GB-month kept ({} days)", usd::LOG_STORAGE_GB_MONTH, config.log_retention_days),
    ));
    lines
}

/// The table deploy prints.
pub fn render(lines: &[Line]) -> String {
    let mut out = format!("estimated monthly cost while idle (list prices in {PRICE_REGION}, read {PRICES_READ}):\n");
    let mut total = 0.0;
    for l in lines {
        let amount = match l.monthly {
            Some(m) => {
                total += m;
                format!("${m:>7.2}")
            }
            None => "  per GB".into(),
        };
        let _ = writeln!(out, "  {:<26} {amount}  {}", l.item, l.note);
    }
    let _ = writeln!(out, "  {:<26} ${total:>7.2}  plus storage; runs are paid per use", "total");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &str, overrides: &[&str]) -> Config {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
        stack::app::envs::load(&root, env, &overrides).unwrap()
    }

    fn total(lines: &[Line]) -> f64 {
        lines.iter().filter_map(|l| l.monthly).sum()
    }

    #[test]
    fn dev_idles_at_the_nat_gateway_key_secrets_and_alarms() {
        let lines = idle(&config("dev", &[]));
        // One NAT with its address (36.50), no compute while paused, key 1, two secrets 0.80,
        // four alarms 0.40, the count of successes 0.30.
        assert!((total(&lines) - 39.00).abs() < 0.005, "{lines:?}");
        let unscheduled = idle(&config("dev", &["schedule_enabled=false"]));
        assert!((total(&unscheduled) - 38.90).abs() < 0.005, "no run expected, no no-success alarm: {unscheduled:?}");
        let table = render(&lines);
        assert!(table.contains("read 2026-11-24"), "{table}");
        assert!(table.contains("no compute charge"), "{table}");
    }

    #[test]
    fn prod_pays_for_two_nat_gateways_and_its_minimum_capacity() {
        let lines = idle(&config("prod", &[]));
        let aurora = lines.iter().find(|l| l.item == "Aurora minimum capacity").unwrap();
        assert!((aurora.monthly.unwrap() - 0.5 * 0.12 * 730.0).abs() < 1e-9);
        let nat = lines.iter().find(|l| l.item == "NAT gateways").unwrap();
        assert!((nat.monthly.unwrap() - 73.0).abs() < 1e-9);
    }

    #[test]
    fn an_existing_vpc_and_database_leave_only_the_small_items() {
        let lines = idle(&config("existing", &[]));
        assert!(lines.iter().all(|l| l.item != "NAT gateways"));
        assert!((total(&lines) - 2.10).abs() < 0.005, "key, secret, four alarms, the count of successes: {lines:?}");
    }
}
