//! The events: Tyk's two expiry events, with Tyk's meta fields, JSON and message texts, and
//! certgate's own two renewal events (automatic certificates, the `acme` crate).
//!
//! The arithmetic is Tyk's, Go truncation included: `hours = int(until.Hours())` (toward zero),
//! `days = hours / 24`; expiring soon says `hours % 24` more hours, expired says
//! `-(hours % -24)` more hours. So 30 minutes left is "0 hours", a certificate expired 59 minutes
//! ago is "expired since 0 hours", and 24 hours left is "1 days" (sic).

use cert_store::CertRole;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset};
use tls_core::{Fingerprint, Validity};

use crate::subject::CertSubject;

/// The event types, with Tyk's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// `CertificateExpiringSoon`: `0 < time left <= warning threshold`.
    #[serde(rename = "CertificateExpiringSoon")]
    CertificateExpiringSoon,
    /// `CertificateExpired`: `time left <= 0`.
    #[serde(rename = "CertificateExpired")]
    CertificateExpired,
    /// `CertificateRenewed` (ours): an automatic certificate was replaced by a new one.
    #[serde(rename = "CertificateRenewed")]
    CertificateRenewed,
    /// `CertificateRenewalFailed` (ours): renewing an automatic certificate failed; retried.
    #[serde(rename = "CertificateRenewalFailed")]
    CertificateRenewalFailed,
}

impl EventType {
    /// Tyk's name: `CertificateExpiringSoon` or `CertificateExpired`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CertificateExpiringSoon => "CertificateExpiringSoon",
            Self::CertificateExpired => "CertificateExpired",
            Self::CertificateRenewed => "CertificateRenewed",
            Self::CertificateRenewalFailed => "CertificateRenewalFailed",
        }
    }
}

impl core::fmt::Display for EventType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Meta of a `CertificateExpiringSoon` event; serialises exactly as Tyk's
/// `EventCertificateExpiringSoonMeta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateExpiringSoon {
    /// `Certificate <CN> is expiring in <d> days and <h> hours` (or `... in <d> days`,
    /// `... in <h> hours`).
    #[serde(rename = "Message")]
    pub message: String,
    /// Always empty (Tyk's `EventMetaDefault` field).
    #[serde(rename = "OriginatingRequest", default)]
    pub originating_request: String,
    /// The bare SHA-256 hex of the leaf, no org prefix.
    #[serde(with = "fingerprint_hex")]
    pub cert_id: Fingerprint,
    /// The leaf's subject CN.
    pub cert_name: String,
    /// The leaf's `notAfter`.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whole days left (truncated).
    pub days_remaining: i64,
    /// The API that used the certificate; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_id: String,
    /// How the certificate was used.
    pub cert_role: CertRole,
}

/// Meta of a `CertificateExpired` event; serialises exactly as Tyk's
/// `EventCertificateExpiredMeta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateExpired {
    /// `Certificate <CN> is expired since <d> days and <h> hours` (or `... since <d> days`,
    /// `... since <h> hours`).
    #[serde(rename = "Message")]
    pub message: String,
    /// Always empty (Tyk's `EventMetaDefault` field).
    #[serde(rename = "OriginatingRequest", default)]
    pub originating_request: String,
    /// The bare SHA-256 hex of the leaf, no org prefix.
    #[serde(with = "fingerprint_hex")]
    pub cert_id: Fingerprint,
    /// The leaf's subject CN.
    pub cert_name: String,
    /// The leaf's `notAfter`.
    #[serde(with = "time::serde::rfc3339")]
    pub expired_at: OffsetDateTime,
    /// Whole days since expiry (truncated).
    pub days_since_expiry: i64,
    /// The API that used the certificate; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_id: String,
    /// How the certificate was used.
    pub cert_role: CertRole,
}

/// Meta of a `CertificateRenewalFailed` event (ours; Tyk obtains no certificates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateRenewalFailed {
    /// `Certificate <name> could not be renewed: <error>; retrying at <time>`.
    #[serde(rename = "Message")]
    pub message: String,
    /// Always empty (Tyk's `EventMetaDefault` field).
    #[serde(rename = "OriginatingRequest", default)]
    pub originating_request: String,
    /// The bare SHA-256 hex of the certificate still served.
    #[serde(with = "fingerprint_hex")]
    pub cert_id: Fingerprint,
    /// The name being renewed.
    pub cert_name: String,
    /// The `notAfter` of the certificate still served.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// What went wrong, as shown to users.
    pub error: String,
    /// Consecutive failures so far.
    pub failures: u32,
    /// When the next attempt is due.
    #[serde(with = "time::serde::rfc3339")]
    pub retry_at: OffsetDateTime,
    /// Always `server`.
    pub cert_role: CertRole,
}

