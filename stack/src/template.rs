//! The CloudFormation document: parameters, conditions, resources and outputs, with the
//! validation pass that runs before anything is written.
//!
//! Resources are kept as the JSON their typed struct serializes to, in insertion order, so
//! the emitted template reads in the order the constructs built it and is byte-identical
//! from run to run.

use crate::intrinsics::{Expr, LogicalId, Pseudo};
use crate::resources::Resource;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

/// A typed reference to something added to a [`Template`].
///
/// Resource modules add attribute getters on `Handle<TheirType>`, so that `GetAtt` names
/// only attributes that type has.
#[derive(Debug)]
pub struct Handle<T> {
    id: LogicalId,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Self { id: self.id.clone(), _kind: PhantomData }
    }
}

impl<T> Handle<T> {
    fn new(id: LogicalId) -> Self {
        Self { id, _kind: PhantomData }
    }

    pub fn id(&self) -> &LogicalId {
        &self.id
    }

    /// `{"Ref": id}`.
    pub fn as_ref(&self) -> Expr {
        Expr::Ref(self.id.clone())
    }

    /// Resource modules wrap this in named getters; see the type docs.
    pub(crate) fn get_att(&self, attribute: &str) -> Expr {
        Expr::GetAtt(self.id.clone(), attribute.to_owned())
    }
}

/// Marker for handles to parameters.
#[derive(Debug)]
pub enum ParameterKind {}
/// Marker for handles to conditions.
#[derive(Debug)]
pub enum ConditionKind {}

pub type ParameterRef = Handle<ParameterKind>;
pub type ConditionRef = Handle<ConditionKind>;

impl ConditionRef {
    /// `Fn::If` on this condition.
    pub fn choose(&self, then: impl Into<Expr>, otherwise: impl Into<Expr>) -> Expr {
        Expr::If(self.id.clone(), Box::new(then.into()), Box::new(otherwise.into()))
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_echo: bool,
}

impl Parameter {
    pub fn string(description: impl Into<String>) -> Self {
        Self { kind: "String".into(), description: Some(description.into()), ..Self::default() }
    }

    pub fn with_default(mut self, default: impl Into<Value>) -> Self {
        self.default = Some(default.into());
        self
    }

