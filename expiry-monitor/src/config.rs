//! The monitor's configuration: Tyk's `security.certificate_expiry_monitor` block and our sweep
//! interval. Read like every certgate configuration: serde checks the types (an error names the
//! field), then [`ExpiryMonitorConfig::validate`] checks the ranges. Environment overrides are
//! the gateway's business (its configuration layer knows Tyk's `TYK_GW_*` names).

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

/// Tyk's `security.certificate_expiry_monitor` block, plus `sweep_interval_seconds`.
///
/// As in Tyk, **0 means the default**, not "disabled": a zero cooldown is the default cooldown.
/// The fields keep what was written (so a configuration round-trips unchanged); the accessors
/// ([`warning_threshold`](Self::warning_threshold), [`check_cooldown`](Self::check_cooldown),
/// [`event_cooldown`](Self::event_cooldown), [`sweep_interval`](Self::sweep_interval)) apply the
/// defaults. Unlike Tyk, values out of range are refused ([`validate`](Self::validate)) instead
/// of silently misbehaving: a value of the wrong type when it is read, one out of range by
/// `validate` (which the monitor's builder and the gateway's configuration run).
///
/// ```
/// use expiry_monitor::ExpiryMonitorConfig;
///
/// let config: ExpiryMonitorConfig =
///     serde_json::from_str(r#"{"warning_threshold_days": 7, "check_cooldown_seconds": 0}"#)?;
/// config.validate()?;
/// assert_eq!(config.warning_threshold(), time::Duration::days(7));
/// assert_eq!(config.check_cooldown().as_secs(), 3600); // 0 means the default
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ExpiryMonitorConfig {
    /// A certificate is "expiring soon" when `0 < time left <= this many days` (inclusive).
    /// 0 means 30.
    #[serde(deserialize_with = "warning_threshold_days")]
    pub warning_threshold_days: u32,
    /// Minimum gap between two checks of one certificate, fleet-wide. 0 means 3600.
    #[serde(deserialize_with = "check_cooldown_seconds")]
    pub check_cooldown_seconds: u64,
    /// Minimum gap between two events for one certificate, fleet-wide. 0 means 86400.
    #[serde(deserialize_with = "event_cooldown_seconds")]
    pub event_cooldown_seconds: u64,
    /// Check every stored certificate this often (our addition; Tyk only checks certificates
    /// when they are used). 0 means no scheduled sweep.
    #[serde(
        skip_serializing_if = "is_zero",
        deserialize_with = "sweep_interval_seconds"
    )]
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
}

fn or_default(value: u64, default: u64) -> u64 {
    if value == 0 { default } else { value }
}

fn expected(unit: &str, max: u64) -> String {
    format!("a whole number of {unit} from 0 to {max} (0 means the default)")
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A whole number for `field` as the JSON holds it (null and missing are 0); a value of
/// another type, or one that does not fit the field, is an error naming the field. Ranges are
/// [`ExpiryMonitorConfig::validate`]'s.
fn whole_number<'de, D, T>(
    deserializer: D,
    field: &str,
    unit: &str,
    max: u64,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64> + Default,
{
    let value = match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => return Ok(T::default()),
        Some(value) => value,
    };
    let error = |out_of_range: bool| {
        let (setting, value, expected) = (
            field.to_owned(),
            shorten(&value.to_string()),
            expected(unit, max),
        );
        let error = if out_of_range {
            ConfigError::OutOfRange {
                setting,
                value,
                expected,
            }
        } else {
            ConfigError::Invalid {
                setting,
                value,
                expected,
            }
        };
        serde::de::Error::custom(error)
    };
    match value.as_u64() {
        Some(n) => T::try_from(n).map_err(|_| error(true)),
        None if value.as_i64().is_some() => Err(error(true)),
        None => Err(error(false)),
    }
}

/// One `deserialize_with` function per field, so that errors name it.
macro_rules! whole_number_fields {
    ($($field:ident: $ty:ty, $unit:literal, $max:expr;)+) => {$(
        fn $field<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
            whole_number(deserializer, stringify!($field), $unit, $max)
        }
    )+};
}

whole_number_fields! {
    warning_threshold_days: u32, "days", u64::from(MAX_WARNING_THRESHOLD_DAYS);
    check_cooldown_seconds: u64, "seconds", MAX_INTERVAL_SECONDS;
    event_cooldown_seconds: u64, "seconds", MAX_INTERVAL_SECONDS;
    sweep_interval_seconds: u64, "seconds", MAX_INTERVAL_SECONDS;
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
            // A wrong type when it is read, a value out of range when it is validated.
            let err = serde_json::from_str::<ExpiryMonitorConfig>(text)
                .map_err(|e| e.to_string())
                .and_then(|config| config.validate().map_err(|e| e.to_string()))
                .unwrap_err();
            assert!(err.contains(field), "{text}: {err}");
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
