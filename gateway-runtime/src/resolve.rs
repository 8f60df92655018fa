//! Resolving the configuration's certificate references ([`CertificateRef`]) against the
//! store: an ID is looked up, inline PEM is decoded (once per distinct text), a file is read
//! only when `allow_certificate_files` is on. An ID that is not stored is
//! [`StoreError::NotFound`]; it is never tried as a file (Tyk reads its working directory).

use std::sync::Arc;

use cert_store::{CertStore, LoadedCert, StoreError};

use crate::config::CertificateRef;

/// Resolves `reference` in `store`; file paths only when `allow_files`.
pub(crate) async fn resolve(
    store: &CertStore,
    reference: &CertificateRef,
    allow_files: bool,
) -> Result<Arc<LoadedCert>, StoreError> {
    match reference {
        CertificateRef::Id(id) => store.get(id).await,
        CertificateRef::Pem(text) => store.load_pem(text, "inline PEM").await,
        CertificateRef::File(path) => {
            let shown: String = path.display().to_string().chars().take(80).collect();
            let refused = |reason: String| StoreError::Reference {
                reference: shown.clone(),
                reason,
            };
            if !allow_files {
                return Err(refused(
                    "not a certificate ID (org ID followed by 64 lowercase hex characters) nor inline PEM; file paths are not enabled".to_owned(),
                ));
            }
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| refused(format!("cannot read the file: {e}")))?;
            store.load_pem(&text, &shown).await
        }
    }
}

#[cfg(test)]
mod tests {
    use cert_store::MemoryStorage;
    use tls_core::{EncodingSecret, OrgId};

    use super::*;

    const PEM: &str = include_str!("../../tls-core/tests/data/demo.pem");

    fn parse(text: &str) -> CertificateRef {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn references_resolve_ids_and_inline_pem_but_files_only_when_enabled() {
        let store = CertStore::builder(Arc::new(MemoryStorage::new()))
            .encoding_secret(EncodingSecret::new("resolve test"))
            .build();
        let id = store.add(PEM, &OrgId::EMPTY).await.unwrap();
        let by_id = resolve(&store, &parse(&id.to_string()), false).await;
        assert_eq!(by_id.unwrap().id(), &id);
        let inline = resolve(&store, &parse(PEM), false).await.unwrap();
        assert_eq!(inline.id().fingerprint(), id.fingerprint());
        let collapsed = resolve(&store, &parse(&PEM.replace('\n', " ")), false).await;
        assert_eq!(collapsed.unwrap().id().fingerprint(), id.fingerprint());

        // A file: refused unless enabled; an ID is never tried as a file (Tyk reads its CWD).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, PEM).unwrap();
        let file = parse(path.to_str().unwrap());
        assert!(matches!(
            resolve(&store, &file, false).await,
            Err(StoreError::Reference { .. })
        ));
        let loaded = resolve(&store, &file, true).await.unwrap();
        assert_eq!(loaded.id().fingerprint(), id.fingerprint());

        // An ID parses as an ID, so it is looked up, never read as a file of that name.
        let missing_id = parse(&"e".repeat(64));
        assert!(matches!(missing_id, CertificateRef::Id(_)));
        assert!(
            matches!(
                resolve(&store, &missing_id, true).await,
                Err(StoreError::NotFound { .. })
            ),
            "an ID is not a file name"
        );
    }
}
