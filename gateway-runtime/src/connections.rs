//! Client connections as a resource: the open-file limit, caps on open connections (global and
//! per IP), rate-limited warnings, and the idle timer of a connection.
//!
//! Every accepted connection holds a file descriptor until it closes; with nothing to close
//! idle ones, about a thousand silent clients exhausted a 1,024 limit and every new client
//! timed out (issue 12). So: the soft `RLIMIT_NOFILE` is raised to the hard limit at start-up,
//! connections over a cap are closed at accept, a connection with no request in flight for
//! `idle_timeout` is closed (HTTP/2 with GOAWAY), and the log says, at most every 10 seconds,
//! when the limit is near or accept fails for lack of descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::Instant;

use crate::config::HttpServerOptions;
use crate::response::{Body, BoxError};

/// How often a rate-limited warning may repeat.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The soft open-file limit after raising it to the hard limit (once per process); `None`
/// when it cannot be read or is unlimited.
pub(crate) fn open_file_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(raise_open_file_limit)
}

fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(
                from = ?limit.current,
                to = ?limit.maximum,
                "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                soft = ?limit.current,
                "cannot raise the open-file limit (RLIMIT_NOFILE); keeping the soft limit"
            ),
        }
    }
    getrlimit(Resource::Nofile).current
}

/// A warning that is logged at most once per [`WARN_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct RateLimited(Mutex<Option<Instant>>);

impl RateLimited {
    /// True when the warning may be logged now (and then not again for a while).
    pub(crate) fn due(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_ip` are open from this address.
    PerIp,
}

/// Counts open client connections against the caps.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    /// Open-file limit, for the "near the limit" warning.
    file_limit: Option<u64>,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pub(crate) near_limit_warning: RateLimited,
    pub(crate) refusal_warning: RateLimited,
    pub(crate) accept_warning: RateLimited,
}

impl Admission {
    /// Caps from `options`; `max_connections` 0 is half of `file_limit` (at least 64), or no cap
    /// when the limit is unknown.
    pub(crate) fn new(options: &HttpServerOptions, file_limit: Option<u64>) -> Self {
        let max_total = match options.max_connections {
            0 => file_limit.map_or(usize::MAX, |limit| {
                usize::try_from(limit / 2).unwrap_or(usize::MAX).max(64)
            }),
            n => n,
        };
        Self {
            max_total,
            max_per_ip: match options.max_connections_per_ip {
                0 => usize::MAX,
                n => n,
            },
            file_limit,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            near_limit_warning: RateLimited::default(),
            refusal_warning: RateLimited::default(),
            accept_warning: RateLimited::default(),
        }
    }

    /// The global cap in force.
    pub(crate) fn max_total(&self) -> usize {
        self.max_total
    }

    /// Admits a connection from `ip`, or says which cap it would exceed.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let mut permit = Permit {
            admission: Arc::clone(self),
            ip: None,
        };
        if open > self.max_total {
            return Err(Refused::Total);
        }
        if let Some(limit) = self.file_limit
            && u64::try_from(open).unwrap_or(u64::MAX) >= limit / 10 * 8
            && self.near_limit_warning.due()
        {
            tracing::warn!(
                open,
                open_file_limit = limit,
                "client connections are near the open-file limit (RLIMIT_NOFILE); set http_server_options.max_connections or raise the limit"
            );
        }
        if self.max_per_ip == usize::MAX {
            return Ok(permit);
        }
        let ip = ip.to_canonical();
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *count += 1;
        permit.ip = Some(ip);
        Ok(permit)
    }
}

/// An admitted connection; releases its place when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut per_ip = self
                .admission
                .per_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Whether a connection has requests in flight, and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `origin` to the end of the last request (0: none yet).
    idle_since: AtomicU64,
}

impl Activity {
    /// A connection idle from now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        })
    }

    /// Marks a request in flight until the returned guard (moved into its response body) drops.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Starts a new idle period now (as if a request had just ended).
    pub(crate) fn restart(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since.store(now, Ordering::Release);
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    pub(crate) async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(timeout).await;
                continue;
            }
            let since =
                self.origin + Duration::from_millis(self.idle_since.load(Ordering::Acquire));
            let deadline = since + timeout;
            if Instant::now() >= deadline {
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                continue;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in flight (see [`Activity::start`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.restart();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped, so a
/// long response is never cut by the idle timer.
#[derive(Debug)]
pub(crate) struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub(crate) fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
