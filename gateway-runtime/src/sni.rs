//! Server certificate selection by SNI: exact name, then wildcard, then the default.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cert_store::LoadedCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate ready to serve, with the store entry it came from (for the expiry monitor).
#[derive(Clone, Debug)]
pub(crate) struct Served {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) cert: Arc<LoadedCert>,
}

/// Longest name kept inline in the map's bucket: a key and its `Served` fill 64 bytes.
const INLINE: usize = 46;

/// A lowercase DNS name as a map key, inline when short: a lookup then reads the bucket only,
/// instead of following a pointer to a `String` on the heap (a second cache miss per lookup in
/// a large map).
#[derive(Clone, Debug)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Name {
    fn new(name: &str) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(name.as_bytes().into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

// `Hash`, `Eq` and `Borrow<[u8]>` agree: all three are those of the name's bytes.
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Every server certificate by name; immutable once built, replaced whole on changes.
#[derive(Debug, Default)]
pub(crate) struct ServerCerts {
    exact: HashMap<Name, Served>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<Name, Served>,
    default: Option<Served>,
}

impl ServerCerts {
    /// Adds `served` under its DNS names (its subject CN when it has none) and `extra_names`.
    /// Later additions win a name; the first addition is the default.
    pub(crate) fn add(&mut self, served: Served, extra_names: &[String]) {
        for name in names(&served, extra_names) {
            match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.insert(Name::new(suffix), served.clone()),
                None => self.exact.insert(Name::new(&name), served.clone()),
            };
        }
        if self.default.is_none() {
            self.default = Some(served);
        }
    }

    /// Adds `served` under those of its names that no certificate has yet; it never becomes
    /// the default (certificates found in the store, after the configured ones).
    pub(crate) fn add_unclaimed(&mut self, served: Served) {
        for name in names(&served, &[]) {
            let map = match name.strip_prefix("*.") {
                Some(_) => &mut self.wildcard,
                None => &mut self.exact,
            };
            let key = name.strip_prefix("*.").unwrap_or(&name);
            map.entry(Name::new(key)).or_insert_with(|| served.clone());
        }
    }

    /// The certificate for `sni`: exact name, then a wildcard for its parent, then the default.
    pub(crate) fn select(&self, sni: Option<&str>) -> Option<&Served> {
        let lowered;
        let sni = match sni {
            Some(name) if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                lowered = name.to_ascii_lowercase();
                Some(lowered.as_str())
            }
            other => other,
        };
        let found = sni.and_then(|name| {
            self.exact.get(name.as_bytes()).or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent.as_bytes()))
            })
        });
        found.or(self.default.as_ref())
    }
}

/// The names `served` is served under, lowercase without a trailing dot: its DNS names (its
/// subject CN when it has none) and `extra_names`.
fn names(served: &Served, extra_names: &[String]) -> Vec<String> {
    let meta = served.cert.metadata();
    let mut names: Vec<String> = meta.dns_names.clone();
    if names.is_empty() {
        names.extend(meta.subject.common_name.clone());
    }
    names.extend(extra_names.iter().filter(|n| !n.is_empty()).cloned());
    names
        .into_iter()
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name())
            .map(|served| Arc::clone(&served.key))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use cert_store::{CertStorage, CertStore, MemoryStorage};
    use test_support::pki::{TestCa, Usage};
    use tls_core::{EncodingSecret, OrgId};

    use super::*;

    #[test]
    fn names_hash_and_compare_as_their_bytes_inline_or_not() {
        let hasher = std::collections::hash_map::RandomState::new();
        let long = format!("{}.example", "a".repeat(60));
        for text in [
            "",
            "api.example",
            "x".repeat(INLINE).as_str(),
            long.as_str(),
        ] {
            let name = Name::new(text);
            assert_eq!(name.as_bytes(), text.as_bytes());
            assert_eq!(
                hasher.hash_one(&name),
                hasher.hash_one(text.as_bytes()),
                "{text}"
            );
            assert_eq!(name, Name::new(text));
        }
        assert!(matches!(
            Name::new(&"x".repeat(INLINE)),
            Name::Inline { .. }
        ));
        assert!(matches!(Name::new(&long), Name::Heap(_)));
        assert_ne!(Name::new("a.example"), Name::new("b.example"));
    }

    /// A store holding one certificate for `names` (from the test PKI), and the certificate
    /// loaded.
    async fn served(names: &[&str]) -> Served {
        let leaf = TestCa::root("sni test ca").leaf(names, Usage::Server);
        let store = CertStore::builder(Arc::new(MemoryStorage::new()) as Arc<dyn CertStorage>)
            .encoding_secret(EncodingSecret::new("sni test secret"))
            .build();
        let id = store.add(&leaf.bundle(), &OrgId::EMPTY).await.unwrap();
        let cert = store.get(&id).await.unwrap();
        Served {
            key: store.tls_key(&cert).unwrap(),
            cert,
        }
    }

    #[tokio::test]
    async fn exact_then_wildcard_then_default_whatever_the_case_and_length() {
        let long = format!("{}.example.com", "l".repeat(50));
        let fallback = served(&["fallback.example"]).await;
        let first = served(&["api.example.com", "*.apps.example.com"]).await;
        let second = served(&[long.as_str()]).await;
        let mut certs = ServerCerts::default();
        certs.add(fallback.clone(), &[]);
        certs.add(first.clone(), &["Extra.Example.NET.".to_owned()]);
        certs.add(second.clone(), &[]);
        let chosen = |sni: Option<&str>| {
            let served = certs.select(sni).expect("a default exists");
            [&fallback, &first, &second]
                .iter()
                .position(|s| Arc::ptr_eq(&s.cert, &served.cert))
                .unwrap()
        };
        assert_eq!(chosen(Some("api.example.com")), 1);
        assert_eq!(chosen(Some("API.Example.Com")), 1);
        assert_eq!(chosen(Some("one.apps.example.com")), 1);
        assert_eq!(chosen(Some("extra.example.net")), 1);
        assert_eq!(chosen(Some(&long)), 2, "a name longer than {INLINE} bytes");
        assert_eq!(chosen(Some(&long.to_ascii_uppercase())), 2);
        // A wildcard covers one label only; anything unknown gets the first certificate added.
        assert_eq!(chosen(Some("a.b.apps.example.com")), 0);
        assert_eq!(chosen(Some("apps.example.com")), 0);
        assert_eq!(chosen(Some("unknown.example")), 0);
        assert_eq!(chosen(None), 0);
        assert!(
            ServerCerts::default()
                .select(Some("api.example.com"))
                .is_none()
        );
    }
}
