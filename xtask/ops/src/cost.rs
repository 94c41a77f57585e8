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
    /// A custom metric published every hour of the month (prorated by the hour).
    pub const CUSTOM_METRIC_MONTH: f64 = 0.30;
    pub const LOG_STORAGE_GB_MONTH: f64 = 0.03;
    /// Beyond an account's first three dashboards.
    pub const DASHBOARD_MONTH: f64 = 3.00;
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
    let mut secrets = 1.0 + config.database.password_readers().len() as f64;
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
    let logs = config.namespaces.iter().any(|ns| ns.as_str() == "canvas_logs");
    let alarms = 4 + u32::from(logs) + u32::from(config.schedule_enabled);
    lines.push(fixed("CloudWatch alarms", f64::from(alarms) * usd::ALARM_MONTH, format!("{alarms} standard alarms")));
    // Sent only with runs, and billed only for the hours they are sent in.
    let metrics = 7 + u32::from(logs);
    let share = match stack::app::config::rate_seconds(&config.schedule).filter(|_| config.schedule_enabled) {
        Some(interval) => (3600.0 / interval as f64).min(1.0),
        None => 1.0,
    };
    lines.push(fixed(
        "CloudWatch metrics",
        f64::from(metrics) * usd::CUSTOM_METRIC_MONTH * share,
        format!(
            "{metrics} of the runs' own, billed for the hours a run sends them ({:.0}% of the month on this schedule)",
            share * 100.0
        ),
    ));
    lines.push(fixed(
        "CloudWatch dashboard",
        0.0,
        format!("free within an account's first three; ${:.2} a month beyond", usd::DASHBOARD_MONTH),
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
        // One NAT with its address (36.50), no compute while paused, key 1, three secrets
        // 1.20 (DAP, admin, the bi reader), six alarms 0.60, eight metrics sent a third of
        // the hours (a run every 3 hours) 0.80.
        assert!((total(&lines) - 40.10).abs() < 0.005, "{lines:?}");
        let unscheduled = idle(&config("dev", &["schedule_enabled=false"]));
        assert!(
            (total(&unscheduled) - (40.10 - 0.10 - 0.80 + 2.40)).abs() < 0.005,
            "no no-success alarm; runs by hand, so the metrics are counted in full: {unscheduled:?}"
        );
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
        assert!(
            (total(&lines) - 2.80).abs() < 0.005,
            "key, secret, six alarms, eight metrics a third of the time: {lines:?}"
        );
    }
}
