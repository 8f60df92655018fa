//! The connector behind each pooled upstream client: TCP through hyper-util's
//! [`HttpConnector`], then TLS with tokio-rustls for `https` URLs. It reports an ALPN `h2`
//! agreement to the pool, which then speaks HTTP/2 on that connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use crate::response::BoxError;

/// Why a connection to an upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// TCP connection failed (refused, unreachable, name not resolved).
    #[error("cannot connect to {authority}")]
    Tcp {
        /// `host:port`.
        authority: String,
        /// The cause.
        source: BoxError,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {authority} failed")]
    Tls {
        /// `host:port`.
        authority: String,
        /// The rustls error.
        source: rustls::Error,
    },
    /// The TLS handshake failed at the I/O level (connection closed or reset).
    #[error("TLS handshake with {authority} failed")]
    TlsIo {
        /// `host:port`.
        authority: String,
        /// The cause.
        source: io::Error,
    },
    /// Connecting (TCP and TLS) took too long.
    #[error("no connection to {authority} within {after:?}")]
    Timeout {
        /// `host:port`.
        authority: String,
        /// The limit.
        after: Duration,
    },
    /// The host cannot be a TLS server name.
    #[error("{host:?} is not a valid TLS server name")]
    ServerName {
        /// The host.
        host: String,
    },
    /// An `https` URL on a client without TLS settings (a bug, not a configuration problem).
    #[error("no TLS settings for {authority}")]
    NoTls {
        /// `host:port`.
        authority: String,
    },
}

/// Connects to upstreams; `tls` is `None` for the plain-HTTP client.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    http: HttpConnector,
    tls: Option<TlsConnector>,
    timeout: Duration,
}

impl UpstreamConnector {
    /// A connector whose TCP and TLS set-up together must finish within `timeout`.
    pub(crate) fn new(tls: Option<Arc<ClientConfig>>, timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        Self {
            http,
            tls: tls.map(TlsConnector::from),
            timeout,
        }
    }
}

impl Service<Uri> for UpstreamConnector {
    type Response = UpstreamStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamStream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let http = self.http.clone();
        let tls = self.tls.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let authority = authority_of(&uri);
            match tokio::time::timeout(timeout, connect(http, tls, uri, &authority)).await {
                Ok(result) => result,
                Err(_) => Err(ConnectError::Timeout {
                    authority,
                    after: timeout,
                }),
            }
        })
    }
}

fn authority_of(uri: &Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    format!("{host}:{port}")
}

async fn connect(
    mut http: HttpConnector,
    tls: Option<TlsConnector>,
    uri: Uri,
    authority: &str,
) -> Result<UpstreamStream, ConnectError> {
    let tcp_error = |source: BoxError| ConnectError::Tcp {
        authority: authority.to_owned(),
        source,
    };
    std::future::poll_fn(|cx| http.poll_ready(cx))
        .await
        .map_err(|e| tcp_error(e.into()))?;
    let is_https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = http
        .call(uri)
        .await
        .map_err(|e| tcp_error(e.into()))?
        .into_inner();
    if !is_https {
        return Ok(UpstreamStream(TokioIo::new(Transport::Plain(tcp))));
    }
    let Some(tls) = tls else {
        return Err(ConnectError::NoTls {
            authority: authority.to_owned(),
        });
    };
    let server_name =
        ServerName::try_from(host.clone()).map_err(|_| ConnectError::ServerName { host })?;
    let stream = tls.connect(server_name, tcp).await.map_err(|source| {
        match source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls_error) => ConnectError::Tls {
                authority: authority.to_owned(),
                source: rustls_error.clone(),
            },
            None => ConnectError::TlsIo {
                authority: authority.to_owned(),
                source,
            },
        }
    })?;
    Ok(UpstreamStream(TokioIo::new(Transport::Tls(Box::new(
        stream,
    )))))
}

/// A connection to an upstream, plain or TLS.
#[derive(Debug)]
pub(crate) struct UpstreamStream(TokioIo<Transport>);

#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self.0.inner() {
            Transport::Plain(tcp) => tcp.connected(),
            Transport::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl hyper::rt::Read for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }
}
