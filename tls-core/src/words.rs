//! Plain words for the ASN.1 and X.509 parsers' errors.
//!
//! The parsers' own `Display` forms carry Rust `Debug` text (`Parsing Error: NomError(Eof)`,
//! `DER Failed constraint: IndefiniteLength`), which must never reach an answer. Every error
//! variant is described here in words a user of a certificate tool understands.

use x509_parser::der_parser::asn1_rs::{DerConstraint, Error as BerError};
use x509_parser::error::X509Error;
use x509_parser::nom;

/// Words for a parser error of the X.509 layer.
pub(crate) fn x509(e: &nom::Err<X509Error>) -> String {
    match e {
        nom::Err::Incomplete(_) => ENDS_EARLY.to_owned(),
        nom::Err::Error(e) | nom::Err::Failure(e) => x509_error(e),
    }
}

const ENDS_EARLY: &str = "the DER data ends before the structure does (truncated)";

fn x509_error(e: &X509Error) -> String {
    match e {
        X509Error::Der(e) => ber(e),
        X509Error::NomError(kind) => nom_kind(*kind).to_owned(),
        // The remaining variants display as plain words ("invalid X.509 name", ...).
        other => other.to_string(),
    }
}

fn nom_kind(kind: nom::error::ErrorKind) -> &'static str {
    match kind {
        nom::error::ErrorKind::Eof | nom::error::ErrorKind::Complete => ENDS_EARLY,
        _ => "the DER structure is malformed",
    }
}

fn ber(e: &BerError) -> String {
    let text = match e {
        BerError::BerTypeError => "an element has an unexpected type",
        BerError::BerValueError => "an element has an unexpected value",
        BerError::InvalidLength => "an element has an invalid length",
        BerError::InvalidValue { .. } => "an element has an invalid value",
        BerError::InvalidTag => "an element has an invalid tag",
        BerError::UnknownTag(_) => "an element has an unknown tag",
        BerError::UnexpectedTag { .. } => "an element has an unexpected tag",
        BerError::UnexpectedClass { .. } => "an element has an unexpected class",
        BerError::IndefiniteLengthUnexpected => "indefinite lengths are not allowed in DER",
        BerError::ConstructExpected => {
            "a primitive element was found where a constructed one belongs"
        }
        BerError::ConstructUnexpected => {
            "a constructed element was found where a primitive one belongs"
        }
        BerError::IntegerTooLarge => "an integer is too large",
        BerError::IntegerNegative => "an integer is negative where it must not be",
        BerError::BerMaxDepth => "the structure is nested too deeply",
        BerError::StringInvalidCharset => "a string has characters its type does not allow",
        BerError::InvalidDateTime => "a date or time is invalid",
        BerError::DerConstraintFailed(constraint) => return der_constraint(*constraint).to_owned(),
        BerError::Incomplete(_) => ENDS_EARLY,
        BerError::NomError(kind) => nom_kind(*kind),
        _ => "the DER structure is malformed",
    };
    text.to_owned()
}

fn der_constraint(constraint: DerConstraint) -> &'static str {
    match constraint {
        DerConstraint::IndefiniteLength => {
            "not DER: an element uses an indefinite length (BER), which DER forbids"
        }
        DerConstraint::Constructed => "not DER: an element must not be constructed",
        DerConstraint::NotConstructed => "not DER: an element must be constructed",
        DerConstraint::MissingTimeZone => "not DER: a time has no time zone",
        DerConstraint::MissingSeconds => "not DER: a time has no seconds",
        DerConstraint::UnusedBitsNotZero => "not DER: a bit string's unused bits are not zero",
        DerConstraint::InvalidBoolean => "not DER: a boolean is neither 0x00 nor 0xff",
        DerConstraint::IntegerEmpty => "not DER: an integer is empty",
        DerConstraint::IntegerLeadingZeroes => "not DER: an integer has leading zero bytes",
        DerConstraint::IntegerLeadingFF => "not DER: a negative integer has leading 0xff bytes",
    }
}

/// True when `text` looks like Rust `Debug` output of an error value: `Name(`, `Name {`,
/// `Some(`, or a `::` path. Used by tests that keep answers free of internals.
#[cfg(test)]
pub(crate) fn looks_like_debug(text: &str) -> bool {
    let bytes = text.as_bytes();
    let camel_call = bytes.windows(2).enumerate().any(|(i, w)| {
        (w[1] == b'(' || (w[1] == b' ' && bytes.get(i + 2) == Some(&b'{')))
            && w[0].is_ascii_alphanumeric()
            && {
                // The word before the bracket starts with an upper-case letter and has another
                // upper-case letter or is a known Debug constructor.
                let start = text[..=i]
                    .rfind(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(0, |p| p + 1);
                let word = &text[start..=i];
                word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && word.chars().skip(1).any(|c| c.is_ascii_lowercase())
                    && word.len() > 2
            }
    });
    camel_call || text.contains("::")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_errors_read_as_words_without_debug_text() {
        let samples = [
            x509(&nom::Err::Error(X509Error::NomError(
                nom::error::ErrorKind::Eof,
            ))),
            x509(&nom::Err::Error(X509Error::Der(
                BerError::DerConstraintFailed(DerConstraint::IndefiniteLength),
            ))),
            x509(&nom::Err::Incomplete(nom::Needed::Unknown)),
            x509(&nom::Err::Failure(X509Error::InvalidCertificate)),
            x509(&nom::Err::Error(X509Error::Der(BerError::UnknownTag(7)))),
        ];
        for text in &samples {
            assert!(!looks_like_debug(text), "{text}");
            assert!(!text.is_empty());
        }
        assert!(samples[1].contains("indefinite length"));
        // The parsers' own forms are caught by the detector.
        let raw = nom::Err::Error(X509Error::NomError(nom::error::ErrorKind::Eof)).to_string();
        assert!(looks_like_debug(&raw), "{raw}");
        assert!(looks_like_debug(
            "Der(DerConstraintFailed(IndefiniteLength))"
        ));
        assert!(!looks_like_debug(
            "x509: malformed certificate: PEM block 1: the DER data ends (truncated)"
        ));
    }
}
