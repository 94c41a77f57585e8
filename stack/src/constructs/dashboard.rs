//! The pipeline at a glance: a CloudWatch dashboard of the runs and their outcome, how long
//! they take, the tables failed and the rows changed per run, the least current table's
//! age, and the database's capacity (0 ACU while it is paused). Step Functions' and RDS's
//! own metrics, and those `summarize` publishes after each run.

use super::alerts::{METRIC_DIMENSION, METRICS_NAMESPACE};
use crate::intrinsics::Expr;
use crate::resources::cloudwatch::Dashboard;
use crate::template::{Handle, Template};
use contract::freshness::metrics;
use serde_json::{Value, json};

/// The dashboard's console link, for `Fn::Sub` (with `Dashboard`, its name) and, filled
/// in by [`console_url`], for `deploy`.
pub const CONSOLE_URL: &str = "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards/dashboard/${Dashboard}";

/// The dashboard's name: a dashboard belongs to the account, not to a region, so a stack
/// of the same name in another region needs another.
pub const NAME: &str = "${AWS::StackName}-${AWS::Region}";

/// [`CONSOLE_URL`] of the dashboard of stack `stack` in `region`.
pub fn console_url(region: &str, stack: &str) -> String {
    let name = NAME.replace("${AWS::StackName}", stack).replace("${AWS::Region}", region);
    CONSOLE_URL.replace("${AWS::Region}", region).replace("${Dashboard}", &name)
}

/// What the dashboard shows.
#[derive(Clone, Debug)]
pub struct DashboardProps {
    pub state_machine_arn: Expr,
    /// The stack's own Aurora cluster (its identifier), when it has one.
    pub cluster: Option<Expr>,
    /// Drawn on the age graph: where the stale-table alarm goes off.
    pub stale_hours: u32,
}

/// The dashboard, named after the stack and its region.
pub fn pipeline_dashboard(t: &mut Template, id: &str, props: DashboardProps) -> Handle<Dashboard> {
    let machine = |namespace: &str, metric: &str, options: Value| {
        json!([namespace, metric, METRIC_DIMENSION, "${Machine}", options])
    };
    let ours = |metric: &str, label: &str| machine(METRICS_NAMESPACE, metric, json!({"label": label}));
    let mut widgets = vec![
        graph(
            "Runs, by outcome",
            "Sum",
            vec![
                machine("AWS/States", "ExecutionsSucceeded", json!({"label": "succeeded", "color": "#2ca02c"})),
                machine("AWS/States", "ExecutionsFailed", json!({"label": "failed", "color": "#d62728"})),
                machine("AWS/States", "ExecutionsTimedOut", json!({"label": "timed out"})),
                machine("AWS/States", "ExecutionsAborted", json!({"label": "stopped"})),
            ],
            json!({}),
        ),
        graph(
            "Run duration (minutes)",
            "Maximum",
            vec![
                json!([{"expression": "m1 / 60000", "label": "longest run", "id": "e1"}]),
                machine("AWS/States", "ExecutionTime", json!({"id": "m1", "visible": false})),
            ],
            json!({}),
        ),
        graph(
            "Tables per run",
            "Sum",
            vec![ours(metrics::TABLES_FAILED, "failed"), ours(metrics::TABLES_SUCCEEDED, "replicated")],
            json!({}),
        ),
        graph(
            "Rows changed per run",
            "Sum",
            vec![
                ours(metrics::ROWS_INSERTED, "inserted"),
                ours(metrics::ROWS_UPDATED, "updated"),
                ours(metrics::ROWS_DELETED, "deleted"),
            ],
            json!({}),
        ),
        graph(
            "The least current table, hours behind DAP",
            "Maximum",
            vec![ours(metrics::OLDEST_TABLE_AGE_HOURS, "oldest table")],
            json!({"horizontal": [{"label": "stale-table alarm", "value": props.stale_hours}]}),
        ),
    ];
    let mut vars = vec![("Machine", props.state_machine_arn)];
    if let Some(cluster) = props.cluster {
        widgets.push(graph(
            "Database capacity (ACU; 0 while paused)",
            "Maximum",
            vec![
                json!(["AWS/RDS", "ServerlessDatabaseCapacity", "DBClusterIdentifier", "${Cluster}", {"label": "ACU"}]),
            ],
            json!({}),
        ));
        vars.push(("Cluster", cluster));
    }
    // Two graphs a row, each half the dashboard's 24 columns.
    for (i, widget) in widgets.iter_mut().enumerate() {
        widget["x"] = json!((i % 2) * 12);
        widget["y"] = json!((i / 2) * 6);
    }
    let body = json!({ "widgets": widgets }).to_string();
    t.add(id, Dashboard { dashboard_name: Expr::sub(NAME), dashboard_body: Expr::sub_with(body, vars) })
}

/// A graph of `metrics` (each `[namespace, name, dimension, value, options]` or an
/// expression), hourly, over the last week.
fn graph(title: &str, stat: &str, metrics: Vec<Value>, annotations: Value) -> Value {
    json!({
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "stat": stat,
            "period": 3600,
            "start": "-P7D",
            "view": "timeSeries",
            "metrics": metrics,
            "annotations": annotations,
        },
    })
}
