//! Least-privilege grants, in the style of CDK's `secret.grant_read(&function)`: the thing
//! granted on knows which actions it needs, the grantee only collects statements.

use crate::intrinsics::Expr;
use crate::resources::iam::Statement;

/// Something with an IAM role that statements can be added to before it is emitted.
pub trait Grantee {
    fn add_to_policy(&mut self, statement: Statement);
}

/// A secret, in this stack or outside it, and the key that encrypts it when that is ours.
#[derive(Clone, Debug)]
pub struct SecretRef {
    pub arn: Expr,
    /// `None` for secrets under the AWS-managed key, which needs no grant.
    pub key_arn: Option<Expr>,
}

impl SecretRef {
    /// A secret of this account and region made outside the stack, by name, under the
    /// AWS-managed key (as CDK's `Secret.fromSecretNameV2`): its ARN ends in the six random
    /// characters Secrets Manager appends to every name, matched by `-??????`.
    pub fn from_name(name: &str) -> Self {
        SecretRef {
            arn: Expr::sub(format!(
                "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{name}-??????"
            )),
            key_arn: None,
        }
    }

    pub fn grant_read(&self, grantee: &mut dyn Grantee) {
        grantee.add_to_policy(Statement::allow(
            &["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            vec![self.arn.clone()],
        ));
        if let Some(key) = &self.key_arn {
            grantee.add_to_policy(Statement::allow(&["kms:Decrypt"], vec![key.clone()]).with_condition(
                "StringEquals",
                "kms:ViaService",
                Expr::sub("secretsmanager.${AWS::Region}.amazonaws.com"),
            ));
        }
    }
}