    pub fn with_pattern(mut self, pattern: &str, explanation: &str) -> Self {
        self.allowed_pattern = Some(pattern.into());
        self.constraint_description = Some(explanation.into());
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DeletionPolicy {
    Delete,
    Retain,
    Snapshot,
}

/// Resource attributes besides `Properties`.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub depends_on: Vec<LogicalId>,
    pub condition: Option<LogicalId>,
    pub deletion_policy: Option<DeletionPolicy>,
    pub update_replace_policy: Option<DeletionPolicy>,
    /// checkov findings that do not apply, as `(check id, why)`; emitted in `Metadata`.
    pub checkov_skips: Vec<(&'static str, String)>,
}

impl Attributes {
    pub fn skip_check(mut self, id: &'static str, why: impl Into<String>) -> Self {
        self.checkov_skips.push((id, why.into()));
        self
    }

    pub fn depends_on<T>(mut self, other: &Handle<T>) -> Self {
        self.depends_on.push(other.id().clone());
        self
    }

    /// Depends on each of `ids` (resources of several types, such as a network path).
    pub fn depends_on_all(mut self, ids: impl IntoIterator<Item = LogicalId>) -> Self {
        self.depends_on.extend(ids);
        self
    }

    pub fn when(mut self, condition: &ConditionRef) -> Self {
        self.condition = Some(condition.id().clone());
        self
    }

    /// Keep the resource when it is deleted from the stack or replaced.
    pub fn retain(mut self) -> Self {
        self.deletion_policy = Some(DeletionPolicy::Retain);
        self.update_replace_policy = Some(DeletionPolicy::Retain);
        self
    }

    /// Keep a snapshot when the resource is deleted or replaced.
    pub fn snapshot_on_delete(mut self) -> Self {
        self.deletion_policy = Some(DeletionPolicy::Snapshot);
        self.update_replace_policy = Some(DeletionPolicy::Snapshot);
        self
    }
}

#[derive(Clone, Debug)]
struct ResourceEntry {
    type_name: &'static str,
    properties: Value,
    attributes: Attributes,
}

#[derive(Clone, Debug)]
struct OutputEntry {
    description: String,
    value: Expr,
    export: Option<Expr>,
}

/// One problem found by [`Template::validate`], located by a JSON-pointer-like path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Everything wrong with a template, so one synth run reports all of it.
#[derive(Debug, thiserror::Error)]
#[error("the template is not valid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ValidationError(pub Vec<Problem>);

/// CloudFormation's own quotas that we can check offline.
const MAX_RESOURCES: usize = 500;
const MAX_PARAMETERS: usize = 200;
const MAX_OUTPUTS: usize = 200;

#[derive(Clone, Debug, Default)]
pub struct Template {
    description: String,
    parameters: IndexMap<LogicalId, Parameter>,
    conditions: IndexMap<LogicalId, Expr>,
    resources: IndexMap<LogicalId, ResourceEntry>,
    outputs: IndexMap<LogicalId, OutputEntry>,
    /// Ids added twice; reported by `validate` rather than panicking mid-build.
    duplicates: Vec<String>,
}

impl Template {
    pub fn new(description: impl Into<String>) -> Self {
        Self { description: description.into(), ..Self::default() }
    }

    fn claim(&mut self, id: &str, kind: &str, taken: bool) -> LogicalId {
        if taken {
            self.duplicates.push(format!("{kind} `{id}` is defined more than once"));
        }
        LogicalId::new(id)
    }

    pub fn add<T: Resource>(&mut self, id: &str, resource: T) -> Handle<T> {
        self.add_with(id, resource, Attributes::default())
    }

    pub fn add_with<T: Resource>(&mut self, id: &str, resource: T, attributes: Attributes) -> Handle<T> {
        let taken = self.resources.contains_key(id) || self.parameters.contains_key(id);
        let id = self.claim(id, "resource", taken);
        let properties =
            serde_json::to_value(&resource).unwrap_or_else(|e| panic!("resource `{id}` does not serialize: {e}"));
        let entry = ResourceEntry { type_name: T::TYPE, properties, attributes };
        self.resources.insert(id.clone(), entry);
        Handle::new(id)
    }

    pub fn parameter(&mut self, id: &str, parameter: Parameter) -> ParameterRef {
        let taken = self.resources.contains_key(id) || self.parameters.contains_key(id);
        let id = self.claim(id, "parameter", taken);
        self.parameters.insert(id.clone(), parameter);
        Handle::new(id)
    }

    pub fn condition(&mut self, id: &str, expression: Expr) -> ConditionRef {
        let taken = self.conditions.contains_key(id);
        let id = self.claim(id, "condition", taken);
        self.conditions.insert(id.clone(), expression);
        Handle::new(id)
    }

    pub fn output(&mut self, id: &str, description: &str, value: Expr) {
        self.output_exported(id, description, value, None);
    }

    pub fn output_exported(&mut self, id: &str, description: &str, value: Expr, export: Option<Expr>) {
        let taken = self.outputs.contains_key(id);
        let id = self.claim(id, "output", taken);
        let entry = OutputEntry { description: description.into(), value, export };
        self.outputs.insert(id, entry);
    }

    /// `(logical id, resource type)` in template order.
    pub fn resource_types(&self) -> impl Iterator<Item = (&LogicalId, &'static str)> {
        self.resources.iter().map(|(id, r)| (id, r.type_name))
    }

    pub fn parameter_ids(&self) -> impl Iterator<Item = &LogicalId> {
        self.parameters.keys()
    }

    pub fn output_ids(&self) -> impl Iterator<Item = &LogicalId> {
        self.outputs.keys()
    }

    /// The serialized properties of a resource, for tests and reviews.
    pub fn properties(&self, id: &str) -> Option<&Value> {
        self.resources.get(id).map(|r| &r.properties)
    }

    /// The template as CloudFormation JSON. Call [`validate`](Self::validate) first; the
    /// synth pipeline does.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
        doc.insert("Description".into(), json!(self.description));
        if !self.parameters.is_empty() {
            doc.insert("Parameters".into(), json!(self.parameters));
        }
        if !self.conditions.is_empty() {
            doc.insert("Conditions".into(), json!(self.conditions));
        }
        let resources: Map<String, Value> =
            self.resources.iter().map(|(id, r)| (id.to_string(), resource_json(r))).collect();
        doc.insert("Resources".into(), Value::Object(resources));
        if !self.outputs.is_empty() {
            let outputs: Map<String, Value> = self
                .outputs
                .iter()
                .map(|(id, o)| {
                    let mut out = json!({ "Description": o.description, "Value": o.value });
                    if let Some(export) = &o.export {
                        out["Export"] = json!({ "Name": export });
                    }
                    (id.to_string(), out)
                })
                .collect();
            doc.insert("Outputs".into(), Value::Object(outputs));
        }
        Value::Object(doc)
    }

    /// Rejects what the types cannot: duplicate or malformed logical ids, references to
    /// things that are not in the template, unused parameters, CloudFormation quotas.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut problems = Problems::default();
        for message in &self.duplicates {
            problems.add("template", message.clone());
        }
        for (kind, count, max) in [
            ("resources", self.resources.len(), MAX_RESOURCES),
            ("parameters", self.parameters.len(), MAX_PARAMETERS),
            ("outputs", self.outputs.len(), MAX_OUTPUTS),
        ] {
            if count > max {
                problems.add("template", format!("{count} {kind}; CloudFormation allows at most {max}"));
            }
        }
        let ids = self
            .parameters
            .keys()
            .chain(self.resources.keys())
            .chain(self.conditions.keys())
            .chain(self.outputs.keys());
        for id in ids {
            let s = id.as_str();
            if s.is_empty() || s.len() > 255 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.add(format!("`{s}`"), "logical ids must be 1-255 ASCII letters and digits");
            }
        }

