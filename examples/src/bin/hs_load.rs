//! `hs_load`: the TLS load client of `bench/compare.sh` for what wrk and h2load cannot do: client
//! certificates, latency at a fixed request rate, and many idle connections. One client measures
//! every server the same way.
//!
//! Every connection makes a full TLS 1.3 handshake (resumption disabled, TLS_AES_128_GCM_SHA256
//! and X25519 only, the server's chain verified against `--ca` for the name `--sni`, presenting
//! `--cert`/`--key` if given). Three modes:
//!
//! - **closed loop** (default): `--tasks` concurrent tasks on one thread each loop for `--duration`
//!   seconds: connect, handshake, send `GET /` with `Connection: close`, read the response to its
//!   end. A 2xx status line counts as a success; anything else (including a refused client
//!   certificate, which TLS 1.3 reports only after the handshake) as an error.
//! - **paced** (`--rate R`): requests are scheduled every `1/R` seconds for `--duration` seconds,
//!   whether or not earlier ones have finished, and each request's latency is measured from the
//!   moment it was *scheduled*, so a stalled server is charged for the requests that queued
//!   behind the stall (no coordinated omission). `--tasks` workers take the scheduled requests;
//!   with `--keep-alive` each worker keeps one connection open and sends its requests on it,
//!   without it every request is a new connection. Prints
//!   `latency_us p50 A p99 B p999 C max D` after the counts.
//! - **hold** (`--hold N`): opens `N` connections (`--tasks` handshakes at a time), sends
//!   nothing, prints `held N seconds S` once all are open and keeps them open for `--duration`
//!   seconds: resident memory per idle connection is read off the server meanwhile. With
//!   `--keep-alive`, each connection first sends one keep-alive `GET /` and reads its answer,
//!   so the connections held are idle between requests.
//!
//! It prints `successes N errors N seconds S` and exits with 1 if there was any error or no
//! success.
//!
//! ```sh
//! cargo run --release -p certgate-examples --bin hs_load -- --connect 127.0.0.1:9443 \
//!     --sni bench.example --ca ca.pem --cert client.pem --key client.key --tasks 4 --duration 10
//! cargo run --release -p certgate-examples --bin hs_load -- --connect 127.0.0.1:9443 \
//!     --sni bench.example --ca ca.pem --rate 2000 --keep-alive --tasks 16 --duration 10
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Longest one connection (connect, handshake, request, response) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Full TLS 1.3 handshakes in a loop, each carrying one `GET /`; or requests at a fixed rate; or
/// many idle connections.
#[derive(Parser)]
#[command(name = "hs_load")]
struct Args {
    /// The server's address.
    #[arg(long)]
    connect: SocketAddr,
    /// The name sent as SNI and checked in the server's certificate.
    #[arg(long)]
    sni: String,
    /// PEM file of the CA certificates the server's chain must lead to.
    #[arg(long)]
    ca: PathBuf,
    /// PEM file of the client certificate chain to present, leaf first.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    tasks: usize,
    /// Seconds to keep starting connections, or to schedule requests, or to hold the
    /// connections open (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Schedule this many requests per second and report their latency (paced mode).
    #[arg(long, conflicts_with = "hold")]
    rate: Option<f64>,
    /// In paced mode, send the requests on kept-alive connections (one per task); in hold mode,
    /// send one keep-alive request on each connection before holding it.
    #[arg(long)]
    keep_alive: bool,
    /// Open this many connections, send nothing, and keep them open (hold mode).
    #[arg(long)]
    hold: Option<usize>,
}

/// What one task did.
#[derive(Default)]
struct Tally {
    successes: u64,
    errors: u64,
    first_error: Option<String>,
    /// Paced mode: each request's latency from its scheduled start, in microseconds.
    latencies_us: Vec<u64>,
}

