//! The `/tyk/certs` handlers: add, list, get, delete, and which APIs use a certificate.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use cert_store::{
    Cursor, Listed, Page, PageRequest, PageWalk, StorageError, StorageErrorKind, StoreError,
};
use http::{HeaderMap, Response, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use time::Duration;
use tls_core::{CertId, OrgId};

use super::ControlApi;
use super::query::{Query, percent_decode};
use super::shapes::{
    ApiUses, CertificateBasics, CertificateMeta, CertificateStatus, DetailedList, IdList,
};
use crate::response::{Body, BoxError, error, ok, respond};

/// Tyk's answer for a certificate that is not there (or an `{id}` that is no certificate ID).
pub(crate) const NOT_FOUND: &str = "Certificate with given SHA256 fingerprint not found";

/// Page size when reading a whole listing.
const PAGE: usize = 1000;
/// Largest `limit` a client may ask for.
pub(crate) const MAX_LIMIT: usize = 10_000;
/// Guards against a backend whose cursors never end.
const MAX_PAGES: usize = 100_000;
/// Largest `expiring_within_days` (100 years).
pub(crate) const MAX_WITHIN_DAYS: i64 = 36_500;

/// What a listing asks for.
struct ListRequest {
    org: Option<OrgId>,
    detailed: bool,
    sort_by_expiry: bool,
    within_days: Option<i64>,
    /// One page (`limit`/`cursor` given) or everything.
    page: Option<PageRequest>,
}

impl ListRequest {
    fn parse(query: &Query) -> Result<Self, String> {
        let org = org_param(query)?;
        let sort_by_expiry = match query.get("sort") {
            None => false,
            Some("not_after") => true,
            Some(other) => {
                return Err(format!(
                    "sort={other:?} is not supported; the only sort is not_after"
                ));
            }
        };
        let within_days = query
            .get("expiring_within_days")
            .map(|text| {
                text.parse::<i64>()
                    .ok()
                    .filter(|n| (0..=MAX_WITHIN_DAYS).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "expiring_within_days={text:?} must be a whole number of days from 0 to {MAX_WITHIN_DAYS}"
                        )
                    })
            })
            .transpose()?;
        let limit = query
            .get("limit")
            .map(|text| {
                text.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit={text:?} must be a number from 1 to {MAX_LIMIT}"))
            })
            .transpose()?;
        let cursor = query.get("cursor").map(Cursor::new);
        let page = match (limit, cursor) {
            (None, None) => None,
            (limit, cursor) => Some(PageRequest {
                cursor,
                limit: limit.unwrap_or(PAGE),
            }),
        };
        Ok(Self {
            org,
            detailed: query.get("mode") == Some("detailed"),
            sort_by_expiry,
            within_days,
            page,
        })
    }
}

/// `org_id`: absent or empty means none; otherwise it must be a valid org ID.
fn org_param(query: &Query) -> Result<Option<OrgId>, String> {
    query
        .get("org_id")
        .map(|org| OrgId::new(org).map_err(|e| e.to_string()))
        .transpose()
}

/// An `{id}` path segment as a certificate ID: percent-decoded, then parsed. Anything else,
/// file paths included, is no ID at all.
fn parse_id(raw: &str) -> Option<CertId> {
    percent_decode(raw, false)?.parse().ok()
}

/// The answer to a storage failure: 503 when retrying can help, 500 otherwise. In plain words:
/// the details (addresses, OS errors, script hashes) go to the log only.
fn storage_failure(e: &StorageError) -> Response<Body> {
    tracing::warn!(error = %e, "control API: the certificate storage failed");
    let (status, message) = match e.kind() {
        StorageErrorKind::Timeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            "certificate storage did not answer in time; try again",
        ),
        StorageErrorKind::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "certificate storage is unavailable; try again",
        ),
        StorageErrorKind::Rejected => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "certificate storage refused the operation (out of memory, read-only or not permitted); see the gateway log",
        ),
        StorageErrorKind::Corrupt => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "certificate storage holds data this gateway cannot read; see the gateway log",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "certificate storage failed; see the gateway log",
        ),
    };
    error(status, message)
}

/// [`storage_failure`] of an add. When retrying can help, the write may still have been
/// applied (a timed-out command can run later): the answer says so, and that retrying the
/// same upload is safe (an identical add answers 200 with the same ID).
fn add_failure(e: &StorageError) -> Response<Body> {
    if !e.is_temporary() {
        return storage_failure(e);
    }
    tracing::warn!(error = %e, "control API: the certificate storage failed during an add");
    let what = match e.kind() {
        StorageErrorKind::Timeout => "did not answer in time",
        _ => "is unavailable",
    };
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "certificate storage {what}: the outcome is unknown (the certificate may have been stored); retrying the same upload is safe"
        ),
    )
}