        let scope = Scope {
            resources: self.resources.keys().map(LogicalId::as_str).collect(),
            parameters: self.parameters.keys().map(LogicalId::as_str).collect(),
            conditions: self.conditions.keys().map(LogicalId::as_str).collect(),
        };
        let mut used = BTreeSet::new();
        let mut check = |location: String, value: &Value, problems: &mut Problems| {
            scope.check(&location, value, &mut used, problems);
        };
        for (id, c) in &self.conditions {
            check(format!("Conditions/{id}"), &c.to_json(), &mut problems);
        }
        for (id, r) in &self.resources {
            let base = format!("Resources/{id}");
            check(format!("{base}/Properties"), &r.properties, &mut problems);
            for dep in &r.attributes.depends_on {
                if !scope.resources.contains(dep.as_str()) {
                    let m = format!("DependsOn `{dep}`, which is not a resource of this template");
                    problems.add(format!("{base}/DependsOn"), m);
                }
            }
            if let Some(c) = &r.attributes.condition {
                check(format!("{base}/Condition"), &json!({ "Condition": c }), &mut problems);
            }
        }
        for (id, o) in &self.outputs {
            check(format!("Outputs/{id}/Value"), &o.value.to_json(), &mut problems);
            if let Some(e) = &o.export {
                check(format!("Outputs/{id}/Export"), &e.to_json(), &mut problems);
            }
        }
        for id in self.parameters.keys() {
            if !used.contains(id.as_str()) {
                problems.add(format!("Parameters/{id}"), "is never used; remove it or reference it");
            }
        }
        if problems.0.is_empty() { Ok(()) } else { Err(ValidationError(problems.0)) }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { location: location.into(), message: message.into() });
    }
}

fn resource_json(r: &ResourceEntry) -> Value {
    let mut out = Map::new();
    out.insert("Type".into(), json!(r.type_name));
    let a = &r.attributes;
    if let Some(c) = &a.condition {
        out.insert("Condition".into(), json!(c));
    }
    if !a.depends_on.is_empty() {
        out.insert("DependsOn".into(), json!(a.depends_on));
    }
    if let Some(p) = a.deletion_policy {
        out.insert("DeletionPolicy".into(), json!(p));
    }
    if let Some(p) = a.update_replace_policy {
        out.insert("UpdateReplacePolicy".into(), json!(p));
    }
    if !a.checkov_skips.is_empty() {
        let skips: Vec<Value> = a.checkov_skips.iter().map(|(id, why)| json!({ "id": id, "comment": why })).collect();
        out.insert("Metadata".into(), json!({ "checkov": { "skip": skips } }));
    }
    if r.properties.as_object().is_some_and(|p| !p.is_empty()) {
        out.insert("Properties".into(), r.properties.clone());
    }
    Value::Object(out)
}

