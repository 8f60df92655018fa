//! Where Redis is and how to reach it ([`RedisConnection`]: one node, a Redis Cluster or a
//! Sentinel-managed master, with credentials and TLS), and the live link built from it: the one
//! owner of Redis connections, reconnection, master discovery and error classification for
//! `RedisStorage` and expiry-monitor's `RedisCooldowns`.
//!
//! - One node: a multiplexed connection that reconnects by itself.
//! - Cluster: redis-rs's cluster client (slot map, `MOVED`/`ASK`, failover of a shard to its
//!   replica); a write and its `WAIT` go in one pipeline to the node that owns the key.
//! - Sentinel: the master is asked of the sentinels; a connection error or a `READONLY` answer
//!   (the old master demoted) drops the connection, and the next command asks the sentinels again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo as _, Pipeline, RedisConnectionInfo, RedisError, RedisFuture,
    TlsCertificates, TlsMode, Value,
};

use crate::error::{StorageError, StorageErrorKind};

/// Where Redis is and how to reach it: the one connection description `RedisStorage` and
/// expiry-monitor's `RedisCooldowns` take.
///
/// Build it with [`RedisConnection::single`], [`RedisConnection::cluster`],
/// [`RedisConnection::sentinel`] or [`RedisConnection::from_url`], then the `with_*` methods.
/// `Debug` never shows passwords.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConnection {
    /// One node, a cluster or a sentinel-managed master.
    pub topology: RedisTopology,
    /// ACL user name on the Redis nodes (`None`: the default user).
    pub username: Option<String>,
    /// Password on the Redis nodes.
    pub password: Option<String>,
    /// Database number (one node and sentinel only; a cluster has only database 0).
    pub database: i64,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one command may take before it fails with a timeout.
    pub response_timeout: Duration,
    /// TLS towards every node (and the sentinels); `None`: plain TCP.
    pub tls: Option<RedisTls>,
}

/// The shape of the Redis deployment.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// One node at `host:port`.
    Single {
        /// `host:port` (`[v6]:port` for IPv6).
        addr: String,
    },
    /// One node on a Unix socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
    /// A Redis Cluster, found through any of its seed nodes.
    Cluster {
        /// `host:port` of some cluster nodes (Tyk's `addrs` with `enable_cluster`).
        seeds: Vec<String>,
    },
    /// A master managed by Redis Sentinel.
    Sentinel {
        /// `host:port` of the sentinels (Tyk's `addrs` with `master_name`).
        sentinels: Vec<String>,
        /// The monitored master's name (Tyk's `master_name`).
        master_name: String,
        /// ACL user name on the sentinels.
        sentinel_username: Option<String>,
        /// Password on the sentinels (Tyk's `sentinel_password`).
        sentinel_password: Option<String>,
    },
}

/// TLS towards Redis (Tyk's `use_ssl` and its companions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTls {
    /// PEM file of the CA certificates to trust (`None`: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM file of a client certificate (mutual TLS), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (dangerous: anyone on the path can read and change data).
    pub insecure_skip_verify: bool,
}

impl RedisTls {
    /// Verified TLS with the system's roots.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RedisConnection {
    fn with_topology(topology: RedisTopology) -> Self {
        Self {
            topology,
            username: None,
            password: None,
            database: 0,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            tls: None,
        }
    }

    /// One node at `addr` (`host:port`).
    pub fn single(addr: impl Into<String>) -> Self {
        Self::with_topology(RedisTopology::Single { addr: addr.into() })
    }

    /// A Redis Cluster reached through `seeds` (`host:port` each).
    pub fn cluster(seeds: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::with_topology(RedisTopology::Cluster {
            seeds: seeds.into_iter().map(Into::into).collect(),
        })
    }

