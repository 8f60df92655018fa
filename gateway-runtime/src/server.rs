//! Listeners: accept, TLS handshake (with a timeout and SNI-based config), HTTP/1.1 and HTTP/2
//! serving, request dispatch to the control API or an API, graceful draining.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cert_store::{CertRole, LoadedCert};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;

use crate::connections::{Activity, Refused, Tracked};
use crate::metrics::GatewayMetrics;
use crate::mtls::{ClientInfo, ClientPolicy, Refusal};
use crate::request_path::{bare_host, prepare};
use crate::response::{Body, api_error, error};
use crate::shared::{ListenerRole, Shared};

/// Counts live connections so shutdown can wait for them to drain.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    fn enter(self: &Arc<Self>) -> TrackerGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        TrackerGuard(Arc::clone(self))
    }

    /// Waits until no connection is left.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct TrackerGuard(Arc<Tracker>);

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Accepts connections until `stop` turns true. Connections over a cap are closed at once;
/// accept failures (out of file descriptors above all) are logged at most every 10 seconds and
/// back off instead of spinning.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    role: ListenerRole,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let accepted_at = Instant::now();
                    let permit = match shared.admission.admit(remote.ip()) {
                        Ok(permit) => permit,
                        Err(refused) => {
                            drop(stream);
                            GatewayMetrics::inc(&shared.metrics.connections_refused);
                            if shared.admission.refusal_warning.due() {
                                let cap = match refused {
                                    Refused::Total => "http_server_options.max_connections",
                                    Refused::PerIp => "http_server_options.max_connections_per_ip",
                                };
                                tracing::warn!(peer = %remote.ip(), cap, "connection refused: too many open connections (logged at most every 10 s)");
                            }
                            continue;
                        }
                    };
                    let guard = tracker.enter();
                    let (shared, stop) = (Arc::clone(&shared), stop.clone());
                    tokio::spawn(async move {
                        serve_connection(stream, remote, accepted_at, role, shared, stop).await;
                        drop(permit);
                        drop(guard);
                    });
                }
                Err(e) => {
                    let exhausted = matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error());
                    if shared.admission.accept_warning.due() {
                        if exhausted {
                            tracing::warn!(error = %e, open_file_limit = ?crate::connections::open_file_limit(), "accept failed: out of file descriptors; lower http_server_options.max_connections or raise RLIMIT_NOFILE (logged at most every 10 s)");
                        } else {
                            tracing::warn!(error = %e, "accept failed (logged at most every 10 s)");
                        }
                    }
                    let pause = if exhausted { 200 } else { 50 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote_addr: SocketAddr,
    accepted_at: Instant,
    role: ListenerRole,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    if !shared.config.http_server_options.use_ssl {
        if first_bytes(&stream, &shared, &mut stop).await {
            let client = ClientInfo::new(remote_addr, false, None);
            let http = Http::plain(&shared);
            Box::pin(serve_http(
                TokioIo::new(stream),
                http,
                client,
                role,
                shared,
                stop,
            ))
            .await;
        }
        return;
    }
    // The handshake's time runs from accept, whether or not the client sends anything. Its
    // state is large and needed only until the handshake ends, so it lives in a box of its own
    // rather than in the connection's task, which an idle connection keeps.
    let deadline = accepted_at + Duration::from_secs(shared.config.tls_handshake_timeout_seconds);
    let handshake = Box::pin(tokio::time::timeout_at(
        deadline,
        handshake(stream, role, &shared),
    ));
    let (tls, served) = match handshake.await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            GatewayMetrics::inc(&shared.metrics.handshake_failures);
            tracing::debug!(peer = %remote_addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            GatewayMetrics::inc(&shared.metrics.handshake_failures);
            tracing::debug!(peer = %remote_addr, "TLS handshake timed out; connection dropped");
            return;
        }
    };
    GatewayMetrics::inc(&shared.metrics.handshakes);
    if let Some(served) = served {
        shared.observer.observe(&served, CertRole::Server, "");
    }
    let mut tls = tls;
    let ready =
        plaintext_buffered(&mut tls) || first_bytes(tls.get_ref().0, &shared, &mut stop).await;
    if ready {
        let peer_certs = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect()));
        let client = ClientInfo::new(remote_addr, true, peer_certs);
        let http = Http::after_tls(&tls);
        Box::pin(serve_http(
            TokioIo::new(tls),
            http,
            client,
            role,
            shared,
            stop,
        ))
        .await;
    }
}

/// An established TLS connection (boxed: see [`serve_connection`]).
type Tls = Box<tokio_rustls::server::TlsStream<TcpStream>>;

