//! `gateway`: certgate's example gateway.
//!
//! With no arguments it runs a demo on 127.0.0.1: an in-memory store, a demo CA, a `localhost`
//! server certificate and a client certificate made into `./demo-certs/` (kept between runs),
//! an open HTTPS API and a mutual-TLS API in front of a built-in echo upstream; it prints `curl`
//! commands that work. `gateway --config FILE` runs a real configuration.
//!
//! ```sh
//! cargo run -p gateway-runtime                      # the demo
//! cargo run -p gateway-runtime -- --config tyk.conf # a configuration
//! ```
//!
//! SIGINT/SIGTERM drain connections and stop; SIGHUP reloads the API definitions.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: gateway [--config FILE] [--demo-dir DIR] [--port PORT]";

struct Args {
    config: Option<PathBuf>,
    demo_dir: PathBuf,
    port: u16,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: None,
        demo_dir: PathBuf::from("demo-certs"),
        port: 8443,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--config" | "-c" => args.config = Some(PathBuf::from(value("--config")?)),
            "--demo-dir" => args.demo_dir = PathBuf::from(value("--demo-dir")?),
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|_| format!("--port needs a number\n{USAGE}"))?
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
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
    // Handlers first: a SIGTERM that arrives while the gateway starts (or right after the demo
    // prints its banner) stops it cleanly instead of killing the process.
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
    wait_for_signals(signals, &gateway, app_path).await?;
    gateway.shutdown().await;
    Ok(())
}

/// The signals the gateway handles, installed before it starts.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, String> {
        let install = |kind| signal(kind).map_err(|e| e.to_string());
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }
}

async fn wait_for_signals(
    signals: Signals,
    gateway: &Gateway,
    app_path: Option<PathBuf>,
) -> Result<(), String> {
    let Signals {
        mut terminate,
        mut interrupt,
        mut hangup,
    } = signals;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                let Some(dir) = &app_path else {
                    tracing::info!("SIGHUP: no app_path configured; nothing to reload");
                    continue;
                };
                match ApiDefinition::load_dir(dir) {
                    Ok(apis) => match gateway.reload_apis(apis).await {
                        Ok(()) => tracing::info!("SIGHUP: API definitions reloaded"),
                        Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; keeping the previous APIs"),
                    },
                    Err(e) => tracing::error!(error = %e, "SIGHUP: cannot read the API definitions; keeping the previous ones"),
                }
            }
        }
    }
    tracing::info!("shutting down: draining connections");
    Ok(())
}
