//! The start-up check of a shared store's key format: a few records are sampled (a bounded
//! SCAN of the record keys, never the whole keyspace, so records Tyk wrote count too) and, when
//! they are written in the other format than the configured one, one warning says what a Tyk
//! node sharing the Redis sees and which setting to change.

use tls_core::{KeyFormat, Record};

/// How many records the check reads at most.
pub(crate) const SAMPLE: usize = 20;

/// The warning to give for these sampled record texts, if any.
pub(crate) fn foreign_format_warning(records: &[String], configured: KeyFormat) -> Option<String> {
    let (mut modern, mut legacy, mut with_key) = (0usize, 0usize, 0usize);
    for text in records.iter().take(SAMPLE) {
        let Ok(record) = Record::decode(text) else {
            continue;
        };
        let Some(key) = record.key() else { continue };
        with_key += 1;
        match key.format() {
            Some(KeyFormat::Modern) => modern += 1,
            Some(KeyFormat::Legacy) => legacy += 1,
            _ => {}
        }
    }
    match configured {
        KeyFormat::Legacy if modern > 0 => Some(format!(
            "{modern} of {with_key} sampled certificates with a private key are stored in certgate's modern key format, which a Tyk node cannot read: Tyk answers 404 for them and cannot serve them. Convert them with `certctl rekey --key-format legacy --redis ...`, or set security.private_certificate_key_format to \"modern\" if no Tyk node reads this Redis"
        )),
        KeyFormat::Modern if legacy > 0 => Some(format!(
            "{legacy} of {with_key} sampled certificates with a private key are stored in Tyk's legacy key format, but security.private_certificate_key_format is \"modern\": certificates this node adds will be unreadable to Tyk nodes sharing this Redis (they answer 404 for them and cannot serve them). Set security.private_certificate_key_format (or TYK_GW_SECURITY_PRIVATECERTIFICATEKEYFORMAT) to \"legacy\" if Tyk nodes read this Redis"
        )),
        _ => None,
    }
}

/// Samples the Redis store and logs the warning of [`foreign_format_warning`], if any. A
/// failure ends the check quietly: it is advice, never a reason not to start.
pub(crate) async fn warn_on_foreign_format(
    redis: &cert_store::RedisStorage,
    configured: KeyFormat,
) {
    match redis.sample_records(SAMPLE).await {
        Ok(records) => {
            if let Some(warning) = foreign_format_warning(&records, configured) {
                tracing::warn!("{warning}");
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot sample the store's key format"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tls_core::{EncodingSecret, OrgId, Upload};

    use super::*;
    use crate::config::GatewayConfig;

    const BUNDLE: &str = include_str!("../../tls-core/tests/data/demo.pem");

    fn record(format: KeyFormat) -> String {
        let upload = Upload::parse(BUNDLE, time::macros::datetime!(2030-01-01 0:00 UTC)).unwrap();
        let id = upload.id(&OrgId::EMPTY);
        upload
            .seal(&id, &EncodingSecret::new("s"), format)
            .unwrap()
            .encode()
    }

    #[test]
    fn records_in_the_other_format_give_one_warning_naming_the_setting() {
        for (written, configured, says) in [
            (KeyFormat::Legacy, KeyFormat::Modern, "to \"legacy\""),
            (KeyFormat::Modern, KeyFormat::Legacy, "cannot read"),
        ] {
            let records = vec![record(written), "not a record".to_owned()];
            let warning = foreign_format_warning(&records, configured).expect("a warning");
            assert!(
                warning.contains("security.private_certificate_key_format"),
                "{warning}"
            );
            assert!(warning.contains("1 of 1 sampled"), "{warning}");
            assert!(warning.contains(says), "{warning}");
            // The same format: nothing to say.
            assert_eq!(foreign_format_warning(&records, written), None);
        }
        assert_eq!(foreign_format_warning(&[], KeyFormat::Legacy), None);
    }

    #[test]
    fn the_setting_is_read_from_the_file_and_the_environment_and_validated() {
        let parse = |text: &str, env: Vec<(String, String)>| {
            GatewayConfig::from_json(text, Path::new("tyk.conf"), env)
        };
        let default = parse("{}", vec![]).unwrap();
        assert_eq!(default.key_format(), KeyFormat::Modern);
        let legacy = parse(
            r#"{"security": {"private_certificate_key_format": "legacy"}}"#,
            vec![],
        )
        .unwrap();
        assert_eq!(legacy.key_format(), KeyFormat::Legacy);
        let env = vec![(
            "TYK_GW_SECURITY_PRIVATECERTIFICATEKEYFORMAT".to_owned(),
            "modern".to_owned(),
        )];
        let overridden = parse(
            r#"{"security": {"private_certificate_key_format": "legacy"}}"#,
            env,
        )
        .unwrap();
        assert_eq!(overridden.key_format(), KeyFormat::Modern);
        for bad in ["Legacy", "gcm", " modern"] {
            let err = parse(
                &format!(r#"{{"security": {{"private_certificate_key_format": "{bad}"}}}}"#),
                vec![],
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("security.private_certificate_key_format")
                    && err.contains("\"legacy\""),
                "{err}"
            );
        }
        let err = parse(
            "{}",
            vec![(
                "TYK_GW_SECURITY_PRIVATECERTIFICATEKEYFORMAT".to_owned(),
                "tyk".to_owned(),
            )],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("security.private_certificate_key_format"),
            "{err}"
        );
    }
}
