//! The control API's answers (`/tyk/certs`, and certgate's `/tyk/acme`) as typed values, for clients such as `certctl`: the
//! same types the server writes its JSON from, in Tyk's shapes and field order, with
//! `Deserialize` beside `Serialize`.
//!
//! ```
//! use gateway_runtime::wire::IdList;
//!
//! let list: IdList = serde_json::from_str(r#"{"certs":null}"#).unwrap();
//! assert!(list.certs.is_none());
//! ```

pub use cert_store::{CertRole, CertUse};

pub use crate::control::renewals::{AcmeNameStatus, AcmeRenewal, AcmeStatus};
pub use crate::control::shapes::{
    ApiUses, AttributeTypeAndValue, CertificateBasics, CertificateMeta, CertificateStatus,
    DetailedList, GoTime, IdList, PkixName, StatusMessage,
};