/// Whether rustls already holds request bytes (sent with the client's Finished) or the client's
/// close: then the socket may stay quiet although there is something to serve.
fn plaintext_buffered(tls: &mut Tls) -> bool {
    match tls.get_mut().1.process_new_packets() {
        Ok(io) => io.plaintext_bytes_to_read() > 0 || io.peer_has_closed(),
        // The HTTP layer's first read reports it.
        Err(_) => true,
    }
}

/// Waits until the client sends its first bytes (or closes), holding nothing but the connection:
/// until then no HTTP state exists, so an idle connection costs only its socket and its TLS
/// state. False when the connection is to be closed instead: idle for `idle_timeout`, or the
/// gateway is stopping.
async fn first_bytes(tcp: &TcpStream, shared: &Shared, stop: &mut watch::Receiver<bool>) -> bool {
    let idle_timeout = shared.config.http_server_options.idle_timeout();
    let mut byte = [0u8; 1];
    tokio::select! {
        // Data or EOF (0 bytes) both go to the HTTP layer; so does an error, which it reports.
        _ = tcp.peek(&mut byte) => true,
        () = tokio::time::sleep(idle_timeout) => {
            GatewayMetrics::inc(&shared.metrics.idle_connections_closed);
            tracing::debug!("closing a connection that sent no request");
            false
        }
        _ = stop.changed() => false,
    }
}

/// The TLS handshake, on one load of the TLS snapshot: the rustls config for the ClientHello's
/// name and the server certificate that name selects, which is what the snapshot's resolver
/// hands rustls (the same map, the same name). Returns the stream and that certificate, for
/// the expiry monitor (also when the session is resumed and rustls resolves nothing).
async fn handshake(
    stream: TcpStream,
    role: ListenerRole,
    shared: &Shared,
) -> std::io::Result<(Tls, Option<Arc<LoadedCert>>)> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    #[cfg(feature = "acme")]
    if let Some((config, name)) =
        crate::acme::tls_alpn01_config(shared.acme.as_deref(), &start.client_hello()).await
    {
        // A tls-alpn-01 validation: the handshake is the whole answer.
        let mut tls = start.into_stream(config).await?;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        tracing::debug!(name, "tls-alpn-01 challenge answered");
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "tls-alpn-01 challenge answered",
        ));
    }
    let (config, served) = {
        let hello = start.client_hello();
        let sni = hello.server_name().map(ascii_lowercase);
        let sni = sni.as_deref();
        let is_control = shared.is_control_connection(role, sni);
        let state = shared.tls.load();
        let served = state.certs.select(sni).map(|s| Arc::clone(&s.cert));
        (state.config_for(sni, is_control), served)
    };
    let tls = start.into_stream(config).await?;
    Ok((Box::new(tls), served))
}

/// Which HTTP a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Http {
    /// HTTP/1.1 only: TLS without `h2` chosen by ALPN (as Go's server does), or HTTP/2 off.
    One,
    /// HTTP/2: TLS with `h2` chosen by ALPN.
    Two,
    /// Either, told apart by the client's first bytes: plain HTTP with HTTP/2 on (h2c prior
    /// knowledge).
    Detect,
}

impl Http {
    /// A TLS connection's HTTP, from what ALPN chose.
    fn after_tls(tls: &Tls) -> Self {
        match tls.get_ref().1.alpn_protocol() {
            Some(b"h2") => Self::Two,
            _ => Self::One,
        }
    }

    /// A plain connection's HTTP.
    fn plain(shared: &Shared) -> Self {
        if shared.config.http_server_options.enable_http2 {
            Self::Detect
        } else {
            Self::One
        }
    }
}

/// Serves HTTP on `io` with the connection type of `http` alone: a connection that speaks one
/// version does not carry the other's state (nor the detection's buffer) for its lifetime.
async fn serve_http<I>(
    io: I,
    http: Http,
    client: ClientInfo,
    role: ListenerRole,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let client = Arc::new(client);
    let activity = Activity::new();
    let service = {
        let (shared, activity) = (Arc::clone(&shared), Arc::clone(&activity));
        service_fn(move |req: Request<Incoming>| {
            let (shared, client) = (Arc::clone(&shared), Arc::clone(&client));
            // Counted in flight until the response body is sent (or the request is dropped).
            let in_flight = activity.start();
            async move {
                let response = dispatch(&shared, role, req, &client).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Tracked::new(body, in_flight)),
                )
            }
        })
    };
    // Without a timer hyper applies no header-read timeout: a client that stalls mid-request
    // would hold its connection for ever.
    let header_read_timeout = Duration::from_secs(shared.config.request_read_timeout_seconds);
    match http {
        Http::One => {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(io, service)
                .with_upgrades();
            drive(connection, &activity, &shared, stop).await;
        }
        Http::Two => {
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service);
            drive(connection, &activity, &shared, stop).await;
        }
        Http::Detect => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection_with_upgrades(io, service);
            drive(connection, &activity, &shared, stop).await;
        }
    }
}

