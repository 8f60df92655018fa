//! `storage`: where certificates are stored, and the Redis connection it describes.

use std::collections::BTreeMap;
#[cfg(feature = "redis")]
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::{ConfigError, invalid};

/// `storage`, with Tyk's field names. One node (`host`/`port`, or the first of `addrs`), a Redis
/// Cluster (`enable_cluster` with `addrs` as seeds) or Redis Sentinel (`master_name` with
/// `addrs` as the sentinels).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StorageConfig {
    /// `memory` (default) or `redis`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Redis host (without `addrs`).
    pub host: String,
    /// Redis port (without `addrs`).
    pub port: u16,
    /// `host:port` list: one node (the first is used), the cluster's seed nodes, or the
    /// sentinels.
    pub addrs: Vec<String>,
    /// Redis Cluster: `addrs` are seed nodes.
    pub enable_cluster: bool,
    /// Redis Sentinel: the monitored master's name; `addrs` are the sentinels.
    pub master_name: String,
    /// Password on the sentinels.
    pub sentinel_password: String,
    /// ACL user name on the sentinels.
    pub sentinel_username: String,
    /// Redis ACL user name.
    pub username: String,
    /// Redis password.
    pub password: String,
    /// Redis database number (not on a cluster).
    pub database: i64,
    /// Seconds connecting and each command may take (0: 2 s).
    pub timeout: u64,
    /// Connect to Redis (and the sentinels) over TLS.
    pub use_ssl: bool,
    /// With `use_ssl`: accept any server certificate (dangerous).
    pub ssl_insecure_skip_verify: bool,
    /// With `use_ssl`: PEM file of the CA certificates to trust (default: the system's).
    pub ca_file: String,
    /// With `use_ssl`: PEM client certificate (with `key_file`).
    pub cert_file: String,
    /// With `use_ssl`: PEM key of `cert_file`.
    pub key_file: String,
    /// Lowest TLS version towards Redis: `""`, `"1.0"`, `"1.1"` or `"1.2"` (Redis connections
    /// negotiate TLS 1.2 or 1.3 whatever is asked below 1.2).
    pub tls_min_version: String,
    /// Highest TLS version towards Redis: `""` or `"1.3"`.
    pub tls_max_version: String,
    /// Ours: replicas that must have every write before it is acknowledged (`WAIT`); a write
    /// that does not reach them is answered 503.
    pub min_replicas_to_ack: u32,
    /// Ours: milliseconds a write waits for `min_replicas_to_ack` replicas.
    pub min_replicas_timeout_ms: u64,
    #[serde(flatten)]
    pub(super) unknown: BTreeMap<String, Value>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: "memory".into(),
            host: "127.0.0.1".into(),
            port: 6379,
            addrs: Vec::new(),
            enable_cluster: false,
            master_name: String::new(),
            sentinel_password: String::new(),
            sentinel_username: String::new(),
            username: String::new(),
            password: String::new(),
            database: 0,
            timeout: 0,
            use_ssl: false,
            ssl_insecure_skip_verify: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            tls_min_version: String::new(),
            tls_max_version: String::new(),
            min_replicas_to_ack: 0,
            min_replicas_timeout_ms: 1000,
            unknown: BTreeMap::new(),
        }
    }
}

/// The store `storage` describes, parsed once by validation ([`StorageConfig::parse`]): what the
/// gateway builds its store, the expiry monitor's shared cooldowns and ACME's fleet coordinator
/// from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StorageTarget {
    /// In this process's memory (`type` is `memory`, or empty).
    Memory,
    /// Redis: cert-store's settings (the connection, replica acknowledgements) from Tyk's fields.
    #[cfg(feature = "redis")]
    Redis(Box<cert_store::RedisConfig>),
}

impl StorageTarget {
    /// The Redis settings, when the store is Redis.
    #[cfg(feature = "redis")]
    pub fn redis(&self) -> Option<&cert_store::RedisConfig> {
        match self {
            Self::Redis(redis) => Some(redis),
            Self::Memory => None,
        }
    }
}

