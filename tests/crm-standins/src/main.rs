//! `callhook-crm-standins <crm> [--port N]`: runs one stand-in with its default configuration
//! until Ctrl-C, for trying a plugin by hand. The credentials it takes are the defaults of its
//! configuration type (see the README); fault switches are at `POST /_standin/{switch}`.

use anyhow::Context;
use callhook_crm_standins::{
    Bitrix24, Bitrix24Config, HubSpot, HubSpotConfig, Pipedrive, PipedriveConfig, Zoho, ZohoConfig,
};
use clap::{Parser, ValueEnum};

/// Runs one CRM stand-in on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Which CRM to stand in for.
    crm: Crm,
    /// The port on 127.0.0.1; by default an ephemeral one, printed at start.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Crm {
    Hubspot,
    Pipedrive,
    Bitrix24,
    Zoho,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let port = cli.port;
    let context = || format!("while starting the {:?} stand-in", cli.crm);
    // Each arm keeps its handle alive until Ctrl-C.
    match cli.crm {
        Crm::Hubspot => {
            let handle = HubSpot::start(HubSpotConfig {
                port,
                ..HubSpotConfig::default()
            })
            .await
            .with_context(context)?;
            serve_until_ctrl_c("HubSpot", &handle.base_url()).await
        }
        Crm::Pipedrive => {
            let config = PipedriveConfig {
                port,
                ..PipedriveConfig::default()
            };
            let handle = Pipedrive::start(config).await.with_context(context)?;
            serve_until_ctrl_c("Pipedrive", &handle.base_url()).await
        }
        Crm::Bitrix24 => {
            let config = Bitrix24Config {
                port,
                ..Bitrix24Config::default()
            };
            let handle = Bitrix24::start(config).await.with_context(context)?;
            serve_until_ctrl_c("Bitrix24", &handle.base_url()).await
        }
        Crm::Zoho => {
            let handle = Zoho::start(ZohoConfig {
                port,
                ..ZohoConfig::default()
            })
            .await
            .with_context(context)?;
            serve_until_ctrl_c("Zoho", &handle.base_url()).await
        }
    }
}

async fn serve_until_ctrl_c(name: &str, base_url: &str) -> anyhow::Result<()> {
    println!("{name} stand-in listening on {base_url} (Ctrl-C stops it)");
    tokio::signal::ctrl_c()
        .await
        .context("while waiting for Ctrl-C")
}
