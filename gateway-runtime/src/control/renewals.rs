//! certgate's addition to the control API: the state of automatic (ACME) certificates.
//!
//! `GET /tyk/acme` answers each managed name's status and the counts since start
//! ([`AcmeStatus`]), for `certctl acme status`. The route lives under `/tyk/`, the prefix the
//! control API already owns, so that no API's listen path is newly taken from the proxy and the
//! control API's secret, host and port rules apply unchanged; it is not under `/tyk/certs/`,
//! where any segment is a certificate ID. Tyk has no such route (it answers 404 there).
//!
//! `GET /tyk/certs/{id}` of a certificate ACME manages carries the same state for that name in
//! an extra field, `acme` ([`AcmeRenewal`]), which Tyk clients ignore.
//!
//! In a fleet, `failures`, `last_error` and `next_renewal` are the fleet's: whichever gateway
//! attempts a name records them in the coordinator (the store's Redis), and every gateway answers
//! from there, so a gateway that is not the one ordering still shows the name failing. When the
//! coordinator does not answer, the route still answers, with the gateway's own view of each name
//! and `"local_only": true`.
//!
//! Times are RFC 3339, UTC, whole seconds. `last_error` is the ACME error's summary: never an
//! address, an OS error or the CA's free text (the gateway's log has those).

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ControlApi;
use crate::response::{Body, error, respond};

/// The answer of `GET /tyk/acme`.
///
/// ```
/// use gateway_runtime::wire::AcmeStatus;
///
/// let status: AcmeStatus = serde_json::from_str(
///     r#"{"names":[{"name":"api.example.com","cert_id":null,"not_after":null,
///         "next_renewal":"2026-12-01T10:00:00Z","failures":1,
///         "last_error":"the ACME CA could not validate api.example.com: ..."}],
///       "issued":0,"renewed":0,"failed":1}"#,
/// )
/// .unwrap();
/// assert_eq!(status.names[0].failures, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AcmeStatus {
    /// Each managed name, in configuration order (explicit domains, then API domains).
    pub names: Vec<AcmeNameStatus>,
    /// First certificates obtained by this process since it started (the counts are the
    /// answering gateway's own; the names' states are the fleet's).
    pub issued: u64,
    /// Certificates renewed by this process since it started.
    pub renewed: u64,
    /// Failed attempts of this process since it started.
    pub failed: u64,
}

/// One managed name in [`AcmeStatus`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AcmeNameStatus {
    /// The DNS name.
    pub name: String,
    /// The ID of the certificate served for it (`null` before the first one is obtained).
    pub cert_id: Option<String>,
    /// That certificate's expiry.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When it is due for renewal, or the next attempt after a failure (`null` when a first
    /// certificate is due now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_renewal: Option<OffsetDateTime>,
    /// Consecutive failed attempts (0 after a success).
    pub failures: u32,
    /// The last failure, in words safe to show.
    pub last_error: Option<String>,
    /// True when the coordinator (the store's Redis) did not answer: `failures`, `last_error`
    /// and `next_renewal` are then this gateway's own attempts, not the fleet's.
    #[serde(default)]
    pub local_only: bool,
}

/// The `acme` field of a certificate's details: the renewal state of the name ACME manages it
/// for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AcmeRenewal {
    /// The DNS name the certificate is obtained for.
    pub name: String,
    /// When it is due for renewal, or the next attempt after a failure.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_renewal: Option<OffsetDateTime>,
    /// Consecutive failed renewal attempts.
    pub failures: u32,
    /// The last failure, in words safe to show.
    pub last_error: Option<String>,
    /// True when the coordinator did not answer: this gateway's own view of the name.
    #[serde(default)]
    pub local_only: bool,
}

/// `at` in UTC, to the second (the wire's precision).
#[cfg(feature = "acme")]
pub(crate) fn wire_time(at: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    at.map(|at| {
        let utc = at.to_offset(time::UtcOffset::UTC);
        utc.replace_nanosecond(0).unwrap_or(utc)
    })
}

#[cfg(feature = "acme")]
impl AcmeNameStatus {
    /// The details' view of this name.
    pub(crate) fn renewal(&self) -> AcmeRenewal {
        AcmeRenewal {
            name: self.name.clone(),
            next_renewal: self.next_renewal,
            failures: self.failures,
            last_error: self.last_error.clone(),
            local_only: self.local_only,
        }
    }
}

impl ControlApi {
    /// `GET /tyk/acme`: the managed names' status; 404 with Tyk's error shape when ACME is off.
    pub(super) async fn acme_status(&self) -> Response<Body> {
        match crate::acme::status_report(&self.acme).await {
            Some(status) => respond(StatusCode::OK, &status),
            None => error(StatusCode::NOT_FOUND, crate::acme::OFF),
        }
    }

    /// The renewal state of certificate `id`, when ACME manages it.
    pub(super) async fn renewal_of(&self, id: &tls_core::CertId) -> Option<AcmeRenewal> {
        crate::acme::renewal_of(&self.acme, id).await
    }
}
