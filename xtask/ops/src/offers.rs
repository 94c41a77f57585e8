//! What the region offers, checked before a deploy builds or uploads anything: read-only
//! calls whose answers would otherwise surface ten minutes into the stack's creation, as a
//! failed resource. Each mistake is one line naming the configuration key to change.

use crate::aws::{Aws, Explain};
use anyhow::{Result, bail};
use aws_sdk_rds::types::DbEngineVersion;
use stack::app::Config;
use stack::app::config::NetworkMode;
use stack::constructs::database::{ClusterProps, DatabaseProps};

/// An Availability Zone: its name in this account (`us-east-1a`) and its id (`use1-az1`).
type ZoneName = (String, String);

/// The Aurora engine the stack creates its cluster with.
const ENGINE: &str = "aurora-postgresql";

/// Everything this module checks for `config`'s stack.
pub async fn check(aws: &Aws, config: &Config) -> Result<()> {
    if let DatabaseProps::Create(cluster) = &config.database {
        let offered = aws
            .rds()
            .describe_db_engine_versions()
            .engine(ENGINE)
            .engine_version(&cluster.engine_version)
            .send()
            .await
            .doing(format!("asking {} for Aurora PostgreSQL {}", aws.region, cluster.engine_version))?;
        if let Some(problem) = engine_problem(cluster, &aws.region, offered.db_engine_versions()) {
            bail!("{problem}");
        }
    }
    let (key, chosen, all) = function_zones(aws, config).await?;
    if let Some(lambda) = lambda_zones(aws).await?
        && let Some(problem) = zone_problem(key, &chosen, &lambda, &all)
    {
        bail!("{problem}");
    }
    Ok(())
}

