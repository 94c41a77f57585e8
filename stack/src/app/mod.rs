//! The Canvas Data 2 replica stack, built from constructs and one [`Config`].

pub mod config;
pub mod cost;
pub mod envs;
pub mod functions;
pub mod pipeline;
pub mod rds_ca;

pub use config::{Config, ConfigError, Namespace};

use crate::constructs::alerts::Alerts;
use crate::constructs::archive::ArchiveBucket;
use crate::constructs::database::Database;
use crate::constructs::function::{Asset, FunctionDefaults, Invoker, RustFunction};
use crate::constructs::grants::SecretRef;
use crate::constructs::key::EncryptionKey;
use crate::constructs::network::{self, Network};
use crate::constructs::results::ResultsBucket;
use crate::constructs::schedule::schedule_state_machine;
use crate::constructs::workflow::{Workflow, WorkflowError};
use crate::intrinsics::{Expr, LogicalId};
use crate::resources::cloudformation::DatabaseBootstrap;
use crate::resources::cloudwatch::Dashboard;
use crate::template::{ConditionRef, Handle, Parameter, ParameterRef, Template, ValidationError};
use contract::env;
use pipeline::PipelineProps;
use serde_json::Value;

pub use functions::{Function, Manifest};

/// Lambda's hard limit; replication calls get all of it and stop early by their budget.
pub const REPLICATE_TIMEOUT_SECONDS: u32 = 900;
/// Room for DAP's documented waits while listing: a 429's pause (up to 120 s honoured) and
/// a slow answer (180 s), with a call to spare; the function answers just before it ends.
const LIST_TIMEOUT_SECONDS: u32 = 330;

/// How long each run's table results stay in the results bucket.
const RESULTS_EXPIRE_DAYS: u32 = 30;

/// The logical id of the bucket the runs' table results go to (`destroy` empties it).
pub const RESULTS_BUCKET_ID: &str = "RunResults";

/// The logical id (and output) of the raw zone's bucket, when the archive is on: it
/// outlives the stack, and `destroy` says so with its size.
pub const ARCHIVE_BUCKET_ID: &str = "Archive";

/// The output naming the archive's Glue database, when the archive is on.
pub const ARCHIVE_CATALOG_OUTPUT: &str = "ArchiveCatalog";

/// The id of the alerts construct (`status` finds its topic and lists its subscriptions).
pub const ALERTS_ID: &str = "Alerts";

/// The logical id of the database bootstrap, which its function checks requests against.
pub const DATABASE_BOOTSTRAP_ID: &str = "DatabaseBootstrap";

/// The outputs `cargo xtask sql` reads: the stack's own cluster (absent for an existing
/// database), the database, and the credential it queries with.
pub const DATABASE_CLUSTER_ARN: &str = "DatabaseClusterArn";
pub const DATABASE_NAME: &str = "DatabaseName";
pub const ADMIN_SECRET_ARN: &str = "AdminSecretArn";
/// The state machine's id (its name is `<stack>-Replication`), which its alarms are named
/// after and which the NAT instances' role names before the state machine exists.
pub const REPLICATION_ID: &str = "Replication";

/// The output naming the state machine, which `run` and `status` start and read.
pub const STATE_MACHINE_ARN: &str = "StateMachineArn";

/// The parameters deploy fills: the bucket of the zips (and each function's
/// [`Function::code_key_parameter`]), and who gets the alerts.
pub const ASSETS_BUCKET_PARAMETER: &str = "AssetsBucket";
pub const ALERT_EMAIL_PARAMETER: &str = "AlertEmail";

/// The logical id of the stack's key, which destroy lists as a leftover.
pub const DATA_KEY_ID: &str = "DataKey";

/// The id of the database construct; destroy looks for its cluster
/// ([`database_cluster_id`]) and its deletion protection.
pub const DATABASE_ID: &str = "Database";

