//! Which entry of Tyk's host-pattern maps applies to an upstream host: the rule shared by
//! upstream client certificates (`upstream_certificates`, reference §6.4) and pins
//! (`pinned_public_keys`, §6.5).
//!
//! Maps are consulted in order (global, then the API's); a match in a later map overrides any
//! match in an earlier one. Within a map the most specific pattern wins, from least to most
//! specific: `*`, `*.<rest of host>`, `*.<rest of host>:<port>`, `<host>`, `<host>:<port>`.
//! The port forms apply only when the target URL names a port. Patterns compare
//! case-insensitively.

use std::collections::HashMap;

/// An upstream host as the maps see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamHost {
    /// Lowercase host name or IP literal (IPv6 in brackets, as in the URL).
    pub(crate) host: String,
    /// The port, when the target URL names one.
    pub(crate) port: Option<u16>,
}

impl UpstreamHost {
    /// The host of an upstream URL.
    pub(crate) fn of(uri: &http::Uri) -> Self {
        Self {
            host: uri.host().unwrap_or_default().to_ascii_lowercase(),
            port: uri.port_u16(),
        }
    }

    /// `host` or `host:port`, for logs.
    pub(crate) fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// The patterns that match this host, least specific first.
    pub(crate) fn patterns(&self) -> Vec<String> {
        let mut patterns = vec!["*".to_owned()];
        if let Some((_, rest)) = self.host.split_once('.') {
            patterns.push(format!("*.{rest}"));
            if let Some(port) = self.port {
                patterns.push(format!("*.{rest}:{port}"));
            }
        }
        patterns.push(self.host.clone());
        if let Some(port) = self.port {
            patterns.push(format!("{}:{port}", self.host));
        }
        patterns
    }
}

/// The value `maps` give `host`, with the precedence described in the module docs; `None` when
/// no pattern of any map matches. An empty value is returned as is: it overrides earlier
/// matches with "nothing" (as in Tyk).
pub(crate) fn select<'a>(
    maps: &[&'a HashMap<String, String>],
    host: &UpstreamHost,
) -> Option<&'a str> {
    select_value(maps, host).map(String::as_str)
}

/// [`select`] over maps of any value.
pub(crate) fn select_value<'a, V>(
    maps: &[&'a HashMap<String, V>],
    host: &UpstreamHost,
) -> Option<&'a V> {
    let patterns = host.patterns();
    let mut chosen = None;
    for map in maps {
        if map.is_empty() {
            continue;
        }
        for pattern in &patterns {
            if let Some(value) = lookup(map, pattern) {
                chosen = Some(value);
            }
        }
    }
    chosen
}

fn lookup<'a, V>(map: &'a HashMap<String, V>, pattern: &str) -> Option<&'a V> {
    map.get(pattern).or_else(|| {
        map.iter()
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(pattern))
            .map(|(_, value)| value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> HashMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn host(host: &str, port: Option<u16>) -> UpstreamHost {
        UpstreamHost {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn most_specific_pattern_of_a_map_wins() {
        let all = map(&[
            ("*", "star"),
            ("*.example.com", "wild"),
            ("*.example.com:8443", "wild-port"),
            ("api.example.com", "exact"),
            ("api.example.com:8443", "exact-port"),
        ]);
        let with_port = host("api.example.com", Some(8443));
        assert_eq!(select(&[&all], &with_port), Some("exact-port"));
        assert_eq!(
            select(&[&all], &host("api.example.com", None)),
            Some("exact")
        );
        assert_eq!(
            select(&[&all], &host("other.example.com", Some(8443))),
            Some("wild-port")
        );
        assert_eq!(
            select(&[&all], &host("other.example.com", Some(9000))),
            Some("wild")
        );
        assert_eq!(select(&[&all], &host("elsewhere.org", None)), Some("star"));

        let no_port_rules = map(&[("*", "star"), ("api.example.com", "exact")]);
        assert_eq!(select(&[&no_port_rules], &with_port), Some("exact"));
        let wildcard_only = map(&[("*.example.com", "wild")]);
        assert_eq!(select(&[&wildcard_only], &with_port), Some("wild"));
        assert_eq!(
            select(&[&wildcard_only], &host("example.com", None)),
            None,
            "*.example.com does not cover example.com itself"
        );
        assert_eq!(
            select(&[&wildcard_only], &host("a.b.example.com", None)),
            None,
            "one label only"
        );
    }

    #[test]
    fn exact_host_with_port_beats_exact_host_without() {
        let m = map(&[("localhost", "bare"), ("localhost:8443", "ported")]);
        assert_eq!(
            select(&[&m], &host("localhost", Some(8443))),
            Some("ported")
        );
        assert_eq!(select(&[&m], &host("localhost", Some(9443))), Some("bare"));
        assert_eq!(select(&[&m], &host("localhost", None)), Some("bare"));
    }

    #[test]
    fn a_later_map_overrides_an_earlier_one_whatever_the_specificity() {
        let global = map(&[("api.example.com:8443", "global-exact")]);
        let api = map(&[("*", "api-star")]);
        let h = host("api.example.com", Some(8443));
        assert_eq!(select(&[&global, &api], &h), Some("api-star"));
        assert_eq!(select(&[&global], &h), Some("global-exact"));
        let api_other = map(&[("other.example.com", "api-other")]);
        assert_eq!(
            select(&[&global, &api_other], &h),
            Some("global-exact"),
            "an API map without a match leaves the global one"
        );
        let empty = HashMap::new();
        assert_eq!(select(&[&global, &empty], &h), Some("global-exact"));
        let api_empty_value = map(&[("*", "")]);
        assert_eq!(
            select(&[&global, &api_empty_value], &h),
            Some(""),
            "an empty value overrides with nothing"
        );
    }

    #[test]
    fn no_maps_means_nothing_and_patterns_ignore_case() {
        let h = host("api.example.com", None);
        assert_eq!(select(&[], &h), None, "disabled: no maps consulted");
        let m = map(&[("API.Example.COM", "exact")]);
        assert_eq!(select(&[&m], &h), Some("exact"));
        let uri: http::Uri = "https://API.example.com:8443/x".parse().unwrap_or_default();
        assert_eq!(UpstreamHost::of(&uri), host("api.example.com", Some(8443)));
        assert_eq!(
            host("a.example.com", Some(1)).patterns(),
            [
                "*",
                "*.example.com",
                "*.example.com:1",
                "a.example.com",
                "a.example.com:1"
            ]
        );
    }
}