    /// The master `master_name` as reported by `sentinels` (`host:port` each).
    pub fn sentinel(
        sentinels: impl IntoIterator<Item = impl Into<String>>,
        master_name: impl Into<String>,
    ) -> Self {
        Self::with_topology(RedisTopology::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master_name: master_name.into(),
            sentinel_username: None,
            sentinel_password: None,
        })
    }

    /// Sets the ACL user name and password on the Redis nodes (empty strings: none).
    pub fn with_credentials(mut self, username: &str, password: &str) -> Self {
        self.username = (!username.is_empty()).then(|| username.to_owned());
        self.password = (!password.is_empty()).then(|| password.to_owned());
        self
    }

    /// Sets the user name and password on the sentinels (ignored by other topologies).
    pub fn with_sentinel_credentials(mut self, username: &str, password: &str) -> Self {
        if let RedisTopology::Sentinel {
            sentinel_username,
            sentinel_password,
            ..
        } = &mut self.topology
        {
            *sentinel_username = (!username.is_empty()).then(|| username.to_owned());
            *sentinel_password = (!password.is_empty()).then(|| password.to_owned());
        }
        self
    }

    /// Sets the database number.
    pub fn with_database(mut self, database: i64) -> Self {
        self.database = database;
        self
    }

    /// Sets the connect and per-command timeouts.
    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// Uses TLS.
    pub fn with_tls(mut self, tls: RedisTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Parses a URL:
    ///
    /// - `redis://[user[:password]@]host:port[/db]` (`rediss://` for TLS): one node;
    /// - `redis+unix:///path/to/socket[?db=N]`: one node on a Unix socket;
    /// - `redis+cluster://[user[:password]@]host:port,host:port,...` (`rediss+cluster://`);
    /// - `redis+sentinel://[user[:password]@]host:port,...[/master_name[/db]]`
    ///   (`rediss+sentinel://`; the master name defaults to `mymaster`); the credentials are the
    ///   Redis nodes', set the sentinels' with [`RedisConnection::with_sentinel_credentials`].
    ///
    /// User names and passwords are percent-decoded.
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        let bad = |reason: &str| {
            StorageError::new(
                StorageErrorKind::Rejected,
                format!("invalid Redis URL: {reason}"),
            )
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://..."))?;
        if scheme == "redis+unix" || scheme == "unix" {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(bad("no socket path"));
            }
            let mut connection = Self::with_topology(RedisTopology::Unix {
                path: PathBuf::from(path),
            });
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("db", n)) => {
                        connection.database =
                            n.parse().map_err(|_| bad("the database is not a number"))?
                    }
                    Some(("user", v)) => connection.username = Some(percent_decode(v)?),
                    Some(("pass", v)) => connection.password = Some(percent_decode(v)?),
                    _ => return Err(bad("unknown query parameter")),
                }
            }
            return Ok(connection);
        }
        let (tls, kind) = match scheme {
            "redis" => (false, ""),
            "rediss" => (true, ""),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            _ => {
                return Err(bad(
                    "the scheme must be redis, rediss, redis+cluster, rediss+cluster, redis+sentinel, rediss+sentinel or redis+unix",
                ));
            }
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (auth, hosts) = match authority.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, authority),
        };
        let addrs: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| check_addr(h).map(|()| h.to_owned()))
            .collect::<Result<_, _>>()?;
        if addrs.is_empty() {
            return Err(bad("no host:port"));
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let parse_db = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad("the database is not a number"))
        };
        let mut connection = match kind {
            "cluster" => {
                if !segments.is_empty() {
                    return Err(bad("a cluster URL has no database (a cluster has only 0)"));
                }
                Self::cluster(addrs)
            }
            "sentinel" => {
                let master = segments.first().copied().unwrap_or("mymaster");
                let mut c = Self::sentinel(addrs, percent_decode(master)?);
                if let Some(db) = segments.get(1) {
                    c.database = parse_db(db)?;
                }
                if segments.len() > 2 {
                    return Err(bad("expected /master_name/db after the sentinels"));
                }
                c
            }
            _ => {
                if addrs.len() != 1 {
                    return Err(bad(
                        "one host:port (use redis+cluster:// or redis+sentinel:// for several)",
                    ));
                }
                let mut c = Self::single(addrs.into_iter().next().unwrap_or_default());
                match segments.as_slice() {
                    [] => {}
                    [db] => c.database = parse_db(db)?,
                    _ => return Err(bad("expected /db after host:port")),
                }
                c
            }
        };
        if let Some(auth) = auth {
            let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
            connection.username = Some(percent_decode(user)?).filter(|u| !u.is_empty());
            connection.password = Some(percent_decode(password)?).filter(|p| !p.is_empty());
        }
        if tls {
            connection.tls = Some(RedisTls::new());
        }
        Ok(connection)
    }

    /// Checks the description without connecting: addresses, a database on a cluster, TLS files.
    pub fn validate(&self) -> Result<(), StorageError> {
        let rejected = |m: String| StorageError::new(StorageErrorKind::Rejected, m);
        match &self.topology {
            RedisTopology::Single { addr } => check_addr(addr)?,
            RedisTopology::Unix { .. } => {}
            RedisTopology::Cluster { seeds } => {
                if seeds.is_empty() {
                    return Err(rejected(
                        "a Redis Cluster needs at least one seed address".into(),
                    ));
                }
                seeds.iter().try_for_each(|a| check_addr(a))?;
                if self.database != 0 {
                    return Err(rejected(format!(
                        "database {} cannot be used on a Redis Cluster (a cluster has only database 0)",
                        self.database
                    )));
                }
            }
            RedisTopology::Sentinel {
                sentinels,
                master_name,
                ..
            } => {
                if sentinels.is_empty() {
                    return Err(rejected(
                        "Redis Sentinel needs at least one sentinel address".into(),
                    ));
                }
                if master_name.is_empty() {
                    return Err(rejected("Redis Sentinel needs the master's name".into()));
                }
                sentinels.iter().try_for_each(|a| check_addr(a))?;
            }
        }
        if self.database < 0 {
            return Err(rejected(format!("database {} is negative", self.database)));
        }
        if let Some(tls) = &self.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err(rejected(
                "a Redis TLS client certificate needs both cert_file and key_file".into(),
            ));
        }
        Ok(())
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, RedisTopology::Cluster { .. })
    }

    /// A redis-rs client of the one node this describes (a host, or a Unix socket) with its
    /// credentials, database and TLS, for a crate that runs its own commands on the store's
    /// Redis (acme's coordinator). A cluster or sentinels: a `Rejected` error.
    ///
    /// ```
    /// use cert_store::RedisConnection;
    ///
    /// let node = RedisConnection::from_url("redis://user:pw@127.0.0.1:6379/2")?;
    /// assert_eq!(node.single_node_client()?.get_connection_info().redis_settings().db(), 2);
    /// assert!(RedisConnection::cluster(["127.0.0.1:7000"]).single_node_client().is_err());
    /// # Ok::<(), cert_store::StorageError>(())
    /// ```
    pub fn single_node_client(&self) -> Result<Client, StorageError> {
        self.validate()?;
        match &self.topology {
            RedisTopology::Single { addr } => node_client(self, addr),
            RedisTopology::Unix { path } => unix_client(self, path),
            RedisTopology::Cluster { .. } | RedisTopology::Sentinel { .. } => {
                Err(StorageError::new(
                    StorageErrorKind::Rejected,
                    "a Redis Cluster or a Sentinel setup is not one node",
                ))
            }
        }
    }
}

