//! `hs_load`: the full-handshake load client of `bench/compare.sh`, for mutual TLS. wrk and
//! h2load cannot send client certificates, and one client measures every server the same way.
//!
//! `--tasks` concurrent tasks on one thread each loop for `--duration` seconds: connect, make a
//! full TLS 1.3 handshake (resumption disabled, TLS_AES_128_GCM_SHA256 and X25519 only, the
//! server's chain verified against `--ca` for the name `--sni`, presenting `--cert`/`--key` if
//! given), send `GET /` with `Connection: close`, and read the response to its end. A 2xx
//! status line counts as a success; anything else (including a refused client certificate,
//! which TLS 1.3 reports only after the handshake) as an error. It prints
//! `successes N errors N seconds S` and exits with 1 if there was any error or no success.
//!
//! ```sh
//! cargo run --release -p certgate-examples --bin hs_load -- --connect 127.0.0.1:9443 \
//!     --sni bench.example --ca ca.pem --cert client.pem --key client.key --tasks 4 --duration 10
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Longest one connection (connect, handshake, request, response) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Full TLS 1.3 handshakes in a loop, each carrying one `GET /`.
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
    /// Seconds to keep starting connections (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

/// What one task did.
#[derive(Default)]
struct Tally {
    successes: u64,
    errors: u64,
    first_error: Option<String>,
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

/// One connection: handshake, request, whole response; `Ok` on a 2xx status.
async fn exchange(
    connector: &TlsConnector,
    address: SocketAddr,
    name: ServerName<'static>,
    request: &[u8],
) -> Result<(), String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let mut response = Vec::with_capacity(1024);
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| format!("response: {e}"))?;
    let status = response.split(|&b| b == b'\r').next().unwrap_or_default();
    if status.starts_with(b"HTTP/1.1 2") || status.starts_with(b"HTTP/1.0 2") {
        Ok(())
    } else {
        Err(format!("status line {:?}", String::from_utf8_lossy(status)))
    }
}

/// Connections one after another until `deadline`.
async fn task(
    connector: TlsConnector,
    address: SocketAddr,
    name: ServerName<'static>,
    request: Arc<[u8]>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let outcome = tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            exchange(&connector, address, name.clone(), &request),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no response within {EXCHANGE_TIMEOUT:?}")));
        match outcome {
            Ok(()) => tally.successes += 1,
            Err(message) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(message);
            }
        }
    }
    tally
}

async fn run(args: Args, config: ClientConfig) -> Result<Tally, String> {
    let name = ServerName::try_from(args.sni.clone()).map_err(|e| format!("--sni: {e}"))?;
    let duration = Duration::try_from_secs_f64(args.duration)
        .map_err(|e| format!("--duration {}: {e}", args.duration))?;
    let request: Arc<[u8]> = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.sni
    )
    .into_bytes()
    .into();
    let connector = TlsConnector::from(Arc::new(config));
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..args.tasks.max(1))
        .map(|_| {
            tokio::spawn(task(
                connector.clone(),
                args.connect,
                name.clone(),
                Arc::clone(&request),
                deadline,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for handle in tasks {
        let tally = handle.await.map_err(|e| e.to_string())?;
        total.successes += tally.successes;
        total.errors += tally.errors;
        if let Some(message) = tally.first_error {
            eprintln!("hs_load: error: {message}");
        }
    }
    Ok(total)
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
        Ok(tally) => {
            println!(
                "successes {} errors {} seconds {:.2}",
                tally.successes,
                tally.errors,
                started.elapsed().as_secs_f64()
            );
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
