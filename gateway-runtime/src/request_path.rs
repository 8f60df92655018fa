//! Request path cleaning, before any routing (Tyk's default, `skip_url_cleaning: false`), and
//! [`prepare`], the step every request goes through first (ambiguous hosts refused, then the
//! path cleaned).
//!
//! A gateway that routes on one spelling of a path and forwards another lets the upstream
//! resolve what the gateway never judged: `/pub/x/../admin` routed to an open API at `/pub/`
//! and resolved by the upstream to `/pub/admin`, behind an mTLS API. So every request path is
//! first brought to one spelling, and that spelling is what the control API, the API table and
//! the proxy all see:
//!
//! - percent-escapes of RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
//!   (`/%61dmin` is `/admin`, `%2e%2e` is `..`); other escapes stay, with upper-case hex;
//! - repeated slashes become one, `.` segments go, `..` removes the segment before it;
//! - refused (400): an encoded slash or backslash (`%2F`, `%5C`: one segment to the gateway,
//!   two to many upstreams), a raw backslash, a NUL (raw or `%00`), a malformed escape, a `..`
//!   that would climb above the root, and a dot segment with parameters (`..;x`, which some
//!   servers read as `..`).
//!
//! A path that is already clean is returned borrowed after one scan: no allocation on the hot
//! path. Paths that do not start with `/` (`*`, an authority) match no listen path and are left
//! alone.

use std::borrow::Cow;

use http::uri::PathAndQuery;
use http::{Request, Uri};

/// Why a request path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathRefusal {
    /// `%2F`: a slash inside a segment.
    EncodedSlash,
    /// `%5C` or a raw `\`.
    Backslash,
    /// A NUL byte, raw or `%00`.
    Nul,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A `..` segment with nothing left to remove.
    AboveRoot,
    /// `.;...` or `..;...`.
    DotParams,
}

impl PathRefusal {
    /// The client message (never quotes the path).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::EncodedSlash => "invalid request path: encoded slashes (%2F) are not allowed",
            Self::Backslash => "invalid request path: backslashes are not allowed",
            Self::Nul => "invalid request path: NUL bytes are not allowed",
            Self::BadEscape => "invalid request path: malformed percent-escape",
            Self::AboveRoot => "invalid request path: a .. segment climbs above the root",
            Self::DotParams => "invalid request path: dot segments with parameters are not allowed",
        }
    }
}

/// The clean spelling of `path` (see the module docs): borrowed when nothing changes.
pub(crate) fn clean(path: &str) -> Result<Cow<'_, str>, PathRefusal> {
    if !path.starts_with('/') || is_clean(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let cleaned = remove_dot_segments(&decoded)?;
    Ok(if cleaned == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(cleaned)
    })
}

/// Cleans `uri`'s path in place (see [`clean`]), keeping its query as written. Allocates only
/// when the path changes.
pub(crate) fn clean_uri(uri: &mut Uri) -> Result<(), PathRefusal> {
    let cleaned = match clean(uri.path())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(cleaned) => cleaned,
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{cleaned}?{query}"),
        None => cleaned,
    };
    let mut parts = uri.clone().into_parts();
    // The cleaned path holds only characters the original had, plus decoded unreserved ones.
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|_| PathRefusal::BadEscape)?);
    *uri = Uri::from_parts(parts).map_err(|_| PathRefusal::BadEscape)?;
    Ok(())
}

