//! The whole workflow on this machine: the state machine definition `cargo xtask synth`
//! writes, executed by moto's Step Functions interpreter, its Lambda tasks reaching the
//! real function binaries (moto's launcher forwards each invocation to `cargo lambda
//! watch`, whose runtime API the binaries poll), against the DAP emulator and PostgreSQL;
//! alerts reach an SQS queue subscribed to the topic, results a bucket in moto's S3.

use super::Aws;
use aws_sdk_sfn::types::ExecutionStatus;
use contract::env;
use emulator::Emulator;
use serde_json::json;
use stack::app::{self, Config, Function, pipeline};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workflow's functions and their binaries (the definition's ARNs end in their names).
const FUNCTIONS: [(Function, &str); 4] = [
    (Function::ListTables, env!("CARGO_BIN_EXE_list_tables")),
    (Function::SyncTable, env!("CARGO_BIN_EXE_sync_table")),
    (Function::InitTable, env!("CARGO_BIN_EXE_init_table")),
    (Function::Summarize, env!("CARGO_BIN_EXE_summarize")),
];

pub const ACCOUNT: &str = "123456789012";

/// The bucket the Map's ResultWriter writes the tables' results to.
pub const RESULTS_BUCKET: &str = "cd2-e2e-results";

/// The raw zone's bucket (versioned, as the stack's), when [`Setup::archive`].
pub const ARCHIVE_BUCKET: &str = "cd2-e2e-archive";
/// The archive's Glue database.
pub const ARCHIVE_CATALOG: &str = "cd2_e2e_archive";

/// How the stage is set up.
pub struct Setup<'a> {
    /// `--set` overrides of the dev environment (map concurrency, ...).
    pub overrides: &'a [&'a str],
    /// What list_tables lists (comma-separated).
    pub namespaces: &'a str,
    /// Processes of sync_table and of init_table (list_tables and summarize get one).
    pub replicators: usize,
    /// The replication calls' time budget.
    pub budget_seconds: u32,
    /// DAP's rate-limit window, when the emulator shortens it.
    pub rate_window: Option<Duration>,
    /// More of the functions' settings (`MAX_IDLE_CALLS`, ...).
    pub env: &'a [(&'a str, &'a str)],
    /// The replication functions write every object to [`ARCHIVE_BUCKET`].
    pub archive: bool,
}

pub struct Stage {
    pub aws: Aws,
    pub sfn: aws_sdk_sfn::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub queue: String,
    /// The alerts topic the definition publishes to.
    pub topic: String,
    pub machine: String,
    pub logs: PathBuf,
    /// Every Lambda invocation, one JSON line each ([`testkit::LambdaAnswer`]).
    pub answers: PathBuf,
    /// The dev stack's on-demand NAT instance, in moto: stopped, as between runs.
    pub nat: String,
    watch: testkit::LambdaWatch,
    /// Plays the NAT instance's boot while the stage lives.
    booting: std::process::Child,
}

/// The dev environment's definition with `overrides`, every placeholder filled.
fn definition(topic_arn: &str, nat: &str, overrides: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack/envs/dev.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|o| (*o).to_owned()).collect();
    let config = Config::from_toml(&text, "dev.toml", &overrides).unwrap();
    let mut asl = app::build(&config).unwrap().state_machine.to_string();
    for (function, _) in FUNCTIONS {
        let arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}");
        asl = asl.replace(&format!("${{{}}}", function.arn_placeholder().unwrap()), &arn);
    }
    let asl = asl
        .replace(&format!("${{{}}}", pipeline::ALERTS_TOPIC_ARN), topic_arn)
        .replace(&format!("${{{}}}", pipeline::RESULTS_BUCKET), RESULTS_BUCKET)
        .replace(&format!("${{{}}}", pipeline::nat_placeholder(0)), nat);
    // The NAT's looks a second apart rather than ten: its wake-up's pace is not what these
    // tests wait for. Nothing else of the definition changes.
    let mut asl: serde_json::Value = serde_json::from_str(&asl).unwrap();
    if let Some(wait) = asl.pointer_mut("/States/WakeNat/Branches/0/States/WaitForNat/Seconds") {
        *wait = json!(1);
    }
    asl.to_string()
}

