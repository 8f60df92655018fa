//! `TYK_GW_*` environment overrides: Tyk's variable names for the fields certgate reads,
//! including the expiry monitor's.

use std::path::PathBuf;

use super::{ConfigError, GatewayConfig, invalid};

impl GatewayConfig {
    /// Applies `TYK_GW_*` overrides for the top-level fields, the secrets and the expiry
    /// monitor (`TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_WARNINGTHRESHOLDDAYS`,
    /// `..._CHECKCOOLDOWNSECONDS`, `..._EVENTCOOLDOWNSECONDS` and our `..._SWEEPINTERVALSECONDS`;
    /// set to an empty string, these are ignored).
    pub fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in env {
            let Some(field) = name.strip_prefix("TYK_GW_") else {
                continue;
            };
            match field {
                "LISTENADDRESS" => self.listen_address = value,
                "LISTENPORT" => self.listen_port = parse_env(&name, &value)?,
                "SECRET" => self.secret = value,
                "SECURITY_PRIVATECERTIFICATEENCODINGSECRET" => {
                    self.security.private_certificate_encoding_secret = value
                }
                "SECURITY_PRIVATECERTIFICATEKEYFORMAT" => {
                    self.security.private_certificate_key_format = value
                }
                "SECURITY_CONTROLAPIUSEMUTUALTLS" => {
                    self.security.control_api_use_mutual_tls = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_USESSL" => {
                    self.http_server_options.use_ssl = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_ENABLEHTTP2" => {
                    self.http_server_options.enable_http2 = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MINVERSION" => {
                    self.http_server_options.min_version = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MAXVERSION" => {
                    self.http_server_options.max_version = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_CERTIFICATESFROMSTORE_ENABLED" => {
                    self.http_server_options.certificates_from_store.enabled =
                        parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_CERTIFICATESFROMSTORE_ORGS" => {
                    self.http_server_options.certificates_from_store.orgs =
                        value.split(',').map(|org| org.trim().to_owned()).collect()
                }
                "HTTPSERVEROPTIONS_SKIPURLCLEANING" => {
                    self.http_server_options.skip_url_cleaning = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_IDLETIMEOUT" => {
                    self.http_server_options.idle_timeout = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MAXCONNECTIONS" => {
                    self.http_server_options.max_connections = parse_env(&name, &value)?
                }
                "HTTPSERVEROPTIONS_MAXCONNECTIONSPERIP" => {
                    self.http_server_options.max_connections_per_ip = parse_env(&name, &value)?
                }
                "STORAGE_TYPE" => self.storage.kind = value,
                "STORAGE_HOST" => self.storage.host = value,
                "STORAGE_PORT" => self.storage.port = parse_env(&name, &value)?,
                "STORAGE_USERNAME" => self.storage.username = value,
                "STORAGE_PASSWORD" => self.storage.password = value,
                "STORAGE_DATABASE" => self.storage.database = parse_env(&name, &value)?,
                "STORAGE_USESSL" => self.storage.use_ssl = parse_env(&name, &value)?,
                "STORAGE_ADDRS" => {
                    self.storage.addrs = value
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "STORAGE_ENABLECLUSTER" => self.storage.enable_cluster = parse_env(&name, &value)?,
                "STORAGE_MASTERNAME" => self.storage.master_name = value,
                "STORAGE_SENTINELPASSWORD" => self.storage.sentinel_password = value,
                "STORAGE_SENTINELUSERNAME" => self.storage.sentinel_username = value,
                "STORAGE_TIMEOUT" => self.storage.timeout = parse_env(&name, &value)?,
                "STORAGE_SSLINSECURESKIPVERIFY" => {
                    self.storage.ssl_insecure_skip_verify = parse_env(&name, &value)?
                }
                "STORAGE_CAFILE" => self.storage.ca_file = value,
                "STORAGE_CERTFILE" => self.storage.cert_file = value,
                "STORAGE_KEYFILE" => self.storage.key_file = value,
                "STORAGE_TLSMINVERSION" => self.storage.tls_min_version = value,
                "STORAGE_TLSMAXVERSION" => self.storage.tls_max_version = value,
                "STORAGE_MINREPLICASTOACK" => {
                    self.storage.min_replicas_to_ack = parse_env(&name, &value)?
                }
                "STORAGE_MINREPLICASTIMEOUTMS" => {
                    self.storage.min_replicas_timeout_ms = parse_env(&name, &value)?
                }
                "APPPATH" => self.app_path = Some(PathBuf::from(value)),
                "CONTROLAPIHOSTNAME" => self.control_api_hostname = value,
                "CONTROLAPIPORT" => self.control_api_port = parse_env(&name, &value)?,
                "PROXYSSLINSECURESKIPVERIFY" => {
                    self.proxy_ssl_insecure_skip_verify = parse_env(&name, &value)?
                }
                "PROXYSSLMINVERSION" => self.proxy_ssl_min_version = parse_env(&name, &value)?,
                "SECURITY_CERTIFICATEEXPIRYMONITOR_WARNINGTHRESHOLDDAYS" => {
                    let max = u64::from(expiry_monitor::MAX_WARNING_THRESHOLD_DAYS);
                    if let Some(days) = expiry_number(&name, &value, max, "days")? {
                        // In range, so it fits.
                        self.security
                            .certificate_expiry_monitor
                            .warning_threshold_days = u32::try_from(days).unwrap_or_default();
                    }
                }
                "SECURITY_CERTIFICATEEXPIRYMONITOR_CHECKCOOLDOWNSECONDS" => {
                    if let Some(seconds) = expiry_seconds(&name, &value)? {
                        self.security
                            .certificate_expiry_monitor
                            .check_cooldown_seconds = seconds;
                    }
                }
                "SECURITY_CERTIFICATEEXPIRYMONITOR_EVENTCOOLDOWNSECONDS" => {
                    if let Some(seconds) = expiry_seconds(&name, &value)? {
                        self.security
                            .certificate_expiry_monitor
                            .event_cooldown_seconds = seconds;
                    }
                }
                "SECURITY_CERTIFICATEEXPIRYMONITOR_SWEEPINTERVALSECONDS" => {
                    if let Some(seconds) = expiry_seconds(&name, &value)? {
                        self.security
                            .certificate_expiry_monitor
                            .sweep_interval_seconds = seconds;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// An expiry monitor interval in seconds (see [`expiry_number`]).
fn expiry_seconds(name: &str, text: &str) -> Result<Option<u64>, ConfigError> {
    expiry_number(name, text, expiry_monitor::MAX_INTERVAL_SECONDS, "seconds")
}

/// A whole number from 0 to `max` for an expiry monitor variable; `None` when the value is
/// empty (ignored, as in Tyk). The error names the variable, quotes the value (shortened) and
/// says what is accepted.
fn expiry_number(name: &str, text: &str, max: u64, unit: &str) -> Result<Option<u64>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let setting = name.to_owned();
    let value: String = text.chars().take(40).collect();
    let expected = format!("a whole number of {unit} from 0 to {max} (0 means the default)");
    let negative = text
        .strip_prefix('-')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    let error = match text.parse::<u128>() {
        Ok(number) if number <= u128::from(max) => return Ok(u64::try_from(number).ok()),
        // A negative whole number is out of range rather than "not a number".
        Ok(_) => expiry_monitor::ConfigError::OutOfRange {
            setting,
            value,
            expected,
        },
        Err(_) if negative => expiry_monitor::ConfigError::OutOfRange {
            setting,
            value,
            expected,
        },
        Err(_) => expiry_monitor::ConfigError::Invalid {
            setting,
            value,
            expected,
        },
    };
    Err(invalid(
        "security.certificate_expiry_monitor",
        error.to_string(),
    ))
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is not a valid value")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn env_overrides_top_level_fields_and_secrets() {
        let mut config = GatewayConfig::default();
        config
            .apply_env([
                ("TYK_GW_LISTENPORT".to_owned(), "9000".to_owned()),
                ("TYK_GW_SECRET".to_owned(), "from-env".to_owned()),
                ("TYK_GW_STORAGE_PASSWORD".to_owned(), "p@ss word".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ])
            .unwrap();
        assert_eq!(config.listen_port, 9000);
        assert_eq!(
            config.encoding_secret(),
            "from-env",
            "falls back to secret, as in Tyk"
        );
        assert_eq!(config.storage.password, "p@ss word");
        assert_eq!(
            config.http_server_options.idle_timeout(),
            Duration::from_secs(20)
        );
        config
            .apply_env([
                (
                    "TYK_GW_HTTPSERVEROPTIONS_IDLETIMEOUT".to_owned(),
                    "7".to_owned(),
                ),
                (
                    "TYK_GW_HTTPSERVEROPTIONS_SKIPURLCLEANING".to_owned(),
                    "true".to_owned(),
                ),
                (
                    "TYK_GW_HTTPSERVEROPTIONS_MAXCONNECTIONS".to_owned(),
                    "100".to_owned(),
                ),
                (
                    "TYK_GW_HTTPSERVEROPTIONS_MAXCONNECTIONSPERIP".to_owned(),
                    "5".to_owned(),
                ),
            ])
            .unwrap();
        let options = &config.http_server_options;
        assert_eq!(options.idle_timeout(), Duration::from_secs(7));
        assert!(options.skip_url_cleaning);
        assert_eq!(
            (options.max_connections, options.max_connections_per_ip),
            (100, 5)
        );
        let err = config
            .apply_env([("TYK_GW_LISTENPORT".to_owned(), "eighty".to_owned())])
            .unwrap_err();
        assert!(err.to_string().contains("TYK_GW_LISTENPORT"), "{err}");
    }

    const WARNING: &str = "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_WARNINGTHRESHOLDDAYS";
    const CHECK: &str = "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_CHECKCOOLDOWNSECONDS";
    const EVENT: &str = "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_EVENTCOOLDOWNSECONDS";
    const SWEEP: &str = "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_SWEEPINTERVALSECONDS";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expiry_monitor_env_overrides_the_file_like_tyks_config_test() {
        let mut config = GatewayConfig::from_json(
            r#"{"security": {"certificate_expiry_monitor": {"warning_threshold_days":30,"check_cooldown_seconds":3600,"event_cooldown_seconds":86400}}}"#,
            std::path::Path::new("test.json"),
            env(&[
                (WARNING, "7"),
                (CHECK, "900"),
                (EVENT, "21600"),
                ("TYK_GW_SOMETHING_ELSE", "not a number, not ours"),
            ]),
        )
        .unwrap();
        let monitor = config.security.certificate_expiry_monitor;
        assert_eq!(monitor.warning_threshold_days, 7);
        assert_eq!(monitor.check_cooldown_seconds, 900);
        assert_eq!(monitor.event_cooldown_seconds, 21_600);
        assert_eq!(monitor.sweep_interval(), None);

        config
            .apply_env(env(&[(SWEEP, " 300 "), (WARNING, "")]))
            .unwrap();
        let monitor = config.security.certificate_expiry_monitor;
        assert_eq!(monitor.sweep_interval(), Some(Duration::from_secs(300)));
        assert_eq!(
            monitor.warning_threshold_days, 7,
            "empty values are ignored"
        );
    }

    #[test]
    fn invalid_expiry_monitor_env_values_are_errors_naming_the_variable() {
        for (name, value, says) in [
            (WARNING, "seven", "is not valid"),
            (WARNING, "-1", "out of range"),
            (WARNING, "3651", "out of range"),
            (CHECK, "1.5", "is not valid"),
            (EVENT, "99999999999999999999999", "out of range"),
            (EVENT, "315360001", "out of range"),
            (SWEEP, "10m", "is not valid"),
        ] {
            let err = GatewayConfig::default()
                .apply_env(env(&[(name, value)]))
                .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("security.certificate_expiry_monitor"),
                "{text}"
            );
            assert!(text.contains(name), "{text}");
            assert!(text.contains(value), "{text}");
            assert!(text.contains(says), "{text}");
            assert!(text.contains("whole number"), "{text}");
        }
    }
}
