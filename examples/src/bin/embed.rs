//! `embed`: a Rust service that embeds certgate, with only the `certgate` crate (features
//! `gateway`) and its own axum router.
//!
//! It shows, in one program:
//! - a certificate store (in memory here; Redis with the `redis` feature and
//!   `storage.type = "redis"`), its private keys encrypted at rest;
//! - TLS termination by the gateway, with certificates chosen by SNI;
//! - certificates served as soon as they are stored ("store it, and it is served":
//!   [`GatewayBuilder::serve_certificates_from_store`]), whoever stores them: this program at
//!   start-up, or anyone later through the `/tyk/certs` control API;
//! - the service's own axum `Router` answering every request that matches no API, through the
//!   same TLS.
//!
//! ```text
//! cargo run -p certgate-examples --bin embed -- --port 8444 --ca-out /tmp/embed-ca.pem
//! curl --cacert /tmp/embed-ca.pem https://localhost:8444/app/status
//! ```
//!
//! It prints its address, the control API secret and a few `curl` commands, then serves until
//! SIGINT/SIGTERM. The demo CA and certificates are made fresh on every start with rcgen.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use certgate::gateway::{GatewayBuilder, GatewayConfig};
use certgate::prelude::*;
use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A service embedding certgate's gateway with its own axum router.
#[derive(Debug, Parser)]
#[command(name = "embed")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8444)]
    port: u16,
    /// Where to write the demo CA certificate (PEM), for clients to trust.
    #[arg(long, value_name = "FILE")]
    ca_out: PathBuf,
    /// The control API secret (X-Tyk-Authorization); random when not given.
    #[arg(long, env = "EMBED_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

/// The demo CA: issues server certificates for the names asked.
struct DemoCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl DemoCa {
    fn new() -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "embed demo CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = yesterday();
        params.not_after = yesterday() + time::Duration::days(30);
        let pem = params.self_signed(&key)?.pem();
        Ok(Self { params, key, pem })
    }

    /// A server certificate and its key for `names`, as one PEM bundle.
    fn server(&self, names: &[&str]) -> Result<String, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = yesterday();
        params.not_after = yesterday() + time::Duration::days(30);
        let cert = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key))?;
        Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
    }
}

fn yesterday() -> time::OffsetDateTime {
    SystemClock.now() - time::Duration::days(1)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let secret = match args.secret {
        Some(secret) => secret,
        None => random_secret().map_err(|_| "the system's random number generator failed")?,
    };

    // The store: in memory, keys encrypted at rest with a secret of the service's.
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new(format!("{secret}-at-rest")))
        .build();
    let ca = DemoCa::new()?;
    std::fs::write(&args.ca_out, &ca.pem)?;
    store
        .add(&ca.server(&["localhost"])?, &OrgId::EMPTY)
        .await?;

    // The gateway: TLS on 127.0.0.1, every stored certificate served by its names, the
    // control API behind `secret`, and the service's own router for everything else.
    let mut config = GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = args.port;
    config.secret = secret.clone();
    config.http_server_options.use_ssl = true;
    config.http_server_options.enable_http2 = true;
    let router = Router::new()
        .route("/app/status", get(|| async { "the service is up\n" }))
        .route(
            "/app/hello/{name}",
            get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    format!("hello, {name}\n")
                },
            ),
        );
    let gateway = GatewayBuilder::new(config)
        .store(store.clone())
        .serve_certificates_from_store([])
        .fallback(router)
        .start()
        .await?;
    let port = gateway.local_addr().port();
    let ca_out = args.ca_out.display();
    println!("embed listening on https://localhost:{port}");
    println!("control API secret: {secret}");
    println!("curl --cacert {ca_out} https://localhost:{port}/app/status");
    println!(
        "curl --cacert {ca_out} -H 'X-Tyk-Authorization: {secret}' https://localhost:{port}/tyk/certs"
    );
    println!("ready");

    tokio::signal::ctrl_c().await?;
    gateway.shutdown().await;
    Ok(())
}

/// A random control API secret (32 hex characters).
fn random_secret() -> Result<String, ring::error::Unspecified> {
    use std::fmt::Write as _;
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    }))
}