impl Stage {
    pub async fn start(emulator: &Emulator, db_url: &str, setup: &Setup<'_>) -> Self {
        let logs = tempdir();
        let watch_logs = logs.clone();
        let mut watch = tokio::task::spawn_blocking(move || testkit::LambdaWatch::start(&watch_logs))
            .await
            .unwrap()
            .expect("cargo lambda watch");
        let forward = watch.invoke_url();
        let answers = logs.join("answers.jsonl");
        let record = answers.clone();
        let moto = tokio::task::spawn_blocking(move || testkit::Moto::start_recording(&forward, &record))
            .await
            .unwrap()
            .expect("moto");
        let aws = Aws::start_with(moto).await;
        aws.execute_state_machines().await;

        let dap_settings = aws.dap_settings(emulator).await;
        let target = replica::parse_connection_string(db_url).unwrap();
        let db_secret = aws.put_secret("cd2-e2e/db", json!({"password": "trusted-on-loopback"})).await;
        let sns = aws_sdk_sns::Client::new(&aws.sdk);
        let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
        let topic = sns.create_topic().name("cd2-e2e-alerts").send().await.unwrap().topic_arn.unwrap();
        let queue = sqs.create_queue().queue_name("alerts").send().await.unwrap().queue_url.unwrap();
        let queue_arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:alerts");
        sns.subscribe().topic_arn(&topic).protocol("sqs").endpoint(&queue_arn).send().await.unwrap();
        let s3 = functions::results::s3_client(&aws.sdk);
        s3.create_bucket().bucket(RESULTS_BUCKET).send().await.unwrap();
        if setup.archive {
            super::archive::make(&s3, ARCHIVE_BUCKET).await;
            super::archive::make_catalog(&aws, ARCHIVE_CATALOG).await;
        }
        // The dev stack's on-demand NAT instance, stopped as between runs: a run starts it.
        let nat = aws
            .moto
            .boto(
                "out = ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']\n\
                 ec2.stop_instances(InstanceIds=[out])\n\
                 print(out)",
            )
            .unwrap();

        // What the stack sets, as a local server and moto need it.
        let env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", aws.moto.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            (env::RUST_LOG, "info".into()),
        ]
        .into_iter()
        .chain(
            env::dap::Vars {
                api_url: Some(dap_settings.api_url.clone()),
                secret_id: dap_settings.secret_id.clone(),
                poll_interval_ms: Some("50".into()),
                rate_window_ms: setup.rate_window.map(|w| w.as_millis().to_string()),
            }
            .pairs(),
        )
        .chain(env::list_tables::Vars { namespaces: setup.namespaces.into(), skip_tables: None }.pairs())
        .chain(
            env::database::Vars {
                host: target.host.clone(),
                port: Some(target.port.to_string()),
                name: target.database.clone(),
                tls: Some("verify-full".into()),
                root_cert: Some(testkit::server_ca().expect("the test server has TLS").display().to_string()),
            }
            .pairs(),
        )
        .chain(
            env::login::Vars {
                user: target.user.clone(),
                auth: Some(env::login::AUTH_SECRET.into()),
                secret_arn: Some(db_secret),
            }
            .pairs(),
        )
        .chain(
            env::replicate::Vars {
                time_budget_seconds: Some(setup.budget_seconds.to_string()),
                budget_margin_seconds: None,
                max_calls: None,
                max_idle_calls: None,
            }
            .pairs(),
        )
        .chain(
            env::archive::Vars {
                bucket: setup.archive.then(|| ARCHIVE_BUCKET.to_owned()),
                catalog: setup.archive.then(|| ARCHIVE_CATALOG.to_owned()),
            }
            .pairs(),
        )
        .chain(
            env::summarize::Vars { stack_name: Some("cd2-e2e".into()), results_bucket: RESULTS_BUCKET.into() }.pairs(),
        )
        .map(|(k, v)| (k.to_owned(), v))
        // The test's own, over the above.
        .chain(setup.env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
        .collect();
        for (function, exe) in FUNCTIONS {
            let replicates = matches!(function, Function::SyncTable | Function::InitTable);
            let instances = if replicates { setup.replicators } else { 1 };
            watch.serve(function.binary(), Path::new(exe), instances, &env, &logs).unwrap();
        }

        let sfn = aws_sdk_sfn::Client::new(&aws.sdk);
        let machine = sfn
            .create_state_machine()
            .name("cd2-e2e-Replication")
            .definition(definition(&topic, &nat, setup.overrides))
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/states"))
            .send()
            .await
            .unwrap()
            .state_machine_arn;
        let booting = aws.moto.play_nat_boot(&nat, stack::constructs::nat::READY_TAG).expect("boto3 runs");
        Self { aws, sfn, sqs, s3, queue, topic, machine, logs, answers, nat, watch, booting }
    }

    pub async fn start_run(&self, name: &str) -> String {
        let started = self.sfn.start_execution().state_machine_arn(&self.machine).name(name).input("{}").send();
        started.await.unwrap().execution_arn
    }

