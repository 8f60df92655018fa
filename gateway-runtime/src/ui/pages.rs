//! The pages: overview, list, details, upload, delete, sign-in; their view models and
//! templates (`src/ui/templates`, checked at compile time by askama; HTML-escaped).

use std::sync::Arc;

use askama::Template;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};
use tls_core::{CertId, Metadata};

use super::api::{Answer, encode};
use super::chart::{self, Expiries};
use super::form::Form;
use super::index::{Search, Summary};
use super::{CertificateUi, GatewayView, Signed, events, html, redirect};
use crate::response::Body;

/// Rows per page of the list.
const PAGE_SIZE: usize = 50;
/// Certificates on the overview's attention list.
const ATTENTION: usize = 10;
/// The details API's fields in its own order (Tyk's `CertificateMeta`); others follow.
const DETAIL_ORDER: &[&str] = &[
    "id",
    "fingerprint",
    "has_private",
    "issuer",
    "subject",
    "not_before",
    "not_after",
    "dns_names",
    "is_ca",
];
/// SANs shown in a row before "+N more".
const ROW_SANS: usize = 3;

/// What every page of a signed-in operator carries.
pub(super) struct Layout {
    pub(super) base: String,
    pub(super) csrf: String,
    pub(super) nav: &'static str,
    pub(super) title: String,
}

/// One certificate in a table.
pub(super) struct Row {
    pub(super) id: String,
    pub(super) href: String,
    pub(super) subject: String,
    pub(super) sans: String,
    pub(super) issuer: String,
    pub(super) expiry_date: String,
    pub(super) relative: String,
    pub(super) status_class: &'static str,
    pub(super) status_label: &'static str,
    pub(super) has_private: bool,
    pub(super) api_count: usize,
    pub(super) problem: Option<String>,
}

/// An API that uses a certificate.
pub(super) struct UseRow {
    pub(super) api_id: String,
    pub(super) name: String,
    pub(super) listen_path: String,
    pub(super) domain: String,
    pub(super) role: String,
}

/// A recent expiry event.
pub(super) struct EventRow {
    pub(super) at: String,
    pub(super) name: &'static str,
    pub(super) message: String,
    pub(super) api_id: String,
    pub(super) role: &'static str,
}

/// One certificate of a chain.
pub(super) struct ChainRow {
    pub(super) subject: String,
    pub(super) issuer: String,
    pub(super) not_after: String,
    pub(super) fingerprint: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    base: &'a str,
    error: Option<String>,
    notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    l: Option<Layout>,
    base: &'a str,
    heading: &'a str,
    text: &'a str,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    l: Layout,
    ready: bool,
    total: usize,
    with_key: usize,
    expired: usize,
    expiring: usize,
    warning_days: i64,
    chart_svg: String,
    chart_text: String,
    attention: Vec<Row>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    l: Layout,
    rows: Vec<Row>,
    org: String,
    q: String,
    sort_expiry: bool,
    summary: String,
    first_href: Option<String>,
    next_href: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "details.html")]
struct DetailsPage {
    l: Layout,
    row: Row,
    notice: Option<String>,
    fields: Vec<(String, String)>,
    fingerprint: String,
    spki_pin: String,
    extra: Vec<(String, String)>,
    chain: Vec<ChainRow>,
    uses: Vec<UseRow>,
    events_kept: bool,
    events: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    l: Layout,
    org: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    l: Layout,
    row: Row,
    uses: Vec<UseRow>,
}

/// Renders `page`; a template that cannot render (it cannot, but the type allows it) is a
/// plain 500 without detail.
fn render(status: StatusCode, page: &impl Template) -> Response<Body> {
    match page.render() {
        Ok(text) => html(status, text),
        Err(e) => {
            tracing::error!(error = %e, "certificate page: a template failed to render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The page cannot be shown.</p>".into(),
            )
        }
    }
}

