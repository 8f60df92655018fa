//! A lean pool of HTTP/1.1 connections to one plain-HTTP (`http://`) upstream.
//!
//! hyper-util's legacy `Client` is general: one pool for every destination, keyed by scheme
//! and authority. Per proxied keep-alive request that generality cost about a fifth of the
//! gateway's instructions (callgrind, 53.5 k instructions per request against nginx's 38.4 k):
//! pool checkout and return (a mutex, a `VecDeque`, the `Pooled` guard's drop, a task spawned
//! to wait for the connection to become idle), SipHash of the pool key (~30 hash calls per
//! request), a `select` between checkout and connect, and the port and `Host` logic. Each API
//! with an `http://` target instead owns one [`Http1Pool`], found by the proxy's per-API
//! lookup, so nothing is hashed; `https://` upstreams keep the legacy client (ALPN `h2`, client
//! certificates, pins).
//!
//! Connections come from the proxy's [`UpstreamConnector`] (so connect timeouts and
//! [`ConnectError`](super::connector::ConnectError)s are those of the TLS path) and speak
//! HTTP/1.1 through `hyper::client::conn::http1`, with the legacy client's defaults. Requests
//! go out in origin form (`/path?query`) with `Host` set from the target, as the legacy
//! client sends them.
//!
//! Invariants:
//! - An idle sender was ready for a next request (its previous response fully read) when it
//!   went back. A response body ([`PooledBody`]) returns its sender only at its end; a body
//!   dropped earlier or failing drops the sender, which closes the connection.
//! - The idle list is ordered by when each sender went idle: checkout pops the newest (LIFO)
//!   and first drops those idle for longer than the idle timeout, from the oldest end. At most
//!   [`MAX_IDLE`] senders are kept; extra ones are closed.
//! - The lock is never held across an `await`.
//! - A request that a reused connection gave back unsent (closed before it was written) is
//!   retried, as the legacy client retries it; one that a new connection refused is not.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use tower_service::Service as _;

use super::UpstreamBody;
use super::connector::UpstreamConnector;
use crate::response::BoxError;

/// How many idle connections one upstream keeps.
const MAX_IDLE: usize = 64;

/// How long a sender whose response has ended may take to become ready for the next request
/// (its request body may still be going out) before its connection is closed instead.
const READY_WAIT: Duration = Duration::from_secs(5);

/// The HTTP/1.1 connections to one plain-HTTP upstream (see the module docs). Clones share
/// the pool.
#[derive(Clone)]
pub(crate) struct Http1Pool {
    shared: Arc<Shared>,
}

struct Shared {
    connector: UpstreamConnector,
    /// The target URL: where connections go.
    target: Uri,
    /// `Host` for every request: the target's host, and its port unless 80.
    host: HeaderValue,
    idle_timeout: Duration,
    /// Ready senders, oldest first.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// A target URL a plain-HTTP pool cannot send to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// The URL has no host.
    #[error("the target URL {target} has no host")]
    NoHost {
        /// The URL.
        target: String,
    },
    /// The host cannot be sent as a `Host` header.
    #[error("the target URL's host {host:?} is not a valid Host header")]
    BadHost {
        /// The host.
        host: String,
    },
}

impl Http1Pool {
    /// A pool for `target` (an `http://` URL), connecting through `connector` and closing
    /// connections idle for longer than `idle_timeout`.
    pub(crate) fn new(
        connector: UpstreamConnector,
        target: &Uri,
        idle_timeout: Duration,
    ) -> Result<Self, TargetError> {
        let host = target.host().ok_or_else(|| TargetError::NoHost {
            target: target.to_string(),
        })?;
        let host = match target.port_u16() {
            Some(port) if port != 80 => HeaderValue::try_from(format!("{host}:{port}")),
            _ => HeaderValue::try_from(host),
        }
        .map_err(|_| TargetError::BadHost {
            host: host.to_owned(),
        })?;
        Ok(Self {
            shared: Arc::new(Shared {
                connector,
                target: target.clone(),
                host,
                idle_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends `request` (absolute form, as built for the legacy client) on an idle connection
    /// or a new one. Errors are [`ConnectError`](super::connector::ConnectError) or
    /// [`hyper::Error`].
    pub(crate) async fn send(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<PooledBody>, BoxError> {
        if let Some(path_and_query) = request.uri().path_and_query().cloned() {
            *request.uri_mut() = Uri::from(path_and_query);
        }
        request
            .headers_mut()
            .entry(HOST)
            .or_insert_with(|| self.shared.host.clone());
        loop {
            let (mut sender, reused) = match self.shared.checkout() {
                Some(sender) => (sender, true),
                None => (self.shared.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let pool = Arc::clone(&self.shared);
                    return Ok(response.map(|body| PooledBody::new(body, sender, pool)));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(error.into_error().into()),
                },
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.shared.lock_idle().len()
    }
}

impl Shared {
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest idle sender that can take a request now, dropping expired and closed ones.
    fn checkout(&self) -> Option<SendRequest<UpstreamBody>> {
        let cutoff = Instant::now().checked_sub(self.idle_timeout);
        let mut idle = self.lock_idle();
        if let Some(cutoff) = cutoff {
            let expired = idle.partition_point(|c| c.since <= cutoff);
            idle.drain(..expired);
        }
        while let Some(Idle { sender, .. }) = idle.pop() {
            if sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// A new connection, its dispatcher spawned, ready for a request.
    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, BoxError> {
        let io = self.connector.clone().call(self.target.clone()).await?;
        let (mut sender, connection) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection error");
            }
        });
        sender.ready().await?;
        Ok(sender)
    }

    /// Takes back the sender of a fully read response: idle now if ready, else once ready.
    fn put(self: Arc<Self>, mut sender: SendRequest<UpstreamBody>) {
        if sender.is_ready() {
            self.push(sender);
        } else if !sender.is_closed() {
            tokio::spawn(async move {
                if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                    self.push(sender);
                }
            });
        }
    }

    fn push(&self, sender: SendRequest<UpstreamBody>) {
        let mut idle = self.lock_idle();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// A response body from an [`Http1Pool`] connection; at its end the connection goes back to
/// the pool.
pub(crate) struct PooledBody {
    body: Incoming,
    /// The connection's sender, until the body ends or fails.
    sender: Option<SendRequest<UpstreamBody>>,
    pool: Arc<Shared>,
}

impl PooledBody {
    fn new(body: Incoming, sender: SendRequest<UpstreamBody>, pool: Arc<Shared>) -> Self {
        let mut this = Self {
            body,
            sender: Some(sender),
            pool,
        };
        // An empty body may never be polled.
        if this.body.is_end_stream() {
            this.release();
        }
        this
    }

    fn release(&mut self) {
        if let Some(sender) = self.sender.take() {
            Arc::clone(&self.pool).put(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(_)) if this.body.is_end_stream() => this.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => this.sender = None,
            None => this.release(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
