//! The `callhook` command.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest and wasmtime-wasi-http bring different rustls crypto back ends; pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,callhook=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match callhook::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
