//! Plaintext private keys: their encodings and a zeroizing holder that never prints its bytes.

use core::fmt;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use zeroize::Zeroizing;

/// How a private key's DER is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyEncoding {
    /// PKCS#8 `PrivateKeyInfo` (PEM label `PRIVATE KEY`): RSA, ECDSA, Ed25519.
    Pkcs8,
    /// PKCS#1 `RSAPrivateKey` (PEM label `RSA PRIVATE KEY`).
    Pkcs1,
    /// SEC1 `ECPrivateKey` (PEM label `EC PRIVATE KEY`).
    Sec1,
}

impl KeyEncoding {
    /// The PEM label of a plaintext key in this encoding.
    pub fn pem_label(self) -> &'static str {
        match self {
            Self::Pkcs8 => "PRIVATE KEY",
            Self::Pkcs1 => "RSA PRIVATE KEY",
            Self::Sec1 => "EC PRIVATE KEY",
        }
    }

    /// The encoding's name: `PKCS#8`, `PKCS#1` or `SEC1`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pkcs8 => "PKCS#8",
            Self::Pkcs1 => "PKCS#1",
            Self::Sec1 => "SEC1",
        }
    }

    /// The encoding that a plaintext PEM label announces.
    pub(crate) fn from_pem_label(label: &str) -> Option<Self> {
        match label {
            "PRIVATE KEY" => Some(Self::Pkcs8),
            "RSA PRIVATE KEY" => Some(Self::Pkcs1),
            "EC PRIVATE KEY" => Some(Self::Sec1),
            _ => None,
        }
    }

    /// Guesses the encoding from the DER structure, as Tyk's stored keys lose their label.
    ///
    /// All three are a SEQUENCE starting with an INTEGER version; the second element tells them
    /// apart: an AlgorithmIdentifier SEQUENCE (PKCS#8), the modulus INTEGER (PKCS#1) or the
    /// private key OCTET STRING (SEC1).
    pub(crate) fn guess(der: &[u8]) -> Option<Self> {
        let (0x30, body, rest) = der_element(der)? else {
            return None;
        };
        if !rest.is_empty() {
            return None;
        }
        let (0x02, _, after_version) = der_element(body)? else {
            return None;
        };
        match der_element(after_version)?.0 {
            0x30 => Some(Self::Pkcs8),
            0x02 => Some(Self::Pkcs1),
            0x04 => Some(Self::Sec1),
            _ => None,
        }
    }

    /// A one-byte code used by the modern at-rest format.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Pkcs8 => 1,
            Self::Pkcs1 => 2,
            Self::Sec1 => 3,
        }
    }

    /// The inverse of [`Self::code`].
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Pkcs8),
            2 => Some(Self::Pkcs1),
            3 => Some(Self::Sec1),
            _ => None,
        }
    }
}

/// Reads one DER element: (tag, contents, the bytes after it). Single-byte tags only.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (len_bytes, rest) = input.split_at(count);
        input = rest;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b))
    };
    (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
}

/// The DER of the OID rsaEncryption (1.2.840.113549.1.1.1), tag and length included.
const RSA_ENCRYPTION_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// The modulus size of an RSA key: PKCS#1, or PKCS#8 wrapping rsaEncryption. `None` for other
/// keys and for DER that does not have the expected shape.
fn rsa_modulus_bits(encoding: KeyEncoding, der: &[u8]) -> Option<usize> {
    let (0x30, body, _) = der_element(der)? else {
        return None;
    };
    let (0x02, _, rest) = der_element(body)? else {
        return None;
    };
    match encoding {
        KeyEncoding::Pkcs1 => {
            let (0x02, modulus, _) = der_element(rest)? else {
                return None;
            };
            let modulus = &modulus[modulus.iter().position(|b| *b != 0)?..];
            let top = usize::try_from(8 - modulus[0].leading_zeros()).ok()?;
            Some((modulus.len() - 1) * 8 + top)
        }
        KeyEncoding::Pkcs8 => {
            let (0x30, algorithm, rest) = der_element(rest)? else {
                return None;
            };
            if !algorithm.starts_with(RSA_ENCRYPTION_OID) {
                return None;
            }
            let (0x04, inner, _) = der_element(rest)? else {
                return None;
            };
            rsa_modulus_bits(KeyEncoding::Pkcs1, inner)
        }
        KeyEncoding::Sec1 => None,
    }
}

