//! Change sets: made for every deploy and diff, shown before anything happens. Replacements
//! are loud, above all of what holds the data (the database cluster, its KMS key, the VPC);
//! statements and network rules that widen access are listed from the two templates.

use crate::aws::{Aws, Explain};
use anyhow::{Result, bail};
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Parameter};
use serde_json::Value;
use stack::resources::Resource;
use stack::resources::ec2::{SecurityGroup, SecurityGroupEgress, SecurityGroupIngress, Vpc};
use stack::resources::iam::Role;
use stack::resources::kms::Key;
use stack::resources::rds::{DbCluster, DbInstance};
use stack::resources::s3::BucketPolicy;
use stack::resources::sns::TopicPolicy;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// Where the template goes: inline, or an S3 URL when it is too large for that.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    Body(String),
    Url(String),
}

/// One resource the change set touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `Conditional` or `False` for a modification.
    pub replacement: Option<String>,
    /// What changes: `Properties`, `Tags`, ...
    pub scope: Vec<String>,
}

impl Change {
    fn replaces(&self) -> bool {
        self.replacement.as_deref() == Some("True")
    }

    fn may_replace(&self) -> bool {
        self.replacement.as_deref() == Some("Conditional")
    }
}

/// A change set ready to run, or nothing to do.
#[derive(Debug)]
pub enum Prepared {
    NoChanges,
    Ready { stack_id: String, changes: Vec<Change> },
}

/// Resources whose replacement or removal loses the replica's data or takes it offline.
const DATA_HOLDERS: [(&str, &str); 4] = [
    (DbCluster::TYPE, "the replica's data: a new, empty cluster is made"),
    (DbInstance::TYPE, "the database is offline until the new instance is up"),
    (Key::TYPE, "the key that encrypts the database and its snapshots"),
    (Vpc::TYPE, "the network everything runs in: every subnet, group and function is remade"),
];

/// How CloudFormation says a change set would change nothing.
const NO_CHANGES: [&str; 2] = ["didn't contain changes", "No updates are to be performed"];

/// Creates change set `name` and waits for CloudFormation to work it out.
pub async fn create(
    aws: &Aws,
    stack: &str,
    name: &str,
    kind: ChangeSetType,
    template: &TemplateSource,
    parameters: Vec<Parameter>,
) -> Result<Prepared> {
    let cfn = aws.cloudformation();
    let mut request = cfn
        .create_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .change_set_type(kind)
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .description("cd2-aws deploy")
        .tags(aws_sdk_cloudformation::types::Tag::builder().key("cd2-aws:stack").value(stack).build());
    request = match template {
        TemplateSource::Body(body) => request.template_body(body),
        TemplateSource::Url(url) => request.template_url(url),
    };
    let made = match request.send().await {
        Ok(made) => made,
        // Said at once by some endpoints instead of through a FAILED change set.
        Err(e) if crate::aws::explain(&e).contains(NO_CHANGES[1]) => return Ok(Prepared::NoChanges),
        Err(e) => return Err(e).doing(format!("creating a change set for {stack}")),
    };
    let stack_id = made.stack_id().unwrap_or(stack).to_owned();
    let mut changes = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let d = cfn
            .describe_change_set()
            .stack_name(&stack_id)
            .change_set_name(name)
            .set_next_token(next.clone())
            .send()
            .await
            .doing(format!("reading change set {name}"))?;
        match d.status() {
            Some(ChangeSetStatus::CreateComplete) => {
                changes.extend(d.changes().iter().filter_map(|c| c.resource_change()).map(|r| Change {
                    action: r.action().map(|a| a.as_str().to_owned()).unwrap_or_default(),
                    logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: r.resource_type().unwrap_or_default().to_owned(),
                    replacement: r.replacement().map(|x| x.as_str().to_owned()),
                    scope: r.scope().iter().map(|s| s.as_str().to_owned()).collect(),
                }));
                next = d.next_token().map(str::to_owned);
                if next.is_none() {
                    return Ok(Prepared::Ready { stack_id, changes });
                }
            }
            Some(ChangeSetStatus::Failed) => {
                let reason = d.status_reason().unwrap_or_default();
                abandon(aws, &stack_id, name).await;
                if NO_CHANGES.iter().any(|n| reason.contains(n)) {
                    return Ok(Prepared::NoChanges);
                }
                bail!("CloudFormation refused the change set for {stack}: {reason}");
            }
            _ => tokio::time::sleep(Duration::from_millis(750)).await,
        }
    }
}

