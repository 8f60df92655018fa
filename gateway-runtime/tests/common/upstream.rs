//! Real upstreams for proxy tests: the test PKI (from `certgate-test-support`: root and
//! intermediate CAs, server and client certificates) and an echo server over TCP or TLS
//! (tokio-rustls), speaking HTTP/1.1 and, when asked, HTTP/2, optionally requiring a client
//! certificate.
//!
//! The echo server answers every request with status 200, a JSON `x-seen` header describing
//! what it received (path and query, version, headers, the client certificate's fingerprint)
//! and the request body streamed back as the response body. HTTP/1.1 responses also carry
//! hop-by-hop headers (`Connection: x-hop`, `X-Hop`, `Keep-Alive`, `Proxy-Test`) that a proxy
//! must remove.
//!
//! Used by the proxy's unit tests through `#[path]` and by integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "a shared test helper: each test crate uses a different part"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tls_core::Fingerprint;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use test_support::pki::{Leaf, TestCa, Usage};

/// How a test upstream is set up.
#[derive(Default)]
pub struct UpstreamOptions {
    /// Serve TLS with this chain and key (plain HTTP when `None`).
    pub tls: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Require a client certificate that chains to this CA.
    pub client_ca: Option<CertificateDer<'static>>,
    /// Offer HTTP/2 through ALPN (TLS only).
    pub h2: bool,
    /// Accept connections but never answer.
    pub silent: bool,
}

impl UpstreamOptions {
    /// TLS with `leaf`.
    pub fn tls(leaf: &Leaf) -> Self {
        Self {
            tls: Some((leaf.chain.clone(), leaf.key())),
            ..Self::default()
        }
    }
}

/// A running test upstream; stops when dropped.
pub struct TestUpstream {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestUpstream {
    /// Starts an upstream on 127.0.0.1 with `options`.
    pub async fn start(options: UpstreamOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = options.tls.map(|(chain, key)| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = match options.client_ca {
                Some(ca) => {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(ca).unwrap();
                    let verifier =
                        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                            .build()
                            .unwrap();
                    builder.with_client_cert_verifier(verifier)
                }
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_single_cert(chain, key).unwrap();
            config.alpn_protocols = if options.h2 {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let silent = options.silent;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if silent {
                    held.push(tcp);
                    continue;
                }
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(TokioIo::new(tcp), None).await,
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let client_cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|certs| certs.first())
                                .map(|der| Fingerprint::of(der).to_hex());
                            serve(TokioIo::new(tls), client_cert).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    /// `http://127.0.0.1:<port>` or `https://<host>:<port>`.
    pub fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}", self.addr.port())
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<I>(io: TokioIo<I>, client_cert: Option<String>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| echo(request, client_cert.clone()));
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

async fn echo(
    request: Request<Incoming>,
    client_cert: Option<String>,
) -> Result<Response<Incoming>, Infallible> {
    let mut headers = serde_json::Map::new();
    for name in request.headers().keys() {
        let values: Vec<String> = request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    let seen = serde_json::json!({
        "path": request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/"),
        "version": format!("{:?}", request.version()),
        "headers": headers,
        "client_cert": client_cert,
    });
    let http1 = request.version() == http::Version::HTTP_11;
    let mut response = Response::new(request.into_body());
    let out = response.headers_mut();
    out.insert("x-seen", HeaderValue::from_str(&seen.to_string()).unwrap());
    if http1 {
        out.insert("connection", HeaderValue::from_static("x-hop"));
        out.insert("x-hop", HeaderValue::from_static("1"));
        out.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        out.insert("proxy-test", HeaderValue::from_static("1"));
    }
    Ok(response)
}

/// What the echo upstream saw, from its `x-seen` header.
pub fn seen(headers: &http::HeaderMap) -> serde_json::Value {
    headers
        .get("x-seen")
        .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// A request body fed chunk by chunk through a channel, to show that bodies stream.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

/// A body and the sender that feeds it; the body ends when the sender is dropped.
pub fn channel_body() -> (mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx))
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}
