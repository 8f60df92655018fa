//! Form bodies: `application/x-www-form-urlencoded`, and `multipart/form-data` for the upload
//! form's file pickers. Both are read into memory under the control API's body limit.

use crate::control::query::pairs;

/// The fields of a submitted form, in order; a name may repeat.
#[derive(Debug, Default)]
pub(super) struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses a body whose `Content-Type` is `content_type`; `None` when it is neither form
    /// encoding or the multipart body is malformed.
    pub(super) fn parse(content_type: &str, body: &[u8]) -> Option<Self> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Some(Self::urlencoded(&String::from_utf8_lossy(body)));
        }
        if mime.eq_ignore_ascii_case("multipart/form-data") {
            let boundary = parameter(content_type, "boundary")?;
            return Self::multipart(body, &boundary);
        }
        None
    }

    /// Parses `a=1&b=2` (also a query string).
    pub(super) fn urlencoded(text: &str) -> Self {
        Self {
            fields: pairs(text),
        }
    }

    fn multipart(body: &[u8], boundary: &str) -> Option<Self> {
        let delimiter = format!("--{boundary}");
        let delimiter = delimiter.as_bytes();
        let mut fields = Vec::new();
        let mut rest = body;
        // Skip the preamble up to the first delimiter.
        let start = find(rest, delimiter)?;
        rest = &rest[start + delimiter.len()..];
        loop {
            if rest.starts_with(b"--") {
                break;
            }
            rest = rest.strip_prefix(b"\r\n")?;
            let end = find(rest, b"\r\n\r\n")?;
            let headers = String::from_utf8_lossy(&rest[..end]);
            rest = &rest[end + 4..];
            let next = find(rest, &[b"\r\n", delimiter].concat())?;
            let value = &rest[..next];
            rest = &rest[next + 2 + delimiter.len()..];
            let disposition = headers
                .lines()
                .find(|line| {
                    line.get(..20)
                        .is_some_and(|h| h.eq_ignore_ascii_case("content-disposition:"))
                })
                .unwrap_or("");
            if let Some(name) = parameter(disposition, "name") {
                fields.push((name, String::from_utf8_lossy(value).into_owned()));
            }
        }
        Some(Self { fields })
    }
}

/// The value of `name=` in a header such as `multipart/form-data; boundary=x` or
/// `form-data; name="pem"; filename="a.pem"`.
fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
                .to_owned()
        })
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_fields_decode() {
        let form = Form::urlencoded("secret=a%2Bb+c&csrf=x&bad=%zz%4");
        assert_eq!(form.get("secret"), Some("a+b c"));
        assert_eq!(form.get("csrf"), Some("x"));
        assert_eq!(form.get("bad"), Some("%zz%4"));
        assert_eq!(form.get("none"), None);
    }

    #[test]
    fn multipart_fields_and_files_are_read() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"org\"\r\n\r\nacme\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pem\"\r\nContent-Type: application/x-pem-file\r\n\r\nline1\r\nline2\r\n\r\n--XyZ--\r\n";
        let form = Form::parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(form.get("org"), Some("acme"));
        assert_eq!(form.get("file"), Some("line1\r\nline2\r\n"));
        assert!(Form::parse("multipart/form-data; boundary=Q", body).is_none());
        assert!(Form::parse("text/plain", body).is_none());
    }
}