/// Drops a change set that will not run (a diff, a deploy not confirmed or that failed
/// before executing it), and the empty `REVIEW_IN_PROGRESS` stack a first change set
/// makes, so nothing is left behind. Best effort: the caller has its own answer to give.
pub async fn abandon(aws: &Aws, stack_id: &str, name: &str) {
    let cfn = aws.cloudformation();
    if let Err(e) = cfn.delete_change_set().stack_name(stack_id).change_set_name(name).send().await {
        eprintln!("warning: change set {name} could not be deleted: {}", crate::aws::explain(&e));
    }
    let empty = cfn.describe_stacks().stack_name(stack_id).send().await.is_ok_and(|d| {
        d.stacks().first().and_then(|s| s.stack_status()).is_some_and(|s| s.as_str() == "REVIEW_IN_PROGRESS")
    });
    if empty && let Err(e) = cfn.delete_stack().stack_name(stack_id).send().await {
        eprintln!("warning: the empty stack {stack_id} could not be deleted: {}", crate::aws::explain(&e));
    }
}

/// The report: warnings first, then every change, then access that widens.
pub fn report(changes: &[Change], old: Option<&Value>, new: &Value) -> String {
    let mut out = String::new();
    // Every replacement is loud; what holds the data first, and its removal too.
    let holds_data = |c: &Change| DATA_HOLDERS.iter().any(|(t, _)| *t == c.resource_type);
    let mut loud: Vec<&Change> =
        changes.iter().filter(|c| c.replaces() || c.may_replace() || (c.action == "Remove" && holds_data(c))).collect();
    loud.sort_by_key(|c| !holds_data(c));
    for c in &loud {
        let why = DATA_HOLDERS
            .iter()
            .find(|(t, _)| *t == c.resource_type)
            .map_or("a new one is made and the old one deleted", |(_, w)| *w);
        let what = match (c.action.as_str(), c.replaces()) {
            ("Remove", _) => "REMOVES",
            (_, true) => "REPLACES",
            _ => "MAY REPLACE",
        };
        let _ = writeln!(out, "!!! {what} {} ({}): {why}", c.logical_id, c.resource_type);
    }
    if !loud.is_empty() {
        out.push('\n');
    }
    let (mut added, mut modified, mut removed) = (0, 0, 0);
    for c in changes {
        let mark = match c.action.as_str() {
            "Add" => {
                added += 1;
                "+"
            }
            "Remove" => {
                removed += 1;
                "-"
            }
            _ => {
                modified += 1;
                "~"
            }
        };
        let replacement = match c.replacement.as_deref() {
            Some("True") => "  REPLACED",
            Some("Conditional") => "  may be replaced",
            _ => "",
        };
        let scope = if c.scope.is_empty() || c.action != "Modify" {
            String::new()
        } else {
            format!("  ({})", c.scope.join(", ").to_lowercase())
        };
        let _ = writeln!(out, "  {mark} {:<52} {}{scope}{replacement}", c.logical_id, c.resource_type);
    }
    let _ = writeln!(out, "{added} to add, {modified} to change, {removed} to remove");
    let wider = widened(old, new);
    if !wider.is_empty() {
        let _ = writeln!(out, "\naccess that widens:");
        for line in wider {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// IAM statements and security-group rules in `new` that `old` does not have.
pub fn widened(old: Option<&Value>, new: &Value) -> Vec<String> {
    let before = access(old.unwrap_or(&Value::Null));
    access(new).difference(&before).cloned().collect()
}

/// Every grant of a template, one line each: a role's statement (actions on resources,
/// with conditions) or a network rule.
fn access(template: &Value) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    let Some(resources) = template["Resources"].as_object() else { return lines };
    for (id, r) in resources {
        let p = &r["Properties"];
        let kind = r["Type"].as_str().unwrap_or_default();
        if kind == Role::TYPE {
            for policy in p["Policies"].as_array().into_iter().flatten() {
                statements(&mut lines, id, &policy["PolicyDocument"]);
            }
            statements(&mut lines, &format!("{id} trust"), &p["AssumeRolePolicyDocument"]);
            for arn in p["ManagedPolicyArns"].as_array().into_iter().flatten() {
                lines.insert(format!("{id}: managed policy {}", compact(arn)));
            }
        } else if kind == Key::TYPE {
            statements(&mut lines, id, &p["KeyPolicy"]);
        } else if kind == TopicPolicy::TYPE || kind == BucketPolicy::TYPE {
            statements(&mut lines, id, &p["PolicyDocument"]);
        } else if kind == SecurityGroupIngress::TYPE || kind == SecurityGroupEgress::TYPE {
            lines.insert(format!("{id}: {}", rule(kind == SecurityGroupIngress::TYPE, &p["GroupId"], p)));
        } else if kind == SecurityGroup::TYPE {
            for (list, ingress) in [("SecurityGroupIngress", true), ("SecurityGroupEgress", false)] {
                for r in p[list].as_array().into_iter().flatten() {
                    lines.insert(format!("{id}: {}", rule(ingress, &Value::String(id.clone()), r)));
                }
            }
        }
    }
    lines
}

/// One line per statement of a policy document, named `who`.
fn statements(lines: &mut BTreeSet<String>, who: &str, document: &Value) {
    for s in document["Statement"].as_array().into_iter().flatten() {
        let effect = s["Effect"].as_str().unwrap_or("Allow");
        let principal = if s["Principal"].is_null() { String::new() } else { format!(" for {}", s["Principal"]) };
        let condition = if s["Condition"].is_null() { String::new() } else { format!(" when {}", s["Condition"]) };
        lines.insert(format!(
            "{who}: {effect} {} on {}{principal}{condition}",
            compact(&s["Action"]),
            compact(&s["Resource"])
        ));
    }
}

fn rule(ingress: bool, group: &Value, r: &Value) -> String {
    let peer = ["CidrIp", "CidrIpv6", "SourceSecurityGroupId", "DestinationSecurityGroupId", "DestinationPrefixListId"]
        .iter()
        .find_map(|k| r.get(*k).map(compact))
        .unwrap_or_else(|| "?".into());
    let ports = match (r["FromPort"].as_i64(), r["ToPort"].as_i64()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "all ports".into(),
    };
    let protocol = r["IpProtocol"].as_str().unwrap_or("?");
    if ingress {
        format!("{} accepts {protocol} {ports} from {peer}", compact(group))
    } else {
        format!("{} may reach {protocol} {ports} at {peer}", compact(group))
    }
}

/// A value in one short line: strings bare, `Ref`/`GetAtt` as the resource they name.
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(compact).collect::<Vec<_>>().join(", "),
        Value::Object(o) if o.len() == 1 => match o.iter().next() {
            Some((k, x)) if k == "Ref" => compact(x),
            Some((k, Value::Array(a))) if k == "Fn::GetAtt" => a.iter().map(compact).collect::<Vec<_>>().join("."),
            Some((k, x)) if k == "Fn::Sub" => compact(x),
            Some((k, Value::Array(a))) if k == "Fn::Join" && a.len() == 2 => {
                a[1].as_array().into_iter().flatten().map(compact).collect::<Vec<_>>().join("")
            }
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(action: &str, id: &str, kind: &str, replacement: Option<&str>) -> Change {
        Change {
            action: action.into(),
            logical_id: id.into(),
            resource_type: kind.into(),
            replacement: replacement.map(str::to_owned),
            scope: vec!["Properties".into()],
        }
    }

    #[test]
    fn replacing_what_holds_the_data_comes_first_and_loud() {
        let changes = [
            change("Modify", "SyncTable", "AWS::Lambda::Function", Some("False")),
            change("Modify", "DatabaseCluster", "AWS::RDS::DBCluster", Some("True")),
            change("Modify", "DataKey", "AWS::KMS::Key", Some("Conditional")),
            change("Add", "Extra", "AWS::SNS::Topic", None),
        ];
        let text = report(&changes, None, &json!({}));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("!!! REPLACES DatabaseCluster (AWS::RDS::DBCluster): the replica's data"),
            "{text}"
        );
        assert!(lines[1].starts_with("!!! MAY REPLACE DataKey"), "{text}");
        assert!(text.contains("~ SyncTable"), "{text}");
        assert!(text.contains("+ Extra"), "{text}");
        assert!(text.contains("1 to add, 3 to change, 0 to remove"), "{text}");
        let quiet = report(&changes[..1], None, &json!({}));
        assert!(!quiet.contains("!!!"), "{quiet}");
    }

    #[test]
    fn new_statements_and_rules_are_listed_and_unchanged_ones_are_not() {
        let role = |actions: Value| {
            json!({"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": [{"Fn::GetAtt": ["Topic", "Arn"]}]}
            ]}}]}})
        };
        let old = json!({"Resources": {
            "FnRole": role(json!(["sns:Publish"])),
            "In": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
                "GroupId": {"Fn::GetAtt": ["Db", "GroupId"]}, "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                "SourceSecurityGroupId": {"Fn::GetAtt": ["Fns", "GroupId"]}}}
        }});
        let mut new = old.clone();
        new["Resources"]["FnRole"] = role(json!(["sns:Publish", "s3:GetObject"]));
        new["Resources"]["Open"] = json!({"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": "sg-1", "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIp": "0.0.0.0/0"}});
        assert_eq!(
            widened(Some(&old), &new),
            ["FnRole: Allow sns:Publish, s3:GetObject on Topic.Arn", "Open: sg-1 accepts tcp 5432 from 0.0.0.0/0",]
        );
        assert!(widened(Some(&old), &old).is_empty());
    }
}