/// Meta of a `CertificateRenewed` event (ours).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateRenewed {
    /// `Certificate <name> was renewed; the new one expires at <time>`.
    #[serde(rename = "Message")]
    pub message: String,
    /// Always empty (Tyk's `EventMetaDefault` field).
    #[serde(rename = "OriginatingRequest", default)]
    pub originating_request: String,
    /// The bare SHA-256 hex of the new certificate.
    #[serde(with = "fingerprint_hex")]
    pub cert_id: Fingerprint,
    /// The bare SHA-256 hex of the replaced certificate.
    #[serde(with = "fingerprint_hex")]
    pub previous_cert_id: Fingerprint,
    /// The renewed name.
    pub cert_name: String,
    /// The new certificate's `notAfter`.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Always `server`.
    pub cert_role: CertRole,
}

impl CertificateRenewed {
    /// The event for `name`, renewed from `previous` to `cert_id`, which expires at `expires_at`.
    pub fn new(
        name: &str,
        cert_id: Fingerprint,
        previous_cert_id: Fingerprint,
        expires_at: OffsetDateTime,
    ) -> Self {
        let expires_at = expires_at.to_offset(UtcOffset::UTC);
        Self {
            message: format!("Certificate {name} was renewed; the new one expires at {expires_at}"),
            originating_request: String::new(),
            cert_id,
            previous_cert_id,
            cert_name: name.to_owned(),
            expires_at,
            cert_role: CertRole::Server,
        }
    }
}

impl CertificateRenewalFailed {
    /// The event for `name`, whose certificate `cert_id` (expiring at `expires_at`) could not
    /// be renewed for the `failures`th time because of `error`; next attempt at `retry_at`.
    pub fn new(
        name: &str,
        cert_id: Fingerprint,
        expires_at: OffsetDateTime,
        error: &str,
        failures: u32,
        retry_at: OffsetDateTime,
    ) -> Self {
        let retry_at = retry_at.to_offset(UtcOffset::UTC);
        Self {
            message: format!(
                "Certificate {name} could not be renewed: {error}; retrying at {retry_at}"
            ),
            originating_request: String::new(),
            cert_id,
            cert_name: name.to_owned(),
            expires_at: expires_at.to_offset(UtcOffset::UTC),
            error: error.to_owned(),
            failures,
            retry_at,
            cert_role: CertRole::Server,
        }
    }
}

/// An expiry event. Serialises to Tyk's meta JSON (the variant's fields, untagged); the type
/// name is [`ExpiryEvent::event_type`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExpiryEvent {
    /// The certificate expires within the warning threshold.
    ExpiringSoon(CertificateExpiringSoon),
    /// The certificate has expired.
    Expired(CertificateExpired),
    /// Renewing an automatic certificate failed (declared before `Renewed`: untagged JSON
    /// picks the first variant whose fields are all present).
    RenewalFailed(CertificateRenewalFailed),
    /// An automatic certificate was renewed.
    Renewed(CertificateRenewed),
}

