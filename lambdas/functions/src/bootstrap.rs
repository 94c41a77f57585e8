//! `db_bootstrap`: the CloudFormation custom resource that prepares the database, so that
//! nothing is left for the operator to run by hand after a deploy.
//!
//! Create and Update connect with the admin credential RDS manages and make, idempotently,
//! what [`replica::setup`] describes: the application role (login through IAM database
//! authentication only: `rds_iam`, no password) owning the schemas it writes and the
//! metadata tables, the readers the configuration names (a password reader's password read
//! from the secret the stack generated for it), and the views keeper. The
//! application role gets nothing more: no superuser, no role or database creation, no other
//! schema. Delete leaves the roles, the schemas and the data.
//!
//! CloudFormation waits for an answer PUT to the request's pre-signed `ResponseURL`; it is
//! always sent, failures included, before the function's own timeout. That URL is a
//! credential: it never goes into a log or an error.
//!
//! The function serves one resource: a request from another stack or for another logical
//! id is answered FAILED without touching anything, and so is one whose properties name a
//! database other than the one the function is configured for. The properties carry the
//! database's endpoint and resource id, so pointing the stack at another database is an
//! Update that sets that one up. A cluster paused for long may take more than one connect
//! timeout to resume: the connection is tried again until the function's own stop time.

use crate::aws;
use crate::error::FunctionError;
use crate::settings::read;
use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use backon::Retryable as _;
use contract::Backoff;
use replica::ConnectOptions;
use sqlx::Connection as _;
use std::time::{Duration, SystemTime};

/// The resource's properties, shared with the stack that sets them.
pub use contract::BootstrapProperties as Properties;

pub type Request = CloudFormationCustomResourceRequest<Properties, Properties>;

/// The most of an answer's 4 KiB that its reason takes.
const MAX_REASON_BYTES: usize = 2048;

/// Kept free before the deadline to send the answer.
const ANSWER_TIME: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Bootstrap {
    /// Where the database is, and how to verify it (the admin credential is read per request).
    pub target: ConnectOptions,
    pub admin_secret: String,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub http: reqwest::Client,
    /// The resource this function answers for: its stack's id and its logical id.
    pub stack_id: String,
    pub logical_id: String,
}

