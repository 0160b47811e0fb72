//! The `callhook` command.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest and wasmtime-wasi-http bring different rustls crypto back ends; pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = callhook::cli::Cli::parse();
    callhook::telemetry::logs::init(cli.log_format);
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
