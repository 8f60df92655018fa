//! `pingora_peer`: a TLS reverse proxy on Cloudflare's pingora framework (its rustls backend),
//! the Rust-framework peer of `bench/compare.sh`. One process, one worker thread; every request
//! goes to one plain-HTTP upstream over pingora's keep-alive connection pool.
//!
//! ```sh
//! pingora_peer --upstream 127.0.0.1:8080 --listen 127.0.0.1:9443 --cert leaf.pem --key leaf.key \
//!     [--client-ca ca.pem]
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::WebPkiClientVerifier;

/// Sends every request to one upstream.
struct OneUpstream {
    address: String,
}

#[async_trait]
impl ProxyHttp for OneUpstream {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.address.as_str(), false, String::new())))
    }
}

struct Args {
    upstream: String,
    listen: String,
    cert: String,
    key: String,
    client_ca: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut values = std::collections::HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        values.insert(flag, value);
    }
    let mut take = |flag: &str| values.remove(flag);
    let args = Args {
        upstream: take("--upstream").ok_or("--upstream is required")?,
        listen: take("--listen").ok_or("--listen is required")?,
        cert: take("--cert").ok_or("--cert is required")?,
        key: take("--key").ok_or("--key is required")?,
        client_ca: take("--client-ca"),
    };
    match values.keys().next() {
        Some(flag) => Err(format!("unknown argument {flag}")),
        None => Ok(args),
    }
}

fn client_verifier(path: &str) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{path}: {e}"))? {
        roots.add(cert.map_err(|e| format!("{path}: {e}"))?).map_err(|e| format!("{path}: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| format!("{path}: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("pingora_peer: {message}");
            return ExitCode::from(2);
        }
    };
    // One worker; on SIGTERM, stop at once (no grace period), as the other peers do.
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut service = http_proxy_service(
        &server.configuration,
        OneUpstream {
            address: args.upstream,
        },
    );
    let mut tls = match TlsSettings::intermediate(&args.cert, &args.key) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("pingora_peer: certificate: {e}");
            return ExitCode::FAILURE;
        }
    };
    tls.enable_h2();
    if let Some(ca) = &args.client_ca {
        match client_verifier(ca) {
            Ok(verifier) => tls.set_client_cert_verifier(verifier),
            Err(message) => {
                eprintln!("pingora_peer: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    service.add_tls_with_settings(&args.listen, None, tls);
    server.add_service(service);
    server.bootstrap();
    eprintln!("pingora_peer listening on {}", args.listen);
    server.run_forever()
}