impl ExpiryEvent {
    /// The event `cert` warrants at `now` with the warning window `warning`, if any: expired
    /// when `notAfter <= now` (a certificate expired a minute ago is expired), expiring soon
    /// when `0 < notAfter - now <= warning` (inclusive), nothing for a certificate that is
    /// healthy or not yet valid.
    pub fn at(
        cert: &CertSubject,
        role: CertRole,
        api_id: &str,
        now: OffsetDateTime,
        warning: Duration,
    ) -> Option<Self> {
        let until = cert.not_after() - now;
        // Go: hours := int(until.Hours()), truncated toward zero; days := hours / 24.
        let hours = until.whole_hours();
        let days = hours / 24;
        let not_after = cert.not_after().to_offset(UtcOffset::UTC);
        match Validity::at(cert.not_before(), cert.not_after(), now, warning) {
            Validity::ExpiringSoon { .. } => {
                let remaining_hours = hours % 24;
                Some(Self::ExpiringSoon(CertificateExpiringSoon {
                    message: expiring_message(cert.name(), days, remaining_hours),
                    originating_request: String::new(),
                    cert_id: *cert.fingerprint(),
                    cert_name: cert.name().to_owned(),
                    expires_at: not_after,
                    days_remaining: days,
                    api_id: api_id.to_owned(),
                    cert_role: role,
                }))
            }
            Validity::Expired { .. } => {
                // Go: -(hours / 24) and -(hours % -24); Rust's % truncates like Go's, and the
                // sign of a remainder follows the dividend, so `% -24` is `% 24`.
                let days_since = -days;
                let hours_since = -(hours % 24);
                Some(Self::Expired(CertificateExpired {
                    message: expired_message(cert.name(), days_since, hours_since),
                    originating_request: String::new(),
                    cert_id: *cert.fingerprint(),
                    cert_name: cert.name().to_owned(),
                    expired_at: not_after,
                    days_since_expiry: days_since,
                    api_id: api_id.to_owned(),
                    cert_role: role,
                }))
            }
            _ => None,
        }
    }