/// A served HTTP connection of any version: a future that ends with the connection, which can
/// be asked to finish what is in flight and close.
trait Serving: Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> Serving for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Error = hyper::Error;
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> Serving for hyper::server::conn::http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    type Error = hyper::Error;
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> Serving for auto::UpgradeableConnection<'_, I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    type Error = Box<dyn std::error::Error + Send + Sync>;
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// Runs `connection` to its end: drained on shutdown, closed once idle for the idle timeout.
async fn drive<C: Serving>(
    connection: C,
    activity: &Activity,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) {
    let idle_timeout = shared.config.http_server_options.idle_timeout();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error while draining");
            }
        }
        () = activity.idle_for(idle_timeout) => {
            // HTTP/1.1: closed now (a request that slipped in finishes first); HTTP/2: GOAWAY,
            // and closed once the client has acknowledged it. A client that does not is cut
            // after another idle period without a request in flight.
            GatewayMetrics::inc(&shared.metrics.idle_connections_closed);
            tracing::debug!("closing an idle connection");
            connection.as_mut().graceful_shutdown();
            activity.restart();
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "idle connection ended with an error");
                    }
                }
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!("idle connection did not close after GOAWAY; dropped");
                }
            }
        }
    }
}

/// The host a request is for: the Host header (HTTP/1.1) or the URI authority (HTTP/2),
/// lowercased, without the port; borrowed when already lowercase.
fn request_host<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let raw = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    Some(ascii_lowercase(bare_host(raw)))
}

/// `name` in lowercase; borrowed when it already is.
fn ascii_lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

async fn dispatch(
    shared: &Shared,
    role: ListenerRole,
    mut req: Request<Incoming>,
    client: &ClientInfo,
) -> Response<Body> {
    if let Err(message) = prepare(
        &mut req,
        shared.config.http_server_options.skip_url_cleaning,
    ) {
        return api_error(StatusCode::BAD_REQUEST, message);
    }
    let host = request_host(&req);
    let control_here = match role {
        ListenerRole::Control => true,
        ListenerRole::Gateway => shared.control_on_gateway_port(),
    };
    let ui = (shared.ui.as_ref()).filter(|ui| control_here && ui.matches(&req));
    if ui.is_some() || (control_here && shared.control.matches(&req)) {
        if let Some(policy) = &shared.tls.load().control_policy
            && let Err(refusal) = check_client(shared, policy, client)
        {
            return error(StatusCode::FORBIDDEN, refusal);
        }
        if let Some(ui) = ui {
            let peer = client.ip_header.to_str().unwrap_or("unknown");
            return ui.handle(&shared.page_view(), req, peer).await;
        }
        return shared.control.handle(req).await;
    }
    if role == ListenerRole::Control {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    let apis = shared.apis.load();
    let Some(route) = apis.route(host.as_deref(), req.uri().path()) else {
        if let Some(fallback) = &shared.fallback {
            return fallback(req).await;
        }
        return api_error(StatusCode::NOT_FOUND, "no API matches this host and path");
    };
    if route.def.use_mutual_tls_auth {
        let state = shared.tls.load();
        let outcome = match state.api_policies.get(&route.def.api_id) {
            Some(policy) => check_client(shared, policy, client).map(|entry| {
                shared
                    .observer
                    .observe(&entry, CertRole::Client, &route.def.api_id);
            }),
            None => Err(Refusal::Missing.to_string()),
        };
        if let Err(message) = outcome {
            return api_error(StatusCode::FORBIDDEN, &message);
        }
    }
    shared.proxy.forward(route, req, client).await
}

/// The per-request client certificate check; the entry that admitted the client. A success
/// is reused by the connection's later requests while the policy and the certificates last
/// (see [`VerdictCache`](crate::mtls::VerdictCache)); refusals are judged afresh every time
/// and counted.
fn check_client(
    shared: &Shared,
    policy: &Arc<ClientPolicy>,
    client: &ClientInfo,
) -> Result<Arc<LoadedCert>, String> {
    client
        .check(policy, shared.store.clock().now())
        .map_err(|refusal| {
            GatewayMetrics::inc(&shared.metrics.mtls_refusals);
            refusal.to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_host_drops_the_port_and_lowercases() {
        let req = |host: &str| Request::builder().header("host", host).body(()).unwrap();
        assert_eq!(
            request_host(&req("API.Example:8443")).as_deref(),
            Some("api.example")
        );
        assert_eq!(
            request_host(&req("localhost")).as_deref(),
            Some("localhost")
        );
        assert_eq!(request_host(&req("[::1]:8080")).as_deref(), Some("::1"));
        let h2 = Request::builder()
            .uri("https://Svc.Local:443/x")
            .body(())
            .unwrap();
        assert_eq!(request_host(&h2).as_deref(), Some("svc.local"));
    }
}
