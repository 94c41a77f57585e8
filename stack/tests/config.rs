//! Configuration errors name the key and what it accepts.

mod common;

use common::{config, config_error};
use stack::constructs::database::DatabaseProps;

#[test]
fn both_environments_load() {
    let dev = config("dev", &[]);
    let prod = config("prod", &[]);
    assert_eq!(dev.stack_name, "cd2-dev");
    assert_eq!(prod.stack_name, "cd2-prod");
    let DatabaseProps::Create(db) = &prod.database else { panic!("prod creates its cluster") };
    assert!(db.deletion_protection);
    let existing = config("existing", &[]);
    assert!(matches!(existing.database, DatabaseProps::Existing(_)));
}

#[test]
fn overrides_set_nested_keys_and_parse_toml_values() {
    let c = config("dev", &["map_concurrency=3", "database.max_capacity=8", "schedule=cron(0 6 * * ? *)"]);
    assert_eq!(c.map_concurrency, 3);
    let DatabaseProps::Create(db) = &c.database else { panic!("dev creates its cluster") };
    assert_eq!(db.max_capacity, 8.0);
    assert_eq!(c.schedule, "cron(0 6 * * ? *)");
}

#[test]
fn an_unknown_key_is_named_with_the_allowed_ones() {
    let err = config_error("dev", &["map_concurency=3"]);
    assert!(err.contains("unknown field `map_concurency`"), "{err}");
    assert!(err.contains("`map_concurrency`"), "{err}");
}

#[test]
fn an_unknown_namespace_lists_the_allowed_values() {
    let err = config_error("dev", &["namespaces=[\"canvas\", \"canvass\"]"]);
    assert!(err.contains("canvass"), "{err}");
    assert!(err.contains("`canvas_logs`") && err.contains("`new_quizzes`"), "{err}");
}

#[test]
fn out_of_range_values_name_their_keys() {
    let err = config_error(
        "dev",
        &[
            "map_concurrency=0",
            "log_retention_days=10",
            "schedule=every 3 hours",
            "database.min_capacity=5",
            "database.engine_version=13.9",
            "alert_email=not-an-email",
            "lambda.time_budget_seconds=900",
            "skip_tables=[\"nope\"]",
        ],
    );
    for key in [
        "`map_concurrency`",
        "`log_retention_days`",
        "`schedule`",
        "`database.min_capacity`",
        "`database.engine_version`",
        "`alert_email`",
        "`lambda.time_budget_seconds`",
        "`skip_tables`",
    ] {
        assert!(err.contains(key), "{key} missing in:\n{err}");
    }
    assert!(err.contains("not one of [1, 3, 5, 7, 14, 30"), "{err}");
}

#[test]
fn the_stale_replica_alarm_leaves_time_for_a_scheduled_run() {
    let err = config_error("dev", &["schedule=rate(1 day)"]);
    assert!(
        err.contains("`no_success_alarm_hours`: 24 would alarm between two scheduled runs of rate(1 day): at least 25"),
        "{err}"
    );
    config("dev", &["schedule=rate(1 day)", "no_success_alarm_hours=30"]);
    config("dev", &["schedule=rate(90 minutes)", "no_success_alarm_hours=3"]);
    assert!(config_error("dev", &["no_success_alarm_hours=200"]).contains("out of range 1..=168"));
}

#[test]
fn the_freshness_alarms_leave_time_for_a_run_and_come_before_dap_forgets() {
    let err = config_error("dev", &["schedule=rate(2 days)", "no_success_alarm_hours=50"]);
    assert!(err.contains("`stale_table_alarm_hours`: 36 would alarm between two scheduled runs"), "{err}");
    assert_eq!(config("dev", &[]).stale_table_alarm_hours, 36);
    assert_eq!(config("dev", &[]).logs_age_alarm_days, 14);
    let err = config_error("dev", &["logs_age_alarm_days=30"]);
    assert!(err.contains("`logs_age_alarm_days`: 30 is out of range 1..=29: DAP keeps canvas_logs 30 days"), "{err}");
    assert!(config_error("dev", &["stale_table_alarm_hours=0"]).contains("out of range 1..=720"));
}

#[test]
fn network_modes_require_their_own_keys() {
    let err = config_error("dev", &["network.mode=existing"]);
    assert!(err.contains("`network.vpc_id`"), "{err}");
    assert!(err.contains("`network.private_subnet_ids`"), "{err}");
    assert!(
        err.contains("`network.cidr`: cidr, nat_gateways and availability_zone_ids go with mode = \"create\""),
        "{err}"
    );
    let err = config_error("dev", &["network.mode=somewhere"]);
    assert!(err.contains("unknown variant `somewhere`, expected `create` or `existing`"), "{err}");
    config("dev", &stack::app::envs::EXISTING_VPC_OVERRIDES);
}

#[test]
fn the_vpc_block_is_a_network_address_from_16_to_24_bits() {
    let err = config_error("dev", &["network.cidr=10.42.1.0/16"]);
    assert!(
        err.contains("`network.cidr`: 10.42.1.0 is not the first address of its /16: did you mean 10.42.0.0/16?"),
        "{err}"
    );
    assert!(config_error("dev", &["network.cidr=10.42.0.0/25"]).contains("/25 is outside /16 to /24"));
    assert!(config_error("dev", &["network.cidr=10.42.0/16"]).contains("`10.42.0` is not an IPv4 address"));
    let blocks = stack::constructs::network::subnet_blocks;
    // Fn::Cidr(vpc, 4, 8)'s /24s, which the subnets of a /16 had before they were computed here.
    assert_eq!(blocks("10.42.0.0/16").unwrap(), ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]);
    assert_eq!(blocks("172.16.4.0/22").unwrap(), ["172.16.4.0/24", "172.16.5.0/24", "172.16.6.0/24", "172.16.7.0/24"]);
    // Where four /24s do not fit, four equal parts.
    assert_eq!(blocks("10.0.8.0/24").unwrap(), ["10.0.8.0/26", "10.0.8.64/26", "10.0.8.128/26", "10.0.8.192/26"]);
    assert_eq!(blocks("10.0.8.0/23").unwrap(), ["10.0.8.0/25", "10.0.8.128/25", "10.0.9.0/25", "10.0.9.128/25"]);
    config("dev", &["network.cidr=10.0.8.0/24"]);
}