/// One pass: true when `path` (starting with `/`) needs no change.
fn is_clean(path: &[u8]) -> bool {
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' | b'\\' | 0 => return false,
            b'/' => match path.get(i + 1) {
                Some(b'/') => return false,
                Some(b'.') => {
                    let rest = &path[i + 2..];
                    let rest = rest.strip_prefix(b".").unwrap_or(rest);
                    if matches!(rest.first(), None | Some(b'/' | b';')) {
                        return false;
                    }
                }
                _ => {}
            },
            _ => {}
        }
        i += 1;
    }
    true
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes escapes of unreserved characters; refuses the dangerous ones.
fn decode_unreserved(path: &str) -> Result<String, PathRefusal> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(high), Some(low)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathRefusal::BadEscape);
                };
                let value = high << 4 | low;
                match value {
                    b'/' => return Err(PathRefusal::EncodedSlash),
                    b'\\' => return Err(PathRefusal::Backslash),
                    0 => return Err(PathRefusal::Nul),
                    v if is_unreserved(v) => out.push(v),
                    _ => {
                        out.push(b'%');
                        out.push(bytes[i + 1].to_ascii_uppercase());
                        out.push(bytes[i + 2].to_ascii_uppercase());
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathRefusal::Backslash),
            0 => return Err(PathRefusal::Nul),
            other => out.push(other),
        }
        i += 1;
    }
    // Only ASCII sequences were replaced by ASCII: still UTF-8.
    String::from_utf8(out).map_err(|_| PathRefusal::BadEscape)
}

/// RFC 3986's `remove_dot_segments` for an absolute path, with empty segments dropped, a
/// trailing slash kept, and refusals instead of clamping at the root.
fn remove_dot_segments(path: &str) -> Result<String, PathRefusal> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" | "." => trailing_slash = last,
            ".." => {
                if kept.pop().is_none() {
                    return Err(PathRefusal::AboveRoot);
                }
                trailing_slash = last;
            }
            s if s.starts_with(".;") || s.starts_with("..;") => {
                return Err(PathRefusal::DotParams);
            }
            s => {
                kept.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// What every request goes through before routing: a request with an ambiguous host (two
/// `Host` headers, or a `Host` that names another host than the URI's authority or HTTP/2's
/// `:authority`) is refused, and the path is cleaned ([`clean_uri`])
/// unless `skip_url_cleaning` is set. The control API, the API table and the proxy then all see
/// the same path. `Err` is the message of the 400 to send.
pub(crate) fn prepare<B>(
    req: &mut Request<B>,
    skip_url_cleaning: bool,
) -> Result<(), &'static str> {
    if ambiguous_host(req) {
        return Err("ambiguous request: more than one host given");
    }
    if !skip_url_cleaning {
        clean_uri(req.uri_mut()).map_err(PathRefusal::message)?;
    }
    Ok(())
}

/// Two `Host` headers, or a `Host` header and a URI authority (absolute form, or HTTP/2's
/// `:authority`) that name different hosts.
fn ambiguous_host<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return true;
    }
    let (Some(header), Some(authority)) = (first, req.uri().authority()) else {
        return false;
    };
    let Ok(header) = header.to_str() else {
        return true;
    };
    let authority = authority.as_str();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    !bare_host(header).eq_ignore_ascii_case(bare_host(authority))
}

/// `host` without its port (and IPv6 brackets).
pub(crate) fn bare_host(raw: &str) -> &str {
    if let Some(bracketed) = raw.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    }
}

/// What the gateway does with a request, up to the upstream request (for the property test
/// and the fuzz target: the production steps of the listener, in its order).
#[cfg(any(test, feature = "internals"))]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Routed {
    /// Refused before routing (by the HTTP parser or [`prepare`]).
    Refused,
    /// Answered by the control API, on this path.
    Control(String),
    /// No API matches.
    Unrouted,
    /// Proxied: the API, the path it was routed on, and the upstream request's path and query.
    Api {
        /// The API's ID.
        api_id: String,
        /// The path routing compared with listen paths.
        routed: String,
        /// What the upstream is sent.
        upstream: String,
    },
}

/// Routes `GET target` with `Host: host` through `apis` as the listener does.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn route_request(
    apis: &crate::api::ApiTable,
    host: &str,
    target: &str,
    skip_url_cleaning: bool,
) -> Routed {
    let Ok(mut request) = Request::builder()
        .uri(target)
        .header(http::header::HOST, host)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
    else {
        return Routed::Refused;
    };
    if prepare(&mut request, skip_url_cleaning).is_err() {
        return Routed::Refused;
    }
    let path = request.uri().path().to_owned();
    if crate::control::is_control_path(&path) {
        return Routed::Control(path);
    }
    let Some(route) = apis.route(Some(host), &path) else {
        return Routed::Unrouted;
    };
    let client = crate::mtls::ClientInfo::new(([127, 0, 0, 1], 1).into(), true, None);
    match crate::proxy::upstream_request(route, request, &client) {
        Ok(upstream) => Routed::Api {
            api_id: route.def.api_id.clone(),
            routed: path,
            upstream: upstream
                .uri()
                .path_and_query()
                .map_or_else(String::new, |pq| pq.as_str().to_owned()),
        },
        Err(_) => Routed::Refused,
    }
}

