//! The `callhook` command line.

mod demo;
mod replay;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Watches a 3CX phone system and delivers its call events to sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "callhook", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the bundled 3CX simulator, a local webhook sink that prints what it receives, and
    /// callhook with the default plugin between them, then play a few calls.
    ///
    /// Shows, within a minute and without any configuration, the webhooks a CRM would receive.
    Demo(demo::DemoArgs),
    /// Connect to the PBX and deliver its call events to the configured plugins until SIGTERM.
    Run {
        /// The configuration: `callhook.toml`, or a legacy `webhooks.ini`.
        #[arg(long, short)]
        config: PathBuf,
        /// Also write every socket frame and GET reply, with times, to this JSON-lines file
        /// (secrets and tokens redacted), for `callhook replay` and bug reports.
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Validate a configuration and load its plugins, without connecting anywhere.
    ///
    /// Every problem is reported with its file, line and key.
    CheckConfig {
        /// The configuration: `callhook.toml`, or a legacy `webhooks.ini`.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Feed a capture file (written by `run --capture`) through the event engine and print the
    /// events it derives, one JSON object per line.
    Replay {
        /// The capture file (JSON lines).
        file: PathBuf,
        /// The PBX's time zone for call ids, e.g. `Europe/Berlin`. By default the host's.
        #[arg(long)]
        timezone: Option<String>,
    },
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Run { config, capture } => run::run(&config, capture).await,
            Command::CheckConfig { config } => run::check_config(&config),
            Command::Replay { file, timezone } => replay::run(&file, timezone.as_deref()),
        }
    }
}