/// The names a reference may point at.
struct Scope<'a> {
    resources: BTreeSet<&'a str>,
    parameters: BTreeSet<&'a str>,
    conditions: BTreeSet<&'a str>,
}

impl Scope<'_> {
    fn check(&self, location: &str, value: &Value, used: &mut BTreeSet<String>, problems: &mut Problems) {
        match value {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.check(&format!("{location}/{i}"), v, used, problems);
                }
            }
            Value::Object(map) => {
                if map.len() == 1 {
                    let (key, arg) = map.iter().next().expect("one entry");
                    if self.check_intrinsic(location, key, arg, used, problems) {
                        return;
                    }
                }
                for (k, v) in map {
                    self.check(&format!("{location}/{k}"), v, used, problems);
                }
            }
            _ => {}
        }
    }

    /// Checks one intrinsic; false when `key` is not one whose target needs checking.
    fn check_intrinsic(
        &self,
        location: &str,
        key: &str,
        arg: &Value,
        used: &mut BTreeSet<String>,
        problems: &mut Problems,
    ) -> bool {
        match (key, arg) {
            ("Ref", Value::String(name)) => {
                self.check_name(location, "Ref", name, true, used, problems);
                true
            }
            ("Fn::GetAtt", Value::Array(parts)) => {
                match parts.first() {
                    Some(Value::String(name)) if self.resources.contains(name.as_str()) => {}
                    Some(Value::String(name)) => problems
                        .add(location, format!("Fn::GetAtt on `{name}`, which is not a resource of this template")),
                    _ => problems.add(location, "Fn::GetAtt needs [resource, attribute]"),
                }
                true
            }
            ("Fn::Sub", Value::String(text)) => {
                self.check_sub(location, text, &BTreeSet::new(), used, problems);
                true
            }
            ("Fn::Sub", Value::Array(parts)) => {
                let vars = parts.get(1).and_then(Value::as_object);
                let names: BTreeSet<&str> = vars.map(|v| v.keys().map(String::as_str).collect()).unwrap_or_default();
                if let Some(Value::String(text)) = parts.first() {
                    self.check_sub(location, text, &names, used, problems);
                }
                if let Some(vars) = vars {
                    for (k, v) in vars {
                        self.check(&format!("{location}/Fn::Sub/{k}"), v, used, problems);
                    }
                }
                true
            }
            ("Condition", _) | ("Fn::If", _) => {
                let name = match arg {
                    Value::String(n) => Some(n.as_str()),
                    Value::Array(parts) => parts.first().and_then(Value::as_str),
                    _ => None,
                };
                match name {
                    Some(n) if self.conditions.contains(n) => {}
                    Some(n) => {
                        problems.add(location, format!("{key} names `{n}`, which is not a condition of this template"))
                    }
                    None => problems.add(location, format!("{key} needs a condition name")),
                }
                if let (Value::Array(parts), "Fn::If") = (arg, key) {
                    for (i, v) in parts.iter().enumerate().skip(1) {
                        self.check(&format!("{location}/Fn::If/{i}"), v, used, problems);
                    }
                }
                true
            }
            _ => false,
        }
    }

    fn check_sub(
        &self,
        location: &str,
        text: &str,
        local: &BTreeSet<&str>,
        used: &mut BTreeSet<String>,
        problems: &mut Problems,
    ) {
        for var in sub_variables(text) {
            let (name, attr) = match var.split_once('.') {
                Some((n, a)) => (n, Some(a)),
                None => (var, None),
            };
            if local.contains(var) {
                continue;
            }
            self.check_name(location, "Fn::Sub", name, attr.is_none(), used, problems);
        }
    }

    fn check_name(
        &self,
        location: &str,
        function: &str,
        name: &str,
        parameters_allowed: bool,
        used: &mut BTreeSet<String>,
        problems: &mut Problems,
    ) {
        if Pseudo::ALL.iter().any(|p| p.name() == name) || self.resources.contains(name) {
            return;
        }
        if parameters_allowed && self.parameters.contains(name) {
            used.insert(name.to_owned());
            return;
        }
        problems.add(
            location,
            format!("{function} to `{name}`, which is not a resource, parameter or pseudo parameter of this template"),
        );
    }
}

