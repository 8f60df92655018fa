//! The monitor's configuration: Tyk's `security.certificate_expiry_monitor` block, its
//! `TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_*` environment overrides, and our sweep interval.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Tyk's default warning threshold, in days.
pub const DEFAULT_WARNING_THRESHOLD_DAYS: u32 = 30;
/// Tyk's default check cooldown, in seconds.
pub const DEFAULT_CHECK_COOLDOWN_SECONDS: u64 = 3600;
/// Tyk's default event cooldown, in seconds.
pub const DEFAULT_EVENT_COOLDOWN_SECONDS: u64 = 86_400;
/// The largest warning threshold accepted, in days (ten years).
pub const MAX_WARNING_THRESHOLD_DAYS: u32 = 3650;
/// The largest cooldown or sweep interval accepted, in seconds (ten years).
pub const MAX_INTERVAL_SECONDS: u64 = 3650 * 86_400;

/// Environment variable overriding [`ExpiryMonitorConfig::warning_threshold_days`] (Tyk's name).
pub const ENV_WARNING_THRESHOLD_DAYS: &str =
    "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_WARNINGTHRESHOLDDAYS";
/// Environment variable overriding [`ExpiryMonitorConfig::check_cooldown_seconds`] (Tyk's name).
pub const ENV_CHECK_COOLDOWN_SECONDS: &str =
    "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_CHECKCOOLDOWNSECONDS";
/// Environment variable overriding [`ExpiryMonitorConfig::event_cooldown_seconds`] (Tyk's name).
pub const ENV_EVENT_COOLDOWN_SECONDS: &str =
    "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_EVENTCOOLDOWNSECONDS";
/// Environment variable overriding [`ExpiryMonitorConfig::sweep_interval_seconds`] (our
/// addition, named in Tyk's style).
pub const ENV_SWEEP_INTERVAL_SECONDS: &str =
    "TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_SWEEPINTERVALSECONDS";

/// Tyk's `security.certificate_expiry_monitor` block, plus `sweep_interval_seconds`.
///
/// As in Tyk, **0 means the default**, not "disabled": a zero cooldown is the default cooldown.
/// The fields keep what was written (so a configuration round-trips unchanged); the accessors
/// ([`warning_threshold`](Self::warning_threshold), [`check_cooldown`](Self::check_cooldown),
/// [`event_cooldown`](Self::event_cooldown), [`sweep_interval`](Self::sweep_interval)) apply the
/// defaults. Unlike Tyk, values out of range are refused ([`validate`](Self::validate)) instead
/// of silently misbehaving.
///
/// ```
/// use expiry_monitor::ExpiryMonitorConfig;
///
/// let config: ExpiryMonitorConfig =
///     serde_json::from_str(r#"{"warning_threshold_days": 7, "check_cooldown_seconds": 0}"#)?;
/// assert_eq!(config.warning_threshold(), time::Duration::days(7));
/// assert_eq!(config.check_cooldown().as_secs(), 3600); // 0 means the default
/// let env = [("TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_EVENTCOOLDOWNSECONDS", "21600")];
/// let config = config.with_env(env)?;
/// assert_eq!(config.event_cooldown().as_secs(), 21600);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig")]
#[non_exhaustive]
pub struct ExpiryMonitorConfig {
    /// A certificate is "expiring soon" when `0 < time left <= this many days` (inclusive).
    /// 0 means 30.
    pub warning_threshold_days: u32,
    /// Minimum gap between two checks of one certificate, fleet-wide. 0 means 3600.
    pub check_cooldown_seconds: u64,
    /// Minimum gap between two events for one certificate, fleet-wide. 0 means 86400.
    pub event_cooldown_seconds: u64,
    /// Check every stored certificate this often (our addition; Tyk only checks certificates
    /// when they are used). 0 means no scheduled sweep.
    #[serde(skip_serializing_if = "is_zero")]
    pub sweep_interval_seconds: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl ExpiryMonitorConfig {
    /// The warning window, with 0 read as the default (30 days).
    pub fn warning_threshold(&self) -> time::Duration {
        let days = match self.warning_threshold_days {
            0 => DEFAULT_WARNING_THRESHOLD_DAYS,
            days => days,
        };
        time::Duration::days(i64::from(days))
    }

    /// The check cooldown, with 0 read as the default (3600 s).
    pub fn check_cooldown(&self) -> std::time::Duration {
        std::time::Duration::from_secs(or_default(
            self.check_cooldown_seconds,
            DEFAULT_CHECK_COOLDOWN_SECONDS,
        ))
    }

    /// The event cooldown, with 0 read as the default (86400 s). No floor is applied (Tyk's
    /// documentation promises one; its code applies none, and neither do we).
    pub fn event_cooldown(&self) -> std::time::Duration {
        std::time::Duration::from_secs(or_default(
            self.event_cooldown_seconds,
            DEFAULT_EVENT_COOLDOWN_SECONDS,
        ))
    }

    /// The sweep interval, or `None` when scheduled sweeps are off (0).
    pub fn sweep_interval(&self) -> Option<std::time::Duration> {
        (self.sweep_interval_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.sweep_interval_seconds))
    }

