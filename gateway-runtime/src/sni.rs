//! Server certificate selection by SNI: exact name, then wildcard, then the default.

use std::collections::HashMap;
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

/// Every server certificate by name; immutable once built, replaced whole on changes.
#[derive(Debug, Default)]
pub(crate) struct ServerCerts {
    exact: HashMap<String, Served>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, Served>,
    default: Option<Served>,
}

impl ServerCerts {
    /// Adds `served` under its DNS names (its subject CN when it has none) and `extra_names`.
    /// Later additions win a name; the first addition is the default.
    pub(crate) fn add(&mut self, served: Served, extra_names: &[String]) {
        let meta = served.cert.metadata();
        let mut names: Vec<String> = meta.dns_names.clone();
        if names.is_empty() {
            names.extend(meta.subject.common_name.clone());
        }
        names.extend(extra_names.iter().filter(|n| !n.is_empty()).cloned());
        for name in names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.insert(suffix.to_owned(), served.clone()),
                None => self.exact.insert(name, served.clone()),
            };
        }
        if self.default.is_none() {
            self.default = Some(served);
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
            self.exact.get(name).or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
        });
        found.or(self.default.as_ref())
    }
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name())
            .map(|served| Arc::clone(&served.key))
    }
}
