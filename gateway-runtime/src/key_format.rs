//! The start-up check of a shared store's key format: a few records are sampled through the
//! listing (never a scan) and, when they are written in the other format than the configured
//! one, one warning says what a Tyk node sharing the Redis sees and which setting to change.

use cert_store::{CertStore, PageRequest};
use tls_core::{KeyFormat, Record};

/// How many records the check reads at most.
pub(crate) const SAMPLE: usize = 20;

/// Samples up to [`SAMPLE`] records and returns the warning to give, if any. Storage errors
/// end the check quietly: it is advice, never a reason not to start.
pub(crate) async fn foreign_format_warning(
    store: &CertStore,
    configured: KeyFormat,
) -> Option<String> {
    let page = store.list(None, &PageRequest::first(SAMPLE)).await.ok()?;
    let (mut modern, mut legacy, mut with_key) = (0usize, 0usize, 0usize);
    for id in page.items.iter().take(SAMPLE) {
        let Ok(Some(text)) = store.storage().get(id).await else {
            continue;
        };
        let Ok(record) = Record::decode(&text) else {
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
            "{modern} of {with_key} sampled certificates with a private key are stored in certgate's modern key format, which a Tyk node cannot read: Tyk answers 404 for them and cannot serve them. Convert them with `certctl --redis ... rekey --key-format legacy`, or set security.private_certificate_key_format to \"modern\" if no Tyk node reads this Redis"
        )),
        KeyFormat::Modern if legacy > 0 => Some(format!(
            "{legacy} of {with_key} sampled certificates with a private key are stored in Tyk's legacy key format, but security.private_certificate_key_format is \"modern\": certificates this node adds will be unreadable to Tyk nodes sharing this Redis (they answer 404 for them and cannot serve them). Set security.private_certificate_key_format (or TYK_GW_SECURITY_PRIVATECERTIFICATEKEYFORMAT) to \"legacy\" if Tyk nodes read this Redis"
        )),
        _ => None,
    }
}

/// Logs the warning of [`foreign_format_warning`], if any.
pub(crate) async fn warn_on_foreign_format(store: &CertStore, configured: KeyFormat) {
    if let Some(warning) = foreign_format_warning(store, configured).await {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use cert_store::{ManualClock, MemoryStorage};
    use tls_core::{EncodingSecret, OrgId};

    use super::*;
    use crate::config::GatewayConfig;

    const BUNDLE: &str = include_str!("../../tls-core/tests/data/demo.pem");

    async fn store_with(format: KeyFormat, storage: &Arc<MemoryStorage>) -> CertStore {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2030-01-01 0:00 UTC),
        ));
        CertStore::builder(storage.clone())
            .encoding_secret(EncodingSecret::new("s"))
            .key_format(format)
            .clock(clock)
            .build()
    }

    #[tokio::test]
    async fn records_in_the_other_format_give_one_warning_naming_the_setting() {
        for (written, configured, says) in [
            (KeyFormat::Legacy, KeyFormat::Modern, "to \"legacy\""),
            (KeyFormat::Modern, KeyFormat::Legacy, "cannot read"),
        ] {
            let storage = Arc::new(MemoryStorage::new());
            let writer = store_with(written, &storage).await;
            writer
                .add(BUNDLE, &OrgId::new("o1").unwrap())
                .await
                .unwrap();
            let reader = store_with(configured, &storage).await;
            let warning = foreign_format_warning(&reader, configured).await;
            let warning = warning.expect("a warning");
            assert!(
                warning.contains("security.private_certificate_key_format"),
                "{warning}"
            );
            assert!(warning.contains("1 of 1 sampled"), "{warning}");
            assert!(warning.contains(says), "{warning}");
            // The same format: nothing to say.
            assert_eq!(foreign_format_warning(&reader, written).await, None);
        }
        let empty = store_with(KeyFormat::Modern, &Arc::new(MemoryStorage::new())).await;
        assert_eq!(
            foreign_format_warning(&empty, KeyFormat::Legacy).await,
            None
        );
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