/// How a lenient upstream reads a path: every escape decoded, `\\` as `/`, `;params` cut from
/// dot segments, dot segments resolved, repeated slashes merged. `None` when a `..` climbs
/// above the root.
#[cfg(any(test, feature = "internals"))]
fn lenient(path: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    let mut segments = decoded.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        let bare = segment.split(';').next().unwrap_or_default();
        if segment.is_empty() || bare == "." {
            trailing = last;
        } else if bare == ".." {
            kept.pop()?;
            trailing = last;
        } else {
            kept.push(segment);
            trailing = false;
        }
    }
    let mut out: String = kept.iter().flat_map(|s| ["/", s]).collect();
    if trailing || kept.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The invariant of path handling, for `GET target` with `Host: host`: a request is refused,
/// or the API chosen and the path sent upstream agree about which listen path contains it
/// (read as a lenient upstream reads it), and the control API sees a path that no further
/// reading changes. With `skip_url_cleaning`, the upstream gets exactly the path routed.
/// Returns what happened, or what broke the invariant.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn check_invariant(
    apis: &crate::api::ApiTable,
    host: &str,
    target: &str,
    skip_url_cleaning: bool,
) -> Result<Routed, String> {
    let routed = route_request(apis, host, target, skip_url_cleaning);
    match &routed {
        Routed::Refused | Routed::Unrouted => {}
        Routed::Control(path) if !skip_url_cleaning => {
            if clean(path).map_err(|e| format!("{e:?}"))? != path.as_str() {
                return Err(format!(
                    "{target}: the control API got an unclean path {path}"
                ));
            }
        }
        Routed::Control(_) => {}
        Routed::Api {
            api_id,
            routed: path,
            upstream,
        } => {
            let route = apis
                .route(Some(host), path)
                .ok_or_else(|| format!("{target}: routed on {path}, which routes nowhere"))?;
            let proxy = &route.def.proxy;
            let sent = upstream.split('?').next().unwrap_or_default();
            let query_sent = upstream.split_once('?').map(|(_, q)| q);
            let asked: Uri = target
                .parse()
                .map_err(|_| format!("{target}: routed, but not a URI"))?;
            let query_asked = asked.query();
            if query_sent != query_asked.filter(|q| !q.is_empty()) {
                return Err(format!(
                    "{target}: query {query_asked:?} sent as {query_sent:?}"
                ));
            }
            if skip_url_cleaning {
                let expected = if proxy.strip_listen_path {
                    crate::proxy::strip_listen_path(path, &proxy.listen_path).into_owned()
                } else {
                    path.clone()
                };
                if sent != expected {
                    return Err(format!("{target}: raw mode routed {path} but sent {sent}"));
                }
                return Ok(routed);
            }
            let seen = lenient(sent)
                .ok_or_else(|| format!("{target}: upstream path {sent} climbs above the root"))?;
            // As the upstream sees it, the request is at `seen` (or, when the listen path is
            // stripped, at `seen` under the listen path).
            let full = if proxy.strip_listen_path {
                let base = proxy.listen_path.trim_end_matches('/');
                format!("{base}{seen}")
            } else {
                seen
            };
            let again = apis.route(Some(host), &full).map(|r| r.def.api_id.as_str());
            if again != Some(api_id.as_str()) {
                return Err(format!(
                    "{target}: routed to {api_id} on {path}, but the upstream gets {sent}, which is {again:?}'s"
                ));
            }
        }
    }
    Ok(routed)
}

#[cfg(test)]
mod tests;