    /// Checks every value is in range: the threshold at most [`MAX_WARNING_THRESHOLD_DAYS`],
    /// cooldowns and the sweep interval at most [`MAX_INTERVAL_SECONDS`]. The error names the
    /// field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field: &'static str, value: u64, max: u64, unit: &'static str| {
            if value > max {
                Err(ConfigError::OutOfRange {
                    setting: field.to_owned(),
                    value: value.to_string(),
                    expected: expected(unit, max),
                })
            } else {
                Ok(())
            }
        };
        check(
            "warning_threshold_days",
            u64::from(self.warning_threshold_days),
            u64::from(MAX_WARNING_THRESHOLD_DAYS),
            "days",
        )?;
        check(
            "check_cooldown_seconds",
            self.check_cooldown_seconds,
            MAX_INTERVAL_SECONDS,
            "seconds",
        )?;
        check(
            "event_cooldown_seconds",
            self.event_cooldown_seconds,
            MAX_INTERVAL_SECONDS,
            "seconds",
        )?;
        check(
            "sweep_interval_seconds",
            self.sweep_interval_seconds,
            MAX_INTERVAL_SECONDS,
            "seconds",
        )
    }

    /// Applies Tyk's environment overrides from `env` (pass `std::env::vars()` in production, a
    /// list or map in tests): `TYK_GW_SECURITY_CERTIFICATEEXPIRYMONITOR_WARNINGTHRESHOLDDAYS`,
    /// `..._CHECKCOOLDOWNSECONDS`, `..._EVENTCOOLDOWNSECONDS` and our `..._SWEEPINTERVALSECONDS`.
    /// A variable that is set overrides the file, as in Tyk; one set to an empty string is
    /// ignored. A value that is not a whole number in range is an error naming the variable.
    pub fn with_env<I, K, V>(mut self, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in env {
            let (name, value) = (name.as_ref(), value.as_ref().trim());
            if value.is_empty() {
                continue;
            }
            match name {
                ENV_WARNING_THRESHOLD_DAYS => {
                    let days =
                        parse_number(name, value, u64::from(MAX_WARNING_THRESHOLD_DAYS), "days")?;
                    // In range, so it fits.
                    self.warning_threshold_days =
                        u32::try_from(days).unwrap_or(MAX_WARNING_THRESHOLD_DAYS);
                }
                ENV_CHECK_COOLDOWN_SECONDS => {
                    self.check_cooldown_seconds =
                        parse_number(name, value, MAX_INTERVAL_SECONDS, "seconds")?;
                }
                ENV_EVENT_COOLDOWN_SECONDS => {
                    self.event_cooldown_seconds =
                        parse_number(name, value, MAX_INTERVAL_SECONDS, "seconds")?;
                }
                ENV_SWEEP_INTERVAL_SECONDS => {
                    self.sweep_interval_seconds =
                        parse_number(name, value, MAX_INTERVAL_SECONDS, "seconds")?;
                }
                _ => {}
            }
        }
        Ok(self)
    }
}

fn or_default(value: u64, default: u64) -> u64 {
    if value == 0 { default } else { value }
}

fn expected(unit: &str, max: u64) -> String {
    format!("a whole number of {unit} from 0 to {max} (0 means the default)")
}

