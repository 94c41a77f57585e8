//! On-demand NAT instances (`network.nat = "instance-on-demand"`), started before a deploy
//! (the database bootstrap reaches Secrets Manager and CloudFormation through them, and they
//! may have stopped themselves since the last run), by `run`, whose first step waits for
//! them, and before each call of a `restore` into the stack's database (the function reads its
//! secret through them when it starts cold).

use crate::aws::{Aws, Explain};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// How long they are given to boot and say they forward (their ready tag).
const READY_WITHIN: Duration = Duration::from_secs(300);

/// The stack's NAT instances (none with gateways or an existing VPC).
async fn instances(aws: &Aws, stack: &str) -> Result<Vec<String>> {
    let resources = crate::stacks::resources(aws, stack).await?;
    let nat = stack::constructs::network::nat_id(stack::app::NETWORK_ID);
    Ok((0..2).filter_map(|i| resources.get(&stack::constructs::nat::instance_id(&nat, i)).cloned()).collect())
}

/// Starts the stack's on-demand NAT instances without waiting: the run's first step
/// (`WakeNat`) starts them too and waits until they forward, so this only gains it the
/// seconds `run` takes to start the execution. A failure is a note: that step reports it.
pub async fn start(aws: &Aws, stack: &str) {
    let ids = match instances(aws, stack).await {
        Ok(ids) if !ids.is_empty() => ids,
        Ok(_) => return,
        Err(e) => return eprintln!("note: looking for the NAT instance(s): {e:#} (the run starts them itself)"),
    };
    match aws.ec2().start_instances().set_instance_ids(Some(ids.clone())).send().await {
        Ok(_) => println!("starting NAT instance(s) {}: the run waits until they forward", ids.join(", ")),
        Err(e) => eprintln!(
            "note: starting the NAT instance(s) {}: {} (the run starts them itself)",
            ids.join(", "),
            crate::aws::explain(&e)
        ),
    }
}

/// Starts the stack's on-demand NAT instances, if it has any, and waits until each runs with
/// its ready tag; says so when they were not forwarding at first.
pub async fn wake(aws: &Aws, stack: &str) -> Result<()> {
    let ids = instances(aws, stack).await?;
    if ids.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut woken = false;
    loop {
        // Started again at each look: one on its way down when this began comes back up
        // (until it has stopped, EC2 refuses, which is no answer yet).
        let start = aws.ec2().start_instances().set_instance_ids(Some(ids.clone())).send().await;
        if let Err(e) = &start {
            eprintln!("note: starting the NAT instance(s): {} (trying again)", crate::aws::explain(e));
        }
        if ready(aws, &ids).await? == ids.len() {
            // Said only when they were not forwarding already.
            if woken {
                println!("NAT instance(s) {} forwarding ({:.0} s)", ids.join(", "), started.elapsed().as_secs_f64());
            }
            return Ok(());
        }
        woken = true;
        if started.elapsed() > READY_WITHIN {
            start.doing(format!("starting the NAT instance(s) {}", ids.join(", ")))?;
            bail!(
                "the NAT instance(s) {} did not start forwarding within {} minutes: see the instance's system log (EC2 console, Actions, Monitor and troubleshoot, Get system log), then deploy again",
                ids.join(", "),
                READY_WITHIN.as_secs() / 60
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// How many of `ids` run with their ready tag set.
async fn ready(aws: &Aws, ids: &[String]) -> Result<usize> {
    use aws_sdk_ec2::types::Filter;
    let found = aws
        .ec2()
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .filters(Filter::builder().name(format!("tag:{}", stack::constructs::nat::READY_TAG)).values("yes").build())
        .filters(Filter::builder().name("instance-state-name").values("running").build())
        .send()
        .await
        .doing("looking at the NAT instance(s)")?;
    Ok(found.reservations().iter().map(|r| r.instances().len()).sum())
}
