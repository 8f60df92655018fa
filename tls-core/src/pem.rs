//! A small RFC 7468 PEM reader and writer.
//!
//! It exists (rather than `rustls-pki-types`' reader) because uploads and stored records need
//! three things that reader does not give: every block's label, including ones we refuse or
//! ignore, so errors can name them; RFC 1423 headers (`Proc-Type`, `DEK-Info`) inside a block,
//! which Tyk's stored keys carry; and the single-line "collapsed" PEM that configuration systems
//! produce by turning newlines into spaces. Blocks are found by their `-----BEGIN`/`-----END`
//! markers, not by lines, so CRLF, collapsed and ordinary PEM are all read the same way.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use crate::error::PemError;

/// Base64 that tolerates missing padding, as OpenSSL does.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// RFC 1423 headers, `(name, value)` in order.
type Headers = Vec<(String, String)>;

/// One decoded PEM block.
#[derive(Debug)]
pub(crate) struct Block {
    /// Position among the blocks of the text, counted from 1.
    pub(crate) position: usize,
    /// The label, e.g. `CERTIFICATE`.
    pub(crate) label: String,
    /// RFC 1423 headers (`Name: value`) in order.
    pub(crate) headers: Headers,
    /// The decoded body.
    pub(crate) der: Vec<u8>,
}

impl Block {
    /// The value of header `name` (compared case-insensitively).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The longest label an error message quotes in full.
const MAX_SHOWN_LABEL: usize = 64;

/// A label as error messages show it: cut after [`MAX_SHOWN_LABEL`] characters, so hostile input
/// cannot make a message as large as itself.
pub(crate) fn shown(label: &str) -> String {
    if label.chars().count() <= MAX_SHOWN_LABEL {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(MAX_SHOWN_LABEL).collect();
        format!("{cut}...")
    }
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored.
pub(crate) fn parse(text: &str) -> Result<Vec<Block>, PemError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let position = blocks.len() + 1;
        let after_begin = &rest[start + BEGIN.len()..];
        let label_end = after_begin
            .find(DASHES)
            .filter(|&i| !after_begin[..i].contains(['\n', '\r']))
            .ok_or(PemError::BadBeginLine { position })?;
        let label = after_begin[..label_end].trim().to_owned();
        let body_and_rest = &after_begin[label_end + DASHES.len()..];

        let end = body_and_rest
            .find(END)
            .ok_or_else(|| PemError::MissingEnd {
                position,
                label: shown(&label),
            })?;
        if body_and_rest[..end].contains(BEGIN) {
            return Err(PemError::MissingEnd {
                position,
                label: shown(&label),
            });
        }
        let body = &body_and_rest[..end];
        let after_end = &body_and_rest[end + END.len()..];
        let end_label_len = after_end
            .find(DASHES)
            .filter(|&i| !after_end[..i].contains(['\n', '\r']))
            .ok_or_else(|| PemError::MissingEnd {
                position,
                label: shown(&label),
            })?;
        let end_label = after_end[..end_label_len].trim();
        if end_label != label {
            return Err(PemError::MismatchedEnd {
                position,
                begin: shown(&label),
                end: shown(end_label),
            });
        }
        rest = &after_end[end_label_len + DASHES.len()..];

        let (headers, der) = decode_body(body).map_err(|reason| PemError::Body {
            position,
            label: shown(&label),
            reason,
        })?;
        blocks.push(Block {
            position,
            label,
            headers,
            der,
        });
    }
    Ok(blocks)
}

/// Splits a block body into RFC 1423 headers and the base64 payload.
///
/// Works on whitespace-separated tokens, so a body whose newlines were turned into spaces reads
/// the same as the original: a token ending in `:` names a header whose value is the next token
/// (RFC 1423 values contain no spaces).
fn decode_body(body: &str) -> Result<(Headers, Vec<u8>), String> {
    let mut tokens = body.split_whitespace().peekable();
    let mut headers = Vec::new();
    while let Some(name) = tokens.peek().and_then(|t| t.strip_suffix(':')) {
        let name = name.to_owned();
        tokens.next();
        let value = tokens
            .next()
            .ok_or_else(|| format!("header {name} has no value"))?;
        headers.push((name, value.to_owned()));
    }
    let payload: String = tokens.collect();
    if payload.is_empty() {
        return Err("the block has no content".to_owned());
    }
    let der = LENIENT
        .decode(payload.as_bytes())
        .map_err(|e| format!("invalid base64: {e}"))?;
    Ok((headers, der))
}

/// Encodes one block with 64-column base64 and a final newline, as Go's `pem.Encode` does.
pub(crate) fn encode(label: &str, headers: &[(&str, &str)], der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str("-----\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
    if !headers.is_empty() {
        out.push('\n');
    }
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(core::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_crlf_collapsed_and_plain_text_alike() {
        let plain = encode("CERTIFICATE", &[], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let crlf = plain.replace('\n', "\r\n");
        let collapsed = plain.replace('\n', " ");
        for text in [plain.as_str(), crlf.as_str(), collapsed.as_str()] {
            let blocks = parse(&format!("  junk before\n{text}\n after ")).unwrap();
            assert_eq!(blocks.len(), 1);
            assert_eq!(blocks[0].label, "CERTIFICATE");
            assert_eq!(blocks[0].der, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        }
    }

    #[test]
    fn reads_rfc1423_headers_in_either_layout() {
        let text = encode(
            "ENCRYPTED PRIVATE KEY",
            &[
                ("Proc-Type", "4,ENCRYPTED"),
                ("DEK-Info", "AES-256-CBC,00FF"),
            ],
            &[7; 40],
        );
        for t in [text.clone(), text.replace('\n', " ")] {
            let blocks = parse(&t).unwrap();
            assert_eq!(blocks[0].header("dek-info"), Some("AES-256-CBC,00FF"));
            assert_eq!(blocks[0].der, [7; 40]);
        }
    }

    #[test]
    fn names_the_position_of_a_truncated_block() {
        let good = encode("CERTIFICATE", &[], &[1; 10]);
        let err = parse(&format!("{good}-----BEGIN CERTIFICATE-----\nAAAA")).unwrap_err();
        assert!(
            matches!(err, PemError::MissingEnd { position: 2, .. }),
            "{err:?}"
        );
        let err = parse(&format!("-----BEGIN CERTIFICATE-----\nAAAA\n{good}")).unwrap_err();
        assert!(
            matches!(err, PemError::MissingEnd { position: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_mismatched_end_bad_base64_and_empty_body() {
        assert!(matches!(
            parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----").unwrap_err(),
            PemError::MismatchedEnd { .. }
        ));
        assert!(matches!(
            parse("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----").unwrap_err(),
            PemError::Body { .. }
        ));
        assert!(matches!(
            parse("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----").unwrap_err(),
            PemError::Body { .. }
        ));
        assert!(matches!(
            parse("-----BEGIN CERTIFICATE\nAAAA").unwrap_err(),
            PemError::BadBeginLine { .. }
        ));
    }

    #[test]
    fn text_without_blocks_gives_no_blocks() {
        assert!(parse("this is not a certificate\n").unwrap().is_empty());
        assert!(parse("").unwrap().is_empty());
    }
}