/// Why a request body could not be read.
enum BodyError {
    TooLarge,
    Malformed,
    /// The client stopped sending before the whole body arrived.
    TimedOut,
}

async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(BodyError::TooLarge);
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| BodyError::TimedOut)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Malformed),
    }
}

/// The problem of a detailed-listing entry, without the ID the entry already shows.
fn problem_text(problem: &StoreError) -> String {
    match problem {
        StoreError::Record { source, .. } => format!("the record cannot be read: {source}"),
        StoreError::Key { source, .. } => format!("the private key cannot be used: {source}"),
        other => other.to_string(),
    }
}

/// One page of a listing, being fetched.
type Listing<'a, T> = Pin<Box<dyn Future<Output = Result<Page<T>, StoreError>> + Send + 'a>>;

/// The page `request` names, or every page (at most [`MAX_PAGES`]) as one.
async fn one_or_every_page<'a, T>(
    request: &ListRequest,
    list: impl Fn(PageRequest) -> Listing<'a, T>,
) -> Result<Page<T>, Response<Body>> {
    if let Some(page) = &request.page {
        return list(page.clone()).await.map_err(|e| list_failure(&e, page));
    }
    let mut items = Vec::new();
    let mut walk = PageWalk::new(PAGE).at_most(MAX_PAGES);
    while let Some(page) = walk.request() {
        let listed = list(page.clone())
            .await
            .map_err(|e| list_failure(&e, page))?;
        items.extend(walk.advance(listed));
    }
    Ok(Page { items, next: None })
}

