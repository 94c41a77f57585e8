//! One customer-managed KMS key for the stack's data at rest: the database, secrets, log
//! groups, the alerts topic and Lambda environments. One key costs about $1 a month and
//! keeps every decrypt in CloudTrail and under the account's control.

use crate::intrinsics::{Expr, Pseudo};
use crate::resources::iam::{PolicyDocument, Principal, Statement};
use crate::resources::kms::{Alias, Key};
use crate::template::{Attributes, Handle, Template};

#[derive(Clone, Debug)]
pub struct EncryptionKey {
    pub key: Handle<Key>,
}

impl EncryptionKey {
    pub fn new(t: &mut Template, id: &str, alias: &str) -> Self {
        let everything = || vec![Expr::str("*")];
        let policy = PolicyDocument::new(vec![
            // Without this the key cannot be managed through IAM at all.
            Statement::allow(&["kms:*"], everything())
                .with_sid("AccountAdministers")
                .for_principal(Principal::Aws(vec![Expr::sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")])),
            Statement::allow(
                &["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                everything(),
            )
            .with_sid("LogGroupsOfThisAccount")
            .for_principal(Principal::Service(vec![Expr::sub("logs.${AWS::Region}.amazonaws.com")]))
            .with_condition(
                "ArnLike",
                "kms:EncryptionContext:aws:logs:arn",
                Expr::sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"),
            ),
            // CloudWatch alarms publish to the encrypted alerts topic.
            Statement::allow(&["kms:Decrypt", "kms:GenerateDataKey*"], everything())
                .with_sid("AlarmsPublishToTopic")
                .for_principal(Principal::Service(vec![Expr::str("cloudwatch.amazonaws.com")]))
                .with_condition("StringEquals", "aws:SourceAccount", Pseudo::AccountId.expr()),
        ]);
        // Kept when the stack is deleted or the key replaced: the database's final snapshot
        // is encrypted with it (`destroy --delete-data` schedules its deletion).
        let key = t.add_with(
            id,
            Key {
                description: "cd2-aws: encrypts the replica database, secrets, logs and alerts".into(),
                enable_key_rotation: true,
                pending_window_in_days: 30,
                key_policy: policy,
                tags: vec![],
            },
            Attributes::default().retain(),
        );
        t.add(
            &format!("{id}Alias"),
            Alias { alias_name: Expr::sub(format!("alias/{alias}")), target_key_id: key.as_ref() },
        );
        Self { key }
    }

    pub fn arn(&self) -> Expr {
        self.key.arn()
    }
}