impl core::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl core::fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Single { addr } => f.debug_struct("Single").field("addr", addr).finish(),
            Self::Unix { path } => f.debug_struct("Unix").field("path", path).finish(),
            Self::Cluster { seeds } => f.debug_struct("Cluster").field("seeds", seeds).finish(),
            Self::Sentinel {
                sentinels,
                master_name,
                sentinel_username,
                sentinel_password,
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", sentinels)
                .field("master_name", master_name)
                .field("sentinel_username", sentinel_username)
                .field(
                    "sentinel_password",
                    &sentinel_password.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
        }
    }
}

fn percent_decode(text: &str) -> Result<String, StorageError> {
    // Strict, unlike `percent_decode_str` alone: every `%` must start a two-hex-digit escape.
    let bytes = text.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(StorageError::new(
            StorageErrorKind::Rejected,
            "invalid Redis URL: a bad %-escape in the credentials",
        ));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| {
            StorageError::new(
                StorageErrorKind::Rejected,
                "invalid Redis URL: the credentials are not UTF-8",
            )
        })
}

/// Splits `host:port` (`[v6]:port`).
fn split_addr(addr: &str) -> Result<(String, u16), StorageError> {
    let bad = || {
        StorageError::new(
            StorageErrorKind::Rejected,
            format!("Redis address {addr:?} is not host:port"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn check_addr(addr: &str) -> Result<(), StorageError> {
    split_addr(addr).map(drop)
}

fn read_pem(what: &str, path: &PathBuf) -> Result<Vec<u8>, StorageError> {
    std::fs::read(path).map_err(|e| {
        StorageError::new(
            StorageErrorKind::Rejected,
            format!("cannot read the Redis TLS {what} {}: {e}", path.display()),
        )
    })
}

fn tls_certificates(tls: &RedisTls) -> Result<TlsCertificates, StorageError> {
    let root_cert = tls
        .ca_file
        .as_ref()
        .map(|p| read_pem("CA file", p))
        .transpose()?;
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read_pem("certificate file", cert)?,
            client_key: read_pem("key file", key)?,
        }),
        _ => None,
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

fn tls_mode(tls: &RedisTls) -> TlsMode {
    if tls.insecure_skip_verify {
        TlsMode::Insecure
    } else {
        TlsMode::Secure
    }
}

/// Turns a redis-rs error into a storage error that says whether retrying can help. The message
/// names the kind of failure only (no addresses, no OS error text: it may reach API clients);
/// the redis-rs error stays attached as the source, and is logged at debug level.
pub(crate) fn storage_error(context: &str, e: RedisError) -> StorageError {
    let (kind, what) = if e.is_timeout() {
        (StorageErrorKind::Timeout, "no answer in time".to_owned())
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        (
            StorageErrorKind::Unavailable,
            "cannot reach the Redis server".to_owned(),
        )
    } else if e.is_cluster_error() || is_failover_answer(&e) {
        (
            StorageErrorKind::Unavailable,
            format!(
                "Redis is changing masters or slots ({}); retry shortly",
                e.code().unwrap_or("cluster")
            ),
        )
    } else if matches!(
        e.kind(),
        redis::ErrorKind::MasterNameNotFoundBySentinel
            | redis::ErrorKind::NoValidReplicasFoundBySentinel
            | redis::ErrorKind::EmptySentinelList
    ) {
        (
            StorageErrorKind::Unavailable,
            "no sentinel reports a reachable master (check master_name and the sentinels)"
                .to_owned(),
        )
    } else if matches!(e.kind(), redis::ErrorKind::ClusterConnectionNotFound) {
        (
            StorageErrorKind::Unavailable,
            "no Redis Cluster node can be reached".to_owned(),
        )
    } else if matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        (
            StorageErrorKind::Rejected,
            "Redis refused the credentials (check username and password)".to_owned(),
        )
    } else if e.is_unrecoverable_error() {
        (
            StorageErrorKind::Unavailable,
            "the Redis connection failed".to_owned(),
        )
    } else {
        (
            StorageErrorKind::Other,
            match e.code() {
                Some(code) => format!("Redis refused a command ({code})"),
                None => "unexpected answer from Redis".to_owned(),
            },
        )
    };
    tracing::debug!(error = %e, context, "Redis error");
    StorageError::new(kind, format!("{context}: {what}")).with_source(e)
}

/// Answers a node gives while the topology changes: retrying later helps.
fn is_failover_answer(e: &RedisError) -> bool {
    matches!(
        e.code(),
        Some(
            "READONLY"
                | "MASTERDOWN"
                | "LOADING"
                | "CLUSTERDOWN"
                | "TRYAGAIN"
                | "MOVED"
                | "ASK"
                | "NOREPLICAS"
        )
    )
}

/// The live link to Redis: cheap to clone, shared by every clone.
#[derive(Clone)]
pub(crate) struct Link {
    kind: LinkKind,
    description: Arc<RedisConnection>,
}

#[derive(Clone)]
enum LinkKind {
    Single(ConnectionManager, Box<Client>),
    Cluster(Arc<ClusterLink>),
    Sentinel(Arc<SentinelLink>),
}

/// A cluster connection that is replaced by a fresh one (new slot map, new node connections)
/// when commands time out: a node connection that stopped answering is not always noticed by
/// the cluster client itself after a failover.
struct ClusterLink {
    client: redis::cluster::ClusterClient,
    current: arc_swap::ArcSwap<ClusterConnection>,
    rebuilding: std::sync::atomic::AtomicBool,
}

impl ClusterLink {
    fn connection(&self) -> ClusterConnection {
        ClusterConnection::clone(&self.current.load())
    }

    fn rebuild(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.rebuilding.swap(true, Ordering::SeqCst) {
            return;
        }
        let link = Arc::clone(self);
        tokio::spawn(async move {
            match link.client.get_async_connection().await {
                Ok(connection) => {
                    tracing::info!("replaced the Redis Cluster connection after timeouts");
                    link.current.store(Arc::new(connection));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot rebuild the Redis Cluster connection yet")
                }
            }
            link.rebuilding.store(false, Ordering::SeqCst);
        });
    }
}

struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
}

/// One connection of a link, for redis-rs commands, pipelines and scripts.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

fn node_info(
    description: &RedisConnection,
    host: String,
    port: u16,
) -> Result<ConnectionInfo, RedisError> {
    let addr = match &description.tls {
        Some(tls) => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: tls.insecure_skip_verify,
            tls_params: None,
        },
        None => ConnectionAddr::Tcp(host, port),
    };
    let mut redis = RedisConnectionInfo::default().set_db(description.database);
    if let Some(user) = &description.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &description.password {
        redis = redis.set_password(password);
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

fn node_client(description: &RedisConnection, addr: &str) -> Result<Client, StorageError> {
    let (host, port) = split_addr(addr)?;
    let info = node_info(description, host, port)
        .map_err(|e| storage_error("invalid Redis address", e))?;
    match &description.tls {
        Some(tls) => Client::build_with_tls(info, tls_certificates(tls)?),
        None => Client::open(info),
    }
    .map_err(|e| storage_error("invalid Redis connection settings", e))
}

fn unix_client(
    description: &RedisConnection,
    path: &std::path::Path,
) -> Result<Client, StorageError> {
    let mut redis = RedisConnectionInfo::default().set_db(description.database);
    if let Some(user) = &description.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &description.password {
        redis = redis.set_password(password);
    }
    let info = ConnectionAddr::Unix(path.to_owned())
        .into_connection_info()
        .map_err(|e| storage_error("invalid Redis socket", e))?
        .set_redis_settings(redis);
    Client::open(info).map_err(|e| storage_error("invalid Redis connection settings", e))
}

impl Link {
    /// Connects now (failing if Redis cannot be reached). `retries`: reconnection attempts per
    /// command on one node.
    pub(crate) async fn connect(
        description: &RedisConnection,
        retries: usize,
    ) -> Result<Self, StorageError> {
        description.validate()?;
        if description
            .tls
            .as_ref()
            .is_some_and(|t| t.insecure_skip_verify)
        {
            tracing::warn!(
                "Redis TLS does not verify the server certificate (ssl_insecure_skip_verify): anyone on the network path can read and change the stored certificates"
            );
        }
        let async_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(description.connect_timeout))
            .set_response_timeout(Some(description.response_timeout));
        let kind = match &description.topology {
            RedisTopology::Single { addr } => {
                let client = node_client(description, addr)?;
                Self::single(client, description, retries).await?
            }
            RedisTopology::Unix { path } => {
                let client = unix_client(description, path)?;
                Self::single(client, description, retries).await?
            }
            RedisTopology::Cluster { seeds } => {
                let nodes = seeds
                    .iter()
                    .map(|seed| {
                        let (host, port) = split_addr(seed)?;
                        node_info(description, host, port)
                            .map_err(|e| storage_error("invalid Redis address", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(description.connect_timeout)
                    .response_timeout(description.response_timeout)
                    .retries(u32::try_from(retries).unwrap_or(2))
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(user) = &description.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &description.password {
                    builder = builder.password(password);
                }
                if let Some(tls) = &description.tls {
                    builder = builder.tls(tls_mode(tls)).certs(tls_certificates(tls)?);
                }
                let client = builder
                    .build()
                    .map_err(|e| storage_error("invalid Redis Cluster settings", e))?;
                let connection = client
                    .get_async_connection()
                    .await
                    .map_err(|e| storage_error("cannot connect to the Redis Cluster", e))?;
                LinkKind::Cluster(Arc::new(ClusterLink {
                    client,
                    current: arc_swap::ArcSwap::from_pointee(connection),
                    rebuilding: std::sync::atomic::AtomicBool::new(false),
                }))
            }
            RedisTopology::Sentinel {
                sentinels,
                master_name,
                sentinel_username,
                sentinel_password,
            } => {
                let addrs = sentinels
                    .iter()
                    .map(|s| {
                        let (host, port) = split_addr(s)?;
                        Ok(match &description.tls {
                            Some(tls) => ConnectionAddr::TcpTls {
                                host,
                                port,
                                insecure: tls.insecure_skip_verify,
                                tls_params: None,
                            },
                            None => ConnectionAddr::Tcp(host, port),
                        })
                    })
                    .collect::<Result<Vec<_>, StorageError>>()?;
                let mut builder =
                    SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
                        .map_err(|e| storage_error("invalid Redis Sentinel settings", e))?
                        .set_client_to_redis_db(description.database);
                if let Some(user) = &description.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &description.password {
                    builder = builder.set_client_to_redis_password(password);
                }
                if let Some(user) = sentinel_username {
                    builder = builder.set_client_to_sentinel_username(user);
                }
                if let Some(password) = sentinel_password {
                    builder = builder.set_client_to_sentinel_password(password);
                }
                if let Some(tls) = &description.tls {
                    let certificates = tls_certificates(tls)?;
                    builder = builder
                        .set_client_to_redis_tls_mode(tls_mode(tls))
                        .set_client_to_redis_certificates(certificates.clone())
                        .set_client_to_sentinel_tls_mode(tls_mode(tls))
                        .set_client_to_sentinel_certificates(certificates);
                }
                let client = builder
                    .build()
                    .map_err(|e| storage_error("invalid Redis Sentinel settings", e))?;
                let link = Arc::new(SentinelLink {
                    client: tokio::sync::Mutex::new(client),
                    current: Mutex::new(None),
                    config: async_config,
                });
                link.connection().await.map_err(|e| {
                    storage_error("cannot reach the Redis master through the sentinels", e)
                })?;
                LinkKind::Sentinel(link)
            }
        };
        Ok(Self {
            kind,
            description: Arc::new(description.clone()),
        })
    }

    async fn single(
        client: Client,
        description: &RedisConnection,
        retries: usize,
    ) -> Result<LinkKind, StorageError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(description.response_timeout))
            .set_connection_timeout(Some(description.connect_timeout))
            .set_number_of_retries(retries)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| storage_error("cannot connect to Redis", e))?;
        Ok(LinkKind::Single(manager, Box::new(client)))
    }

    /// True on a Redis Cluster (keys of one write may live on different nodes).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.kind, LinkKind::Cluster(_))
    }

    /// A connection for one command, pipeline or script.
    pub(crate) async fn conn(&self) -> Result<Conn, RedisError> {
        Ok(match &self.kind {
            LinkKind::Single(manager, _) => Conn::Single(manager.clone()),
            LinkKind::Cluster(cluster) => Conn::Cluster(cluster.connection()),
            LinkKind::Sentinel(link) => Conn::Sentinel(link.connection().await?),
        })
    }

    /// Tells the link a command failed, so a sentinel link asks for the master again.
    pub(crate) fn failed(&self, e: &RedisError) {
        if let LinkKind::Cluster(cluster) = &self.kind
            && e.is_timeout()
        {
            cluster.rebuild();
        }
        if let LinkKind::Sentinel(link) = &self.kind
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_unrecoverable_error()
                || is_failover_answer(e))
            && let Ok(mut current) = link.current.lock()
        {
            *current = None;
        }
    }

    /// Runs `cmd`.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let result = async { cmd.query_async(&mut self.conn().await?).await }.await;
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    /// Runs a read-only `cmd`; on a sentinel link, a connection to a master that has gone away
    /// is replaced and the read retried once (harmless for a read, unlike a write).
    pub(crate) async fn read<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        match self.query(cmd).await {
            Err(e) if matches!(self.kind, LinkKind::Sentinel(_)) && !e.is_timeout() => {
                self.query(cmd).await
            }
            result => result,
        }
    }

    /// Runs `pipe` on the node that owns `key` (all its commands must be about that key's slot
    /// or about no key, such as `WAIT` and `PUBLISH`).
    pub(crate) async fn pipe_on_key<T: redis::FromRedisValue>(
        &self,
        key: &str,
        pipe: &Pipeline,
    ) -> Result<T, RedisError> {
        let result = async {
            match &self.kind {
                LinkKind::Cluster(cluster) => {
                    let mut cluster = cluster.connection();
                    let values = cluster
                        .route_pipeline(
                            pipe.clone(),
                            0,
                            pipe.len(),
                            SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                                key,
                                SlotAddr::Master,
                            )),
                        )
                        .await?;
                    Ok(redis::from_redis_value(Value::Array(values))?)
                }
                _ => pipe.query_async(&mut self.conn().await?).await,
            }
        }
        .await;
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    /// A client for a pub/sub connection; `attempt` rotates through a cluster's seeds, and a
    /// sentinel link asks for the current master.
    pub(crate) async fn pubsub_client(&self, attempt: usize) -> Result<Client, StorageError> {
        match (&self.kind, &self.description.topology) {
            (LinkKind::Single(_, client), _) => Ok(Client::clone(client)),
            (LinkKind::Cluster(_), RedisTopology::Cluster { seeds }) => {
                let addr = &seeds[attempt % seeds.len().max(1)];
                node_client(&self.description, addr)
            }
            (LinkKind::Sentinel(link), _) => {
                let mut client = link.client.lock().await;
                client
                    .async_get_client()
                    .await
                    .map_err(|e| storage_error("cannot find the Redis master", e))
            }
            _ => Err(StorageError::new(
                StorageErrorKind::Other,
                "inconsistent Redis link",
            )),
        }
    }

    /// The masters of a cluster (`host`, `port`), from `CLUSTER NODES`.
    pub(crate) async fn cluster_masters(&self) -> Result<Vec<(String, u16)>, RedisError> {
        let nodes: String = self
            .query(&redis::cmd("CLUSTER").arg("NODES").clone())
            .await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                    return None;
                }
                let addr = fields.get(1)?.split('@').next()?;
                let (host, port) = addr.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }

    /// Runs `cmd` on the cluster node at `host:port`.
    pub(crate) async fn query_node<T: redis::FromRedisValue>(
        &self,
        host: &str,
        port: u16,
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        match &self.kind {
            LinkKind::Cluster(cluster) => {
                let mut cluster = cluster.connection();
                let value = cluster
                    .route_command(
                        cmd,
                        redis::cluster_routing::RoutingInfo::SingleNode(
                            SingleNodeRoutingInfo::ByAddress {
                                host: host.to_owned(),
                                port,
                            },
                        ),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
            _ => self.query(&cmd).await,
        }
    }
}

/// The outcome of [`RedisLink::claim_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyClaim {
    /// The key was free and is now held for the TTL.
    Won,
    /// Someone holds it; `remaining` is its time to live (`None`: it has no TTL).
    Held {
        /// How long the holder keeps it.
        remaining: Option<Duration>,
    },
}

