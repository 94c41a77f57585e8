//! The alerts topic (encrypted), its optional email subscription, and alarms that publish
//! to it when an execution fails or times out, so no failure goes unnoticed even when the
//! workflow itself could not send its alert.

use super::grants::Grantee;
use super::key::EncryptionKey;
use crate::intrinsics::{Expr, Pseudo};
use crate::resources::cloudwatch::{Alarm, Dimension};
use crate::resources::iam::{PolicyDocument, Principal, Statement};
use crate::resources::sns::{Subscription, Topic, TopicPolicy};
use crate::template::{Attributes, ConditionRef, Handle, ParameterRef, Template};
use contract::freshness::metrics;

/// The CloudWatch namespace of the runs' own metrics, which the alarms watch.
pub const METRICS_NAMESPACE: &str = metrics::NAMESPACE;
/// One for each run that replicated every table: a run skipped because another held the
/// tables is not one, so it does not keep the no-success alarm quiet.
pub const RUNS_SUCCEEDED: &str = "RunsSucceeded";
/// One for each run whose alert could not be published to the topic.
pub const ALERTS_NOT_SENT: &str = "AlertsNotSent";
/// The dimension the state machine's metrics carry, its own and Step Functions': its ARN.
pub const METRIC_DIMENSION: &str = metrics::STATE_MACHINE;

/// The logical id of the topic of the alerts made with `id` (`status` finds it by it).
pub fn topic_id(id: &str) -> String {
    format!("{id}Topic")
}

#[derive(Clone, Debug)]
pub struct Alerts {
    pub topic: Handle<Topic>,
    key: EncryptionKey,
}

impl Alerts {
    /// The subscription exists only when `email` is not empty (`has_email`).
    pub fn new(
        t: &mut Template,
        id: &str,
        key: &EncryptionKey,
        email: &ParameterRef,
        has_email: &ConditionRef,
    ) -> Self {
        let topic = t.add(
            &topic_id(id),
            Topic { display_name: "Canvas Data 2 replica".into(), kms_master_key_id: key.arn(), tags: vec![] },
        );
        let topic_arn = || vec![topic.arn()];
        t.add(
            &format!("{id}TopicPolicy"),
            TopicPolicy {
                policy_document: PolicyDocument::new(vec![
                    Statement::deny(&["sns:Publish"], topic_arn())
                        .with_sid("TlsOnly")
                        .for_principal(Principal::Aws(vec![Expr::str("*")]))
                        .with_condition("Bool", "aws:SecureTransport", Expr::str("false")),
                    // The alarms below; the workflow publishes through its role's grant.
                    Statement::allow(&["sns:Publish"], topic_arn())
                        .with_sid("AlarmsOfThisAccount")
                        .for_principal(Principal::Service(vec![Expr::str("cloudwatch.amazonaws.com")]))
                        .with_condition("StringEquals", "aws:SourceAccount", Pseudo::AccountId.expr())
                        .with_condition(
                            "ArnLike",
                            "aws:SourceArn",
                            Expr::sub("arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"),
                        ),
                ]),
                topics: topic_arn(),
            },
        );
        t.add_with(
            &format!("{id}EmailSubscription"),
            Subscription { topic_arn: topic.arn(), protocol: "email", endpoint: email.as_ref() },
            Attributes::default().when(has_email),
        );
        Self { topic, key: key.clone() }
    }