/// A listing failed: a cursor the client sent that the storage refuses is the client's
/// mistake (400); anything else is the storage's.
fn list_failure(e: &StoreError, page: &PageRequest) -> Response<Body> {
    match e {
        StoreError::Storage(e) if e.is_temporary() => storage_failure(e),
        StoreError::Storage(e) if page.cursor.is_some() => {
            tracing::debug!(error = %e, "control API: a listing cursor was refused");
            error(
                StatusCode::BAD_REQUEST,
                "the cursor is not one this listing issued",
            )
        }
        StoreError::Storage(e) => storage_failure(e),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

impl ControlApi {
    /// `POST /tyk/certs[/{anything}][?org_id=]` with a raw PEM body.
    pub(super) async fn add<B>(&self, query: &Query, headers: &HeaderMap, body: B) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let org = match org_param(query) {
            Ok(org) => org.unwrap_or_default(),
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        let limit = self.config.max_request_body_bytes;
        let timeout = std::time::Duration::from_secs(self.config.request_read_timeout_seconds);
        let bytes = match read_body(headers, body, limit, timeout).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than {limit} bytes (max_request_body_bytes)"
                    ),
                );
            }
            Err(BodyError::Malformed) => {
                return error(StatusCode::METHOD_NOT_ALLOWED, "Malformed request body");
            }
            Err(BodyError::TimedOut) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time (request_read_timeout_seconds)",
                );
            }
        };
        // Bytes that are not UTF-8 cannot be PEM; the parser says so.
        let pem = String::from_utf8_lossy(&bytes);
        match self.store.add(&pem, &org).await {
            Ok(id) => {
                tracing::info!(%id, "certificate added through the control API");
                respond(
                    StatusCode::OK,
                    &CertificateStatus {
                        id: id.to_string(),
                        status: "ok",
                        message: "Certificate added",
                    },
                )
            }
            Err(StoreError::Storage(e)) => add_failure(&e),
            // Tyk answers every refused upload with 403 and the reason.
            Err(e) => error(StatusCode::FORBIDDEN, e.to_string()),
        }
    }

    /// `GET /tyk/certs[?org_id=][&mode=detailed][&sort=not_after][&expiring_within_days=N]
    /// [&limit=N][&cursor=C]`.
    pub(super) async fn list(&self, query: &Query) -> Response<Body> {
        let request = match ListRequest::parse(query) {
            Ok(request) => request,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        let needs_details =
            request.detailed || request.sort_by_expiry || request.within_days.is_some();
        if !needs_details {
            return match self.list_ids(&request).await {
                Ok(page) => respond(
                    StatusCode::OK,
                    &IdList {
                        certs: (!page.items.is_empty())
                            .then(|| page.items.iter().map(ToString::to_string).collect()),
                        next: page.next.map(|c| c.as_str().to_owned()),
                    },
                ),
                Err(response) => response,
            };
        }
        let page = match self.list_details(&request).await {
            Ok(page) => page,
            Err(response) => return response,
        };
        let mut items = page.items;
        if let Some(days) = request.within_days {
            let deadline = self.store.clock().now().checked_add(Duration::days(days));
            items.retain(|listed| {
                let not_after = listed.metadata.as_ref().and_then(|m| m.not_after);
                match (not_after, deadline) {
                    (Some(not_after), Some(deadline)) => not_after <= deadline,
                    (Some(_), None) => true,
                    (None, _) => false,
                }
            });
        }
        if request.sort_by_expiry {
            // Soonest first; public keys and unreadable records, which do not expire, last.
            items.sort_by_key(|listed| {
                let not_after = listed.metadata.as_ref().and_then(|m| m.not_after);
                (not_after.is_none(), not_after)
            });
        }
        let next = page.next.map(|c| c.as_str().to_owned());
        if request.detailed {
            let certs = items
                .iter()
                .map(|listed| {
                    CertificateBasics::new(
                        listed.id.to_string(),
                        listed.metadata.as_ref(),
                        listed.problem.as_ref().map(problem_text),
                    )
                })
                .collect();
            respond(StatusCode::OK, &DetailedList { certs, next })
        } else {
            respond(
                StatusCode::OK,
                &IdList {
                    certs: (!items.is_empty())
                        .then(|| items.iter().map(|l| l.id.to_string()).collect()),
                    next,
                },
            )
        }
    }

    /// The IDs asked for: one page, or every page.
    async fn list_ids(&self, request: &ListRequest) -> Result<Page<CertId>, Response<Body>> {
        let org = request.org.as_ref();
        let store = &self.store;
        one_or_every_page(request, |page| {
            Box::pin(async move { store.list(org, &page).await })
        })
        .await
    }

    /// The entries asked for, with metadata: one page, or every page.
    async fn list_details(&self, request: &ListRequest) -> Result<Page<Listed>, Response<Body>> {
        let org = request.org.as_ref();
        let store = &self.store;
        one_or_every_page(request, |page| {
            Box::pin(async move { store.list_detailed(org, &page).await })
        })
        .await
    }

    /// `GET /tyk/certs/{id}` or `GET /tyk/certs/{id1},{id2},...`.
    pub(super) async fn get(&self, raw_id: &str) -> Response<Body> {
        // Tyk's router decodes the path before splitting on commas.
        let decoded = percent_decode(raw_id, false);
        match decoded {
            Some(ids) if ids.contains(',') => {
                let mut out = Vec::new();
                for id in ids.split(',') {
                    match self.meta(id.parse().ok()).await {
                        Ok(meta) => out.push(meta),
                        Err(response) => return response,
                    }
                }
                respond(StatusCode::OK, &out)
            }
            _ => match self.meta(parse_id(raw_id)).await {
                Ok(Some(meta)) => respond(StatusCode::OK, &meta),
                Ok(None) => error(StatusCode::NOT_FOUND, NOT_FOUND),
                Err(response) => response,
            },
        }
    }

    /// The `CertificateMeta` of `id`; `None` when there is no such (readable) certificate.
    async fn meta(&self, id: Option<CertId>) -> Result<Option<CertificateMeta>, Response<Body>> {
        let Some(id) = id else {
            return Ok(None);
        };
        match self.store.get(&id).await {
            Ok(cert) => {
                let mut meta = CertificateMeta::new(id.to_string(), cert.metadata());
                meta.key_decrypts = self.store.key_decrypts(&cert);
                meta.acme = self.renewal_of(&id).await;
                Ok(Some(meta))
            }
            Err(StoreError::Storage(e)) => Err(storage_failure(&e)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => {
                tracing::warn!(%id, error = %e, "a stored certificate cannot be read");
                Ok(None)
            }
        }
    }

    /// `DELETE /tyk/certs/{id}[?org_id=]`: "removed" whether or not it existed (Tyk). The ID
    /// names the org; `org_id` is checked but not needed.
    pub(super) async fn delete(&self, raw_id: &str, query: &Query) -> Response<Body> {
        if let Err(message) = org_param(query) {
            return error(StatusCode::BAD_REQUEST, message);
        }
        if let Some(id) = parse_id(raw_id) {
            match self.store.delete(&id).await {
                Ok(existed) => {
                    if existed {
                        tracing::info!(%id, "certificate removed through the control API");
                    }
                }
                Err(StoreError::Storage(e)) => return storage_failure(&e),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        ok("removed")
    }

    /// `GET /tyk/certs/{id}/apis`: the APIs that reference the certificate, from the usage
    /// index (a valid ID that no API uses gives an empty list, stored or not).
    pub(super) fn apis(&self, raw_id: &str) -> Response<Body> {
        match parse_id(raw_id) {
            Some(id) => respond(
                StatusCode::OK,
                &ApiUses {
                    apis: self.store.apis_using(&id),
                    id: id.to_string(),
                },
            ),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND),
        }
    }
}
