//! The alerts topic (encrypted), its optional email subscription, and alarms that publish
//! to it when an execution fails or times out, so no failure goes unnoticed even when the
//! workflow itself could not send its alert.

use crate::intrinsics::Expr;
use crate::resources::cloudwatch::{Alarm, Dimension};
use crate::resources::sns::{Subscription, Topic};
use crate::template::{Attributes, ConditionRef, Handle, ParameterRef, Template};

#[derive(Clone, Debug)]
pub struct Alerts {
    pub topic: Handle<Topic>,
}

impl Alerts {
    /// The subscription exists only when `email` is not empty (`has_email`).
    pub fn new(t: &mut Template, id: &str, key_arn: &Expr, email: &ParameterRef, has_email: &ConditionRef) -> Self {
        let topic = t.add(
            &format!("{id}Topic"),
            Topic { display_name: "Canvas Data 2 replica".into(), kms_master_key_id: key_arn.clone(), tags: vec![] },
        );
        t.add_with(
            &format!("{id}EmailSubscription"),
            Subscription { topic_arn: topic.arn(), protocol: "email", endpoint: email.as_ref() },
            Attributes::default().when(has_email),
        );
        Self { topic }
    }

    /// Alarms on a state machine's failed and timed-out executions.
    pub fn watch_state_machine(&self, t: &mut Template, id: &str, state_machine_arn: &Expr) {
        for (metric, what) in [("ExecutionsFailed", "failed"), ("ExecutionsTimedOut", "timed out")] {
            t.add(
                &format!("{id}{metric}Alarm"),
                Alarm {
                    alarm_description: format!(
                        "A Canvas Data 2 replication run {what}; see the execution in the Step Functions console"
                    ),
                    namespace: "AWS/States".into(),
                    metric_name: metric.into(),
                    dimensions: vec![Dimension { name: "StateMachineArn".into(), value: state_machine_arn.clone() }],
                    statistic: "Sum",
                    period: 300,
                    evaluation_periods: 1,
                    threshold: 1.0,
                    comparison_operator: "GreaterThanOrEqualToThreshold",
                    treat_missing_data: "notBreaching",
                    alarm_actions: vec![self.topic.arn()],
                },
            );
        }
    }
}