#[test]
fn malformed_overrides_are_explained() {
    assert!(config_error("dev", &["map_concurrency"]).contains("is not `key=value`"));
    assert!(config_error("dev", &["stack_name.x=1"]).contains("`stack_name` is not a table"));
}

#[test]
fn an_existing_database_names_what_it_needs() {
    let err = config_error(
        "existing",
        &[
            "database.endpoint=https://replica:5432",
            "database.security_group_id=default",
            "database.admin_secret_arn=",
            "database.resource_id=my-cluster",
        ],
    );
    for expected in [
        "`database.endpoint`: `https://replica:5432` must be the writer endpoint's host name",
        "`database.security_group_id`: `default` must be the database's security group id",
        "`database.admin_secret_arn`: with bootstrap = true, name the admin credential's secret",
        "`database.resource_id`: must be the cluster's or instance's resource id",
    ] {
        assert!(err.contains(expected), "{expected} missing in:\n{err}");
    }
    // A DBA has set it up: no admin credential needed.
    config("existing", &["database.bootstrap=false", "database.admin_secret_arn="]);
}

#[test]
fn a_database_mode_takes_only_its_own_keys() {
    let err = config_error("existing", &["database.min_capacity=0.5"]);
    assert!(err.contains("unknown field `min_capacity`"), "{err}");
    let err = config_error("dev", &["database.endpoint=replica.example.edu"]);
    assert!(err.contains("unknown field `endpoint`"), "{err}");
    let err = config_error("dev", &["database.mode=borrowed"]);
    assert!(err.contains("unknown variant `borrowed`") && err.contains("`existing`"), "{err}");
}

/// A region whose certificate authorities the shipped RDS bundle lacks: every connection
/// to its database would be refused as untrusted, so synth refuses it and says what to do.
#[test]
fn a_region_the_rds_bundle_does_not_cover_is_refused() {
    let err = config_error("dev", &["region=ap-east-2"]);
    assert!(err.contains("region"), "{err}");
    assert!(err.contains("`ap-east-2` has no certificate authority in the RDS bundle"), "{err}");
    assert!(err.contains("global-bundle.pem"), "{err}");
    assert_eq!(config("dev", &["region=eu-west-1"]).region, "eu-west-1");
}

#[test]
fn availability_zone_ids_are_two_ids_and_only_for_a_new_vpc() {
    let err = config_error("dev", &["network.availability_zone_ids=[\"us-east-1a\", \"us-east-1b\"]"]);
    assert!(err.contains("network.availability_zone_ids"), "{err}");
    assert!(err.contains("two different Availability Zone ids"), "{err}");
    let err = config_error("dev", &["network.availability_zone_ids=[\"use1-az1\"]"]);
    assert!(err.contains("network.availability_zone_ids"), "{err}");
    let c = config("dev", &["network.availability_zone_ids=[\"use1-az1\", \"use1-az2\"]"]);
    assert_eq!(c.network.availability_zone_ids, ["use1-az1", "use1-az2"]);
    let err = config_error("existing", &["network.availability_zone_ids=[\"use1-az1\", \"use1-az2\"]"]);
    assert!(err.contains("availability_zone_ids go with mode = \"create\""), "{err}");
}

/// Readers are plain role names, each named once, apart from the roles and schemas the
/// replication itself uses.
#[test]
fn readers_are_plain_names_apart_from_the_replication_s_own() {
    assert_eq!(config("dev", &[]).database.readers(), ["analyst"]);
    assert!(config("prod", &[]).database.readers().is_empty());
    for bad in [
        "canvas",
        "cd2_app",
        "cd2_app_keeper",
        "cd2_app_readers",
        "Analyst",
        "pg_x",
        "public",
        "cd2_aws_staging_canvas",
    ] {
        let err = config_error("dev", &[&format!("database.readers=[\"{bad}\"]")]);
        assert!(err.contains("database.readers") && err.contains(&format!("`{bad}`")), "{bad}: {err}");
    }
    let err = config_error("dev", &["database.readers=[\"bi\", \"bi\"]"]);
    assert!(err.contains("named once"), "{err}");
    assert_eq!(config("existing", &["database.readers=[\"bi\"]"]).database.readers(), ["bi"]);
    assert_eq!(config("dev", &[]).database.password_readers(), ["bi"]);
    let err = config_error("dev", &["database.password_readers=[\"analyst\"]"]);
    assert!(err.contains("database.password_readers") && err.contains("named once"), "{err}");
    let err = config_error("dev", &["database.password_readers=[\"x_1\", \"x1\"]"]);
    assert!(err.contains("`x1` and `x_1` would name the same secret"), "{err}");
    let err = config_error("existing", &["database.bootstrap=false", "database.password_readers=[\"bi\"]"]);
    assert!(err.contains("database.password_readers") && err.contains("bootstrap = false"), "{err}");
}