/// A plaintext private key. Its bytes are wiped when it is dropped, it cannot be cloned, and
/// `Debug` shows only its encoding and length.
pub struct PrivateKey {
    encoding: KeyEncoding,
    der: Zeroizing<Vec<u8>>,
}

impl PrivateKey {
    /// Wraps key DER of a known encoding. The bytes are not checked here; loading the key into
    /// rustls (or uploading it) checks them.
    pub fn new(encoding: KeyEncoding, der: Vec<u8>) -> Self {
        Self {
            encoding,
            der: Zeroizing::new(der),
        }
    }

    /// The modulus size in bits when this is an RSA key (PKCS#1, or PKCS#8 rsaEncryption).
    pub fn rsa_bits(&self) -> Option<usize> {
        rsa_modulus_bits(self.encoding, &self.der)
    }

    /// Wraps key DER whose encoding is guessed from its structure; `None` if it is none of
    /// PKCS#8, PKCS#1 or SEC1.
    pub fn guess(der: Vec<u8>) -> Option<Self> {
        let der = Zeroizing::new(der);
        let encoding = KeyEncoding::guess(&der)?;
        Some(Self { encoding, der })
    }

    /// The encoding of the DER.
    pub fn encoding(&self) -> KeyEncoding {
        self.encoding
    }

    /// The secret key DER. Handle with care: do not log it or keep copies.
    pub fn secret_der(&self) -> &[u8] {
        &self.der
    }

    /// The key as rustls takes it. The copy lives until rustls has parsed it.
    pub fn to_rustls(&self) -> PrivateKeyDer<'static> {
        let der = self.der.to_vec();
        match self.encoding {
            KeyEncoding::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
            KeyEncoding::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
            KeyEncoding::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        }
    }

    /// The key as a plaintext PEM block. Only for handing the key to a TLS library or a file the
    /// user asked for.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(crate::pem::encode(
            self.encoding.pem_label(),
            &[],
            &self.der,
        ))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("encoding", &self.encoding)
            .field("der", &format_args!("<{} bytes redacted>", self.der.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_key_bytes() {
        let key = PrivateKey::new(KeyEncoding::Pkcs8, vec![0xAB; 48]);
        let shown = format!("{key:?}");
        assert!(shown.contains("48 bytes redacted"), "{shown}");
        assert!(
            !shown.contains("171") && !shown.to_lowercase().contains("ab, ab"),
            "{shown}"
        );
    }

    #[test]
    fn guess_tells_the_three_encodings_apart() {
        // SEQUENCE { INTEGER 0, SEQUENCE {} }
        assert_eq!(
            KeyEncoding::guess(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x30, 0x00]),
            Some(KeyEncoding::Pkcs8)
        );
        // SEQUENCE { INTEGER 0, INTEGER 5 }
        assert_eq!(
            KeyEncoding::guess(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x05]),
            Some(KeyEncoding::Pkcs1)
        );
        // SEQUENCE { INTEGER 1, OCTET STRING {} }
        assert_eq!(
            KeyEncoding::guess(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00]),
            Some(KeyEncoding::Sec1)
        );
        assert_eq!(KeyEncoding::guess(&[0x30, 0x05, 0x02]), None);
        assert_eq!(KeyEncoding::guess(b"garbage that is not DER"), None);
        assert_eq!(KeyEncoding::guess(&[]), None);
    }
}
