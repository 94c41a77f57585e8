//! The EventBridge rule that starts the state machine on a schedule.

use crate::intrinsics::Expr;
use crate::resources::events::{Rule, Target};
use crate::resources::iam::{InlinePolicy, PolicyDocument, Principal, Role, Statement};
use crate::template::Template;

pub fn schedule_state_machine(t: &mut Template, id: &str, expression: &str, enabled: bool, state_machine_arn: &Expr) {
    let role = t.add(
        &format!("{id}Role"),
        Role {
            description: Some("Lets the schedule start the replication state machine".into()),
            assume_role_policy_document: PolicyDocument::new(vec![
                Statement::allow(&["sts:AssumeRole"], vec![])
                    .for_principal(Principal::Service(vec![Expr::str("events.amazonaws.com")])),
            ]),
            managed_policy_arns: vec![],
            policies: vec![InlinePolicy {
                policy_name: "start".into(),
                policy_document: PolicyDocument::new(vec![Statement::allow(
                    &["states:StartExecution"],
                    vec![state_machine_arn.clone()],
                )]),
            }],
            tags: vec![],
        },
    );
    t.add(
        id,
        Rule {
            description: format!("Runs the Canvas Data 2 replication {expression}"),
            schedule_expression: expression.into(),
            state: if enabled { "ENABLED" } else { "DISABLED" },
            targets: vec![Target {
                id: "replication".into(),
                arn: state_machine_arn.clone(),
                role_arn: role.arn(),
                input: "{}".into(),
            }],
        },
    );
}
