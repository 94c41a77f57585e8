//! CloudFormation values and intrinsic functions.
//!
//! Every property that CloudFormation may compute at deploy time is an [`Expr`], so a
//! construct can pass a literal, a parameter or another resource's attribute through the
//! same field. References name their target by [`LogicalId`], and the only way to get one
//! for a resource or parameter is to add that resource or parameter to a
//! [`Template`](crate::Template): app code never spells a logical id twice.

use indexmap::IndexMap;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use std::fmt;

/// The name of a resource, parameter, condition or output inside one template.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogicalId(String);

impl LogicalId {
    /// Only the template (and pseudo parameters) mint ids; see the module docs.
    pub(crate) fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for LogicalId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for LogicalId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The pseudo parameters CloudFormation defines in every stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pseudo {
    AccountId,
    Partition,
    Region,
    StackName,
    StackId,
    UrlSuffix,
    NoValue,
}

impl Pseudo {
    pub const ALL: [Pseudo; 7] = [
        Pseudo::AccountId,
        Pseudo::Partition,
        Pseudo::Region,
        Pseudo::StackName,
        Pseudo::StackId,
        Pseudo::UrlSuffix,
        Pseudo::NoValue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pseudo::AccountId => "AWS::AccountId",
            Pseudo::Partition => "AWS::Partition",
            Pseudo::Region => "AWS::Region",
            Pseudo::StackName => "AWS::StackName",
            Pseudo::StackId => "AWS::StackId",
            Pseudo::UrlSuffix => "AWS::URLSuffix",
            Pseudo::NoValue => "AWS::NoValue",
        }
    }

    pub fn expr(self) -> Expr {
        Expr::Ref(LogicalId::new(self.name()))
    }
}

/// A CloudFormation value: a literal or an intrinsic function.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Expr>),
    /// A literal JSON object (policy conditions, tags as maps, ...).
    Object(IndexMap<String, Expr>),
    Ref(LogicalId),
    GetAtt(LogicalId, String),
    /// `Fn::Sub` with its explicit variables (often none).
    Sub(String, IndexMap<String, Expr>),
    Join(String, Vec<Expr>),
    Select(u32, Box<Expr>),
    Split(String, Box<Expr>),
    GetAZs(Box<Expr>),
    Cidr(Box<Expr>, u32, u32),
    If(LogicalId, Box<Expr>, Box<Expr>),
    Equals(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// `Fn::Base64` (an instance's user data).
    Base64(Box<Expr>),
}

impl Expr {
    pub fn str(s: impl Into<String>) -> Self {
        Expr::Str(s.into())
    }

    /// `Fn::Sub` without a variable map: `${Name}` and `${Name.Attr}` are checked by
    /// [`Template::validate`](crate::Template::validate). Text without variables stays a
    /// plain string (cfn-lint flags a `Fn::Sub` with nothing to substitute).
    pub fn sub(s: impl Into<String>) -> Self {
        let s = s.into();
        if s.contains("${") { Expr::Sub(s, IndexMap::new()) } else { Expr::Str(s) }
    }