fn parse_number(setting: &str, text: &str, max: u64, unit: &str) -> Result<u64, ConfigError> {
    let invalid = || ConfigError::Invalid {
        setting: setting.to_owned(),
        value: shorten(text),
        expected: expected(unit, max),
    };
    let out_of_range = || ConfigError::OutOfRange {
        setting: setting.to_owned(),
        value: shorten(text),
        expected: expected(unit, max),
    };
    if let Some(digits) = text.strip_prefix('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        // A negative whole number: say it is out of range rather than "not a number".
        return Err(out_of_range());
    }
    let value: u128 = text.parse().map_err(|_| invalid())?;
    let value = u64::try_from(value).map_err(|_| out_of_range())?;
    if value > max {
        return Err(out_of_range());
    }
    Ok(value)
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// What the JSON may hold; turned into the config with errors that name the field.
#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
struct RawConfig {
    warning_threshold_days: Option<serde_json::Value>,
    check_cooldown_seconds: Option<serde_json::Value>,
    event_cooldown_seconds: Option<serde_json::Value>,
    sweep_interval_seconds: Option<serde_json::Value>,
}

fn from_json(
    field: &'static str,
    value: Option<serde_json::Value>,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    let value = match value {
        None | Some(serde_json::Value::Null) => return Ok(0),
        Some(value) => value,
    };
    let out_of_range = |value: &serde_json::Value| ConfigError::OutOfRange {
        setting: field.to_owned(),
        value: shorten(&value.to_string()),
        expected: expected(unit, max),
    };
    match value.as_u64() {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(out_of_range(&value)),
        None if value.as_i64().is_some() => Err(out_of_range(&value)),
        None => Err(ConfigError::Invalid {
            setting: field.to_owned(),
            value: shorten(&value.to_string()),
            expected: expected(unit, max),
        }),
    }
}

impl TryFrom<RawConfig> for ExpiryMonitorConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let days = from_json(
            "warning_threshold_days",
            raw.warning_threshold_days,
            u64::from(MAX_WARNING_THRESHOLD_DAYS),
            "days",
        )?;
        Ok(Self {
            warning_threshold_days: u32::try_from(days).unwrap_or(MAX_WARNING_THRESHOLD_DAYS),
            check_cooldown_seconds: from_json(
                "check_cooldown_seconds",
                raw.check_cooldown_seconds,
                MAX_INTERVAL_SECONDS,
                "seconds",
            )?,
            event_cooldown_seconds: from_json(
                "event_cooldown_seconds",
                raw.event_cooldown_seconds,
                MAX_INTERVAL_SECONDS,
                "seconds",
            )?,
            sweep_interval_seconds: from_json(
                "sweep_interval_seconds",
                raw.sweep_interval_seconds,
                MAX_INTERVAL_SECONDS,
                "seconds",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_tyks_keys() {
        // Tyk's config/testdata/cert_monitor_warning_1day_check_1sec_event_1sec_minimal.json.
        let text =
            r#"{"warning_threshold_days":1,"check_cooldown_seconds":1,"event_cooldown_seconds":1}"#;
        let config: ExpiryMonitorConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.warning_threshold_days, 1);
        assert_eq!(config.check_cooldown_seconds, 1);
        assert_eq!(config.event_cooldown_seconds, 1);
        assert_eq!(config.event_cooldown(), std::time::Duration::from_secs(1));
        assert_eq!(serde_json::to_string(&config).unwrap(), text);

        let mut with_sweep = config;
        with_sweep.sweep_interval_seconds = 600;
        let text = serde_json::to_string(&with_sweep).unwrap();
        assert!(
            text.ends_with(r#","sweep_interval_seconds":600}"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<ExpiryMonitorConfig>(&text).unwrap(),
            with_sweep
        );
    }

    #[test]
    fn zero_and_missing_mean_the_default() {
        let config: ExpiryMonitorConfig = serde_json::from_str(
            r#"{"warning_threshold_days":0,"check_cooldown_seconds":0,"event_cooldown_seconds":null}"#,
        )
        .unwrap();
        assert_eq!(config, ExpiryMonitorConfig::default());
        assert_eq!(config.warning_threshold(), time::Duration::days(30));
        assert_eq!(config.check_cooldown().as_secs(), 3600);
        assert_eq!(config.event_cooldown().as_secs(), 86_400);
        assert_eq!(config.sweep_interval(), None);
        let empty: ExpiryMonitorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, config);
        // Unknown keys are ignored, as Go's decoder ignores them.
        let extra: ExpiryMonitorConfig = serde_json::from_str(r#"{"future_key":true}"#).unwrap();
        assert_eq!(extra, config);
    }

    #[test]
    fn env_overrides_the_file_like_tyks_config_test() {
        let file: ExpiryMonitorConfig = serde_json::from_str(
            r#"{"warning_threshold_days":30,"check_cooldown_seconds":3600,"event_cooldown_seconds":86400}"#,
        )
        .unwrap();
        let env = [
            (ENV_WARNING_THRESHOLD_DAYS, "7"),
            (ENV_CHECK_COOLDOWN_SECONDS, "900"),
            (ENV_EVENT_COOLDOWN_SECONDS, "21600"),
            ("TYK_GW_SOMETHING_ELSE", "not a number, not ours"),
        ];
        let config = file.with_env(env).unwrap();
        assert_eq!(config.warning_threshold_days, 7);
        assert_eq!(config.check_cooldown_seconds, 900);
        assert_eq!(config.event_cooldown_seconds, 21_600);
        assert_eq!(config.sweep_interval(), None);

        let env = std::collections::HashMap::from([
            (ENV_SWEEP_INTERVAL_SECONDS.to_owned(), " 300 ".to_owned()),
            (ENV_WARNING_THRESHOLD_DAYS.to_owned(), String::new()),
        ]);
        let config = config.with_env(&env).unwrap();
        assert_eq!(
            config.sweep_interval(),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(config.warning_threshold_days, 7, "empty values are ignored");
    }

    #[test]
    fn invalid_env_values_are_errors_naming_the_variable() {
        for (name, value, says) in [
            (ENV_WARNING_THRESHOLD_DAYS, "seven", "is not valid"),
            (ENV_WARNING_THRESHOLD_DAYS, "-1", "out of range"),
            (ENV_WARNING_THRESHOLD_DAYS, "3651", "out of range"),
            (ENV_CHECK_COOLDOWN_SECONDS, "1.5", "is not valid"),
            (
                ENV_EVENT_COOLDOWN_SECONDS,
                "99999999999999999999999",
                "out of range",
            ),
            (ENV_EVENT_COOLDOWN_SECONDS, "315360001", "out of range"),
            (ENV_SWEEP_INTERVAL_SECONDS, "10m", "is not valid"),
        ] {
            let err = ExpiryMonitorConfig::default()
                .with_env([(name, value)])
                .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name), "{text}");
            assert!(text.contains(value), "{text}");
            assert!(text.contains(says), "{text}");
            assert!(text.contains("whole number"), "{text}");
        }
    }

    #[test]
    fn invalid_json_values_are_errors_naming_the_field() {
        for (text, field) in [
            (r#"{"warning_threshold_days":-3}"#, "warning_threshold_days"),
            (
                r#"{"warning_threshold_days":100000}"#,
                "warning_threshold_days",
            ),
            (
                r#"{"check_cooldown_seconds":"3600"}"#,
                "check_cooldown_seconds",
            ),
            (
                r#"{"event_cooldown_seconds":1.5}"#,
                "event_cooldown_seconds",
            ),
            (r#"{"sweep_interval_seconds":-1}"#, "sweep_interval_seconds"),
        ] {
            let err = serde_json::from_str::<ExpiryMonitorConfig>(text).unwrap_err();
            assert!(err.to_string().contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn validate_refuses_fields_set_out_of_range() {
        let mut config = ExpiryMonitorConfig::default();
        assert!(config.validate().is_ok());
        config.warning_threshold_days = MAX_WARNING_THRESHOLD_DAYS;
        assert!(config.validate().is_ok());
        config.warning_threshold_days = MAX_WARNING_THRESHOLD_DAYS + 1;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("warning_threshold_days"), "{err}");
        config.warning_threshold_days = 1;
        config.event_cooldown_seconds = u64::MAX;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("event_cooldown_seconds"), "{err}");
    }
}