impl Tally {
    fn record(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.successes += 1,
            Err(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.successes += other.successes;
        self.errors += other.errors;
        if let Some(message) = other.first_error {
            eprintln!("hs_load: error: {message}");
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(certs)
}

fn client_config(args: &Args) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&args.ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", args.ca.display()))?;
    }
    let provider = CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![ring::kx_group::X25519],
        ..ring::default_provider()
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(read_certs(cert)?, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Connects and makes the handshake.
async fn open(
    connector: &TlsConnector,
    address: SocketAddr,
    name: ServerName<'static>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// `Ok` when a response's status line is 2xx.
fn check_status(response: &[u8]) -> Result<(), String> {
    let status = response.split(|&b| b == b'\r').next().unwrap_or_default();
    if status.starts_with(b"HTTP/1.1 2") || status.starts_with(b"HTTP/1.0 2") {
        Ok(())
    } else {
        Err(format!("status line {:?}", String::from_utf8_lossy(status)))
    }
}

/// One connection: handshake, request, whole response; `Ok` on a 2xx status.
async fn exchange(
    connector: &TlsConnector,
    address: SocketAddr,
    name: ServerName<'static>,
    request: &[u8],
) -> Result<(), String> {
    let mut tls = open(connector, address, name).await?;
    tls.write_all(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let mut response = Vec::with_capacity(1024);
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| format!("response: {e}"))?;
    check_status(&response)
}

/// Reads one response with a `Content-Length` body from a kept-alive connection; `buffer` keeps
/// what arrived beyond it.
async fn read_response(tls: &mut TlsStream<TcpStream>, buffer: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .ok_or("a kept-alive response without Content-Length")?;
            let total = head_end + 4 + length;
            while buffer.len() < total {
                read_more(tls, buffer, &mut chunk).await?;
            }
            let outcome = check_status(buffer);
            buffer.drain(..total);
            return outcome;
        }
        read_more(tls, buffer, &mut chunk).await?;
    }
}

async fn read_more(
    tls: &mut TlsStream<TcpStream>,
    buffer: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<(), String> {
    match tls.read(chunk).await {
        Ok(0) => Err("the server closed a kept-alive connection".to_owned()),
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(format!("response: {e}")),
    }
}

/// Connections one after another until `deadline`.
async fn task(target: Target, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let name = target.name.clone();
        let outcome = tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            exchange(
                &target.connector,
                target.address,
                name,
                &target.request_close,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no response within {EXCHANGE_TIMEOUT:?}")));
        tally.record(outcome);
    }
    tally
}

/// What every connection of a run shares.
#[derive(Clone)]
struct Target {
    connector: TlsConnector,
    address: SocketAddr,
    name: ServerName<'static>,
    /// `GET /` with `Connection: close`.
    request_close: Arc<[u8]>,
    /// `GET /` on a kept-alive connection.
    request_keep: Arc<[u8]>,
}

/// Paced mode: one request every `1 / rate` seconds until `deadline`, taken by `tasks` workers.
async fn paced(
    target: Target,
    tasks: usize,
    rate: f64,
    keep_alive: bool,
    duration: Duration,
) -> Tally {
    let (schedule, scheduled) = mpsc::unbounded_channel::<Instant>();
    let scheduled = Arc::new(Mutex::new(scheduled));
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            tokio::spawn(paced_worker(
                target.clone(),
                Arc::clone(&scheduled),
                keep_alive,
            ))
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for n in 0u32.. {
        let at = start + interval * n;
        if at.duration_since(start) >= duration {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        if schedule.send(at).is_err() {
            break;
        }
    }
    drop(schedule);
    let mut total = Tally::default();
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(tally),
            Err(e) => total.record(Err(format!("worker: {e}"))),
        }
    }
    total
}

/// Takes scheduled requests until the schedule ends; latency counts from the scheduled moment.
async fn paced_worker(
    target: Target,
    scheduled: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    keep_alive: bool,
) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<TlsStream<TcpStream>> = None;
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let next = scheduled.lock().await.recv().await;
        let Some(at) = next else { break };
        let attempt = async {
            if !keep_alive {
                let name = target.name.clone();
                return exchange(
                    &target.connector,
                    target.address,
                    name,
                    &target.request_close,
                )
                .await;
            }
            let tls = match &mut connection {
                Some(tls) => tls,
                slot => {
                    let name = target.name.clone();
                    slot.insert(open(&target.connector, target.address, name).await?)
                }
            };
            tls.write_all(&target.request_keep)
                .await
                .map_err(|e| format!("request: {e}"))?;
            read_response(tls, &mut buffer).await
        };
        let outcome = tokio::time::timeout(EXCHANGE_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no response within {EXCHANGE_TIMEOUT:?}")));
        if outcome.is_ok() {
            let micros = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
            tally.latencies_us.push(micros);
        } else {
            connection = None;
            buffer.clear();
        }
        tally.record(outcome);
    }
    tally
}

/// Hold mode: opens `count` connections, `tasks` at a time, and keeps them for `duration`.
async fn hold(
    target: Target,
    tasks: usize,
    count: usize,
    duration: Duration,
    one_request: bool,
) -> Tally {
    let started = Instant::now();
    let opened = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (target, opened, next) = (target.clone(), Arc::clone(&opened), Arc::clone(&next));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    let name = target.name.clone();
                    let opening = async {
                        let mut tls = open(&target.connector, target.address, name).await?;
                        if one_request {
                            tls.write_all(&target.request_keep)
                                .await
                                .map_err(|e| format!("request: {e}"))?;
                            read_response(&mut tls, &mut Vec::new()).await?;
                        }
                        Ok(tls)
                    };
                    let outcome = tokio::time::timeout(EXCHANGE_TIMEOUT, opening)
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!("no handshake within {EXCHANGE_TIMEOUT:?}"))
                        });
                    tally.record(outcome.map(|tls| {
                        opened
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(tls);
                    }));
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(tally),
            Err(e) => total.record(Err(format!("worker: {e}"))),
        }
    }
    let held = opened
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    println!("held {held} seconds {:.2}", started.elapsed().as_secs_f64());
    let _ = std::io::stdout().flush();
    tokio::time::sleep(duration).await;
    total
}