/// The key that chooses the functions' zones, those zones, and all of the region's.
async fn function_zones(aws: &Aws, config: &Config) -> Result<(&'static str, Vec<ZoneName>, Vec<ZoneName>)> {
    let answer = aws.ec2().describe_availability_zones().send().await.doing("listing the Availability Zones")?;
    let mut all: Vec<ZoneName> = answer
        .availability_zones()
        .iter()
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter_map(|z| Some((z.zone_name()?.to_owned(), z.zone_id()?.to_owned())))
        .collect();
    all.sort();
    let net = &config.network;
    Ok(match net.mode {
        NetworkMode::Create if net.availability_zone_ids.is_empty() => {
            // Fn::GetAZs, which the template then uses, lists the zones by name.
            ("network.availability_zone_ids", all.iter().take(2).cloned().collect(), all)
        }
        NetworkMode::Create => {
            let mut chosen = Vec::new();
            for id in &net.availability_zone_ids {
                match all.iter().find(|(_, zone)| zone == id) {
                    Some(z) => chosen.push(z.clone()),
                    None => bail!(
                        "network.availability_zone_ids: {id} is not a zone of {} (its zones: {})",
                        aws.region,
                        all.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
            }
            ("network.availability_zone_ids", chosen, all)
        }
        NetworkMode::Existing => {
            let subnets = aws
                .ec2()
                .describe_subnets()
                .set_subnet_ids(Some(net.private_subnet_ids.clone()))
                .send()
                .await
                .doing(format!("looking up network.private_subnet_ids {:?}", net.private_subnet_ids))?;
            let chosen = subnets
                .subnets()
                .iter()
                .filter_map(|s| Some((s.availability_zone()?.to_owned(), s.availability_zone_id()?.to_owned())))
                .collect();
            ("network.private_subnet_ids", chosen, all)
        }
    })
}

/// The zone names where Lambda runs in this account, as its interface endpoint service
/// lists them; `None` when the region does not say.
async fn lambda_zones(aws: &Aws) -> Result<Option<Vec<String>>> {
    let service = format!("com.amazonaws.{}.lambda", aws.region);
    let answer = aws.ec2().describe_vpc_endpoint_services().service_names(&service).send().await;
    let Ok(answer) = answer else { return Ok(None) };
    let zones = answer
        .service_details()
        .iter()
        .find(|d| d.service_name() == Some(service.as_str()))
        .map(|d| d.availability_zones().to_vec());
    Ok(zones.filter(|z| !z.is_empty()))
}

/// Why the functions could not run in the `chosen` zones, if one of them lacks Lambda.
fn zone_problem(key: &str, chosen: &[ZoneName], lambda: &[String], all: &[ZoneName]) -> Option<String> {
    let (name, id) = chosen.iter().find(|(name, _)| !lambda.contains(name))?;
    let usable: Vec<&str> = all.iter().filter(|(n, _)| lambda.contains(n)).map(|(_, id)| id.as_str()).collect();
    let fix = if key == "network.private_subnet_ids" {
        format!("use private subnets in zones where it runs: {}", usable.join(", "))
    } else {
        format!("set network.availability_zone_ids to two of {}", usable.join(", "))
    };
    Some(format!("{key}: Lambda cannot run in {name} ({id}), where the functions' subnets would be; {fix}"))
}

/// Why the cluster of `cluster` cannot be made with what the region answered for its
/// engine version, if it cannot.
fn engine_problem(cluster: &ClusterProps, region: &str, offered: &[DbEngineVersion]) -> Option<String> {
    let version = &cluster.engine_version;
    let Some(engine) = offered.iter().find(|e| e.engine_version() == Some(version.as_str())) else {
        return Some(format!(
            "database.engine_version: Aurora PostgreSQL {version} is not offered in {region} (`aws rds describe-db-engine-versions --engine {ENGINE}` lists those that are); choose one of them"
        ));
    };
    let lowest = engine.serverless_v2_features_support().and_then(|s| s.min_capacity());
    match lowest {
        Some(lowest) if cluster.min_capacity < lowest => Some(format!(
            "database.min_capacity: {} is below the {lowest} ACU that Aurora PostgreSQL {version} scales down to in {region} ({}); raise database.engine_version to one that pauses at 0, or database.min_capacity to {lowest}",
            cluster.min_capacity,
            if cluster.min_capacity == 0.0 { "pausing at 0 needs a newer minor version" } else { "its floor" }
        )),
        // No range in the answer: nothing known to refuse.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::ServerlessV2FeaturesSupport;

    fn cluster(version: &str, min_capacity: f64) -> ClusterProps {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let config = stack::app::envs::load(&root, "dev", &[]).unwrap();
        let DatabaseProps::Create(mut c) = config.database else { panic!("dev creates its cluster") };
        c.engine_version = version.into();
        c.min_capacity = min_capacity;
        c
    }

    /// As DescribeDBEngineVersions answers: the version and its Serverless v2 range.
    fn offered(version: &str, lowest: Option<f64>) -> DbEngineVersion {
        let range = lowest.map(|l| ServerlessV2FeaturesSupport::builder().min_capacity(l).max_capacity(256.0).build());
        DbEngineVersion::builder()
            .engine(ENGINE)
            .engine_version(version)
            .set_serverless_v2_features_support(range)
            .build()
    }

    #[test]
    fn a_zone_without_lambda_names_the_key_and_the_zones_to_use() {
        let zone = |n: &str, id: &str| (n.to_owned(), id.to_owned());
        let all = [zone("us-east-1a", "use1-az2"), zone("us-east-1b", "use1-az3"), zone("us-east-1c", "use1-az1")];
        let lambda: Vec<String> = ["us-east-1a", "us-east-1c"].map(str::to_owned).to_vec();
        let first_two = &all[..2];
        let problem = zone_problem("network.availability_zone_ids", first_two, &lambda, &all).unwrap();
        assert_eq!(
            problem,
            "network.availability_zone_ids: Lambda cannot run in us-east-1b (use1-az3), where the functions' subnets would be; set network.availability_zone_ids to two of use1-az2, use1-az1"
        );
        let subnets = zone_problem("network.private_subnet_ids", &all[1..2], &lambda, &all).unwrap();
        assert!(subnets.ends_with("use private subnets in zones where it runs: use1-az2, use1-az1"), "{subnets}");
        assert_eq!(
            zone_problem("network.availability_zone_ids", &[all[0].clone(), all[2].clone()], &lambda, &all),
            None
        );
    }

    #[test]
    fn a_version_the_region_lacks_or_that_cannot_pause_names_the_key() {
        let none = engine_problem(&cluster("17.7", 0.0), "us-east-1", &[]).unwrap();
        assert!(
            none.starts_with("database.engine_version: Aurora PostgreSQL 17.7 is not offered in us-east-1"),
            "{none}"
        );

        let old = [offered("15.4", Some(0.5))];
        let floor = engine_problem(&cluster("15.4", 0.0), "us-east-1", &old).unwrap();
        assert!(floor.starts_with("database.min_capacity: 0 is below the 0.5 ACU"), "{floor}");
        assert!(floor.contains("pausing at 0 needs a newer minor version"), "{floor}");
        assert_eq!(engine_problem(&cluster("15.4", 0.5), "us-east-1", &old), None, "0.5 is its floor");

        let current = [offered("17.7", Some(0.0))];
        assert_eq!(engine_problem(&cluster("17.7", 0.0), "us-east-1", &current), None);
        let unknown = [offered("17.7", None)];
        assert_eq!(engine_problem(&cluster("17.7", 0.0), "us-east-1", &unknown), None, "no range: nothing known");
    }
}