impl Bootstrap {
    /// The database as the replication functions reach it, and
    /// [`contract::env::bootstrap`]: the admin secret and the one resource it answers for.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, FunctionError> {
        let v: contract::env::bootstrap::Vars<String> = read()?;
        Ok(Self {
            stack_id: v.stack_id,
            logical_id: v.resource,
            target: crate::database::target_from_env("")?,
            admin_secret: v.admin_secret_arn,
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| FunctionError::config(format!("HTTP client: {}", e.without_url())))?,
        })
    }

    /// Applies the request and answers CloudFormation; an `Err` only when the answer could
    /// not be sent (CloudFormation then waits until its own timeout).
    pub async fn handle(&self, request: Request, deadline: SystemTime) -> Result<(), FunctionError> {
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let stop = tokio::time::Instant::now() + left.saturating_sub(ANSWER_TIME);
        let (kind, props, common) = parts(&request);
        let physical_id = format!("{}/{}", self.target.database, props.app_user);
        let result = match kind {
            _ if let Some(refused) = self.refusal(kind, props, &common) => Err(FunctionError::config(refused)),
            "Delete" => {
                tracing::info!("delete: the role, the schemas and the data stay");
                Ok(())
            }
            // Connecting gives up a second before the rest, so that its last error is said.
            _ => match tokio::time::timeout_at(stop, self.apply(props, stop - Duration::from_secs(1))).await {
                Ok(r) => r,
                Err(_) => Err(FunctionError::transient(format!(
                    "setting up the database at {} did not finish in time (a paused database takes about 15 s to resume); update the stack to try again",
                    self.target.target()
                ))),
            },
        };
        let mut answer = CloudFormationCustomResourceResponse::default();
        match &result {
            Ok(()) => {
                tracing::info!(kind, "database ready");
                answer.status = CloudFormationCustomResourceResponseStatus::Success;
            }
            Err(e) => {
                tracing::error!(kind, error = %e, "database setup failed");
                answer.status = CloudFormationCustomResourceResponseStatus::Failed;
                // One answer, read by a person in the stack's events: room for what to do.
                // CloudFormation takes an answer of up to 4 KiB: the reason's bytes are
                // counted, not its characters.
                let mut reason = e.detail.to_line_within(contract::ErrorDetail::MAX_RUN_MESSAGE);
                reason.truncate(reason.floor_char_boundary(MAX_REASON_BYTES));
                answer.reason = Some(reason);
            }
        }
        answer.physical_resource_id = match (kind, common.physical_id) {
            // A failed Create keeps no resource; Delete must name the one it was given.
            ("Create", _) => physical_id,
            (_, Some(existing)) => existing.to_owned(),
            (_, None) => physical_id,
        };
        answer.stack_id = common.stack_id.to_owned();
        answer.request_id = common.request_id.to_owned();
        answer.logical_resource_id = common.logical_id.to_owned();
        answer.data.insert("AppUser".into(), props.app_user.clone());
        self.respond(common.response_url, &answer).await
    }

    /// Why this request is not this function's to carry out, if it is not: another stack's
    /// or resource's, or (but for a Delete, which touches nothing) another database's.
    fn refusal(&self, kind: &str, props: &Properties, common: &Common<'_>) -> Option<String> {
        if common.stack_id != self.stack_id || common.logical_id != self.logical_id {
            return Some(format!(
                "a request for resource {} of stack {}: this function answers only for resource {} of stack {}",
                common.logical_id, common.stack_id, self.logical_id, self.stack_id
            ));
        }
        let configured = (self.target.host.as_str(), self.target.port.to_string());
        // Properties from before they named the database (a rollback to them) name none.
        let named = !props.endpoint.is_empty();
        if kind != "Delete" && named && (props.endpoint.as_str(), props.port.clone()) != configured {
            return Some(format!(
                "the request names the database at {}:{}, but the function is configured for {}:{}; deploy again so that both name the same database",
                props.endpoint, props.port, configured.0, configured.1
            ));
        }
        None
    }

    /// PUTs the answer (empty Content-Type, as the pre-signed URL expects), retrying a few times.
    async fn respond(&self, url: &str, answer: &CloudFormationCustomResourceResponse) -> Result<(), FunctionError> {
        let body = serde_json::to_vec(answer).expect("the answer serializes");
        let put = || async {
            match self.http.put(url).header("content-type", "").body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(dap::chain(&e.without_url())),
            }
        };
        let answered = put.retry(ANSWER_RETRY.builder()).sleep(tokio::time::sleep).notify(|failure, pause| {
            tracing::warn!(%failure, pause_s = pause.as_secs(), "answering CloudFormation failed; retrying");
        });
        answered
            .await
            .map_err(|failure| FunctionError::transient(format!("answering CloudFormation failed: {failure}")))
    }

    async fn admin_options(&self) -> Result<ConnectOptions, FunctionError> {
        let text = aws::secret_string(&self.secrets, &self.admin_secret, "database admin").await?;
        let mut options = self.target.clone();
        options.user = aws::secret_field(&text, "username", &self.admin_secret)?;
        Ok(options.password(&aws::secret_field(&text, "password", &self.admin_secret)?))
    }

    /// A password reader's password, from the secret the stack generated for it (never logged).
    async fn reader_password(
        &self,
        reader: &contract::PasswordReader,
    ) -> Result<replica::scram::Password, FunctionError> {
        let arn = &reader.secret_arn;
        let text = aws::secret_string(&self.secrets, arn, &format!("database reader {}", reader.name)).await?;
        Ok(replica::scram::Password::new(aws::secret_field(&text, "password", arn)?))
    }

    async fn apply(&self, props: &Properties, connect_stop: tokio::time::Instant) -> Result<(), FunctionError> {
        let options = self.admin_options().await?;
        let now = tokio::time::Instant::now();
        resolve_patiently(&options, now + RESOLVE_GRACE.min((connect_stop - now) / 2)).await?;
        let mut db = connect_patiently(&options, connect_stop).await?;
        let mut passwords = std::collections::BTreeMap::new();
        for reader in &props.password_readers {
            passwords.insert(reader.name.clone(), self.reader_password(reader).await?);
        }
        let setup = replica::setup::Setup {
            app: props.app_user.clone(),
            namespaces: props.namespaces.clone(),
            readers: props.readers.iter().chain(passwords.keys()).cloned().collect(),
            passwords,
            iam: props.iam_auth(),
        };
        setup.apply(&mut db).await?;
        db.close().await.ok();
        Ok(())
    }
}

