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
            &format!("{id}Topic"),
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

    /// Alarms for what a run cannot report itself, on a state machine whose failed runs
    /// publish their own alert (so a failure is one email, not two): a run that timed out
    /// or was stopped, and no run that succeeded for `quiet_hours`, so a replica that
    /// silently stopped (schedule disabled, runs that never start) is noticed.
    ///
    /// The metrics are the state machine's own executions: a Distributed Map's child
    /// executions report under `Name/MapRunLabel`, another dimension. A run skipped because
    /// another still held the tables succeeds, and counts: the one holding them ends in a
    /// success, a failure (its alert) or a timeout (the alarm).
    ///
    /// `quiet_hours` is `None` when nothing runs on a schedule: then no run is expected.
    /// A new stack's alarm goes off once `quiet_hours` pass without a first success.
    pub fn watch_state_machine(&self, t: &mut Template, id: &str, state_machine_arn: &Expr, quiet_hours: Option<u32>) {
        let alarm = |metric: &str, description: String| Alarm {
            alarm_description: description,
            namespace: "AWS/States".into(),
            metric_name: metric.into(),
            dimensions: vec![Dimension { name: "StateMachineArn".into(), value: state_machine_arn.clone() }],
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
                ..alarm(
                    "ExecutionsSucceeded",
                    format!(
                        "No Canvas Data 2 replication run has succeeded for {quiet_hours} hours: the replica is going stale; check the schedule and the last runs' alerts"
                    ),
                )
            },
        );
    }
}
