//! Test support for the gateway: the test PKI (from `certgate-test-support`), a TLS client speaking HTTP/1.1, an echo upstream,
//! test stores (memory or Redis, with the test secret), a gateway over one, and the gateway side
//! of the ACME tests (Pebble's side is `acme::testkit`).
#![allow(dead_code, reason = "each test crate uses a different part")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use cert_store::{
    CertStorage, CertStore, CertStoreBuilder, MemoryStorage, RedisConfig, RedisStorage,
};
use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use test_support::pki::{Leaf, TestCa};
use tls_core::EncodingSecret;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The encoding secret of the test stores.
pub(crate) const STORE_SECRET: &str = "test secret";

/// A store builder over `storage` with the test secret ([`STORE_SECRET`]).
pub(crate) fn store_builder(storage: Arc<dyn CertStorage>) -> CertStoreBuilder {
    CertStore::builder(storage).encoding_secret(EncodingSecret::new(STORE_SECRET))
}

/// A memory store with the test secret.
pub(crate) fn memory_store() -> CertStore {
    store_builder(Arc::new(MemoryStorage::new())).build()
}

/// Redis storage with `config` (panics when it cannot connect).
pub(crate) async fn redis_storage(config: RedisConfig) -> Arc<dyn CertStorage> {
    Arc::new(
        RedisStorage::connect(config)
            .await
            .expect("connect to the test Redis"),
    )
}

/// A store over Redis with `config` and the test secret.
pub(crate) async fn redis_store(config: RedisConfig) -> CertStore {
    store_builder(redis_storage(config).await).build()
}

/// A gateway configuration with TLS on 127.0.0.1:0.
pub(crate) fn tls_config() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = 0;
    config.secret = "control-secret".into();
    config.http_server_options.use_ssl = true;
    config.http_server_options.enable_http2 = true;
    config
}

/// An API definition from JSON.
pub(crate) fn api(json: serde_json::Value) -> ApiDefinition {
    ApiDefinition::from_json(&json.to_string(), std::path::Path::new("test-api.json")).unwrap()
}

/// Starts a gateway.
pub(crate) async fn start(
    config: GatewayConfig,
    store: CertStore,
    apis: Vec<ApiDefinition>,
) -> Gateway {
    GatewayBuilder::new(config)
        .store(store)
        .apis(apis)
        .start()
        .await
        .unwrap()
}

/// An HTTP upstream answering `upstream says <path>`.
pub(crate) async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().len())
                            .unwrap_or(0);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(format!("upstream says {path} ({body} bytes)")),
                        )))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A TLS client: trusts `roots`, optionally presents `identity`.
pub(crate) fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<&Leaf>,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store);
    let config = match identity {
        Some(id) => {
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(vec![id.der()], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Fresh TLS clients (no resumption) trusting `ca`, handshaking with `addr` on each of `names`
/// in turn (a `GET /` each), all along until [`stop`](Self::stop)ped.
pub(crate) struct HandshakeLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HandshakeLoad {
    pub(crate) fn start(
        addr: SocketAddr,
        names: &'static [&'static str],
        ca: CertificateDer<'static>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let task = {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            tokio::spawn(async move {
                for name in names.iter().cycle() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let client = client_config(std::slice::from_ref(&ca), None);
                    match https_get(addr, name, client, "/").await {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            eprintln!("handshake failed: {e}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        };
        Self {
            stop,
            ok,
            failed,
            task,
        }
    }

    /// Handshakes that succeeded so far.
    pub(crate) fn succeeded(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Stops the load; the handshakes that succeeded and failed.
    pub(crate) async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// The outcome of one HTTPS request.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The certificate the server presented.
    pub(crate) server_cert: CertificateDer<'static>,
    /// HTTP status, or `None` when the connection failed after the handshake.
    pub(crate) status: Option<u16>,
    pub(crate) body: String,
    pub(crate) resumed: bool,
}

/// Connects to `addr` with `sni`, sends `GET path` over HTTP/1.1.
pub(crate) async fn https_get(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    let server_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no server certificate")?;
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    if let Err(e) = tls.write_all(request.as_bytes()).await {
        return Err(format!("write: {e}"));
    }
    let mut raw = Vec::new();
    let read = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    if status.is_none()
        && let Err(e) = read
    {
        return Err(format!("read: {e}"));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Answer {
        server_cert: server_cert.into_owned(),
        status,
        body,
        resumed,
    })
}

/// Sends one Redis command over RESP to the server on `port`; the raw reply (gateway-runtime
/// has no Redis client of its own).
pub(crate) async fn redis_command(port: u16, args: &[&[u8]]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        command.extend_from_slice(arg);
        command.extend_from_slice(b"\r\n");
    }
    stream.write_all(&command).await.unwrap();
    let mut reply = vec![0u8; 65536];
    let n = stream.read(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

/// The status and body of a control API request over TLS to `sni` (HTTP/1.1,
/// `Connection: close`), trusting `roots`' CA and sending `secret`.
pub(crate) async fn tls_control(
    addr: SocketAddr,
    sni: &str,
    roots: &TestCa,
    secret: &str,
    (method, path, body): (&str, &str, &[u8]),
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client_config(&[roots.ca_der()], None));
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {sni}\r\nx-tyk-authorization: {secret}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    // The server may answer (413) before reading the whole body: ignore a failed body write.
    let _ = tls.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The configuration of a TLS gateway on 127.0.0.1:`tls_port` with `acme` as its
/// `http_server_options.acme` (e.g. `acme::testkit::Pebble::acme_block`), as JSON, for a test
/// to add to (`storage`) and load or write to a file.
pub(crate) fn acme_gateway_json(tls_port: u16, acme: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "listen_address": "127.0.0.1",
        "listen_port": tls_port,
        "secret": "acme test secret",
        "http_server_options": {"use_ssl": true, "acme": acme},
    })
}

/// A configuration from JSON text as the `gateway` binary reads it.
pub(crate) fn config_from_json(json: &serde_json::Value) -> GatewayConfig {
    GatewayConfig::from_json(&json.to_string(), std::path::Path::new("tyk.conf"), [])
        .expect("a valid configuration")
}

/// The fingerprint of the certificate a fresh client trusting only `root` is served for
/// `name` at `addr`; `None` while no verified handshake succeeds.
pub(crate) async fn served_fingerprint(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
) -> Option<tls_core::Fingerprint> {
    https_get(
        addr,
        name,
        client_config(std::slice::from_ref(root), None),
        "/",
    )
    .await
    .ok()
    .map(|answer| tls_core::Fingerprint::of(&answer.server_cert))
}

/// Waits (at most 60 s) until new handshakes for `name` at `addr` get a certificate that
/// `root` verifies (`expected`, when given); returns its fingerprint. `context` (e.g. Pebble's
/// log) goes into the failure message.
pub(crate) async fn until_served(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
    expected: Option<tls_core::Fingerprint>,
    context: impl Fn() -> String,
) -> tls_core::Fingerprint {
    let started = std::time::Instant::now();
    loop {
        let served = served_fingerprint(addr, name, root).await;
        if let Some(fingerprint) = served
            && expected.is_none_or(|e| e == fingerprint)
        {
            return fingerprint;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{addr} never served {} for {name}: {}",
            expected.map_or_else(|| "a verified certificate".to_owned(), |e| e.to_string()),
            context()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