/// The answer to CloudFormation's pre-signed URL: three attempts, 1 s then 2 s apart.
const ANSWER_RETRY: Backoff = Backoff::doubling(3, Duration::from_secs(1), Duration::from_secs(2));
/// Looking the database's host name up again, until the grace below ends.
const RESOLVE_RETRY: Backoff = Backoff::doubling_until_deadline(Duration::from_millis(500), Duration::from_secs(5));
/// Connecting again while the database cannot take the connection yet, until the stop time.
const CONNECT_RETRY: Backoff = Backoff::doubling_until_deadline(Duration::from_secs(1), Duration::from_secs(10));

/// How long a host name that does not resolve is given to appear (a new endpoint's DNS
/// record may lag behind the cluster), at most half the time to connect in.
const RESOLVE_GRACE: Duration = Duration::from_secs(60);

/// The database's host name resolves, tried again until `until`: one that never does is a
/// setting to fix (a mistyped endpoint), said at once rather than after the connection's
/// retries have spent the function's time.
async fn resolve_patiently(options: &ConnectOptions, until: tokio::time::Instant) -> Result<(), FunctionError> {
    let host = options.host.as_str();
    let lookup = || tokio::net::lookup_host((host, options.port));
    let last = std::sync::Mutex::new(String::from("no answer yet"));
    let attempts = lookup.retry(RESOLVE_RETRY.builder()).sleep(tokio::time::sleep).notify(|e, _| {
        *last.lock().expect("not poisoned") = e.to_string();
    });
    match tokio::time::timeout_at(until, attempts).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unresolved(host, &e.to_string())),
        Err(_) => Err(unresolved(host, &last.lock().expect("not poisoned"))),
    }
}

fn unresolved(host: &str, why: &str) -> FunctionError {
    FunctionError::config(format!(
        "the database host {host} does not resolve ({why}): check database.endpoint in the config (the writer endpoint's host name), then deploy again"
    ))
}

/// Connects, trying again while the database cannot take the connection yet (a cluster
/// resuming, its endpoint not yet resolvable, a connect timeout), for as long as the
/// caller lets it run; a setting to fix (TLS, the login) ends it at once.
async fn connect_patiently(
    options: &ConnectOptions,
    stop: tokio::time::Instant,
) -> Result<sqlx::PgConnection, FunctionError> {
    let connect = || replica::connect::connect(options);
    let last = std::sync::Mutex::new(format!(
        "none finished (each waits up to {} s for the server)",
        options.connect_timeout.as_secs()
    ));
    let attempts = connect
        .retry(CONNECT_RETRY.builder())
        .sleep(tokio::time::sleep)
        .when(replica::ReplicaError::is_transient)
        .notify(|e, after| {
            tracing::warn!(error = %e, ?after, "the database does not take the connection yet; trying again");
            *last.lock().expect("not poisoned") = e.to_string();
        });
    match tokio::time::timeout_at(stop, attempts).await {
        Ok(connected) => Ok(connected?),
        Err(_) => Err(FunctionError::transient(format!(
            "the database did not take the connection before the function's stop time (a paused cluster resumes in about 15 s; is it stopped, or its security group closed?); the last attempt: {}; update the stack to try again",
            last.lock().expect("not poisoned")
        ))),
    }
}

/// The request's kind, properties and the fields every kind has.
struct Common<'a> {
    request_id: &'a str,
    response_url: &'a str,
    stack_id: &'a str,
    logical_id: &'a str,
    physical_id: Option<&'a str>,
}

fn parts(request: &Request) -> (&'static str, &Properties, Common<'_>) {
    // The fields each kind of request has under the same names (the three are distinct types).
    macro_rules! common {
        ($r:expr, $physical_id:expr) => {
            Common {
                request_id: &$r.request_id,
                response_url: &$r.response_url,
                stack_id: &$r.stack_id,
                logical_id: &$r.logical_resource_id,
                physical_id: $physical_id,
            }
        };
    }
    match request {
        CloudFormationCustomResourceRequest::Create(r) => ("Create", &r.resource_properties, common!(r, None)),
        CloudFormationCustomResourceRequest::Update(r) => {
            ("Update", &r.resource_properties, common!(r, Some(&r.physical_resource_id)))
        }
        CloudFormationCustomResourceRequest::Delete(r) => {
            ("Delete", &r.resource_properties, common!(r, Some(&r.physical_resource_id)))
        }
        _ => unreachable!("CloudFormation sends Create, Update or Delete"),
    }
}
