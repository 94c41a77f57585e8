//! `db_bootstrap`: see [`functions::bootstrap`].

use functions::FunctionError;
use functions::bootstrap::{Bootstrap, Request};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    functions::init_logging();
    let sdk = functions::aws::load().await;
    // Settings the stack sets; without them no answer can be made right, so fail loudly.
    let bootstrap = Bootstrap::from_env(&sdk)?;
    let bootstrap = &bootstrap;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| async move {
        let deadline = functions::deadline(&event.context);
        bootstrap.handle(event.payload, deadline).await as Result<(), FunctionError>
    }))
    .await
}
