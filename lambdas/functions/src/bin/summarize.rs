//! `summarize`: see [`functions::summary`] and [`functions::results`].

use contract::{Summary, SummaryRequest};
use functions::FunctionError;
use functions::summary::Summarizer;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    functions::init_logging();
    let vars: contract::env::summarize::Vars<String> = functions::settings::read()?;
    let summarizer = Summarizer::from_env(&vars)?;
    let s3 = functions::results::s3_client(&functions::aws::load().await);
    // Where the tables' freshness is kept: the results bucket.
    let bucket = vars.results_bucket;
    let (summarizer, s3, bucket) = (&summarizer, &s3, &bucket);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SummaryRequest>| async move {
        let mut request = event.payload;
        functions::results::collect(s3, &mut request.run).await?;
        functions::freshness::after_run(s3, bucket, &request, functions::freshness::now_s()).await;
        summarizer.handle(request) as Result<Summary, FunctionError>
    }))
    .await
}