/// The logical id of the stack's own Aurora cluster (none with an existing database).
pub fn database_cluster_id() -> String {
    crate::constructs::database::cluster_id(DATABASE_ID)
}

/// The logical id of the network, whose NAT instances deploy starts before a bootstrap.
pub const NETWORK_ID: &str = "Network";

/// The CloudWatch dashboard's console link, which deploy prints.
pub const DASHBOARD_URL: &str = "DashboardUrl";
/// The password readers' secrets, comma-separated, for whoever sets up a BI tool or opens
/// the query editor.
pub const READER_SECRET_ARNS: &str = "ReaderSecretArns";

/// The tables of `canvas_logs`, whose data DAP keeps only 30 days: each has an alarm of its
/// own well before then.
pub const SHORT_LIVED_TABLES: [&str; 1] = ["canvas_logs.web_logs"];

/// Time for the bootstrap to wake a paused cluster (about 15 s), set up and answer.
const BOOTSTRAP_TIMEOUT_SECONDS: u32 = 300;

/// What synth writes.
#[derive(Debug)]
pub struct Synthesized {
    pub template: Template,
    /// The state machine definition, as in the template, for statelint and for review.
    pub state_machine: Value,
    /// The same, drawn as a Mermaid flowchart (xtask/ARCHITECTURE.md shows dev's).
    pub diagram: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Template(#[from] ValidationError),
}

/// `list_tables` -> Map(`sync_table` / `init_table`) -> `summarize` -> alert; see [`pipeline`].
///
/// In steps, each adding its resources in the template's order: the parameters, what the
/// rest stands on, the functions, the workflow, what watches it, the outputs.
pub fn build(config: &Config) -> Result<Synthesized, AppError> {
    let mut t = Template::new(format!(
        "cd2-aws: Canvas Data 2 replica ({}) - Aurora PostgreSQL kept current from the DAP API by Step Functions and Rust Lambdas",
        config.stack_name
    ));
    let inputs = Inputs::new(&mut t, config);
    let base = Base::new(&mut t, config, &inputs);
    let functions = Functions::new(&mut t, config, &inputs, &base);
    let run = replication(&mut t, config, &base, functions)?;
    let dashboard = monitoring(&mut t, config, &base, &run.machine_arn);
    outputs(&mut t, &base, &run.machine_arn, &dashboard);
    t.validate()?;
    Ok(Synthesized { template: t, state_machine: run.state_machine, diagram: run.diagram })
}

/// The template's parameters: who gets the alerts, and where the zips are.
struct Inputs {
    alert_email: ParameterRef,
    has_email: ConditionRef,
    assets_bucket: ParameterRef,
}

impl Inputs {
    fn new(t: &mut Template, config: &Config) -> Self {
        let alert_email = t.parameter(
            ALERT_EMAIL_PARAMETER,
            Parameter::string(
                "Email address that receives failure alerts; empty for none (confirm the subscription email)",
            )
            .with_default(config.alert_email.clone())
            .with_pattern(r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$", "an email address, or empty"),
        );
        let assets_bucket = t.parameter(
            ASSETS_BUCKET_PARAMETER,
            Parameter::string("S3 bucket holding the Lambda zips (set by cargo xtask deploy)")
                .with_pattern(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "an S3 bucket name"),
        );
        let has_email = t.condition("HasAlertEmail", !Expr::equals(alert_email.as_ref(), Expr::str("")));
        Inputs { alert_email, has_email, assets_bucket }
    }

    /// `function`'s zip, through a code-key parameter added now: one for each function the
    /// template has, no more.
    fn asset(&self, t: &mut Template, function: Function) -> Asset {
        Asset {
            bucket: self.assets_bucket.as_ref(),
            key: t
                .parameter(
                    &function.code_key_parameter(),
                    Parameter::string(format!(
                        "S3 key of the {function} zip (content-addressed, set by cargo xtask deploy)"
                    ))
                    .with_pattern(r"^[A-Za-z0-9!_.*'()/-]+\.zip$", "an S3 key ending in .zip"),
                )
                .as_ref(),
        }
    }
}

/// What the rest stands on: the key, the network, the database and the functions' way to
/// it, the alerts, the results bucket, and what every function shares.
struct Base {
    key: EncryptionKey,
    net: Network,
    db: Database,
    /// What the functions need to reach the database, DAP and AWS APIs.
    network_path: Vec<LogicalId>,
    alerts: Alerts,
    results: ResultsBucket,
    /// The raw zone, when the archive is on.
    archive: Option<ArchiveBucket>,
    defaults: FunctionDefaults,
}

impl Base {
    fn new(t: &mut Template, config: &Config, inputs: &Inputs) -> Self {
        let key = EncryptionKey::new(t, DATA_KEY_ID, &format!("{}/data", config.stack_name));
        let net = Network::new(
            t,
            NETWORK_ID,
            &config.network_props(),
            &crate::constructs::workflow::state_machine_arn(REPLICATION_ID),
        );
        let db = Database::new(
            t,
            DATABASE_ID,
            &format!("{}-db", config.stack_name.to_lowercase()),
            &config.database,
            &net,
            &key,
            config.log_retention_days,
        );
        let functions_sg =
            net.security_group(t, "FunctionsSecurityGroup", "cd2-aws Lambdas: HTTPS out, PostgreSQL to the database");
        let mut network_path = net.outbound.clone();
        network_path.extend(network::allow_tcp(
            t,
            &functions_sg,
            &db.security_group,
            db.port_number,
            "Lambdas to Aurora PostgreSQL",
        ));
        network_path.push(network::allow_https_out(t, &functions_sg));
        let alerts = Alerts::new(t, ALERTS_ID, &key, &inputs.alert_email, &inputs.has_email);
        let results = ResultsBucket::new(t, RESULTS_BUCKET_ID, &key, RESULTS_EXPIRE_DAYS, pipeline::RESULTS_PREFIX);
        let archive = config.archive.enabled.then(|| {
            ArchiveBucket::new(t, ARCHIVE_BUCKET_ID, &key, config.archive.glacier_after_days, &config.stack_name)
        });
        let defaults = FunctionDefaults {
            subnet_ids: net.private_subnet_ids.clone(),
            security_group_id: functions_sg.group_id(),
            key: key.clone(),
            log_retention_days: config.log_retention_days,
        };
        Base { key, net, db, network_path, alerts, results, archive, defaults }
    }
}

/// The workflow's four functions, not built yet (the workflow grants itself to them
/// first), after the database bootstrap when the stack has one (built already).
struct Functions {
    list_tables: RustFunction,
    sync_table: RustFunction,
    init_table: RustFunction,
    summarize: RustFunction,
    database_ready: Option<Handle<DatabaseBootstrap>>,
}

impl Functions {
    fn new(t: &mut Template, config: &Config, inputs: &Inputs, base: &Base) -> Self {
        let Base { db, results, archive, defaults, .. } = base;
        // Set by set_key.sh outside the stack, so that destroy can keep it.
        let dap_secret = SecretRef::from_name(&config.dap.secret_name);
        let namespaces: Vec<String> = config.namespaces.iter().map(|n| n.as_str().to_owned()).collect();
        let dap_env = |f: RustFunction| {
            f.vars(
                env::dap::Vars {
                    api_url: Some(config.dap.api_url.as_str().into()),
                    secret_id: config.dap.secret_name.as_str().into(),
                    poll_interval_ms: None,
                    rate_window_ms: None,
                }
                .pairs(),
            )
            .env(env::RUST_LOG, "info")
        };

        // Where the database is; every connection verifies the server against the RDS CA bundle.
        let db_env = |f: RustFunction| {
            f.vars(
                env::database::Vars {
                    host: db.endpoint.clone(),
                    port: Some(db.port.clone()),
                    name: db.name.as_str().into(),
                    tls: None,
                    root_cert: None,
                }
                .pairs(),
            )
        };
        // The application role and schemas: made by the stack, or by a DBA beforehand.
        let database_ready = match (&db.admin_secret, db.bootstrap) {
            (Some(admin_secret), true) => {
                let mut db_bootstrap = db_env(RustFunction::new(
                    Function::DbBootstrap.logical_id(),
                    "Creates the application role, its schemas and the metadata tables (custom resource)",
                    inputs.asset(t, Function::DbBootstrap),
                    256,
                    BOOTSTRAP_TIMEOUT_SECONDS,
                ))
                .vars(
                    env::bootstrap::Vars {
                        admin_secret_arn: admin_secret.arn.clone(),
                        // The one request it answers: this stack's, for this resource.
                        stack_id: Expr::sub("${AWS::StackId}"),
                        resource: DATABASE_BOOTSTRAP_ID.into(),
                    }
                    .pairs(),
                )
                .env(env::RUST_LOG, "info")
                .invoked_by(Invoker::CloudFormation);
                admin_secret.grant_read(&mut db_bootstrap);
                db.grant_read_reader_passwords(&mut db_bootstrap);
                let db_bootstrap = db_bootstrap.build(t, defaults);
                Some(db.bootstrap(
                    t,
                    DATABASE_BOOTSTRAP_ID,
                    &db_bootstrap,
                    namespaces.clone(),
                    base.network_path.clone(),
                    BOOTSTRAP_TIMEOUT_SECONDS * 2,
                ))
            }
            _ => None,
        };

        // The functions that log in as the application role (with an IAM token) and read the
        // DAP key; created after the bootstrap, since their role exists only once it ran.
        let app_function = |f: RustFunction| {
            let mut f = db_env(dap_env(f)).vars(
                env::login::Vars {
                    user: db.app_user.as_str().into(),
                    auth: Some(env::login::AUTH_IAM.into()),
                    secret_arn: None,
                }
                .pairs(),
            );
            if let Some(ready) = &database_ready {
                f = f.after(ready);
            }
            dap_secret.grant_read(&mut f);
            db.grant_connect(&mut f);
            f
        };
        // The run's preflight too: it makes the connection the tables' calls will make.
        let list_tables = app_function(RustFunction::new(
            Function::ListTables.logical_id(),
            "Lists the DAP tables to replicate, once DAP and the database accept the functions",
            inputs.asset(t, Function::ListTables),
            256,
            LIST_TIMEOUT_SECONDS,
        ))
        .vars(
            env::list_tables::Vars {
                namespaces: namespaces.join(",").into(),
                skip_tables: Some(config.skip_tables.join(",").into()),
            }
            .pairs(),
        );
        let replicate = |t: &mut Template, function: Function, description: &str| {
            let mut f = app_function(RustFunction::new(
                function.logical_id(),
                description,
                inputs.asset(t, function),
                config.lambda.replicate_memory_mb,
                REPLICATE_TIMEOUT_SECONDS,
            ))
            .vars(
                env::replicate::Vars {
                    time_budget_seconds: Some(config.lambda.time_budget_seconds.to_string().into()),
                    budget_margin_seconds: None,
                    max_calls: Some(config.lambda.max_calls.to_string().into()),
                    max_idle_calls: Some(config.lambda.max_idle_calls.to_string().into()),
                }
                .pairs(),
            )
            .vars(
                env::archive::Vars {
                    bucket: archive.as_ref().map(ArchiveBucket::name),
                    catalog: archive.as_ref().map(|a| Expr::str(a.catalog())),
                }
                .pairs(),
            );
            if let Some(archive) = archive {
                archive.grant_write(&mut f);
                // `cargo xtask restore` without `--into` has init_table replay the archive
                // into the stack's private database.
                if function == Function::InitTable {
                    archive.grant_read(&mut f);
                }
            }
            f
        };
        let sync_table = replicate(t, Function::SyncTable, "Applies DAP incremental changes to one table");
        let init_table = replicate(t, Function::InitTable, "Loads a DAP snapshot into one new table, resumably");
        let mut summarize = RustFunction::new(
            Function::Summarize.logical_id(),
            "Reads the run's table results and renders the run summary and failure alert",
            inputs.asset(t, Function::Summarize),
            256,
            60,
        )
        .vars(
            env::summarize::Vars {
                stack_name: Some(config.stack_name.as_str().into()),
                results_bucket: results.name(),
            }
            .pairs(),
        )
        .env(env::RUST_LOG, "info");
        results.grant_read(&mut summarize);
        results.grant_write_freshness(&mut summarize);
        Functions { list_tables, sync_table, init_table, summarize, database_ready }
    }
}

/// The state machine as built: its definition (with placeholders), its diagram, its ARN.
struct Replication {
    state_machine: Value,
    diagram: String,
    machine_arn: Expr,
}

/// The workflow, its functions built with what it grants them and what they grant it.
fn replication(t: &mut Template, config: &Config, base: &Base, functions: Functions) -> Result<Replication, AppError> {
    let Base { key, net, alerts, results, defaults, .. } = base;
    let Functions { mut list_tables, sync_table, init_table, summarize, database_ready } = functions;
    let mut workflow = Workflow::new(
        REPLICATION_ID,
        pipeline::definition(&PipelineProps {
            map_concurrency: config.map_concurrency,
            map_mode: crate::asl::MapMode::Distributed,
            notify_on_success: config.notify_on_success,
            run_timeout_seconds: config.run_timeout_hours * 3600,
            replicate_timeout_seconds: REPLICATE_TIMEOUT_SECONDS,
            list_timeout_seconds: LIST_TIMEOUT_SECONDS,
            on_demand_nats: net.on_demand_nats.len(),
        }),
    );
    workflow.grant_list_executions(&mut list_tables);
    if let Some(ready) = &database_ready {
        workflow.after(ready);
    }
    for (id, function) in [
        (Function::ListTables, list_tables),
        (Function::SyncTable, sync_table),
        (Function::InitTable, init_table),
        (Function::Summarize, summarize),
    ] {
        let function = function.build(t, defaults);
        let placeholder = id.arn_placeholder().expect("a step of the workflow");
        workflow.substitutions.insert(placeholder.into(), function.arn());
        function.grant_invoke(&mut workflow);
    }
    workflow.substitutions.insert(pipeline::ALERTS_TOPIC_ARN.into(), alerts.topic.arn());
    alerts.grant_publish(&mut workflow);
    alerts.grant_count_runs(&mut workflow);
    workflow.substitutions.insert(pipeline::RESULTS_BUCKET.into(), results.name());
    results.grant_write(&mut workflow);
    for (i, nat) in net.on_demand_nats.iter().enumerate() {
        workflow.substitutions.insert(pipeline::nat_placeholder(i), nat.clone());
    }
    net.grant_start_nats(&mut workflow);
    let state_machine = workflow.definition_json()?;
    let diagram = crate::asl::to_mermaid(&workflow.definition);
    let workflow = workflow.build(t, key, config.log_retention_days)?;
    Ok(Replication { state_machine, diagram, machine_arn: workflow.state_machine.arn() })
}

/// What watches the runs: the alarms, the dashboard (answered, for its output), the schedule.
fn monitoring(t: &mut Template, config: &Config, base: &Base, machine_arn: &Expr) -> Handle<Dashboard> {
    let quiet_hours = config.schedule_enabled.then_some(config.no_success_alarm_hours);
    base.alerts.watch_state_machine(t, REPLICATION_ID, machine_arn, quiet_hours);
    let short_lived: Vec<&str> =
        if config.namespaces.contains(&Namespace::CanvasLogs) { SHORT_LIVED_TABLES.to_vec() } else { vec![] };
    let dashboard = crate::constructs::dashboard::pipeline_dashboard(
        t,
        "Dashboard",
        crate::constructs::dashboard::DashboardProps {
            state_machine_arn: machine_arn.clone(),
            cluster: base.db.cluster.as_ref().map(|c| c.cluster_identifier()),
            stale_hours: config.stale_table_alarm_hours,
        },
    );
    base.alerts.watch_freshness(
        t,
        REPLICATION_ID,
        machine_arn,
        config.stale_table_alarm_hours,
        &short_lived,
        config.logs_age_alarm_days,
    );
    schedule_state_machine(t, "Schedule", &config.schedule, config.schedule_enabled, machine_arn);
    dashboard
}

/// What the operator and cd2-ops read back from the stack.
fn outputs(t: &mut Template, base: &Base, machine_arn: &Expr, dashboard: &Handle<Dashboard>) {
    let Base { key, db, alerts, results, archive, .. } = base;
    t.output(
        STATE_MACHINE_ARN,
        "Starts a replication run by hand: aws stepfunctions start-execution",
        machine_arn.clone(),
    );
    t.output("AlertsTopicArn", "Failure alerts are published here", alerts.topic.arn());
    t.output(
        DASHBOARD_URL,
        "The pipeline at a glance: runs, duration, failed tables, rows changed, the oldest table's age, the database's capacity",
        Expr::sub_with(crate::constructs::dashboard::CONSOLE_URL, [("Dashboard", dashboard.name())]),
    );
    t.output(
        RESULTS_BUCKET_ID,
        &format!("Each run's table results (kept {RESULTS_EXPIRE_DAYS} days; destroy empties it)"),
        results.name(),
    );
    if let Some(archive) = archive {
        t.output(
            ARCHIVE_BUCKET_ID,
            "The raw zone: every DAP object as served, by namespace, table, kind and day (kept when the stack is deleted)",
            archive.name(),
        );
        t.output(
            ARCHIVE_CATALOG_OUTPUT,
            "The Glue database Athena queries the raw zone in: <namespace>__<table>__<kind> for the newest schema, ..._v<version> for each",
            Expr::str(archive.catalog()),
        );
    }
    t.output("DatabaseEndpoint", "Writer endpoint of the replica (private)", db.endpoint.clone());
    if let Some(cluster) = &db.cluster {
        t.output(
            DATABASE_CLUSTER_ARN,
            "The Aurora cluster, for the RDS Data API (query editor, aws rds-data, cargo xtask sql)",
            cluster.arn(),
        );
    }
    t.output(DATABASE_NAME, "Database holding the replicated schemas", Expr::str(db.name.as_str()));
    if let Some(secret) = &db.admin_secret {
        let description = if db.cluster.is_some() {
            "Admin credential, generated and rotated by RDS"
        } else {
            "Admin credential the bootstrap uses"
        };
        t.output(ADMIN_SECRET_ARN, description, secret.arn.clone());
    }
    t.output(
        "DatabaseUser",
        "Role the Lambdas log in as, with IAM authentication (no password)",
        Expr::str(db.app_user.as_str()),
    );
    t.output("DataKeyArn", "KMS key encrypting the database, secrets, logs and alerts", key.arn());
    if let Some(arns) = db.reader_secret_arns() {
        t.output(
            READER_SECRET_ARNS,
            "The password readers' secrets (username, password), for the query editor and BI tools (one per reader, comma-separated)",
            arns,
        );
    }
    if let Some(arns) = db.readers_connect_arns() {
        t.output(
            "ReaderConnectArns",
            "What a reader's IAM policy allows rds-db:connect on (one per reader, comma-separated)",
            arns,
        );
    }
}

pub use crate::intrinsics::pascal_case;
