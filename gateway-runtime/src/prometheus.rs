//! The Prometheus text exposition (format 0.0.4) behind `/metrics`: the one writer for the
//! gateway's counters, the control API's and the expiry monitor's figures. Every family gets
//! its `# HELP` and `# TYPE` lines; help text and label values are escaped as the format asks.

use std::fmt::{self, Display, Write as _};

use expiry_monitor::{EventType, MetricsSnapshot};

/// The media type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// Prometheus text being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The `# HELP` and `# TYPE` lines of the family `name`; its samples follow.
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {}", Escaped(help, false));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the family `name`, with `labels` (names as given, values escaped).
    pub(crate) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.text.push_str(name);
        for (i, (label, label_value)) in labels.iter().enumerate() {
            let open = if i == 0 { '{' } else { ',' };
            let _ = write!(
                self.text,
                "{open}{label}=\"{}\"",
                Escaped(label_value, true)
            );
        }
        if !labels.is_empty() {
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// A family of one unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl Display) {
        self.family(name, help, kind).sample(name, &[], value);
    }

    /// Appends the figures of automatic certificates (`certgate_acme_*`).
    #[cfg(feature = "acme")]
    pub(crate) fn acme(&mut self, figures: &acme::AcmeFigures) {
        type Gauge = (
            &'static str,
            &'static str,
            fn(&acme::NameStatus) -> Option<i64>,
        );
        let gauges: [Gauge; 3] = [
            (
                "certgate_acme_certificate_expiry_timestamp_seconds",
                "notAfter of the managed name's certificate, as a Unix time.",
                |s| s.not_after.map(time::OffsetDateTime::unix_timestamp),
            ),
            (
                "certgate_acme_next_renewal_timestamp_seconds",
                "When the managed name is due for renewal (or its next retry), as a Unix time.",
                |s| s.next_renewal.map(time::OffsetDateTime::unix_timestamp),
            ),
            (
                "certgate_acme_consecutive_failures",
                "Failed attempts in a row to obtain the managed name's certificate.",
                |s| Some(i64::from(s.failures)),
            ),
        ];
        for (name, help, value) in gauges {
            self.family(name, help, Kind::Gauge);
            for status in &figures.names {
                if let Some(value) = value(status) {
                    self.sample(name, &[("name", &status.name)], value);
                }
            }
        }
        let name = "certgate_acme_certificates_total";
        self.family(
            name,
            "ACME outcomes since start: issued (first certificate), renewed, failed.",
            Kind::Counter,
        );
        for (result, count) in [
            ("issued", figures.issued),
            ("renewed", figures.renewed),
            ("failed", figures.failed),
        ] {
            self.sample(name, &[("result", result)], count);
        }
    }

    /// Appends the expiry monitor's figures, under names prefixed `certgate_`.
    pub(crate) fn expiry(&mut self, snapshot: &MetricsSnapshot) {
        let name = "certgate_certificate_expiry_seconds";
        self.family(
            name,
            "Seconds until the certificate's notAfter (negative once expired), by leaf fingerprint and subject CN.",
            Kind::Gauge,
        );
        for cert in &snapshot.certificates {
            let fingerprint = cert.fingerprint.to_string();
            self.sample(
                name,
                &[("fingerprint", &fingerprint), ("cn", &cert.name)],
                cert.seconds_to_expiry,
            );
        }
        let name = "certgate_expiry_events_total";
        self.family(
            name,
            "Certificate expiry events emitted, by event type.",
            Kind::Counter,
        );
        for event_type in [
            EventType::CertificateExpiringSoon,
            EventType::CertificateExpired,
        ] {
            self.sample(
                name,
                &[("event_type", event_type.as_str())],
                snapshot.events(event_type),
            );
        }
        for (name, help, value) in [
            (
                "certgate_expiry_checks_total",
                "Certificate expiry checks done.",
                snapshot.checks,
            ),
            (
                "certgate_expiry_checks_skipped_total",
                "Certificate uses that led to no check because of the check cooldown.",
                snapshot.checks_skipped,
            ),
            (
                "certgate_expiry_events_suppressed_total",
                "Expiry events not emitted because the event cooldown was held.",
                snapshot.events_suppressed,
            ),
            (
                "certgate_expiry_queue_full_total",
                "Checks dropped because the monitor's queue was full.",
                snapshot.queue_full,
            ),
            (
                "certgate_expiry_shared_cooldown_errors_total",
                "Failed claims on the shared cooldown store.",
                snapshot.shared_store_errors,
            ),
            (
                "certgate_expiry_sink_errors_total",
                "Failed event deliveries to sinks.",
                snapshot.sink_errors,
            ),
        ] {
            self.single(name, help, Kind::Counter, value);
        }
    }

    /// Appends `text` written by another [`Exposition`] (ends it with a line feed if needed).
    pub(crate) fn append(&mut self, text: &str) {
        self.text.push_str(text);
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    /// The text written so far.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// Text escaped for the exposition: backslash and line feed always, double quote in label
/// values.
struct Escaped<'a>(&'a str, bool);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(text, label) = *self;
        let mut rest = text;
        while let Some(at) = rest.find(|c| matches!(c, '\\' | '\n') || (label && c == '"')) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'\n' => "\\n",
                _ => "\\\"",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use expiry_monitor::CertificateExpiry;
    use time::macros::datetime;
    use tls_core::Fingerprint;

    use super::*;

    #[cfg(feature = "acme")]
    #[test]
    fn acme_figures_are_gauges_by_name_and_counters_by_result() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut status: acme::NameStatus = serde_json::from_value(serde_json::json!({
            "name": "api.example",
            "cert_id": null,
            "not_after": null,
            "next_renewal": null,
            "failures": 2,
            "last_error": "refused"
        }))
        .unwrap();
        status.not_after = Some(at);
        let mut figures = acme::AcmeFigures::default();
        figures.names.push(status);
        figures.renewed = 1;
        let mut out = Exposition::new();
        out.acme(&figures);
        let text = out.finish();
        for line in [
            "# TYPE certgate_acme_certificate_expiry_timestamp_seconds gauge",
            "certgate_acme_certificate_expiry_timestamp_seconds{name=\"api.example\"} 1800000000",
            "certgate_acme_consecutive_failures{name=\"api.example\"} 2",
            "# TYPE certgate_acme_certificates_total counter",
            "certgate_acme_certificates_total{result=\"issued\"} 0",
            "certgate_acme_certificates_total{result=\"renewed\"} 1",
            "certgate_acme_certificates_total{result=\"failed\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        // No renewal time known: no sample, only the family.
        assert!(
            !text.contains("certgate_acme_next_renewal_timestamp_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn samples_escape_label_values_and_help_escapes_backslashes_and_newlines() {
        let mut out = Exposition::new();
        out.family("m", "a \\ b\nc \"q\"", Kind::Gauge)
            .sample("m", &[("a", "x\"y\\z\nw"), ("b", "plain")], 3)
            .sample("m", &[], -1);
        assert_eq!(
            out.finish(),
            "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"plain\"} 3\nm -1\n"
        );
    }

    #[test]
    fn expiry_figures_have_help_type_and_escaped_labels() {
        let mut snapshot = MetricsSnapshot::default();
        snapshot.certificates = vec![CertificateExpiry::new(
            Fingerprint::from_bytes([0xab; 32]),
            "we\"ird\\name\nx",
            datetime!(2026-12-09 04:57:32 UTC),
            -42,
        )];
        snapshot.checks = 3;
        snapshot.checks_skipped = 7;
        snapshot.events_expiring_soon = 2;
        snapshot.events_expired = 1;
        let mut out = Exposition::new();
        out.expiry(&snapshot);
        let text = out.finish();
        let fp = "ab".repeat(32);
        for line in [
            "# TYPE certgate_certificate_expiry_seconds gauge".to_owned(),
            format!(
                r#"certgate_certificate_expiry_seconds{{fingerprint="{fp}",cn="we\"ird\\name\nx"}} -42"#
            ),
            "# TYPE certgate_expiry_events_total counter".to_owned(),
            r#"certgate_expiry_events_total{event_type="CertificateExpiringSoon"} 2"#.to_owned(),
            r#"certgate_expiry_events_total{event_type="CertificateExpired"} 1"#.to_owned(),
            "certgate_expiry_checks_total 3".to_owned(),
            "certgate_expiry_checks_skipped_total 7".to_owned(),
            "certgate_expiry_queue_full_total 0".to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample's metric has HELP and TYPE lines before it.
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(name.starts_with("certgate_"));
        }
    }
}