impl StorageConfig {
    #[cfg(feature = "redis")]
    fn addrs_or_host(&self) -> Vec<String> {
        if self.addrs.is_empty() {
            vec![format!("{}:{}", self.host, self.port)]
        } else {
            self.addrs.clone()
        }
    }

    /// Checks the fields and parses what they describe: the one place Tyk's Redis fields become
    /// cert-store's typed connection ([`GatewayConfig::validate`](super::GatewayConfig::validate)
    /// calls it; a gateway keeps what its validation returned).
    pub fn parse(&self) -> Result<StorageTarget, ConfigError> {
        match self.kind.as_str() {
            "memory" | "" => return Ok(StorageTarget::Memory),
            "redis" if cfg!(feature = "redis") => {}
            "redis" => {
                return Err(invalid(
                    "storage.type",
                    "this build has no Redis support (feature `redis`)",
                ));
            }
            other => {
                return Err(invalid(
                    "storage.type",
                    format!("{other:?} is not supported; use \"memory\" or \"redis\""),
                ));
            }
        }
        if self.enable_cluster && !self.master_name.is_empty() {
            return Err(invalid(
                "storage.master_name",
                "give either enable_cluster (Redis Cluster) or master_name (Redis Sentinel), not both",
            ));
        }
        if self.enable_cluster && self.database != 0 {
            return Err(invalid(
                "storage.database",
                "a Redis Cluster has only database 0; remove database or enable_cluster",
            ));
        }
        if !matches!(self.tls_min_version.as_str(), "" | "1.0" | "1.1" | "1.2") {
            return Err(invalid(
                "storage.tls_min_version",
                format!(
                    "{:?} is not supported: use \"1.0\", \"1.1\" or \"1.2\" (Redis connections negotiate TLS 1.2 or 1.3)",
                    self.tls_min_version
                ),
            ));
        }
        if !matches!(self.tls_max_version.as_str(), "" | "1.3") {
            return Err(invalid(
                "storage.tls_max_version",
                format!(
                    "{:?} is not supported: use \"1.3\" (Redis connections negotiate TLS 1.2 or 1.3)",
                    self.tls_max_version
                ),
            ));
        }
        if self.min_replicas_to_ack > 0 && self.min_replicas_timeout_ms == 0 {
            return Err(invalid(
                "storage.min_replicas_timeout_ms",
                "must be at least 1 when min_replicas_to_ack is set (0 would wait forever)",
            ));
        }
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(invalid(
                "storage.cert_file",
                "a client certificate needs both cert_file and key_file",
            ));
        }
        self.redis_target()
    }

    #[cfg(feature = "redis")]
    fn redis_target(&self) -> Result<StorageTarget, ConfigError> {
        use cert_store::{RedisConnection, RedisTls};
        let addrs = self.addrs_or_host();
        let mut connection = if self.enable_cluster {
            RedisConnection::cluster(addrs)
        } else if !self.master_name.is_empty() {
            RedisConnection::sentinel(addrs, self.master_name.clone())
                .with_sentinel_credentials(&self.sentinel_username, &self.sentinel_password)
        } else {
            RedisConnection::single(addrs.into_iter().next().unwrap_or_default())
        }
        .with_credentials(&self.username, &self.password)
        .with_database(self.database);
        if self.timeout > 0 {
            let timeout = std::time::Duration::from_secs(self.timeout);
            connection = connection.with_timeouts(timeout, timeout);
        }
        if self.use_ssl {
            let file = |f: &str| (!f.is_empty()).then(|| PathBuf::from(f));
            let mut tls = RedisTls::new();
            tls.ca_file = file(&self.ca_file);
            tls.cert_file = file(&self.cert_file);
            tls.key_file = file(&self.key_file);
            tls.insecure_skip_verify = self.ssl_insecure_skip_verify;
            connection = connection.with_tls(tls);
        }
        connection
            .validate()
            .map_err(|e| invalid("storage", e.to_string()))?;
        Ok(StorageTarget::Redis(Box::new(
            cert_store::RedisConfig::new(connection).with_min_replicas_to_ack(
                self.min_replicas_to_ack,
                std::time::Duration::from_millis(self.min_replicas_timeout_ms),
            ),
        )))
    }

    /// Without Redis support, `type = "redis"` is refused before this.
    #[cfg(not(feature = "redis"))]
    fn redis_target(&self) -> Result<StorageTarget, ConfigError> {
        Ok(StorageTarget::Memory)
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use std::path::Path;

    use super::super::GatewayConfig;
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_json(text, Path::new("test.json"), Vec::new())
    }

    #[cfg(feature = "redis")]
    #[test]
    fn storage_describes_a_cluster_or_sentinels_in_tyks_field_names() {
        use cert_store::RedisTopology;
        let config = parse(
            r#"{"storage": {"type": "redis", "enable_cluster": true, "addrs": ["a:7000", "b:7001"],
                "password": "pw", "use_ssl": true, "ssl_insecure_skip_verify": true, "timeout": 3,
                "min_replicas_to_ack": 1, "min_replicas_timeout_ms": 500}}"#,
        )
        .unwrap();
        let redis = config.storage.parse().unwrap().redis().unwrap().clone();
        let connection = &redis.connection;
        assert_eq!(
            connection.topology,
            RedisTopology::Cluster {
                seeds: vec!["a:7000".into(), "b:7001".into()]
            }
        );
        assert_eq!(connection.password.as_deref(), Some("pw"));
        assert!(connection.tls.as_ref().unwrap().insecure_skip_verify);
        assert_eq!(connection.response_timeout.as_secs(), 3);
        assert_eq!(redis.min_replicas_to_ack, 1);

        let mut config = GatewayConfig::default();
        config
            .apply_env([
                ("TYK_GW_STORAGE_TYPE".to_owned(), "redis".to_owned()),
                (
                    "TYK_GW_STORAGE_ADDRS".to_owned(),
                    "s1:26379, s2:26379".to_owned(),
                ),
                ("TYK_GW_STORAGE_MASTERNAME".to_owned(), "main".to_owned()),
                (
                    "TYK_GW_STORAGE_SENTINELPASSWORD".to_owned(),
                    "sp".to_owned(),
                ),
                ("TYK_GW_STORAGE_DATABASE".to_owned(), "2".to_owned()),
            ])
            .unwrap();
        config.validate().unwrap();
        let redis = config.storage.parse().unwrap().redis().unwrap().clone();
        let connection = &redis.connection;
        assert!(matches!(
            &connection.topology,
            RedisTopology::Sentinel { sentinels, master_name, sentinel_password, .. }
                if sentinels.len() == 2 && master_name == "main" && sentinel_password.as_deref() == Some("sp")
        ));
        assert_eq!(connection.database, 2);

        for (json, field, reason) in [
            (
                r#"{"storage": {"type": "redis", "enable_cluster": true, "database": 1}}"#,
                "storage.database",
                "only database 0",
            ),
            (
                r#"{"storage": {"type": "redis", "enable_cluster": true, "master_name": "m"}}"#,
                "storage.master_name",
                "not both",
            ),
            (
                r#"{"storage": {"type": "redis", "tls_max_version": "1.2"}}"#,
                "storage.tls_max_version",
                "1.3",
            ),
            (
                r#"{"storage": {"type": "redis", "addrs": ["nohost"]}}"#,
                "storage",
                "host:port",
            ),
            (
                r#"{"storage": {"type": "redis", "use_ssl": true, "cert_file": "c.pem"}}"#,
                "storage.cert_file",
                "key_file",
            ),
        ] {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(reason), "{json}: {err}");
        }
    }
}
