use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::api::ApiTable;
use crate::config::ApiDefinition;

fn api(id: &str, listen_path: &str, strip: bool) -> ApiDefinition {
    let json = serde_json::json!({
        "api_id": id,
        "proxy": {
            "listen_path": listen_path,
            "target_url": "http://127.0.0.1:1",
            "strip_listen_path": strip,
        },
    });
    ApiDefinition::from_json(&json.to_string(), Path::new("test.json")).unwrap()
}

/// The attack's layout (an open API at `/pub/`, an mTLS one at `/pub/admin/`), plus stripped
/// listen paths and a listen path without a trailing slash.
fn table() -> ApiTable {
    ApiTable::new(vec![
        api("open", "/pub/", false),
        api("admin", "/pub/admin/", false),
        api("strip", "/strip/", true),
        api("strip-inner", "/strip/inner/", true),
        api("bare", "/bare", false),
    ])
}

#[test]
fn clean_paths_are_borrowed() {
    for path in [
        "/",
        "/pub/admin/secret",
        "/a/b/",
        "/a.b/.c/..d/c..",
        "/x;y/z",
        "*",
        "",
    ] {
        assert!(
            matches!(clean(path), Ok(Cow::Borrowed(p)) if p == path),
            "{path}"
        );
    }
}

#[test]
fn paths_are_cleaned_as_documented() {
    for (path, expected) in [
        ("/pub/x/../admin/secret", "/pub/admin/secret"),
        ("//admin", "/admin"),
        ("/pub//admin", "/pub/admin"),
        ("/./admin", "/admin"),
        ("/pub/%61dmin", "/pub/admin"),
        ("/pub/%2e%2E/x", "/x"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a/b/../..", "/"),
        ("/a//", "/a/"),
        ("/%7e%7E%2d%5f", "/~~-_"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b/%3f", "/a%20b/%3F"),
        ("/open/../tyk/certs", "/tyk/certs"),
    ] {
        assert_eq!(clean(path).as_deref(), Ok(expected), "{path}");
    }
}

#[test]
fn dangerous_paths_are_refused() {
    for (path, refusal) in [
        ("/pub/admin%2fsecret", PathRefusal::EncodedSlash),
        ("/pub/admin%2Fsecret", PathRefusal::EncodedSlash),
        ("/pub/..%5cadmin", PathRefusal::Backslash),
        ("/pub/..\\admin", PathRefusal::Backslash),
        ("/pub/a%00", PathRefusal::Nul),
        ("/pub/a\0", PathRefusal::Nul),
        ("/pub/%zz", PathRefusal::BadEscape),
        ("/pub/%4", PathRefusal::BadEscape),
        ("/..", PathRefusal::AboveRoot),
        ("/a/../../b", PathRefusal::AboveRoot),
        ("/%2e%2e/etc", PathRefusal::AboveRoot),
        ("/pub/x/..;/admin", PathRefusal::DotParams),
        ("/pub/.;x/admin", PathRefusal::DotParams),
    ] {
        assert_eq!(clean(path), Err(refusal), "{path}");
    }
}

#[test]
fn the_uri_keeps_its_query_and_authority() {
    let mut uri: Uri = "https://h.example:8443/pub/x/../admin?a=%2e%2e/../&b"
        .parse()
        .unwrap();
    clean_uri(&mut uri).unwrap();
    assert_eq!(
        uri.to_string(),
        "https://h.example:8443/pub/admin?a=%2e%2e/../&b"
    );
}

#[test]
fn the_attack_forms_never_reach_the_admin_api_through_the_open_one() {
    let apis = table();
    for target in [
        "/pub/x/../admin/secret",
        "/pub//admin/secret",
        "/pub/./admin/secret",
        "/pub/%61dmin/secret",
        "/pub/admin%2fsecret",
        "/pub/x/..;/admin/secret",
        "/pub/x/%2e%2e/admin/secret",
    ] {
        let routed = check_invariant(&apis, "gw.example", target, false).unwrap();
        match routed {
            Routed::Refused => {}
            Routed::Api {
                api_id, upstream, ..
            } => {
                assert_eq!(api_id, "admin", "{target}");
                assert_eq!(upstream, "/pub/admin/secret", "{target}");
            }
            other => panic!("{target}: {other:?}"),
        }
    }
    assert_eq!(
        route_request(&apis, "gw.example", "/pub/admin%2fsecret", false),
        Routed::Refused
    );
    assert_eq!(
        route_request(&apis, "gw.example", "/pub/open/../../tyk/certs?x=1", false),
        Routed::Control("/tyk/certs".into()),
        "the control API sees the cleaned path, and its own authentication applies"
    );
    assert_eq!(
        route_request(&apis, "gw.example", "/pub/open/../../tyk/acme", false),
        Routed::Control("/tyk/acme".into()),
        "certgate's ACME status is under the control API's own prefix"
    );
    assert_eq!(
        route_request(&apis, "gw.example", "/strip/a/./b//c?q=/../", false),
        Routed::Api {
            api_id: "strip".into(),
            routed: "/strip/a/b/c".into(),
            upstream: "/a/b/c?q=/../".into(),
        }
    );
}

#[test]
fn raw_mode_routes_and_forwards_the_same_raw_path() {
    let apis = table();
    assert_eq!(
        route_request(&apis, "gw.example", "/pub/x/../admin/secret", true),
        Routed::Api {
            api_id: "open".into(),
            routed: "/pub/x/../admin/secret".into(),
            upstream: "/pub/x/../admin/secret".into(),
        }
    );
    assert_eq!(
        route_request(&apis, "gw.example", "/pub/a%2fb", true),
        Routed::Api {
            api_id: "open".into(),
            routed: "/pub/a%2fb".into(),
            upstream: "/pub/a%2fb".into(),
        }
    );
}

#[test]
fn ambiguous_hosts_are_refused() {
    let mut twice = Request::builder()
        .uri("/pub/")
        .header("host", "a.example")
        .header("host", "b.example")
        .body(())
        .unwrap();
    assert!(prepare(&mut twice, false).is_err());
    let mut conflicting = Request::builder()
        .uri("https://a.example/pub/")
        .header("host", "b.example")
        .body(())
        .unwrap();
    assert!(prepare(&mut conflicting, true).is_err());
    let mut agreeing = Request::builder()
        .uri("https://A.example:443/pub/")
        .header("host", "a.example")
        .body(())
        .unwrap();
    assert!(prepare(&mut agreeing, false).is_ok());
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(String::new()),
        Just("%2e".to_owned()),
        Just("%2E%2e".to_owned()),
        Just("%2f".to_owned()),
        Just("%2F".to_owned()),
        Just("%5c".to_owned()),
        Just("%61".to_owned()),
        Just("%61dmin".to_owned()),
        Just("%00".to_owned()),
        Just("..;".to_owned()),
        Just("a;b".to_owned()),
        Just("%".to_owned()),
        Just("%c3%a9".to_owned()),
        Just("é".to_owned()),
        Just("pub".to_owned()),
        Just("admin".to_owned()),
        Just("strip".to_owned()),
        Just("inner".to_owned()),
        Just("bare".to_owned()),
        Just("tyk".to_owned()),
        Just("certs".to_owned()),
        "[a-z0-9~_.%-]{1,4}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn the_api_chosen_and_the_upstream_path_agree(
        segments in proptest::collection::vec(segment(), 0..8),
        query in proptest::option::of("[a-z%./=&]{0,8}"),
        raw in any::<bool>(),
    ) {
        let mut target = format!("/{}", segments.join("/"));
        if let Some(query) = query {
            target.push('?');
            target.push_str(&query);
        }
        let apis = table();
        if let Err(broken) = check_invariant(&apis, "gw.example", &target, raw) {
            return Err(TestCaseError::fail(broken));
        }
    }

    #[test]
    fn cleaning_is_idempotent(segments in proptest::collection::vec(segment(), 0..8)) {
        let path = format!("/{}", segments.join("/"));
        if let Ok(once) = clean(&path) {
            let twice = clean(&once);
            prop_assert!(matches!(twice, Ok(Cow::Borrowed(_))), "{path} -> {once} -> {twice:?}");
        }
    }
}
