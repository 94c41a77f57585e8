//! What CloudFormation says about the environment's stack.

use crate::aws::{Aws, Explain, explain};
use anyhow::Result;

/// The type CloudFormation gives the stack itself in its events (no resource of the template).
pub const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

#[derive(Debug, Clone)]
pub struct StackInfo {
    pub id: String,
    pub status: String,
    pub parameters: Vec<(String, String)>,
    /// Key, value.
    pub outputs: Vec<(String, String)>,
}

impl StackInfo {
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The stack named `name`, or `None` when there is none (a deleted one included).
pub async fn describe(aws: &Aws, name: &str) -> Result<Option<StackInfo>> {
    match aws.cloudformation().describe_stacks().stack_name(name).send().await {
        Ok(d) => Ok(d
            .stacks()
            .first()
            .filter(|s| s.stack_status().is_some_and(|st| st.as_str() != "DELETE_COMPLETE"))
            .map(|s| StackInfo {
                id: s.stack_id().unwrap_or(name).to_owned(),
                status: s.stack_status().map(|st| st.as_str().to_owned()).unwrap_or_default(),
                parameters: s
                    .parameters()
                    .iter()
                    .map(|p| {
                        (
                            p.parameter_key().unwrap_or_default().to_owned(),
                            p.parameter_value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                outputs: s
                    .outputs()
                    .iter()
                    .map(|o| {
                        (o.output_key().unwrap_or_default().to_owned(), o.output_value().unwrap_or_default().to_owned())
                    })
                    .collect(),
            })),
        Err(e) if explain(&e).contains("does not exist") => Ok(None),
        Err(e) => Err(e).doing(format!("looking for stack {name} in {}", aws.region)),
    }
}

/// The stack's resources: logical id -> physical id (those that have one).
pub async fn resources(aws: &Aws, stack: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut found = std::collections::BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .cloudformation()
            .list_stack_resources()
            .stack_name(stack)
            .set_next_token(next)
            .send()
            .await
            .doing(format!("listing the resources of {stack}"))?;
        for r in page.stack_resource_summaries() {
            if let (Some(logical), Some(physical)) =
                (r.logical_resource_id(), r.physical_resource_id().filter(|p| !p.is_empty()))
            {
                found.insert(logical.to_owned(), physical.to_owned());
            }
        }
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok(found);
        }
    }
}

/// The reason of the first failed resource, for a stack that rolled back.
pub async fn first_failure(aws: &Aws, stack: &str) -> Option<String> {
    // Newest first: read them all (a few pages for one stack) and take the oldest failure.
    let mut events = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..50 {
        let page =
            aws.cloudformation().describe_stack_events().stack_name(stack).set_next_token(next).send().await.ok()?;
        events.extend(page.stack_events().iter().cloned());
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    events
        .iter()
        .rev()
        .find(|e| {
            e.resource_status().is_some_and(|s| s.as_str().ends_with("_FAILED"))
                && !e.resource_status_reason().unwrap_or_default().contains("cancelled")
                && e.resource_type() != Some(STACK_TYPE)
        })
        .map(|e| {
            format!(
                "{} ({}): {}",
                e.logical_resource_id().unwrap_or_default(),
                e.resource_type().unwrap_or_default(),
                e.resource_status_reason().unwrap_or_default()
            )
        })
}