/// A Redis link for other certgate crates (expiry-monitor's cooldowns): the same topologies,
/// reconnection, failover handling and error classification as `RedisStorage`, for single-key
/// claims.
#[derive(Clone)]
pub struct RedisLink {
    link: Link,
}

impl core::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisLink")
            .field("connection", &self.link.description)
            .finish()
    }
}

impl RedisLink {
    /// Connects now (failing if Redis cannot be reached); `retries` reconnection attempts per
    /// command (keep it low where a command must fail fast).
    pub async fn connect(
        connection: &RedisConnection,
        retries: usize,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            link: Link::connect(connection, retries).await?,
        })
    }

    /// Checks that Redis answers (and reconnects if it had gone away).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.link
            .query::<String>(&redis::cmd("PING"))
            .await
            .map(drop)
            .map_err(|e| storage_error("redis", e))
    }

    /// `SET key 1 NX PX ttl`, pipelined with `PTTL key` on the key's node: of N claimers exactly
    /// one wins, and a loser learns how long the winner holds the key.
    pub async fn claim_key(&self, key: &str, ttl: Duration) -> Result<KeyClaim, StorageError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .cmd("PTTL")
            .arg(key);
        let (set, pttl): (Option<String>, i64) = self
            .link
            .pipe_on_key(key, &pipe)
            .await
            .map_err(|e| storage_error("redis", e))?;
        if set.is_some() {
            return Ok(KeyClaim::Won);
        }
        Ok(KeyClaim::Held {
            remaining: match pttl {
                -1 => None,
                ms if ms < 0 => Some(Duration::ZERO),
                ms => Some(Duration::from_millis(ms.unsigned_abs())),
            },
        })
    }
}

