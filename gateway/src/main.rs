//! `gateway`: certgate's example gateway.
//!
//! With no arguments it runs a demo on 127.0.0.1: an in-memory store, a demo CA, a `localhost`
//! server certificate and a client certificate made into `./demo-certs/` (kept between runs),
//! an open HTTPS API and a mutual-TLS API in front of a built-in echo upstream; it prints `curl`
//! commands that work. `gateway --config FILE` runs a real configuration.
//!
//! ```sh
//! cargo run -p certgate-gateway                      # the demo
//! cargo run -p certgate-gateway -- --config tyk.conf # a configuration
//! ```
//!
//! SIGINT/SIGTERM drain connections and stop; SIGHUP reloads the API definitions.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// certgate's gateway: TLS termination with SNI, mutual TLS, a reverse proxy and the
/// `/tyk/certs` API. Without --config it runs the demo.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Args {
    /// A JSON configuration with tyk.conf's field names (`TYK_GW_*` variables override it);
    /// without it, the demo runs.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Demo only: the folder of the demo's CA, server and client certificates (made on the
    /// first run, kept after).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "demo-certs",
        conflicts_with = "config"
    )]
    demo_dir: PathBuf,
    /// Demo only: the port on 127.0.0.1 (0 picks a free one).
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 8443,
        conflicts_with = "config"
    )]
    port: u16,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    // With one CPU to run on (the affinity mask or cgroup quota allows no more), a work-stealing
    // pool only adds cross-thread hand-offs: every task then runs on the main thread.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Installed before the gateway starts: a signal sent as soon as it listens is handled.
    let signals = Signals::install()?;
    let (gateway, app_path) = match &args.config {
        Some(path) => {
            let config = GatewayConfig::load(path, std::env::vars()).map_err(|e| e.to_string())?;
            let app_path = config.app_path.clone();
            (
                GatewayBuilder::new(config)
                    .start()
                    .await
                    .map_err(|e| e.to_string())?,
                app_path,
            )
        }
        None => (demo::start(&args.demo_dir, args.port).await?, None),
    };
    signals.wait(&gateway, app_path).await;
    gateway.shutdown().await;
    Ok(())
}

/// The signals the gateway answers: SIGTERM and SIGINT stop it, SIGHUP reloads the APIs.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Self, String> {
        let install =
            |kind| signal(kind).map_err(|e| format!("cannot install the signal handlers: {e}"));
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, reloading the API definitions on each SIGHUP.
    async fn wait(mut self, gateway: &Gateway, app_path: Option<PathBuf>) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => break,
                _ = self.interrupt.recv() => break,
                _ = self.hangup.recv() => reload(gateway, app_path.as_deref()).await,
            }
        }
        tracing::info!("shutting down: draining connections");
    }
}

/// SIGHUP: reads the API definitions again; on any problem the previous ones stay.
async fn reload(gateway: &Gateway, app_path: Option<&std::path::Path>) {
    let Some(dir) = app_path else {
        tracing::info!("SIGHUP: no app_path configured; nothing to reload");
        return;
    };
    match ApiDefinition::load_dir(dir) {
        Ok(apis) => match gateway.reload_apis(apis).await {
            Ok(()) => tracing::info!("SIGHUP: API definitions reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: reload failed; keeping the previous APIs")
            }
        },
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: cannot read the API definitions; keeping the previous ones"
        ),
    }
}