/// `2026-03-25 10:46 UTC`.
fn date(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn span(d: Duration) -> String {
    if d.whole_days() >= 1 {
        plural(d.whole_days(), "day")
    } else if d.whole_hours() >= 1 {
        plural(d.whole_hours(), "hour")
    } else {
        plural(d.whole_minutes().max(1), "minute")
    }
}

/// "in 12 days" / "expired 3 days ago".
pub(super) fn relative(not_after: OffsetDateTime, now: OffsetDateTime) -> String {
    let left = not_after - now;
    if left > Duration::ZERO {
        format!("in {}", span(left))
    } else {
        format!("expired {} ago", span(-left))
    }
}

/// The status class and label of a certificate.
fn status(
    not_after: Option<OffsetDateTime>,
    problem: bool,
    now: OffsetDateTime,
    warning: Duration,
) -> (&'static str, &'static str) {
    match not_after {
        _ if problem => ("problem", "Unreadable"),
        None => ("none", "No expiry"),
        Some(at) if at <= now => ("expired", "Expired"),
        Some(at) if at - now <= warning => ("expiring", "Expiring soon"),
        Some(_) => ("valid", "Valid"),
    }
}

/// A Go `time.Time` text from the API; `None` for Go's zero time.
fn go_time(text: Option<&str>) -> Option<OffsetDateTime> {
    text.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .filter(|t| t.year() > 1)
}

/// The `acme` field of the details (certgate's `AcmeRenewal`) in words: `renewed
/// automatically for NAME; next renewal DATE; 2 failures, last: ...`.
fn renewal_text(value: &Value) -> String {
    let name = value.get("name").and_then(Value::as_str).unwrap_or("?");
    let next = go_time(value.get("next_renewal").and_then(Value::as_str)).map_or_else(
        || "due now".to_owned(),
        |at| format!("next renewal {}", date(at)),
    );
    let failures = value.get("failures").and_then(Value::as_u64).unwrap_or(0);
    let mut out = format!("renewed automatically (ACME) for {name}; {next}");
    if failures > 0 {
        out.push_str(&format!("; {}", plural(failures as i64, "failure")));
    }
    if let Some(error) = value.get("last_error").and_then(Value::as_str) {
        out.push_str(&format!(", last: {error}"));
    }
    if value.get("local_only").and_then(Value::as_bool) == Some(true) {
        out.push_str(" (this gateway's own view: the fleet's record could not be read)");
    }
    out
}

/// A `pkix.Name` as the API gives it, written as `CN=…, O=…`.
fn dn(value: &Value) -> String {
    let Some(object) = value.as_object() else {
        return text(value);
    };
    let mut parts = Vec::new();
    if let Some(cn) = object.get("CommonName").and_then(Value::as_str)
        && !cn.is_empty()
    {
        parts.push(format!("CN={cn}"));
    }
    for (key, short) in [
        ("Organization", "O"),
        ("OrganizationalUnit", "OU"),
        ("Locality", "L"),
        ("Province", "ST"),
        ("Country", "C"),
    ] {
        if let Some(values) = object.get(key).and_then(Value::as_array) {
            for v in values.iter().filter_map(Value::as_str) {
                parts.push(format!("{short}={v}"));
            }
        }
    }
    if let Some(serial) = object.get("SerialNumber").and_then(Value::as_str)
        && !serial.is_empty()
    {
        parts.push(format!("SERIALNUMBER={serial}"));
    }
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(", ")
    }
}

/// A JSON value as plain text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Null => "none".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => dn(value),
        Value::Number(n) => n.to_string(),
    }
}

fn role_text(role: &str) -> String {
    match role {
        "server" => "server: served to clients".into(),
        "client" => "client allow-list: trusted for client certificates (mutual TLS)".into(),
        "upstream" => "upstream: presented to the upstream".into(),
        "pin" => "pinned upstream public key".into(),
        other => other.into(),
    }
}

impl CertificateUi {
    fn layout(&self, signed: &Signed, nav: &'static str, title: impl Into<String>) -> Layout {
        Layout {
            base: self.base.clone(),
            csrf: signed.session.csrf.clone(),
            nav,
            title: title.into(),
        }
    }

