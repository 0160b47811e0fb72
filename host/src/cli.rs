//! The `callhook` command line.

mod crm_standin;
mod deliveries;
mod demo;
mod plugin;
mod plugin_test;
mod replay;
mod run;

use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Watches a 3CX phone system and delivers its call events to sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "callhook", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How log lines are written to stderr: `text` for people (coloured only on a terminal),
    /// `json` for log shippers (one object per line). `RUST_LOG` sets what is logged.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub log_format: LogFormat,
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
    ///
    /// Plugins and routes reload on SIGHUP and when the configuration file changes; a broken
    /// configuration is rejected and the one in force stays.
    Run {
        /// The configuration: `callhook.toml`, or a legacy `webhooks.ini`.
        #[arg(long, short)]
        config: PathBuf,
        /// Also write every socket frame and GET reply, with times, to this JSON-lines file
        /// (secrets and tokens redacted), for `callhook replay` and bug reports.
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Validate a configuration and load its plugins, without connecting anywhere (unless
    /// `--online`).
    ///
    /// Every problem is reported with its file, line and key.
    CheckConfig {
        /// The configuration: `callhook.toml`, or a legacy `webhooks.ini`.
        #[arg(long, short)]
        config: PathBuf,
        /// Also log in to the PBX and say whether the API client may use Call Control and
        /// XAPI (each is granted separately in the 3CX admin console). This mints a token, and
        /// the PBX keeps one live token per API client: a callhook already running with the
        /// same client mints its own again on its next request.
        #[arg(long)]
        online: bool,
    },
    /// Inspect and replay deliveries kept in the durable queue.
    ///
    /// While callhook runs, the commands act on it at once (through the admin socket in its
    /// storage directory); while it is stopped, on its database, taking effect at its next start.
    Deliveries {
        /// What to do.
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Plugin authoring.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Feed a capture file (written by `run --capture`) through the event engine and print the
    /// events it derives, one JSON object per line.
    Replay {
        /// The capture file (JSON lines).
        file: PathBuf,
        /// The PBX's time zone for call ids, e.g. `Europe/Berlin`. By default the host's, or
        /// the configuration's.
        #[arg(long)]
        timezone: Option<String>,
        /// Derive the events with this configuration's engine settings (`[trunks]`, `[did]`,
        /// time zone, grace). Rule names a live run reads from XAPI are not in a capture: give
        /// them in `[did]`. By default none of these settings.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// The `deliveries` commands.
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List pending and parked deliveries with their last outcomes.
    List {
        /// The configuration whose storage holds the queue.
        #[arg(long, short)]
        config: PathBuf,
        /// Which deliveries.
        #[command(flatten)]
        selection: deliveries::Selection,
        /// Show every attempt's time, outcome and message.
        #[arg(long)]
        history: bool,
    },
    /// Re-enable a plugin that was disabled because its receiver answered 410 (gone); its
    /// waiting deliveries are attempted again (the one parked by the 410 needs a `retry`).
    EnablePlugin {
        /// The plugin's name.
        plugin: String,
        /// The configuration whose storage holds the queue.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Attempt a delivery again (by id), or every selected one: a parked one gets a fresh
    /// series of retries, a waiting one is tried now.
    Retry {
        /// The delivery's id, as `list` shows it.
        id: Option<u64>,
        /// The configuration whose storage holds the queue.
        #[arg(long, short)]
        config: PathBuf,
        /// Which deliveries, when no id is given.
        #[command(flatten)]
        selection: deliveries::Selection,
    },
}

/// The `plugin` commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a ready-to-build plugin crate from the SDK's template.
    New {
        /// The plugin's name, e.g. `my-crm`.
        name: String,
        /// Where to create it. By default `./NAME`.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The plugin SDK to depend on by path. By default the SDK this callhook carries,
        /// written into the new crate as `callhook-plugin-sdk/`.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run a plugin against a simulator scenario or a capture and print the HTTP requests it
    /// sends, answered by a local stand-in: nothing reaches the real CRM.
    Test(plugin_test::TestArgs),
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Run { config, capture } => run::run(&config, capture).await,
            Command::CheckConfig { config, online } => run::check_config(&config, online).await,
            Command::Plugin { command } => match command {
                PluginCommand::New { name, dir, sdk } => plugin::new(&name, dir, sdk),
                PluginCommand::Test(args) => plugin_test::run(args).await,
            },
            Command::Deliveries { command } => match command {
                DeliveriesCommand::List {
                    config,
                    selection,
                    history,
                } => deliveries::list(&config, &selection, history).await,
                DeliveriesCommand::Retry {
                    id,
                    config,
                    selection,
                } => deliveries::retry(&config, id, &selection).await,
                DeliveriesCommand::EnablePlugin { plugin, config } => {
                    deliveries::enable(&config, &plugin).await
                }
            },
            Command::Replay {
                file,
                timezone,
                config,
            } => replay::run(&file, timezone.as_deref(), config.as_deref()),
        }
    }
}