    /// Lets `grantee` publish to the topic, with the key use publishing to an encrypted
    /// topic needs.
    pub fn grant_publish(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(&["sns:Publish"], vec![self.topic.arn()]));
        grantee.add_to_policy(Statement::allow(&["kms:Decrypt", "kms:GenerateDataKey*"], vec![self.key.arn()]));
    }

    /// Lets `grantee` (the workflow) count its runs' outcomes in the namespace the alarms
    /// of [`watch_state_machine`](Self::watch_state_machine) watch, and only there.
    pub fn grant_count_runs(&self, grantee: &mut dyn Grantee) {
        // PutMetricData has no resource-level permission: AWS documents `*`, narrowed by
        // the namespace condition.
        grantee.add_to_policy(
            Statement::allow(&["cloudwatch:PutMetricData"], vec![Expr::str("*")]).with_sid("CountRuns").with_condition(
                "StringEquals",
                "cloudwatch:namespace",
                Expr::str(METRICS_NAMESPACE),
            ),
        );
    }

    /// Alarms for what a run cannot report itself, on a state machine whose failed runs
    /// publish their own alert (so a failure is one email, not two): a run that timed out
    /// or was stopped; a run whose alert could not be published (SNS or KMS refusing the
    /// workflow: the alarm reaches the topic as CloudWatch, by the topic's policy, not the
    /// workflow's role); and no run that replicated every table for `quiet_hours`, so a
    /// replica that silently stopped (schedule disabled, runs that never start, runs that
    /// are all skipped) is noticed.
    ///
    /// The Step Functions metrics are the state machine's own executions: a Distributed
    /// Map's child executions report under `Name/MapRunLabel`, another dimension. The
    /// successes are the workflow's own count ([`RUNS_SUCCEEDED`]): a run skipped because
    /// another still held the tables succeeds without counting.
    ///
    /// `quiet_hours` is `None` when nothing runs on a schedule: then no run is expected.
    /// A new stack's alarm goes off once `quiet_hours` pass without a first success.
    pub fn watch_state_machine(&self, t: &mut Template, id: &str, state_machine_arn: &Expr, quiet_hours: Option<u32>) {
        let alarm = |metric: &str, description: String| Alarm {
            alarm_description: description,
            namespace: "AWS/States".into(),
            metric_name: metric.into(),
            dimensions: vec![Dimension { name: METRIC_DIMENSION.into(), value: state_machine_arn.clone() }],
            statistic: "Sum",
            period: 300,
            evaluation_periods: 1,
            datapoints_to_alarm: None,
            threshold: 1.0,
            comparison_operator: "GreaterThanOrEqualToThreshold",
            treat_missing_data: "notBreaching",
            alarm_actions: vec![self.topic.arn()],
        };
        for (metric, what) in [
            ("ExecutionsTimedOut", "timed out (run_timeout_hours) before it could send its report"),
            ("ExecutionsAborted", "was stopped before it could send its report"),
        ] {
            let description =
                format!("A Canvas Data 2 replication run {what}; see the execution in the Step Functions console");
            t.add(&format!("{id}{metric}Alarm"), alarm(metric, description));
        }
        t.add(
            &format!("{id}{ALERTS_NOT_SENT}Alarm"),
            Alarm {
                namespace: METRICS_NAMESPACE.into(),
                ..alarm(
                    ALERTS_NOT_SENT,
                    "A Canvas Data 2 replication run failed and its alert could not be published (SNS or KMS refused the workflow); see the failed run's publish step in the Step Functions console".into(),
                )
            },
        );
        let Some(quiet_hours) = quiet_hours else { return };
        // Hourly sums, every one of the last `quiet_hours` without a success; no data
        // (no run at all) counts as none.
        t.add(
            &format!("{id}NoSuccessAlarm"),
            Alarm {
                period: 3600,
                evaluation_periods: quiet_hours,
                datapoints_to_alarm: Some(quiet_hours),
                comparison_operator: "LessThanThreshold",
                treat_missing_data: "breaching",
                namespace: METRICS_NAMESPACE.into(),
                ..alarm(
                    RUNS_SUCCEEDED,
                    format!(
                        "No Canvas Data 2 replication run has succeeded for {quiet_hours} hours: the replica is going stale; check the schedule and the last runs' alerts"
                    ),
                )
            },
        );
    }

    /// Alarms on how fresh the tables are, from the metrics `summarize` publishes after
    /// each run: the least current table older than `stale_hours`; and each table of
    /// `short_lived` (whose data DAP keeps 30 days) older than `short_lived_days`, named in
    /// its own alarm, while there is time to replicate it before DAP drops what it missed.
    ///
    /// The metrics come only with runs: missing hours keep the alarm as it is (`ignore`),
    /// so an alarm stays on until a run finds the table fresh again, and no run at all is
    /// the no-success alarm's to say.
    pub fn watch_freshness(
        &self,
        t: &mut Template,
        id: &str,
        state_machine_arn: &Expr,
        stale_hours: u32,
        short_lived: &[&str],
        short_lived_days: u32,
    ) {
        let alarm = |metric: &str, table: Option<&str>, threshold: f64, description: String| Alarm {
            alarm_description: description,
            namespace: METRICS_NAMESPACE.into(),
            metric_name: metric.into(),
            dimensions: std::iter::once(Dimension { name: METRIC_DIMENSION.into(), value: state_machine_arn.clone() })
                .chain(table.map(|table| Dimension { name: metrics::TABLE.into(), value: Expr::str(table) }))
                .collect(),
            statistic: "Maximum",
            period: 3600,
            evaluation_periods: 1,
            datapoints_to_alarm: None,
            threshold,
            comparison_operator: "GreaterThanThreshold",
            treat_missing_data: "ignore",
            alarm_actions: vec![self.topic.arn()],
        };
        t.add(
            &format!("{id}StaleTableAlarm"),
            alarm(
                metrics::OLDEST_TABLE_AGE_HOURS,
                None,
                f64::from(stale_hours),
                format!(
                    "A table of the Canvas Data 2 replica is more than {stale_hours} hours behind DAP (stale_table_alarm_hours): cargo xtask status --tables names it and its last run's outcome"
                ),
            ),
        );
        for table in short_lived {
            t.add(
                &format!("{id}{}AgeAlarm", crate::intrinsics::pascal_case(&table.replace('.', "_"))),
                alarm(
                    metrics::TABLE_AGE_HOURS,
                    Some(table),
                    f64::from(short_lived_days * 24),
                    format!(
                        "{table} is more than {short_lived_days} days behind DAP, which keeps it only 30 days: what is not replicated before then is lost for good; see cargo xtask status --tables and the last runs' alerts"
                    ),
                ),
            );
        }
    }
}
