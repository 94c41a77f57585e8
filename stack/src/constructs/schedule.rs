//! The EventBridge rule that starts the state machine on a schedule.

use crate::intrinsics::Expr;
use crate::resources::events::{Rule, Target};
use crate::resources::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::template::Template;

pub fn schedule_state_machine(t: &mut Template, id: &str, expression: &str, enabled: bool, state_machine_arn: &Expr) {
    let role = t.add(
        &format!("{id}Role"),
        Role {
            description: Some("Lets the schedule start the replication state machine".into()),
            // Rules of this stack only (CloudFormation names them `<stack>-<id>-<suffix>`).
            assume_role_policy_document: PolicyDocument::new(vec![Statement::trust("events.amazonaws.com").with_condition(
                "ArnLike",
                "aws:SourceArn",
                Expr::sub(format!("arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/${{AWS::StackName}}-{id}*")),
            )]),
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
