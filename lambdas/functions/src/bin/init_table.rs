//! `init_table`: see [`functions::replicate`].

use contract::TableState;
use functions::replicate::{Kind, Replication};
use functions::{FunctionError, PerContainer};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    functions::init_logging();
    let sdk = functions::aws::load().await;
    let replication = PerContainer::<Replication>::default();
    let (sdk, replication) = (&sdk, &replication);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<TableState>| async move {
        let deadline = event.context.deadline();
        replication
            .with(
                async || Replication::from_env(sdk).await,
                async |r| r.handle(Kind::Init, event.payload, deadline).await,
            )
            .await as Result<TableState, FunctionError>
    }))
    .await
}
