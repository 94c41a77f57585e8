//! `summarize`: see [`functions::summary`].

use contract::{Summary, SummaryRequest};
use functions::FunctionError;
use functions::summary::Summarizer;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    functions::init_logging();
    let summarizer = Summarizer::from_env()?;
    let summarizer = &summarizer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SummaryRequest>| async move {
        summarizer.handle(event.payload) as Result<Summary, FunctionError>
    }))
    .await
}