    /// `CertificateExpiringSoon` or `CertificateExpired`.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::ExpiringSoon(_) => EventType::CertificateExpiringSoon,
            Self::Expired(_) => EventType::CertificateExpired,
            Self::RenewalFailed(_) => EventType::CertificateRenewalFailed,
            Self::Renewed(_) => EventType::CertificateRenewed,
        }
    }

    /// Tyk's event name (`CertificateExpiringSoon` or `CertificateExpired`).
    pub fn name(&self) -> &'static str {
        self.event_type().as_str()
    }

    /// The `Message` text.
    pub fn message(&self) -> &str {
        match self {
            Self::ExpiringSoon(e) => &e.message,
            Self::Expired(e) => &e.message,
            Self::RenewalFailed(e) => &e.message,
            Self::Renewed(e) => &e.message,
        }
    }

    /// The leaf fingerprint (`cert_id`).
    pub fn cert_id(&self) -> &Fingerprint {
        match self {
            Self::ExpiringSoon(e) => &e.cert_id,
            Self::Expired(e) => &e.cert_id,
            Self::RenewalFailed(e) => &e.cert_id,
            Self::Renewed(e) => &e.cert_id,
        }
    }

    /// The subject CN (`cert_name`).
    pub fn cert_name(&self) -> &str {
        match self {
            Self::ExpiringSoon(e) => &e.cert_name,
            Self::Expired(e) => &e.cert_name,
            Self::RenewalFailed(e) => &e.cert_name,
            Self::Renewed(e) => &e.cert_name,
        }
    }

    /// The API that used the certificate (`api_id`; empty when none).
    pub fn api_id(&self) -> &str {
        match self {
            Self::ExpiringSoon(e) => &e.api_id,
            Self::Expired(e) => &e.api_id,
            Self::RenewalFailed(_) | Self::Renewed(_) => "",
        }
    }

    /// The role (`cert_role`).
    pub fn role(&self) -> CertRole {
        match self {
            Self::ExpiringSoon(e) => e.cert_role,
            Self::Expired(e) => e.cert_role,
            Self::RenewalFailed(e) => e.cert_role,
            Self::Renewed(e) => e.cert_role,
        }
    }

    /// The certificate's `notAfter` (`expires_at` or `expired_at`).
    pub fn not_after(&self) -> OffsetDateTime {
        match self {
            Self::ExpiringSoon(e) => e.expires_at,
            Self::Expired(e) => e.expired_at,
            Self::RenewalFailed(e) => e.expires_at,
            Self::Renewed(e) => e.expires_at,
        }
    }

    /// Tyk's meta JSON, as a webhook body's `Meta` would carry it.
    pub fn to_json(&self) -> String {
        // Strings, integers and an RFC 3339 time: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Tyk's `composeSoonToExpireMessage`.
fn expiring_message(name: &str, days: i64, hours: i64) -> String {
    if days > 0 {
        if hours > 0 {
            format!("Certificate {name} is expiring in {days} days and {hours} hours")
        } else {
            format!("Certificate {name} is expiring in {days} days")
        }
    } else {
        format!("Certificate {name} is expiring in {hours} hours")
    }
}

/// Tyk's `composeExpiredMessage`.
fn expired_message(name: &str, days: i64, hours: i64) -> String {
    if days > 0 {
        if hours > 0 {
            format!("Certificate {name} is expired since {days} days and {hours} hours")
        } else {
            format!("Certificate {name} is expired since {days} days")
        }
    } else {
        format!("Certificate {name} is expired since {hours} hours")
    }
}

mod fingerprint_hex {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use tls_core::Fingerprint;

    pub(super) fn serialize<S: Serializer>(fp: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(fp)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOT_AFTER: OffsetDateTime = datetime!(2026-12-09 04:57:32 UTC);
    const DAY: Duration = Duration::DAY;
    const HOUR: Duration = Duration::HOUR;

    fn cert() -> CertSubject {
        CertSubject::new(
            Fingerprint::of(b"leaf"),
            datetime!(2026-01-01 0:00 UTC),
            NOT_AFTER,
            "api.example.com",
        )
    }

    /// The event when `left` remains (negative: expired that long ago).
    fn with_left(left: Duration) -> Option<ExpiryEvent> {
        ExpiryEvent::at(
            &cert(),
            CertRole::Client,
            "api1",
            NOT_AFTER - left,
            Duration::days(30),
        )
    }

    fn message(left: Duration) -> String {
        with_left(left)
            .map(|e| e.message().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn threshold_is_inclusive_and_expiry_starts_at_zero() {
        let soon = |left| with_left(left).map(|e| e.event_type());
        let (expiring, expired) = (
            Some(EventType::CertificateExpiringSoon),
            Some(EventType::CertificateExpired),
        );
        assert_eq!(soon(Duration::days(30)), expiring, "exactly 30 days");
        assert_eq!(
            soon(Duration::days(30) + Duration::SECOND),
            None,
            "30 d + 1 s"
        );
        assert_eq!(soon(Duration::SECOND), expiring, "1 s left");
        assert_eq!(soon(Duration::NANOSECOND), expiring, "1 ns left");
        assert_eq!(soon(Duration::ZERO), expired, "exactly 0");
        assert_eq!(
            soon(-Duration::MINUTE),
            expired,
            "1 minute ago (Tyk TT-15742)"
        );
        assert_eq!(soon(-Duration::days(400)), expired, "long ago");
    }

    #[test]
    fn not_yet_valid_gives_no_event_even_inside_the_window() {
        let cert = CertSubject::new(
            Fingerprint::of(b"future"),
            NOT_AFTER - Duration::days(5),
            NOT_AFTER,
            "future",
        );
        let now = NOT_AFTER - Duration::days(10);
        assert_eq!(
            ExpiryEvent::at(&cert, CertRole::Server, "", now, Duration::days(30)),
            None
        );
    }

    #[test]
    fn expiring_messages_use_tyks_three_forms_and_go_truncation() {
        let cn = "Certificate api.example.com is expiring in";
        assert_eq!(message(10 * DAY), format!("{cn} 10 days"));
        assert_eq!(
            message(10 * DAY + 5 * HOUR),
            format!("{cn} 10 days and 5 hours")
        );
        // 59 minutes do not make an hour; 1 day 23 h 59 m is 1 day and 23 hours.
        assert_eq!(
            message(DAY + 23 * HOUR + 59 * Duration::MINUTE),
            format!("{cn} 1 days and 23 hours")
        );
        assert_eq!(message(DAY), format!("{cn} 1 days"));
        assert_eq!(message(DAY - Duration::SECOND), format!("{cn} 23 hours"));
        assert_eq!(
            message(5 * HOUR + 59 * Duration::MINUTE),
            format!("{cn} 5 hours")
        );
        assert_eq!(message(30 * Duration::MINUTE), format!("{cn} 0 hours"));
        assert_eq!(message(Duration::SECOND), format!("{cn} 0 hours"));
        let Some(ExpiryEvent::ExpiringSoon(e)) = with_left(DAY + 23 * HOUR) else {
            panic!("expected expiring soon");
        };
        assert_eq!(e.days_remaining, 1);
    }

    #[test]
    fn expired_messages_use_tyks_three_forms_and_go_truncation() {
        let cn = "Certificate api.example.com is expired since";
        assert_eq!(message(Duration::ZERO), format!("{cn} 0 hours"));
        assert_eq!(message(-Duration::MINUTE), format!("{cn} 0 hours"));
        assert_eq!(message(-Duration::minutes(59)), format!("{cn} 0 hours"));
        assert_eq!(message(-HOUR), format!("{cn} 1 hours"));
        assert_eq!(
            message(-(Duration::hours(23) + Duration::minutes(59))),
            format!("{cn} 23 hours")
        );
        assert_eq!(message(-DAY), format!("{cn} 1 days"));
        assert_eq!(
            message(-(DAY + HOUR + Duration::minutes(30))),
            format!("{cn} 1 days and 1 hours")
        );
        assert_eq!(message(-Duration::days(2)), format!("{cn} 2 days"));
        assert_eq!(
            message(-(Duration::days(400) + Duration::hours(7))),
            format!("{cn} 400 days and 7 hours")
        );
        let Some(ExpiryEvent::Expired(e)) = with_left(-(Duration::days(2) + Duration::hours(23)))
        else {
            panic!("expected expired");
        };
        assert_eq!(e.days_since_expiry, 2);
    }

    #[test]
    fn expiring_soon_serialises_as_tyks_meta() {
        let event = with_left(10 * DAY + 5 * HOUR).unwrap();
        assert_eq!(event.name(), "CertificateExpiringSoon");
        assert_eq!(
            event.to_json(),
            format!(
                concat!(
                    r#"{{"Message":"Certificate api.example.com is expiring in 10 days and 5 hours","#,
                    r#""OriginatingRequest":"","cert_id":"{}","cert_name":"api.example.com","#,
                    r#""expires_at":"2026-12-09T04:57:32Z","days_remaining":10,"api_id":"api1","#,
                    r#""cert_role":"client"}}"#
                ),
                Fingerprint::of(b"leaf")
            )
        );
        let back: ExpiryEvent = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn expired_serialises_as_tyks_meta_without_an_empty_api_id() {
        let event = ExpiryEvent::at(
            &cert(),
            CertRole::Upstream,
            "",
            NOT_AFTER + 3 * DAY,
            Duration::days(30),
        )
        .unwrap();
        assert_eq!(event.name(), "CertificateExpired");
        assert_eq!(event.event_type(), EventType::CertificateExpired);
        assert_eq!(
            event.to_json(),
            format!(
                concat!(
                    r#"{{"Message":"Certificate api.example.com is expired since 3 days","#,
                    r#""OriginatingRequest":"","cert_id":"{}","cert_name":"api.example.com","#,
                    r#""expired_at":"2026-12-09T04:57:32Z","days_since_expiry":3,"#,
                    r#""cert_role":"upstream"}}"#
                ),
                Fingerprint::of(b"leaf")
            )
        );
        let back: ExpiryEvent = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn times_in_other_offsets_are_written_in_utc() {
        let cert = CertSubject::new(
            Fingerprint::of(b"x"),
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2026-12-09 06:57:32.5 +02:00),
            "x",
        );
        let event = ExpiryEvent::at(
            &cert,
            CertRole::Server,
            "",
            datetime!(2026-12-01 0:00 UTC),
            Duration::days(30),
        )
        .unwrap();
        assert!(
            event
                .to_json()
                .contains(r#""expires_at":"2026-12-09T04:57:32.5Z""#),
            "{}",
            event.to_json()
        );
    }

    #[test]
    fn renewal_events_round_trip_through_their_json_as_their_own_variant() {
        let at = time::macros::datetime!(2027-03-01 12:00 UTC);
        let failed = ExpiryEvent::RenewalFailed(CertificateRenewalFailed::new(
            "api.example",
            Fingerprint::of(b"old"),
            at,
            "the ACME CA refused",
            2,
            at - Duration::days(30),
        ));
        let renewed = ExpiryEvent::Renewed(CertificateRenewed::new(
            "api.example",
            Fingerprint::of(b"new"),
            Fingerprint::of(b"old"),
            at,
        ));
        for event in [failed, renewed] {
            let back: ExpiryEvent = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(back, event);
            assert_eq!(back.cert_name(), "api.example");
            assert_eq!(back.role(), CertRole::Server);
        }
        let json: serde_json::Value = serde_json::from_str(
            &ExpiryEvent::Renewed(CertificateRenewed::new(
                "api.example",
                Fingerprint::of(b"new"),
                Fingerprint::of(b"old"),
                at,
            ))
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            json["Message"],
            "Certificate api.example was renewed; the new one expires at 2027-03-01 12:00:00.0 +00:00:00"
        );
        assert_eq!(json["previous_cert_id"], Fingerprint::of(b"old").to_hex());
    }
}
