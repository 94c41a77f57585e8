//! The review summary synth prints: what an operator checks before deploying.

use serde_json::Value;
use stack::app::{Config, Synthesized};
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn render(config: &Config, synthesized: &Synthesized) -> String {
    let doc = synthesized.template.to_json();
    let mut out = String::new();
    let empty = serde_json::Map::new();
    let section = |key: &str| doc.get(key).and_then(Value::as_object).unwrap_or(&empty);
    let resources = section("Resources");

    let _ = writeln!(out, "stack {} ({} resources), region {}", config.stack_name, resources.len(), config.region);
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for r in resources.values() {
        *by_type.entry(r["Type"].as_str().unwrap_or("?")).or_default() += 1;
    }
    let _ = writeln!(out, "\nresources by type:");
    for (kind, n) in &by_type {
        let _ = writeln!(out, "  {n:>3}  {kind}");
    }

    let _ = writeln!(out, "\nparameters:");
    for (id, p) in section("Parameters") {
        let default = p.get("Default").map(|d| format!(" (default {d})")).unwrap_or_else(|| " (required)".into());
        let _ = writeln!(out, "  {id}{default}");
    }
    let _ = writeln!(out, "\noutputs:");
    for (id, o) in section("Outputs") {
        let _ = writeln!(out, "  {id} = {}", short(&o["Value"]));
    }

    let _ = writeln!(out, "\npermissions by role:");
    for (id, r) in resources.iter().filter(|(_, r)| r["Type"] == "AWS::IAM::Role") {
        let props = &r["Properties"];
        let principals: Vec<String> = statements(&props["AssumeRolePolicyDocument"])
            .flat_map(|s| s["Principal"]["Service"].as_array().cloned().unwrap_or_default())
            .map(|p| short(&p))
            .collect();
        let _ = writeln!(out, "  {id} (assumed by {})", principals.join(", "));
        for arn in props["ManagedPolicyArns"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "    managed policy {}", short(arn).rsplit('/').next().unwrap_or_default());
        }
        for policy in props["Policies"].as_array().into_iter().flatten() {
            for s in statements(&policy["PolicyDocument"]) {
                let actions: Vec<String> = list(&s["Action"]).iter().map(short).collect();
                let on: Vec<String> = list(&s["Resource"]).iter().map(short).collect();
                let when = if s.get("Condition").is_some() { " (with condition)" } else { "" };
                let _ = writeln!(out, "    {} on {}{when}", actions.join(", "), on.join(", "));
            }
        }
    }
    let _ = writeln!(out, "\n{}", stack::app::cost::idle_line(config));
    out
}

fn statements(doc: &Value) -> impl Iterator<Item = &Value> {
    doc["Statement"].as_array().into_iter().flatten()
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

/// A CloudFormation value in one short line: `Ref` as the id, `GetAtt` as `Id.Attr`,
/// `Sub` as its text, `Join` as the joined parts.
pub fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => {
            let (k, arg) = map.iter().next().expect("one entry");
            match (k.as_str(), arg) {
                ("Ref", Value::String(id)) => id.clone(),
                ("Fn::GetAtt", Value::Array(parts)) => parts.iter().map(short).collect::<Vec<_>>().join("."),
                ("Fn::Sub", Value::String(s)) => s.clone(),
                ("Fn::Sub", Value::Array(parts)) => parts.first().map(short).unwrap_or_default(),
                ("Fn::Join", Value::Array(parts)) => {
                    let sep = parts.first().and_then(Value::as_str).unwrap_or_default();
                    list(parts.get(1).unwrap_or(&Value::Null)).iter().map(short).collect::<Vec<_>>().join(sep)
                }
                _ => v.to_string(),
            }
        }
        other => other.to_string(),
    }
}
