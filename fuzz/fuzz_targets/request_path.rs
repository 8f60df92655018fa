//! Request paths through the gateway's path handling and routing (`gateway-runtime`'s
//! `internals` feature: the listener's own code), checking the invariant that closes the
//! mutual-TLS bypass of issue 12: a request is refused (400), or the API chosen and the path
//! sent upstream agree about which listen path contains it, read as a lenient upstream reads
//! it (every escape decoded, `\` as `/`, dot segments resolved, `;params` cut from them).
//!
//! The input is the request target (lossy UTF-8); a leading `\x01` byte turns on
//! `skip_url_cleaning`, where the invariant is that the upstream gets exactly the path routed.
//! The APIs are the attack's layout (an open API at `/pub/`, an mTLS one at `/pub/admin/`),
//! stripped listen paths, a listen path without a trailing slash and a domain-bound API.
#![no_main]

use std::sync::LazyLock;

use gateway_runtime::ApiDefinition;
use gateway_runtime::internals::PathRouter;
use libfuzzer_sys::fuzz_target;

const HOST: &str = "gw.example";

fn api(id: &str, domain: &str, listen_path: &str, strip: bool) -> ApiDefinition {
    let json = serde_json::json!({
        "api_id": id,
        "domain": domain,
        "proxy": {
            "listen_path": listen_path,
            "target_url": "http://127.0.0.1:1",
            "strip_listen_path": strip,
        },
    });
    ApiDefinition::from_json(&json.to_string(), std::path::Path::new("fuzz.json"))
        .expect("a valid API definition")
}

static ROUTER: LazyLock<PathRouter> = LazyLock::new(|| {
    PathRouter::new(vec![
        api("open", "", "/pub/", false),
        api("admin", "", "/pub/admin/", false),
        api("strip", "", "/strip/", true),
        api("strip-inner", "", "/strip/inner/", true),
        api("bare", "", "/bare", false),
        api("hosted", HOST, "/pub/hosted/", false),
    ])
});

fuzz_target!(|data: &[u8]| {
    let (raw, target) = match data.split_first() {
        Some((1, rest)) => (true, rest),
        _ => (false, data),
    };
    let target = String::from_utf8_lossy(target);
    if let Err(broken) = ROUTER.check(HOST, &target, raw) {
        panic!("path invariant broken: {broken}");
    }
});
