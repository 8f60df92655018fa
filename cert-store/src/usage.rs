//! Which API uses which certificate, and in which role.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tls_core::CertId;

/// How a certificate is used: by an API (the usage index), or when it is observed by the expiry
/// monitor (Tyk's `cert_role`: `server`, `client` or `upstream`; a pin does not expire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CertRole {
    /// Served to clients (`certificates`, `ssl_certificates`).
    Server,
    /// Trusted for client certificates (`client_certificates`).
    Client,
    /// Presented to upstreams (`upstream_certificates`).
    Upstream,
    /// Pinned upstream public key (`pinned_public_keys`).
    Pin,
}

impl CertRole {
    /// The lowercase name used in events and answers: `server`, `client`, `upstream` or `pin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Upstream => "upstream",
            Self::Pin => "pin",
        }
    }
}

impl core::fmt::Display for CertRole {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One use of a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CertUse {
    /// The API's ID, as the user of the store names it (certgate's gateway, as Tyk, uses
    /// `__server__` for its own `ssl_certificates`).
    pub api_id: String,
    /// How it uses the certificate.
    pub role: CertRole,
}

/// The usage index. The runtime replaces it whole whenever it loads API definitions.
#[derive(Debug, Default)]
pub struct UsageIndex {
    uses: RwLock<HashMap<CertId, BTreeSet<CertUse>>>,
}

impl UsageIndex {
    /// Replaces every registration with `uses` (certificate ID, API ID, role), atomically.
    pub fn replace_all(&self, uses: impl IntoIterator<Item = (CertId, String, CertRole)>) {
        let mut map: HashMap<CertId, BTreeSet<CertUse>> = HashMap::new();
        for (id, api_id, role) in uses {
            map.entry(id).or_default().insert(CertUse { api_id, role });
        }
        *self.uses.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// Adds one registration.
    pub fn register(&self, id: CertId, api_id: impl Into<String>, role: CertRole) {
        let mut uses = self.uses.write().unwrap_or_else(|p| p.into_inner());
        uses.entry(id).or_default().insert(CertUse {
            api_id: api_id.into(),
            role,
        });
    }

    /// The uses of `id`, sorted by API ID then role.
    pub fn apis_using(&self, id: &CertId) -> Vec<CertUse> {
        let uses = self.uses.read().unwrap_or_else(|p| p.into_inner());
        uses.get(id)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_all_drops_old_registrations() {
        let a: CertId = "a".repeat(64).parse().unwrap();
        let index = UsageIndex::default();
        index.register(a.clone(), "api1", CertRole::Server);
        index.register(a.clone(), "api1", CertRole::Server);
        index.register(a.clone(), "api0", CertRole::Upstream);
        let names: Vec<_> = index.apis_using(&a).into_iter().map(|u| u.api_id).collect();
        assert_eq!(names, ["api0", "api1"]);
        index.replace_all([(a.clone(), "api2".to_owned(), CertRole::Client)]);
        assert_eq!(
            index.apis_using(&a),
            [CertUse {
                api_id: "api2".into(),
                role: CertRole::Client
            }]
        );
    }
}
