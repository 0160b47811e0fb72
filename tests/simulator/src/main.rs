//! `callhook-simulator`: run the 3CX simulator as a process, for demos, manual tests and plugin
//! authors. Serves until Ctrl-C; optionally plays scenarios (once, or in a loop with fresh call
//! ids each round).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use callhook_simulator::{LoadProfile, Scenario, SimConfig, SimHandle, Simulator};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A 3CX V20 phone system simulator: Call Control REST + WebSocket, XAPI recordings, OAuth
/// tokens, fault injection.
///
/// Point a Call Control API client (such as callhook) at the printed base URL with the client
/// id and secret given here. Scenarios are TOML files (see tests/simulator/scenarios/README.md)
/// or the names of the shipped ones (see --list).
#[derive(Parser, Debug)]
#[command(name = "callhook-simulator", version, max_term_width = 100)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5001")]
    listen: SocketAddr,

    /// Serve HTTPS and WSS with a freshly generated certificate. The CA to trust is written to
    /// --ca-out, or printed.
    #[arg(long)]
    tls: bool,

    /// With --tls, write the CA certificate (PEM) to this file instead of printing it.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_out: Option<PathBuf>,

    /// The API client's id (also the name of its route point DN).
    #[arg(long, default_value = "callhook")]
    client_id: String,

    /// The API client's secret.
    #[arg(long, default_value = "secret")]
    client_secret: String,

    /// A scenario to play: a shipped scenario's name or a path to a .toml file. Repeat to play
    /// several, in order.
    #[arg(long = "play", value_name = "SCENARIO")]
    play: Vec<String>,

    /// Also play a generated load scenario of N concurrent calls (after the --play ones).
    #[arg(long, value_name = "N")]
    load: Option<usize>,

    /// Scale of scenario time: 0.1 plays ten times faster than real time.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    time_scale: f64,

    /// Play the scenarios again and again (with fresh call and participant ids each round).
    #[arg(long = "loop")]
    repeat: bool,

    /// Before playing, wait until this many clients have opened the event WebSocket and taken a
    /// snapshot.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_for_clients: usize,

    /// Exit once the scenarios have played (instead of serving until Ctrl-C).
    #[arg(long, conflicts_with = "repeat")]
    exit_after_play: bool,

    /// Report `expires_in` in minutes (PBX before 20.0.9) instead of seconds.
    #[arg(long)]
    expires_in_minutes: bool,

    /// Report exactly this `expires_in` whatever the lifetime (a live V20 is reported to send
    /// 60 for an hour-long JWT).
    #[arg(long, value_name = "N")]
    expires_in: Option<u64>,

    /// Re-announce participants not yet Connected this often, as 3CX does (about 750 ms).
    #[arg(long, value_name = "MS")]
    repeat_unconnected: Option<u64>,

    /// Wait this long before answering each participant GET (a remote PBX).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    get_delay: u64,

    /// Token lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    token_lifetime: u64,

    /// Delay in milliseconds between the end of a call and its recordings appearing.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    recording_delay: u64,

    /// Also write recordings as WAV files into this folder (one folder per extension).
    #[arg(long, value_name = "DIR")]
    recordings_folder: Option<PathBuf>,

    /// Serve the fault-injection endpoints under /_sim/ (e.g. POST /_sim/drop_sockets).
    #[arg(long)]
    control: bool,

    /// List the shipped scenarios and exit.
    #[arg(long)]
    list: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if args.list {
        for name in Scenario::builtin_names() {
            let scenario = Scenario::builtin(name)?;
            println!(
                "{name:32} {}",
                scenario.description().lines().next().unwrap_or_default()
            );
        }
        return Ok(());
    }
    let mut scenarios = args
        .play
        .iter()
        .map(|s| load_scenario(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(n) = args.load {
        scenarios.push(Scenario::load(n, &LoadProfile::default()));
    }
    let config = SimConfig {
        listen: args.listen,
        client_id: args.client_id.clone(),
        client_secret: args.client_secret.clone(),
        tls: args.tls,
        expires_in_minutes: args.expires_in_minutes,
        expires_in: args.expires_in,
        repeat_unconnected: args.repeat_unconnected.map(Duration::from_millis),
        get_delay: Duration::from_millis(args.get_delay),
        token_lifetime: Duration::from_secs(args.token_lifetime),
        recording_delay: Duration::from_millis(args.recording_delay),
        recordings_folder: args.recordings_folder.clone(),
        directory: scenarios.iter().flat_map(|s| s.directory()).collect(),
        control_endpoint: args.control,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await?;
    announce(&sim, &args)?;

    let played = async {
        if scenarios.is_empty() {
            return std::future::pending().await;
        }
        if args.wait_for_clients > 0 {
            tracing::info!(
                clients = args.wait_for_clients,
                "waiting for clients to connect"
            );
            sim.wait_sockets(args.wait_for_clients).await;
            sim.wait_snapshots(args.wait_for_clients as u64).await;
        }
        play_all(&sim, &scenarios, &args).await
    };
    tokio::select! {
        result = played => {
            result?;
            if !args.exit_after_play {
                tracing::info!("scenarios played; serving until Ctrl-C");
                tokio::signal::ctrl_c().await?;
            }
        }
        signal = tokio::signal::ctrl_c() => signal?,
    }
    sim.shutdown().await;
    Ok(())
}

/// A shipped scenario by name, else a file.
fn load_scenario(spec: &str) -> anyhow::Result<Scenario> {
    let path = Path::new(spec);
    if path.exists() {
        Ok(Scenario::from_file(path)?)
    } else {
        Scenario::builtin(spec)
            .with_context(|| format!("`{spec}` is neither a file nor a shipped scenario"))
    }
}

fn announce(sim: &SimHandle, args: &Args) -> anyhow::Result<()> {
    tracing::info!(
        base_url = %sim.base_url(),
        client_id = %args.client_id,
        "3CX simulator listening"
    );
    if let Some(pem) = sim.ca_pem() {
        match &args.ca_out {
            Some(file) => {
                std::fs::write(file, pem)
                    .with_context(|| format!("while writing {}", file.display()))?;
                tracing::info!(file = %file.display(), "CA certificate written");
            }
            None => println!("{pem}"),
        }
    }
    Ok(())
}

async fn play_all(sim: &SimHandle, scenarios: &[Scenario], args: &Args) -> anyhow::Result<()> {
    for round in 0u64.. {
        for scenario in scenarios {
            // Call ids must stay unique within a PBX run; participant ids while they live.
            let scenario = scenario.renumbered(round * 1_000_000, round * 10_000_000);
            tracing::info!(scenario = scenario.name(), round, "playing");
            sim.play(&scenario, args.time_scale).await?;
        }
        if !args.repeat {
            break;
        }
    }
    Ok(())
}
