//! `list_tables`: see [`functions::list`].

use contract::{ListRequest, TableList};
use functions::{FunctionError, PerContainer, list::Lister};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    functions::init_logging();
    let sdk = functions::aws::load().await;
    let lister = PerContainer::<Lister>::default();
    let (sdk, lister) = (&sdk, &lister);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ListRequest>| {
        // Boxed: the listing's future is deep, and rustc's layout queries overflow on it inline.
        Box::pin(async move {
            let deadline = functions::deadline(&event.context);
            let listed: Result<TableList, FunctionError> = lister
                .with(async || Lister::from_env(sdk).await, async |l| l.handle(event.payload, deadline).await)
                .await;
            listed.map_err(FunctionError::ending_the_run)
        })
    }))
    .await
}
