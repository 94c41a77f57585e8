//! `init_table`: see [`functions::replicate`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    functions::replicate::serve(functions::replicate::Kind::Init).await
}
