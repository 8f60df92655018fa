//! Identifiers: organisations, SHA-256 fingerprints, certificate IDs and SPKI pins.
//!
//! A certificate ID is the org ID followed directly by the 64 lowercase hex characters of the
//! leaf's SHA-256 fingerprint (Tyk's layout). The org is recovered by cutting off the last 64
//! characters, so an org ID may be any text that is safe in a storage key and a URL path.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::error::IdError;

/// Longest org ID accepted, in bytes.
pub const MAX_ORG_ID_LEN: usize = 256;

/// Length of a fingerprint written as hex.
pub const FINGERPRINT_HEX_LEN: usize = 64;

/// An organisation ID: the prefix of a certificate ID. May be empty.
///
/// Allowed: printable ASCII except `/`, `,`, `?`, `#`, `%`, `*` and spaces (they would break the
/// `/tyk/certs/{id1},{id2}` path, Redis patterns or query strings), at most [`MAX_ORG_ID_LEN`]
/// bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(String);

impl OrgId {
    /// The empty org: certificate IDs are then the bare fingerprint.
    pub const EMPTY: Self = Self(String::new());

    /// Validates `org` and wraps it.
    pub fn new(org: impl Into<String>) -> Result<Self, IdError> {
        let org = org.into();
        if org.len() > MAX_ORG_ID_LEN {
            return Err(IdError::OrgTooLong { len: org.len() });
        }
        if let Some(ch) = org.chars().find(|c| !is_org_char(*c)) {
            return Err(IdError::OrgCharacter { ch });
        }
        Ok(Self(org))
    }

    /// The org as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the empty org.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn is_org_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '/' | ',' | '?' | '#' | '%' | '*')
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OrgId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A SHA-256 digest: of a certificate's DER, or of a SubjectPublicKeyInfo's DER.
///
/// Displays as 64 lowercase hex characters; parses from 64 hex characters in either case,
/// optionally separated by colons as `openssl x509 -fingerprint -sha256` prints them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// SHA-256 of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Wraps digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = if s.contains(':') {
            s.split(':').collect()
        } else {
            s.to_owned()
        };
        parse_hex32(&compact)
            .map(Self)
            .ok_or_else(|| IdError::Fingerprint { input: truncate(s) })
    }
}

/// A certificate ID: org ID followed directly by the fingerprint, no separator.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertId {
    org: OrgId,
    fingerprint: Fingerprint,
}

impl CertId {
    /// Builds an ID from its parts.
    pub fn new(org: OrgId, fingerprint: Fingerprint) -> Self {
        Self { org, fingerprint }
    }

    /// The org part (possibly empty).
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// The fingerprint part.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.org, self.fingerprint)
    }
}

impl FromStr for CertId {
    type Err = IdError;

    /// Splits off the last 64 characters as the fingerprint; they must be lowercase hex, since
    /// IDs are storage keys and Tyk writes them lowercase.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdError::CertId { input: truncate(s) };
        if s.len() < FINGERPRINT_HEX_LEN || !s.is_char_boundary(s.len() - FINGERPRINT_HEX_LEN) {
            return Err(bad());
        }
        let (org, hex) = s.split_at(s.len() - FINGERPRINT_HEX_LEN);
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let fingerprint = parse_hex32(hex).map(Fingerprint).ok_or_else(bad)?;
        Ok(Self {
            org: OrgId::new(org)?,
            fingerprint,
        })
    }
}

/// An SPKI pin: SHA-256 of a SubjectPublicKeyInfo's DER.
///
/// Displays as lowercase hex (Tyk's pin format); parses from hex or the HPKP form
/// `sha256/<base64>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    /// The pin of a SubjectPublicKeyInfo DER.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }

    /// Wraps digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The HPKP form `sha256/<base64>`.
    pub fn to_hpkp(&self) -> String {
        format!("sha256/{}", BASE64.encode(self.0))
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_lower(&self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

impl FromStr for SpkiPin {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || IdError::Pin { input: truncate(s) };
        if let Some(b64) = s.strip_prefix("sha256/") {
            let bytes = BASE64.decode(b64).map_err(|_| bad())?;
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map(Self)
                .map_err(|_| bad());
        }
        parse_hex32(s).map(Self).ok_or_else(bad)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Decodes hex of any case; `None` unless the input is whole bytes of hex.
pub(crate) fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != FINGERPRINT_HEX_LEN {
        return None;
    }
    parse_hex(s)?.try_into().ok()
}

/// Keeps error messages short when the input is huge.
fn truncate(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "1b3c75cbd74b4f6a6feca5d0c43ded392bd7eef416560db708c7e3255bf8c150";

    #[test]
    fn cert_id_splits_org_from_last_64_hex_characters() {
        let id: CertId = format!("5e9d9544a1dcd60001d0ed20{HEX}").parse().unwrap();
        assert_eq!(id.org().as_str(), "5e9d9544a1dcd60001d0ed20");
        assert_eq!(id.fingerprint().to_hex(), HEX);
        assert_eq!(id.to_string(), format!("5e9d9544a1dcd60001d0ed20{HEX}"));
    }

    #[test]
    fn cert_id_with_empty_org_is_the_bare_fingerprint() {
        let id: CertId = HEX.parse().unwrap();
        assert!(id.org().is_empty());
        assert_eq!(id.to_string(), HEX);
    }

    #[test]
    fn cert_id_refuses_short_uppercase_and_non_hex() {
        assert!("abc".parse::<CertId>().is_err());
        assert!(HEX.to_uppercase().parse::<CertId>().is_err());
        assert!(
            format!("org{}", &HEX.replace('b', "g"))
                .parse::<CertId>()
                .is_err()
        );
        assert!(format!("a/b{HEX}").parse::<CertId>().is_err());
        assert!(format!("{}é", &HEX[..63]).parse::<CertId>().is_err());
    }

    #[test]
    fn fingerprint_accepts_uppercase_and_colon_separated_forms() {
        let colons = HEX
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap().to_hex(), HEX);
        assert_eq!(
            HEX.to_uppercase().parse::<Fingerprint>().unwrap().to_hex(),
            HEX
        );
        assert!("12".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn spki_pin_round_trips_through_hex_and_hpkp_forms() {
        let pin: SpkiPin = HEX.parse().unwrap();
        let hpkp = pin.to_hpkp();
        assert!(hpkp.starts_with("sha256/"));
        assert_eq!(hpkp.parse::<SpkiPin>().unwrap(), pin);
        assert_eq!(pin.to_string(), HEX);
        assert!("sha256/AAAA".parse::<SpkiPin>().is_err());
        assert!("sha1/abc".parse::<SpkiPin>().is_err());
    }

    #[test]
    fn org_id_refuses_separators_and_overlong_input() {
        assert!(OrgId::new("org,1").is_err());
        assert!(OrgId::new("org 1").is_err());
        assert!(OrgId::new("x".repeat(MAX_ORG_ID_LEN + 1)).is_err());
        assert!(OrgId::new("5e9d9544a1dcd60001d0ed20").is_ok());
        assert!(OrgId::new("").unwrap().is_empty());
    }
}
