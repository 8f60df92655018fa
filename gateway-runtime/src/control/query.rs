//! Request paths and query strings: trailing-slash removal, percent-decoding and -encoding
//! (for the control API and the UI's forms and links), and Go's `URL.Query().Get` (first value
//! wins, `+` is a space, bad escapes kept as written).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The path without trailing slashes (Tyk's `stripSlashes`); `/` stays `/`.
pub(crate) fn strip_trailing_slashes(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

/// Percent-decodes `text`; a `%` not followed by two hex digits is kept as written. `None` when
/// the decoded bytes are not UTF-8.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    String::from_utf8(decode_bytes(text, plus_is_space)).ok()
}

fn decode_bytes(text: &str, plus_is_space: bool) -> Vec<u8> {
    if plus_is_space && text.contains('+') {
        // `+` never appears inside an escape, so replacing it first leaves `%2B` a plus.
        percent_decode_str(&text.replace('+', " ")).collect()
    } else {
        percent_decode_str(text).collect()
    }
}

/// A parsed query string.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `query` (without the `?`). Pairs whose name or value is not UTF-8 once decoded
    /// keep the text with U+FFFD in place of the bad bytes, so that validation rejects them.
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self {
            pairs: pairs(query.unwrap_or("")),
        }
    }

    /// The first value of `name`; `None` when absent or empty (Go cannot tell them apart).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The `name=value` pairs of `a=1&b=2` (a query string, or a form body), decoded with
/// [`decode_lossy`]; empty pairs are skipped, a pair without `=` has an empty value.
pub(crate) fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_lossy(name), decode_lossy(value))
        })
        .collect()
}

/// Percent-decodes `text` with `+` as a space (form and query encoding); bad escapes are kept
/// as written and bytes that are not UTF-8 become U+FFFD.
pub(crate) fn decode_lossy(text: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(text, true)).into_owned()
}

/// What a query value keeps unescaped: RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub(crate) fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_go_and_root_stays() {
        assert_eq!(strip_trailing_slashes("/tyk/certs/"), "/tyk/certs");
        assert_eq!(strip_trailing_slashes("/tyk/certs///"), "/tyk/certs");
        assert_eq!(strip_trailing_slashes("///"), "/");
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes_and_refuses_non_utf8() {
        assert_eq!(percent_decode("%2Ftmp%2fx", false).unwrap(), "/tmp/x");
        assert_eq!(percent_decode("a%zz%4", false).unwrap(), "a%zz%4");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert!(percent_decode("%ff", false).is_none());
    }

    #[test]
    fn query_takes_the_first_value_and_treats_empty_as_absent() {
        let q = Query::parse(Some("org_id=a%2Bb&org_id=c&mode=&x&bad=%ff"));
        assert_eq!(q.get("org_id"), Some("a+b"));
        assert_eq!(q.get("mode"), None);
        assert_eq!(q.get("x"), None);
        assert_eq!(q.get("bad"), Some("\u{fffd}"));
        assert_eq!(encode_component("a b/+"), "a%20b%2F%2B");
    }
}
