//! The "L2" layer: groups of resources with secure defaults, the way AWS CDK's constructs
//! wrap its L1 classes. Each construct adds its resources to a [`Template`](crate::Template)
//! and hands back typed references for the next one.

pub mod alerts;
pub mod archive;
mod bucket;
pub mod dashboard;
pub mod database;
pub mod function;
pub mod grants;
pub mod key;
pub mod nat;
pub mod network;
pub mod results;
pub mod schedule;
pub mod workflow;

pub use grants::{Grantee, SecretRef};
