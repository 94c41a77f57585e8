//! The cd2-aws infrastructure, as data.
//!
//! Like AWS CDK, in layers: [`template`] and [`intrinsics`] are the CloudFormation document,
//! [`resources`] the typed resource types ("L1"), [`asl`] the typed Amazon States Language,
//! [`constructs`] groups of resources with secure defaults ("L2"), and [`app`] the Canvas
//! Data 2 replica stack built from them and a [`app::Config`]. Nothing here does I/O: the
//! caller reads configuration and writes what [`app::build`] returns.

pub mod app;
pub mod asl;
pub mod constructs;
pub mod intrinsics;
pub mod resources;
pub mod template;

pub use intrinsics::{Expr, LogicalId, Pseudo};
pub use template::{Attributes, Handle, Parameter, Template, ValidationError};