    pub fn sub_with(s: impl Into<String>, vars: impl IntoIterator<Item = (&'static str, Expr)>) -> Self {
        Expr::Sub(s.into(), vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn join(sep: impl Into<String>, parts: impl IntoIterator<Item = Expr>) -> Self {
        Expr::Join(sep.into(), parts.into_iter().collect())
    }

    pub fn select(index: u32, list: Expr) -> Self {
        Expr::Select(index, Box::new(list))
    }

    /// The region's availability zones (`Fn::GetAZs ""`).
    pub fn azs() -> Self {
        Expr::GetAZs(Box::new(Expr::str("")))
    }

    pub fn cidr(block: Expr, count: u32, host_bits: u32) -> Self {
        Expr::Cidr(Box::new(block), count, host_bits)
    }

    pub fn base64(value: Expr) -> Self {
        Expr::Base64(Box::new(value))
    }

    pub fn equals(a: Expr, b: Expr) -> Self {
        Expr::Equals(Box::new(a), Box::new(b))
    }

    pub fn list<T: Into<Expr>>(items: impl IntoIterator<Item = T>) -> Self {
        Expr::List(items.into_iter().map(Into::into).collect())
    }

    pub fn object<K: Into<String>>(items: impl IntoIterator<Item = (K, Expr)>) -> Self {
        Expr::Object(items.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The value as JSON, the form CloudFormation reads.
    pub fn to_json(&self) -> Value {
        match self {
            Expr::Str(s) => json!(s),
            Expr::Int(i) => json!(i),
            Expr::Float(f) => json!(f),
            Expr::Bool(b) => json!(b),
            Expr::List(items) => Value::Array(items.iter().map(Expr::to_json).collect()),
            Expr::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Expr::Ref(id) => json!({ "Ref": id }),
            Expr::GetAtt(id, attr) => json!({ "Fn::GetAtt": [id, attr] }),
            Expr::Sub(s, vars) if vars.is_empty() => json!({ "Fn::Sub": s }),
            Expr::Sub(s, vars) => {
                let vars: serde_json::Map<String, Value> = vars.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                json!({ "Fn::Sub": [s, vars] })
            }
            Expr::Join(sep, parts) => {
                json!({ "Fn::Join": [sep, parts.iter().map(Expr::to_json).collect::<Vec<_>>()] })
            }
            Expr::Select(i, list) => json!({ "Fn::Select": [i.to_string(), list.to_json()] }),
            Expr::Split(sep, s) => json!({ "Fn::Split": [sep, s.to_json()] }),
            Expr::GetAZs(region) => json!({ "Fn::GetAZs": region.to_json() }),
            Expr::Cidr(block, count, bits) => {
                json!({ "Fn::Cidr": [block.to_json(), count.to_string(), bits.to_string()] })
            }
            Expr::If(cond, a, b) => json!({ "Fn::If": [cond, a.to_json(), b.to_json()] }),
            Expr::Equals(a, b) => json!({ "Fn::Equals": [a.to_json(), b.to_json()] }),
            Expr::Not(a) => json!({ "Fn::Not": [a.to_json()] }),
            Expr::And(items) => {
                json!({ "Fn::And": items.iter().map(Expr::to_json).collect::<Vec<_>>() })
            }
            Expr::Or(items) => {
                json!({ "Fn::Or": items.iter().map(Expr::to_json).collect::<Vec<_>>() })
            }
            Expr::Base64(value) => json!({ "Fn::Base64": value.to_json() }),
        }
    }
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // The common literal cases without a detour through `Value`.
            Expr::Str(v) => s.serialize_str(v),
            Expr::Int(v) => s.serialize_i64(*v),
            Expr::Bool(v) => s.serialize_bool(*v),
            Expr::Object(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            other => other.to_json().serialize(s),
        }
    }
}

/// `!condition` is `Fn::Not`.
impl std::ops::Not for Expr {
    type Output = Expr;

    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

impl From<&str> for Expr {
    fn from(s: &str) -> Self {
        Expr::Str(s.to_owned())
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Self {
        Expr::Str(s)
    }
}

impl From<i64> for Expr {
    fn from(v: i64) -> Self {
        Expr::Int(v)
    }
}

impl From<u32> for Expr {
    fn from(v: u32) -> Self {
        Expr::Int(v.into())
    }
}

impl From<f64> for Expr {
    fn from(v: f64) -> Self {
        Expr::Float(v)
    }
}

impl From<bool> for Expr {
    fn from(v: bool) -> Self {
        Expr::Bool(v)
    }
}

impl From<&Expr> for Expr {
    fn from(v: &Expr) -> Self {
        v.clone()
    }
}

/// `list_tables` -> `ListTables`: a snake-case name as a part of a logical id.
pub fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intrinsics_serialize_in_cloudformation_form() {
        let vpc = LogicalId::new("Vpc");
        let e = Expr::select(0, Expr::cidr(Expr::GetAtt(vpc.clone(), "CidrBlock".into()), 4, 8));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"Fn::Select": ["0", {"Fn::Cidr": [{"Fn::GetAtt": ["Vpc", "CidrBlock"]}, "4", "8"]}]})
        );
        assert_eq!(serde_json::to_value(Pseudo::Region.expr()).unwrap(), json!({"Ref": "AWS::Region"}));
        let sub = Expr::sub_with("${A}-x", [("A", Expr::Ref(vpc))]);
        assert_eq!(serde_json::to_value(&sub).unwrap(), json!({"Fn::Sub": ["${A}-x", {"A": {"Ref": "Vpc"}}]}));
    }
}