    fn details_href(&self, id: &str) -> String {
        format!("{}certs/{}", self.base, encode(id))
    }

    pub(super) fn sign_in_page(&self, error: Option<String>, status: StatusCode) -> Response<Body> {
        self.sign_in_page_with(error, None, status)
    }

    pub(super) fn sign_in_page_with(
        &self,
        error: Option<String>,
        notice: Option<&str>,
        status: StatusCode,
    ) -> Response<Body> {
        render(
            status,
            &SignInPage {
                base: &self.base,
                error,
                notice,
            },
        )
    }

    pub(super) fn message_page(
        &self,
        signed: Option<&Signed>,
        status: StatusCode,
        heading: &str,
        text: &str,
    ) -> Response<Body> {
        render(
            status,
            &MessagePage {
                l: signed.map(|s| self.layout(s, "", heading)),
                base: &self.base,
                heading,
                text,
            },
        )
    }

    fn row(&self, gateway: &GatewayView<'_>, summary: &Summary, now: OffsetDateTime) -> Row {
        let (status_class, status_label) = status(
            summary.not_after,
            summary.problem.is_some(),
            now,
            self.warning,
        );
        let mut sans = summary
            .sans
            .iter()
            .take(ROW_SANS)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if summary.sans.len() > ROW_SANS {
            sans.push_str(&format!(" +{} more", summary.sans.len() - ROW_SANS));
        }
        let api_count = summary
            .id
            .parse::<CertId>()
            .map_or(0, |id| gateway.store.apis_using(&id).len());
        Row {
            href: self.details_href(&summary.id),
            id: summary.id.clone(),
            subject: summary.subject_cn.clone(),
            sans,
            issuer: summary.issuer_cn.clone(),
            expiry_date: summary.not_after.map(date).unwrap_or_else(|| "—".into()),
            relative: summary
                .not_after
                .map(|at| relative(at, now))
                .unwrap_or_default(),
            status_class,
            status_label,
            has_private: summary.has_private,
            api_count,
            problem: summary.problem.clone(),
        }
    }

