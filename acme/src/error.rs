//! What can go wrong while obtaining or renewing a certificate.
//!
//! An error's `Display` is for the log: it carries the CA's own words, which name the addresses
//! its validator tried. [`AcmeError::summary`] is what operators are shown over the network
//! (`last_error` in `certctl acme status`, the certificate details, renewal events).

/// Why a certificate could not be obtained, or the ACME settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// A setting in `http_server_options.acme` is invalid.
    #[error("http_server_options.acme.{field}: {reason}")]
    Config {
        /// The setting, e.g. `directory`.
        field: &'static str,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// The CA could not be used, or a step on this side failed (a fixed message).
    #[error("the ACME CA refused or failed: {0}")]
    Ca(String),
    /// The CA answered a request with an RFC 8555 problem document.
    #[error("the ACME CA refused a request: {detail} ({kind})")]
    Refused {
        /// The problem type, e.g. `urn:ietf:params:acme:error:rateLimited`.
        kind: String,
        /// The CA's explanation.
        detail: String,
    },
    /// The CA could not validate the challenge for a name.
    #[error("the ACME CA could not validate {name}: {reason}")]
    Validation {
        /// The name.
        name: String,
        /// The CA's explanation.
        reason: String,
        /// The problem type of the failed challenge, when the CA gave one.
        kind: Option<String>,
    },
    /// None of the configured challenge types is offered by the CA for a name.
    #[error("the ACME CA offers none of the configured challenge types for {name}")]
    NoUsableChallenge {
        /// The name.
        name: String,
    },
    /// Another process holds the ordering lock for the name.
    #[error("another process is ordering a certificate for {name}")]
    Busy {
        /// The name.
        name: String,
    },
    /// A newer lock holder took over while this process was ordering: its result was discarded.
    #[error("the order for {name} was taken over by another process; this result was discarded")]
    Superseded {
        /// The name.
        name: String,
    },
    /// The shared coordination state (memory or Redis) cannot be read or written.
    #[error("ACME coordination storage: {0}")]
    Coordination(String),
    /// The certificate store refused or failed.
    #[error("certificate store: {0}")]
    Store(#[from] cert_store::StoreError),
    /// The stored ACME account cannot be opened (wrong encoding secret, damaged record).
    #[error("the stored ACME account cannot be opened: {0}")]
    Account(String),
    /// A DNS provider could not publish or remove a `dns-01` record.
    #[error("DNS provider: {0}")]
    Dns(String),
}

impl AcmeError {
    /// Whether trying again later can help (everything but configuration errors).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Self::Config { .. } | Self::NoUsableChallenge { .. })
    }

    /// The error in words that are safe to show over the network: no addresses, OS errors or
    /// free text from the CA or a DNS provider (the log has those, from `Display`). A CA's
    /// problem is told by its type.
    ///
    /// ```
    /// let error = acme::AcmeError::Validation {
    ///     name: "api.example.com".to_owned(),
    ///     reason: "10.0.0.7: Connection refused".to_owned(),
    ///     kind: Some("urn:ietf:params:acme:error:connection".to_owned()),
    /// };
    /// let shown = error.summary();
    /// assert!(shown.contains("api.example.com"), "{shown}");
    /// assert!(!shown.contains("10.0.0.7"), "{shown}");
    /// ```
    pub fn summary(&self) -> String {
        match self {
            Self::Refused { kind, .. } => {
                format!("the ACME CA refused a request: {}", problem_words(kind))
            }
            Self::Validation { name, kind, .. } => format!(
                "the ACME CA could not validate {name}: {}",
                kind.as_deref().map_or(
                    "the challenge failed (the CA's explanation is in the gateway's log)",
                    problem_words
                )
            ),
            Self::Store(cert_store::StoreError::Storage(error)) => format!(
                "certificate store: {} (details in the gateway's log)",
                if error.is_temporary() {
                    "the storage is unavailable"
                } else {
                    "the storage failed"
                }
            ),
            Self::Dns(_) => {
                "the DNS provider could not publish or remove the dns-01 record (details in the gateway's log)"
                    .to_owned()
            }
            // Fixed messages, names and the user's own configuration.
            other => other.to_string(),
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}

impl From<instant_acme::Error> for AcmeError {
    fn from(error: instant_acme::Error) -> Self {
        match error {
            instant_acme::Error::Api(problem) => Self::Refused {
                kind: problem.r#type.clone().unwrap_or_default(),
                detail: problem.to_string(),
            },
            instant_acme::Error::Timeout(_) => Self::Ca("timed out waiting for the CA".to_owned()),
            instant_acme::Error::Unsupported(what) => Self::Ca(format!("not supported: {what}")),
            other => {
                // Transport errors name addresses and OS errors: kept out of what users see.
                tracing::debug!(error = %other, "ACME request failed");
                Self::Ca(
                    "cannot reach the ACME CA or read its answer (details in the debug log)"
                        .to_owned(),
                )
            }
        }
    }
}

/// What an RFC 8555 problem type means, in words ("an unknown problem" for none).
fn problem_words(kind: &str) -> &'static str {
    let short = kind
        .strip_prefix("urn:ietf:params:acme:error:")
        .unwrap_or(kind);
    match short {
        "connection" => {
            "the CA could not connect to this gateway to check the challenge (is the name's DNS pointing here, and the challenge port reachable?)"
        }
        "dns" => "the CA could not look the name up in DNS",
        "unauthorized" => {
            "the CA did not get the expected challenge answer (is the name's DNS pointing here, and the challenge port reachable?)"
        }
        "incorrectResponse" => "the challenge answer the CA got was wrong",
        "tls" => "the TLS handshake with the CA's validator failed",
        "caa" => "a CAA record forbids this CA to issue for the name",
        "rateLimited" => "rate limited by the CA; it is retried later",
        "rejectedIdentifier" | "unsupportedIdentifier" => "the CA does not issue for this name",
        "externalAccountRequired" => {
            "the CA requires an external account binding (http_server_options.acme.external_account)"
        }
        "invalidContact" | "unsupportedContact" => "the CA refuses the contact email address",
        "userActionRequired" => "the CA asks for action on the account (see its terms)",
        "badCSR" => "the CA refused the certificate request",
        "badNonce" | "badSignatureAlgorithm" | "badPublicKey" | "malformed" => {
            "the CA refused a request as malformed"
        }
        "serverInternal" => "the CA failed internally",
        "orderNotReady" | "alreadyRevoked" | "badRevocationReason" | "accountDoesNotExist" => {
            "the CA refused a step of the order"
        }
        _ => "an unknown problem (the CA's explanation is in the gateway's log)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_problem_and_leave_out_the_cas_words() {
        let refused = AcmeError::Refused {
            kind: "urn:ietf:params:acme:error:rateLimited".to_owned(),
            detail: "too many certificates for 192.0.2.1".to_owned(),
        };
        assert!(refused.to_string().contains("192.0.2.1"));
        assert_eq!(
            refused.summary(),
            "the ACME CA refused a request: rate limited by the CA; it is retried later"
        );
        let validation = AcmeError::Validation {
            name: "a.example".to_owned(),
            reason: "dial tcp 10.1.2.3:80: connect: connection refused".to_owned(),
            kind: None,
        };
        assert!(!validation.summary().contains("10.1.2.3"));
        assert!(validation.summary().contains("a.example"));
        let dns = AcmeError::Dns("route53 at 10.0.0.1 said no".to_owned());
        assert!(!dns.summary().contains("10.0.0.1"));
        let busy = AcmeError::Busy {
            name: "a.example".to_owned(),
        };
        assert_eq!(busy.summary(), busy.to_string());
        for kind in ["", "urn:ietf:params:acme:error:somethingNew"] {
            let unknown = AcmeError::Refused {
                kind: kind.to_owned(),
                detail: "x".to_owned(),
            };
            assert!(unknown.summary().contains("unknown problem"), "{kind}");
        }
    }
}