async fn run(args: Args, config: ClientConfig) -> Result<Tally, String> {
    let name = ServerName::try_from(args.sni.clone()).map_err(|e| format!("--sni: {e}"))?;
    let duration = Duration::try_from_secs_f64(args.duration)
        .map_err(|e| format!("--duration {}: {e}", args.duration))?;
    let request = |connection: &str| -> Arc<[u8]> {
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: {connection}\r\n\r\n",
            args.sni
        )
        .into_bytes()
        .into()
    };
    let target = Target {
        connector: TlsConnector::from(Arc::new(config)),
        address: args.connect,
        name,
        request_close: request("close"),
        request_keep: request("keep-alive"),
    };
    let tasks = args.tasks.max(1);
    if args.keep_alive && args.hold.is_none() && args.rate.is_none() {
        return Err("--keep-alive needs --rate or --hold".to_owned());
    }
    if let Some(count) = args.hold {
        return Ok(hold(target, tasks, count, duration, args.keep_alive).await);
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "--rate {rate}: needs a positive number of requests per second"
            ));
        }
        return Ok(paced(target, tasks, rate, args.keep_alive, duration).await);
    }
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|_| tokio::spawn(task(target.clone(), deadline)))
        .collect();
    let mut total = Tally::default();
    for handle in handles {
        total.merge(handle.await.map_err(|e| e.to_string())?);
    }
    Ok(total)
}

/// `p50 A p99 B p999 C max D` of latencies in microseconds (nearest rank).
fn percentiles(latencies: &mut [u64]) -> String {
    latencies.sort_unstable();
    let at = |q: f64| {
        let rank = (q * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    };
    format!(
        "p50 {} p99 {} p999 {} max {}",
        at(0.50),
        at(0.99),
        at(0.999),
        latencies[latencies.len() - 1]
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let result = client_config(&args).and_then(|config| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(run(args, config))
    });
    match result {
        Ok(mut tally) => {
            println!(
                "successes {} errors {} seconds {:.2}",
                tally.successes,
                tally.errors,
                started.elapsed().as_secs_f64()
            );
            if !tally.latencies_us.is_empty() {
                println!("latency_us {}", percentiles(&mut tally.latencies_us));
            }
            if tally.errors == 0 && tally.successes > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("hs_load: {message}");
            ExitCode::from(2)
        }
    }
}