    /// A summary from an entry of the API's detailed listing.
    fn summary_of_basics(entry: &Value) -> Option<Summary> {
        let id = entry.get("id")?.as_str()?.to_owned();
        let org = id
            .parse::<CertId>()
            .map(|id| id.org().as_str().to_owned())
            .unwrap_or_default();
        Some(Summary {
            org,
            subject_cn: entry.get("subject_cn").map(text).unwrap_or_default(),
            issuer_cn: entry.get("issuer_cn").map(text).unwrap_or_default(),
            sans: entry
                .get("dns_names")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            not_after: go_time(entry.get("not_after").and_then(Value::as_str)),
            has_private: entry.get("has_private").and_then(Value::as_bool) == Some(true),
            problem: entry
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned),
            id,
        })
    }

    pub(super) async fn get(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        rest: &str,
        query: &Form,
    ) -> Response<Body> {
        match rest {
            "" => self.overview(gateway, signed),
            "certs" => self.list(gateway, signed, query).await,
            "upload" => render(
                StatusCode::OK,
                &UploadPage {
                    l: self.layout(signed, "upload", "Upload a certificate"),
                    org: query.get("org").unwrap_or("").to_owned(),
                    error: None,
                },
            ),
            "events" => events::stream(
                self.index.versions(),
                self.stop.clone(),
                signed.session.expires,
                Arc::clone(gateway.store.clock()),
            ),
            _ => match cert_path(rest) {
                Some((id, None)) => self.details(gateway, signed, &id, query).await,
                Some((id, Some("delete"))) => self.delete_page(gateway, signed, &id).await,
                _ => self.not_found(signed),
            },
        }
    }

    pub(super) async fn post(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        rest: &str,
        _query: &Form,
        form: &Form,
    ) -> Response<Body> {
        match rest {
            "signout" => self.sign_out(signed),
            "upload" => self.upload(gateway, signed, form).await,
            _ => match cert_path(rest) {
                Some((id, Some("delete"))) => self.delete(gateway, signed, &id).await,
                _ => self.not_found(signed),
            },
        }
    }

    fn not_found(&self, signed: &Signed) -> Response<Body> {
        self.message_page(
            Some(signed),
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such page.",
        )
    }

    fn overview(&self, gateway: &GatewayView<'_>, signed: &Signed) -> Response<Body> {
        let now = gateway.store.clock().now();
        let stats = self.index.stats(now, self.warning, chart::DAYS, ATTENTION);
        let attention = stats
            .attention
            .iter()
            .map(|entry| self.row(gateway, &entry.summary, now))
            .collect();
        let chart = Expiries {
            per_day: stats.per_day,
        };
        let warning_days = self.warning.whole_days();
        render(
            StatusCode::OK,
            &OverviewPage {
                l: self.layout(signed, "overview", "Overview"),
                ready: self.index.ready(),
                total: stats.total,
                with_key: stats.with_key,
                expired: stats.expired,
                expiring: stats.expiring,
                warning_days,
                chart_svg: chart.svg(warning_days),
                chart_text: match chart.total() {
                    1 => "1 certificate expires".to_owned(),
                    n => format!("{n} certificates expire"),
                },
                attention,
            },
        )
    }

    async fn list(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        query: &Form,
    ) -> Response<Body> {
        let now = gateway.store.clock().now();
        let org = query.get("org").unwrap_or("").trim().to_owned();
        let q = query.get("q").unwrap_or("").trim().to_owned();
        let sort_expiry = query.get("sort") == Some("expiry");
        let mut params = Vec::new();
        if !org.is_empty() {
            params.push(format!("org={}", encode(&org)));
        }
        if !q.is_empty() {
            params.push(format!("q={}", encode(&q)));
        }
        if sort_expiry {
            params.push("sort=expiry".into());
        }
        let href = |extra: Option<String>| {
            let mut all = params.clone();
            all.extend(extra);
            if all.is_empty() {
                format!("{}certs", self.base)
            } else {
                format!("{}certs?{}", self.base, all.join("&"))
            }
        };
        let notice = query
            .get("removed")
            .map(|id| format!("Certificate {id} was deleted."));
        let mut page = ListPage {
            l: self.layout(signed, "certs", "Certificates"),
            rows: Vec::new(),
            org: org.clone(),
            q: q.clone(),
            sort_expiry,
            summary: String::new(),
            first_href: None,
            next_href: None,
            notice,
            error: None,
        };
        let mut status_code = StatusCode::OK;
        if q.is_empty() && !sort_expiry {
            // The store's own order and cursors, through the API's listing.
            let cursor = query.get("cursor");
            let mut path = format!("/tyk/certs?mode=detailed&limit={PAGE_SIZE}");
            if !org.is_empty() {
                path.push_str(&format!("&org_id={}", encode(&org)));
            }
            if let Some(cursor) = cursor {
                path.push_str(&format!("&cursor={}", encode(cursor)));
            }
            let answer = self.call(gateway, Method::GET, &path, Bytes::new()).await;
            if answer.status == StatusCode::OK {
                page.rows = answer
                    .body
                    .get("certs")
                    .and_then(Value::as_array)
                    .map(|certs| {
                        certs
                            .iter()
                            .filter_map(Self::summary_of_basics)
                            .map(|s| self.row(gateway, &s, now))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(next) = answer.body.get("next").and_then(Value::as_str) {
                    page.next_href = Some(href(Some(format!("cursor={}", encode(next)))));
                }
                if cursor.is_some() {
                    page.first_href = Some(href(None));
                }
                if self.index.ready() {
                    let n = i64::try_from(self.index.count(&org)).unwrap_or(i64::MAX);
                    page.summary = format!("{} in the store", plural(n, "certificate"));
                }
            } else {
                status_code = answer.status;
                page.error = Some(answer.message());
            }
        } else {
            // Search and expiry order: the in-memory index, paged by offset.
            let offset = query
                .get("offset")
                .and_then(|o| o.parse::<usize>().ok())
                .unwrap_or(0);
            let needle = q.to_lowercase();
            let found = self.index.search(&Search {
                org: &org,
                needle: &needle,
                by_expiry: sort_expiry,
                offset,
                limit: PAGE_SIZE,
            });
            let total = found.total;
            page.rows = found
                .items
                .iter()
                .map(|entry| self.row(gateway, &entry.summary, now))
                .collect();
            if offset + PAGE_SIZE < total {
                page.next_href = Some(href(Some(format!("offset={}", offset + PAGE_SIZE))));
            }
            if offset > 0 {
                page.first_href = Some(href(None));
            }
            page.summary = if total == 0 {
                "No certificate matches.".into()
            } else {
                format!(
                    "{} {}, showing {}–{}",
                    total,
                    if total == 1 { "match" } else { "matches" },
                    (offset + 1).min(total),
                    (offset + PAGE_SIZE).min(total)
                )
            };
            if !self.index.ready() {
                page.summary.push_str(" (still reading the store)");
            }
        }
        render(status_code, &page)
    }

    /// The API's details of `id` (404 → its message), the metadata and the uses.
    async fn load(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        id: &str,
    ) -> Result<(Answer, Row, Option<Metadata>, Vec<UseRow>), Response<Body>> {
        let now = gateway.store.clock().now();
        let answer = self
            .call(
                gateway,
                Method::GET,
                &format!("/tyk/certs/{}", encode(id)),
                Bytes::new(),
            )
            .await;
        if answer.status != StatusCode::OK {
            return Err(self.message_page(
                Some(signed),
                answer.status,
                "Certificate not shown",
                &answer.message(),
            ));
        }
        let parsed = id.parse::<CertId>().ok();
        let meta = match &parsed {
            Some(cert_id) => gateway.store.details(cert_id).await.ok(),
            None => None,
        };
        let summary = match (&parsed, &meta) {
            (Some(cert_id), Some(meta)) => Summary::new(cert_id, Some(meta), None),
            _ => Summary {
                id: id.to_owned(),
                org: String::new(),
                subject_cn: answer.body.get("subject").map(dn).unwrap_or_default(),
                issuer_cn: answer.body.get("issuer").map(dn).unwrap_or_default(),
                sans: Vec::new(),
                not_after: go_time(answer.body.get("not_after").and_then(Value::as_str)),
                has_private: answer.body.get("has_private").and_then(Value::as_bool) == Some(true),
                problem: None,
            },
        };
        let row = self.row(gateway, &summary, now);
        let uses = self.uses(gateway, id).await;
        Ok((answer, row, meta, uses))
    }

    async fn uses(&self, gateway: &GatewayView<'_>, id: &str) -> Vec<UseRow> {
        let answer = self
            .call(
                gateway,
                Method::GET,
                &format!("/tyk/certs/{}/apis", encode(id)),
                Bytes::new(),
            )
            .await;
        let apis = gateway.apis.load();
        answer
            .body
            .get("apis")
            .and_then(Value::as_array)
            .map(|uses| {
                uses.iter()
                    .map(|u| {
                        let api_id = u
                            .get("api_id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        let role = role_text(u.get("role").and_then(Value::as_str).unwrap_or(""));
                        let route = apis.iter().find(|r| r.def.api_id == api_id);
                        let (name, listen_path, domain) = match route {
                            Some(r) => (
                                r.def.name.clone(),
                                r.def.proxy.listen_path.clone(),
                                r.def.domain.clone(),
                            ),
                            None if api_id == crate::config::SERVER_API_ID => (
                                "The gateway's own TLS (ssl_certificates)".into(),
                                "every path".into(),
                                String::new(),
                            ),
                            None => ("(not loaded)".into(), String::new(), String::new()),
                        };
                        UseRow {
                            api_id,
                            name,
                            listen_path,
                            domain,
                            role,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn details(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        id: &str,
        query: &Form,
    ) -> Response<Body> {
        let (answer, row, meta, uses) = match self.load(gateway, signed, id).await {
            Ok(loaded) => loaded,
            Err(response) => return response,
        };
        let fields = answer
            .body
            .as_object()
            .map(|object| {
                let mut entries: Vec<_> = object.iter().collect();
                entries.sort_by_key(|(key, _)| {
                    DETAIL_ORDER
                        .iter()
                        .position(|k| k == key)
                        .unwrap_or(DETAIL_ORDER.len())
                });
                entries
                    .into_iter()
                    .map(|(key, value)| {
                        let shown = match key.as_str() {
                            "issuer" | "subject" => dn(value),
                            "not_before" | "not_after" => {
                                go_time(value.as_str()).map_or_else(|| "none".into(), date)
                            }
                            "acme" => renewal_text(value),
                            _ => text(value),
                        };
                        (key.clone(), shown)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fingerprint = answer
            .body
            .get("fingerprint")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut extra = Vec::new();
        let mut chain = Vec::new();
        let mut spki_pin = String::new();
        if let Some(meta) = &meta {
            spki_pin = meta.spki_pin.to_hpkp();
            extra.push(("Serial number".to_owned(), meta.serial.clone()));
            extra.push(("Public key".to_owned(), meta.key.label()));
            if let Some(alg) = &meta.signature_algorithm {
                extra.push(("Signature algorithm".to_owned(), alg.clone()));
            }
            if !meta.ip_addresses.is_empty() {
                extra.push((
                    "IP addresses".to_owned(),
                    meta.ip_addresses
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
            extra.push((
                "Certificates in the chain".to_owned(),
                meta.chain_len.to_string(),
            ));
            if let Ok(cert_id) = id.parse::<CertId>()
                && let Ok(loaded) = gateway.store.get(&cert_id).await
            {
                for der in loaded.record().chain() {
                    if let Some(m) = Metadata::of_certificate_der(der) {
                        chain.push(ChainRow {
                            subject: m.subject.common_name.clone().unwrap_or_default(),
                            issuer: m.issuer.common_name.clone().unwrap_or_default(),
                            not_after: m.not_after.map(date).unwrap_or_default(),
                            fingerprint: m.fingerprint.to_hex(),
                        });
                    }
                }
            }
        }
        let events = match (&self.recent, &meta) {
            (Some(recent), Some(meta)) => recent
                .of(&meta.fingerprint)
                .into_iter()
                .map(|e| EventRow {
                    at: date(e.at),
                    name: e.name,
                    message: e.message,
                    api_id: e.api_id,
                    role: e.role,
                })
                .collect(),
            _ => Vec::new(),
        };
        let notice = query.get("added").map(|_| "Certificate added.".to_owned());
        render(
            StatusCode::OK,
            &DetailsPage {
                l: self.layout(signed, "certs", row.subject.clone()),
                row,
                notice,
                fields,
                fingerprint,
                spki_pin,
                extra,
                chain,
                uses,
                events_kept: self.recent.is_some(),
                events,
            },
        )
    }

    async fn delete_page(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        id: &str,
    ) -> Response<Body> {
        match self.load(gateway, signed, id).await {
            Ok((_, row, _, uses)) => render(
                StatusCode::OK,
                &DeletePage {
                    l: self.layout(signed, "certs", "Delete a certificate"),
                    row,
                    uses,
                },
            ),
            Err(response) => response,
        }
    }

    async fn delete(&self, gateway: &GatewayView<'_>, signed: &Signed, id: &str) -> Response<Body> {
        let answer = self
            .call(
                gateway,
                Method::DELETE,
                &format!("/tyk/certs/{}", encode(id)),
                Bytes::new(),
            )
            .await;
        if answer.status == StatusCode::OK {
            tracing::info!(id, "certificate removed through the certificate page");
            return redirect(&format!("{}certs?removed={}", self.base, encode(id)));
        }
        self.message_page(
            Some(signed),
            answer.status,
            "Not deleted",
            &answer.message(),
        )
    }

    async fn upload(
        &self,
        gateway: &GatewayView<'_>,
        signed: &Signed,
        form: &Form,
    ) -> Response<Body> {
        let org = form.get("org").unwrap_or("").trim().to_owned();
        let mut pem = String::new();
        for field in ["cert_file", "key_file", "pem"] {
            let part = form.get(field).unwrap_or("").trim();
            if !part.is_empty() {
                pem.push_str(part);
                pem.push('\n');
            }
        }
        let page = |status: StatusCode, error: String| {
            render(
                status,
                &UploadPage {
                    l: self.layout(signed, "upload", "Upload a certificate"),
                    org: org.clone(),
                    error: Some(error),
                },
            )
        };
        if pem.is_empty() {
            return page(
                StatusCode::BAD_REQUEST,
                "Choose a certificate file or paste PEM text; nothing was stored.".into(),
            );
        }
        let mut path = "/tyk/certs".to_owned();
        if !org.is_empty() {
            path.push_str(&format!("?org_id={}", encode(&org)));
        }
        let answer = self
            .call(gateway, Method::POST, &path, Bytes::from(pem))
            .await;
        match answer.body.get("id").and_then(Value::as_str) {
            Some(id) if answer.status == StatusCode::OK => {
                tracing::info!(id, "certificate added through the certificate page");
                redirect(&format!("{}?added=1", self.details_href(id)))
            }
            _ => page(answer.status, answer.message()),
        }
    }
}

/// `certs/{id}` or `certs/{id}/{action}`, with the ID percent-decoded.
fn cert_path(rest: &str) -> Option<(String, Option<&str>)> {
    let rest = rest.strip_prefix("certs/")?;
    let (raw, action) = match rest.split_once('/') {
        Some((raw, action)) => (raw, Some(action)),
        None => (rest, None),
    };
    if raw.is_empty() {
        return None;
    }
    let decoded = Form::urlencoded(&format!("id={}", raw.replace('+', "%2B")));
    Some((decoded.get("id")?.to_owned(), action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn relative_times_read_naturally() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(relative(now + Duration::days(12), now), "in 12 days");
        assert_eq!(relative(now + Duration::hours(25), now), "in 1 day");
        assert_eq!(relative(now + Duration::hours(3), now), "in 3 hours");
        assert_eq!(relative(now - Duration::days(3), now), "expired 3 days ago");
        assert_eq!(relative(now, now), "expired 1 minute ago");
    }

    #[test]
    fn statuses_follow_the_warning_window() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let w = Duration::days(30);
        assert_eq!(
            status(Some(now - Duration::days(1)), false, now, w).0,
            "expired"
        );
        assert_eq!(
            status(Some(now + Duration::days(30)), false, now, w).0,
            "expiring"
        );
        assert_eq!(
            status(Some(now + Duration::days(31)), false, now, w).0,
            "valid"
        );
        assert_eq!(status(None, false, now, w).0, "none");
        assert_eq!(status(None, true, now, w).0, "problem");
    }

    #[test]
    fn the_renewal_state_reads_as_a_sentence() {
        let state = serde_json::json!({"name": "api.example.com",
            "next_renewal": "2026-03-25T10:46:00Z", "failures": 0, "last_error": null});
        assert_eq!(
            renewal_text(&state),
            "renewed automatically (ACME) for api.example.com; next renewal 2026-03-25 10:46 UTC"
        );
        let state = serde_json::json!({"name": "api.example.com", "next_renewal": null,
            "failures": 2, "last_error": "the ACME CA could not validate api.example.com: ..."});
        assert_eq!(
            renewal_text(&state),
            "renewed automatically (ACME) for api.example.com; due now; 2 failures, last: the ACME CA could not validate api.example.com: ..."
        );
    }

    #[test]
    fn certificate_paths_decode_the_id() {
        assert_eq!(cert_path("certs/a%2Fb"), Some(("a/b".to_owned(), None)));
        assert_eq!(
            cert_path("certs/abc/delete"),
            Some(("abc".to_owned(), Some("delete")))
        );
        assert_eq!(cert_path("certs/a+b"), Some(("a+b".to_owned(), None)));
        assert_eq!(cert_path("certs/"), None);
        assert_eq!(cert_path("other"), None);
    }
}
