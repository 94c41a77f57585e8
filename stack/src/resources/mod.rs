//! The "L1" layer: one struct per CloudFormation resource type, named and shaped like the
//! CloudFormation resource specification, one module per AWS service.
//!
//! Only the properties this project sets are modelled; a field is `Option` or an empty
//! `Vec` when CloudFormation lets it be left out, and then it is left out of the JSON.
//! Attribute getters live on `Handle<Type>`, so `GetAtt` cannot name an attribute the type
//! does not have.

pub mod cloudformation;
pub mod cloudwatch;
pub mod ec2;
pub mod events;
pub mod glue;
pub mod iam;
pub mod kms;
pub mod lambda;
pub mod logs;
pub mod rds;
pub mod s3;
pub mod secretsmanager;
pub mod sns;
pub mod stepfunctions;

use crate::intrinsics::Expr;
use serde::Serialize;

/// A CloudFormation resource type: its properties serialize to the `Properties` object.
pub trait Resource: Serialize {
    /// The `Type` string, e.g. `AWS::EC2::VPC`.
    const TYPE: &'static str;
}

/// A resource tag.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: Expr,
}

impl Tag {
    pub fn new(key: &str, value: impl Into<Expr>) -> Self {
        Self { key: key.into(), value: value.into() }
    }

    /// The `Name` tag the consoles show.
    pub fn name(value: impl Into<Expr>) -> Vec<Tag> {
        vec![Self::new("Name", value)]
    }
}