impl SentinelLink {
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Ok(current) = self.current.lock()
            && let Some(connection) = current.as_ref()
        {
            return Ok(connection.clone());
        }
        let mut client = self.client.lock().await;
        // Another task may have connected while this one waited.
        if let Ok(current) = self.current.lock()
            && let Some(connection) = current.as_ref()
        {
            return Ok(connection.clone());
        }
        let master = client.async_get_client().await?;
        let connection = master
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(connection.clone());
        }
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_describe_each_topology() {
        let single = RedisConnection::from_url("rediss://u%40x:p%3Aw@h:6380/2").unwrap();
        assert_eq!(
            single.topology,
            RedisTopology::Single {
                addr: "h:6380".into()
            }
        );
        assert_eq!(single.username.as_deref(), Some("u@x"));
        assert_eq!(single.password.as_deref(), Some("p:w"));
        assert_eq!(single.database, 2);
        assert!(single.tls.is_some());

        let cluster = RedisConnection::from_url("redis+cluster://:pw@a:1,b:2").unwrap();
        assert_eq!(
            cluster.topology,
            RedisTopology::Cluster {
                seeds: vec!["a:1".into(), "b:2".into()]
            }
        );
        assert_eq!(cluster.username, None);
        assert_eq!(cluster.password.as_deref(), Some("pw"));

        let sentinel = RedisConnection::from_url("redis+sentinel://s1:26379,s2:26379/main/3")
            .unwrap()
            .with_sentinel_credentials("", "sp");
        assert!(matches!(
            &sentinel.topology,
            RedisTopology::Sentinel { sentinels, master_name, sentinel_password, .. }
                if sentinels.len() == 2 && master_name == "main" && sentinel_password.as_deref() == Some("sp")
        ));
        assert_eq!(sentinel.database, 3);
        let debug = format!("{sentinel:?} {single:?}");
        assert!(!debug.contains("sp\"") && !debug.contains("p:w"), "{debug}");
    }

    #[test]
    fn bad_descriptions_are_refused_with_the_reason() {
        for (url, reason) in [
            ("http://h:1", "scheme"),
            ("redis://h", "host:port"),
            ("redis://h:0", "host:port"),
            ("redis://a:1,b:2", "one host:port"),
            ("redis+cluster://a:1/3", "no database"),
            ("redis://h:1/x", "not a number"),
            ("redis://u:%zz@h:1", "%-escape"),
            ("redis://u:p%4@h:1", "%-escape"),
            ("redis://u:%+1@h:1", "%-escape"),
            ("redis://u%ff:p@h:1", "not UTF-8"),
        ] {
            let err = RedisConnection::from_url(url)
                .and_then(|c| c.validate())
                .unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
            assert!(!err.is_temporary());
        }
        let err = RedisConnection::cluster(["a:1"])
            .with_database(1)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("Redis Cluster"), "{err}");
    }
}
