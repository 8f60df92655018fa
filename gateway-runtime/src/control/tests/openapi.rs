//! `docs/control-api.openapi.json` stays true: every route served is documented, every
//! documented route is served, and every answer the handler tests see has a documented status
//! and a body that matches the documented schema.

use std::collections::BTreeSet;

use http::Method;
use serde_json::Value;

use super::{Answer, ROUTES, served};

const DOCUMENT: &str = include_str!("../../../../docs/control-api.openapi.json");

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/control-api.openapi.json is JSON")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every (METHOD, path) the document describes.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let doc = document();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let documented = documented_routes(&doc);
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
}

#[test]
fn the_document_is_openapi_3_with_the_secret_header_and_resolvable_references() {
    let doc = document();
    assert!(doc["openapi"].as_str().expect("openapi").starts_with("3."));
    let scheme = &doc["components"]["securitySchemes"]["tykAuth"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-Tyk-Authorization");
    assert_eq!(doc["security"][0]["tykAuth"], Value::Array(Vec::new()));
    assert_eq!(
        doc["paths"]["/hello"]["get"]["security"],
        Value::Array(Vec::new()),
        "/hello needs no secret"
    );
    // Every $ref resolves, and every operation documents 403 unless it is open.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        assert!(resolve(&doc, &r).is_some(), "{r} does not resolve");
    }
    for (method, path) in documented_routes(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let open = op["security"] == Value::Array(Vec::new());
        assert_eq!(
            op["responses"].get("403").is_some(),
            !open,
            "{method} {path}: 403 documented iff the secret is needed"
        );
        assert!(op["summary"].is_string(), "{method} {path} has a summary");
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Follows `$ref`s.
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => value = resolve(doc, r).unwrap_or(&Value::Null),
            None => break,
        }
    }
    value
}

/// Checks an answer against the document when the router serves its route and method: the
/// status is documented for the operation, and a JSON body matches its schema.
pub(super) fn check_documented(method: &Method, path: &str, answer: &Answer) {
    let Some(template) = served(method, path) else {
        return;
    };
    let doc = document();
    let op = &doc["paths"][template][method.as_str().to_lowercase()];
    let status = answer.status.as_str();
    let Some(response) = op["responses"].get(status) else {
        panic!(
            "{method} {template} answered {status}, which the OpenAPI document does not list: {}",
            answer.text
        );
    };
    let response = deref(&doc, response);
    let content = &response["content"];
    if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
        assert_eq!(answer.content_type, "application/json", "{method} {path}");
        assert!(answer.text.ends_with("}\n") || answer.text.ends_with("]\n"));
        if let Err(e) = validate(&doc, schema, &answer.json, "$") {
            panic!(
                "{method} {path} {status}: the body does not match the documented schema: {e}\n{}",
                answer.text
            );
        }
    } else {
        assert!(
            content.get("text/plain").is_some(),
            "{method} {template} {status} documents no content"
        );
        assert!(answer.content_type.starts_with("text/plain"));
    }
}

/// A small validator for the OpenAPI 3.0 schema subset the document uses.
pub(super) fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = deref(doc, schema);
    if value.is_null() && schema["nullable"] == Value::Bool(true) {
        return Ok(());
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, value, at)?;
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let errors: Vec<String> = any
            .iter()
            .filter_map(|s| validate(doc, s, value, at).err())
            .collect();
        if errors.len() == any.len() {
            return Err(format!(
                "{at}: matches none of anyOf: {}",
                errors.join("; ")
            ));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    let Some(kind) = schema.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let fits = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => return Err(format!("{at}: the validator does not know type {other}")),
    };
    if !fits {
        return Err(format!("{at}: expected {kind}, got {value}"));
    }
    if let (Some(pattern), Some(text)) = (schema["pattern"].as_str(), value.as_str())
        && pattern == "^[0-9a-f]{64}$"
        && !(text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(format!("{at}: {text:?} is not 64 lowercase hex characters"));
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: the required field {name} is missing"));
            }
        }
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => validate(doc, property, field, &format!("{at}.{name}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}: the field {name} is not documented"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[test]
fn the_validator_catches_drift() {
    let doc = document();
    let schema = serde_json::json!({"$ref": "#/components/schemas/CertificateBasics"});
    let good = serde_json::json!({"id": "x", "issuer_cn": "", "subject_cn": "", "dns_names": null,
        "has_private": false, "not_before": "0001-01-01T00:00:00Z", "not_after": "0001-01-01T00:00:00Z", "is_ca": false});
    validate(&doc, &schema, &good, "$").unwrap();
    let mut extra = good.clone();
    extra["surprise"] = Value::Bool(true);
    assert!(validate(&doc, &schema, &extra, "$").is_err());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("is_ca");
    assert!(validate(&doc, &schema, &missing, "$").is_err());
    let mut wrong = good;
    wrong["has_private"] = Value::from("yes");
    assert!(validate(&doc, &schema, &wrong, "$").is_err());
}