/// The `${...}` variables of a `Fn::Sub` string, skipping `${!literal}` escapes.
pub(crate) fn sub_variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var.trim());
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::sns::{Subscription, Topic};

    fn topic() -> Topic {
        Topic { display_name: "t".into(), kms_master_key_id: Expr::str("alias/aws/sns"), tags: vec![] }
    }

    fn problems(t: &Template) -> String {
        t.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_reference_from_another_template_is_rejected_with_its_location() {
        let mut other = Template::new("other");
        let foreign = other.add("ForeignTopic", topic());
        let mut t = Template::new("t");
        t.add("Sub", Subscription { topic_arn: foreign.arn(), protocol: "email", endpoint: "a@b.c".into() });
        let err = problems(&t);
        assert!(err.contains("Resources/Sub/Properties/TopicArn: Ref to `ForeignTopic`"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_reported_not_overwritten_silently() {
        let mut t = Template::new("t");
        t.add("Topic", topic());
        t.add("Topic", topic());
        t.parameter("Topic", Parameter::string("clashes with a resource"));
        let err = problems(&t);
        assert!(err.contains("resource `Topic` is defined more than once"), "{err}");
        assert!(err.contains("parameter `Topic` is defined more than once"), "{err}");
    }

    #[test]
    fn malformed_ids_and_unused_parameters_are_reported() {
        let mut t = Template::new("t");
        t.add("my-topic", topic());
        t.parameter("Unused", Parameter::string("nobody reads me"));
        let err = problems(&t);
        assert!(err.contains("`my-topic`: logical ids must be"), "{err}");
        assert!(err.contains("Parameters/Unused: is never used"), "{err}");
    }

    #[test]
    fn sub_getatt_condition_and_depends_on_targets_must_exist() {
        let mut t = Template::new("t");
        let email = t.parameter("Email", Parameter::string("used"));
        let mut stray = Template::new("stray");
        let stray_topic = stray.add("Stray", topic());
        let stray_condition = stray.condition("StrayCondition", Expr::equals("a".into(), "b".into()));
        t.add_with(
            "Sub",
            Subscription {
                topic_arn: Expr::sub("arn:${AWS::Partition}:sns:${Missing}:${Email}"),
                protocol: "email",
                endpoint: stray_condition.choose(email.as_ref(), Expr::GetAtt(LogicalId::new("Email"), "Arn".into())),
            },
            Attributes::default().depends_on(&stray_topic).when(&stray_condition),
        );
        let err = problems(&t);
        assert!(err.contains("Fn::Sub to `Missing`"), "{err}");
        assert!(!err.contains("`AWS::Partition`"), "{err}");
        assert!(err.contains("Fn::If names `StrayCondition`"), "{err}");
        assert!(err.contains("Fn::GetAtt on `Email`, which is not a resource"), "{err}");
        assert!(err.contains("Resources/Sub/DependsOn: DependsOn `Stray`"), "{err}");
        assert!(err.contains("Resources/Sub/Condition: Condition names `StrayCondition`"), "{err}");
        assert!(!err.contains("Parameters/Email"), "the parameter is used through Sub and If: {err}");
    }

    #[test]
    fn a_valid_template_serializes_attributes() {
        let mut t = Template::new("t");
        let email = t.parameter("Email", Parameter::string("who").with_default(""));
        let has = t.condition("HasEmail", !Expr::equals(email.as_ref(), "".into()));
        let topic = t.add_with("Topic", topic(), Attributes::default().skip_check("CKV_X", "because"));
        t.add_with(
            "Sub",
            Subscription { topic_arn: topic.arn(), protocol: "email", endpoint: email.as_ref() },
            Attributes::default().when(&has).depends_on(&topic).snapshot_on_delete(),
        );
        t.validate().unwrap();
        let doc = t.to_json();
        let sub = &doc["Resources"]["Sub"];
        assert_eq!(sub["Condition"], "HasEmail");
        assert_eq!(sub["DependsOn"], json!(["Topic"]));
        assert_eq!(sub["DeletionPolicy"], "Snapshot");
        assert_eq!(doc["Resources"]["Topic"]["Metadata"]["checkov"]["skip"][0]["comment"], "because");
    }

    #[test]
    fn sub_variables_skip_escapes() {
        assert_eq!(sub_variables("${A}-${!Literal}-${B.Arn}"), vec!["A", "B.Arn"]);
    }
}