    pub async fn finish(
        &self,
        execution: &str,
        within: Duration,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let started = Instant::now();
        loop {
            let d = self.sfn.describe_execution().execution_arn(execution).send().await.unwrap();
            if d.status != ExecutionStatus::Running {
                return d;
            }
            assert!(
                started.elapsed() < within,
                "{execution} still running after {within:?}; logs in {}",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The messages on the alerts queue so far (SNS's JSON envelopes).
    pub async fn alerts(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for _ in 0..10 {
            let got =
                self.sqs.receive_message().queue_url(&self.queue).max_number_of_messages(10).send().await.unwrap();
            messages.extend(got.messages.unwrap_or_default().into_iter().filter_map(|m| m.body));
            if !messages.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        messages
    }

    /// The NAT instance's boot broken: stopped, its ready tag gone, and nothing to set it
    /// again once a run starts it.
    pub fn break_nat(&mut self) {
        self.booting.kill().ok();
        self.booting.wait().ok();
        let code = format!(
            "ec2.delete_tags(Resources=['{nat}'], Tags=[{{'Key': '{tag}'}}])\nec2.stop_instances(InstanceIds=['{nat}'])",
            nat = self.nat,
            tag = stack::constructs::nat::READY_TAG
        );
        self.aws.moto.boto(&code).unwrap();
    }

    /// The NAT instance's state: `stopped`, `running`.
    pub fn nat_state(&self) -> String {
        let code = format!(
            "print(ec2.describe_instances(InstanceIds=['{}'])['Reservations'][0]['Instances'][0]['State']['Name'])",
            self.nat
        );
        self.aws.moto.boto(&code).unwrap()
    }

    /// The sum of the workflow's own count `metric` (what the alarms watch) so far.
    pub fn counted(&self, metric: &str) -> f64 {
        use stack::constructs::alerts::{METRIC_DIMENSION, METRICS_NAMESPACE};
        let code = format!(
            "import datetime\n\
             cw = boto3.client('cloudwatch', **kw)\n\
             now = datetime.datetime.now(datetime.timezone.utc)\n\
             got = cw.get_metric_statistics(Namespace='{METRICS_NAMESPACE}', MetricName='{metric}', \
             Dimensions=[{{'Name': '{METRIC_DIMENSION}', 'Value': '{}'}}], StartTime=now - datetime.timedelta(hours=1), \
             EndTime=now + datetime.timedelta(minutes=5), Period=3600, Statistics=['Sum'])\n\
             print(sum(p['Sum'] for p in got['Datapoints']))",
            self.machine
        );
        self.aws.moto.boto(&code).unwrap().parse().unwrap()
    }

    /// The largest input or output of any state of `execution`, in bytes.
    pub async fn max_state_bytes(&self, execution: &str) -> usize {
        let mut pages = self.sfn.get_execution_history().execution_arn(execution).into_paginator().items().send();
        let mut most = 0;
        while let Some(event) = pages.next().await {
            let e = event.unwrap();
            let sizes = [
                e.state_entered_event_details().and_then(|d| d.input()).map(str::len),
                e.state_exited_event_details().and_then(|d| d.output()).map(str::len),
                e.task_succeeded_event_details().and_then(|d| d.output()).map(str::len),
                e.lambda_function_succeeded_event_details().and_then(|d| d.output()).map(str::len),
                e.execution_started_event_details().and_then(|d| d.input()).map(str::len),
                e.execution_succeeded_event_details().and_then(|d| d.output()).map(str::len),
            ];
            most = most.max(sizes.into_iter().flatten().max().unwrap_or(0));
        }
        most
    }

    /// The output of state `name` of `execution` as it exited, in bytes.
    pub async fn state_output_bytes(&self, execution: &str, name: &str) -> Option<usize> {
        let mut pages = self.sfn.get_execution_history().execution_arn(execution).into_paginator().items().send();
        while let Some(event) = pages.next().await {
            if let Some(exited) = event.unwrap().state_exited_event_details().filter(|d| d.name() == name) {
                return exited.output().map(str::len);
            }
        }
        None
    }

    /// Stops the functions and watch; removes the logs when the test passed.
    pub fn stop(self) {
        std::fs::remove_dir_all(self.halt()).ok();
    }

    /// Stops the functions, watch and moto, and answers where their logs are, kept.
    pub fn halt(self) -> PathBuf {
        let Self { watch, logs, mut booting, .. } = self;
        booting.kill().ok();
        booting.wait().ok();
        drop(watch);
        logs
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cd2-e2e-{}", super::uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
