//! The store commands: `add`, `list`, `get`, `delete`, `apis`, `expiry`, `rekey` and `reindex`,
//! against a gateway's control API (`--url`) or straight against Redis (`--redis`); `acme status`
//! (in `acme_status`) goes through here too, for the gateway target.

use std::io::IsTerminal as _;
use std::sync::Arc;

use cert_store::{
    CertStore, Clock, Listed, ManualClock, PageWalk, RedisConfig, RedisStorage, StoreError,
    SystemClock,
};
use gateway_runtime::wire::{
    AcmeRenewal, ApiUses, CertRole, CertificateBasics, CertificateMeta, CertificateStatus,
    DetailedList, IdList,
};
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use tls_core::{CertId, Duration, EncodingSecret, KeyFormat, Metadata, OffsetDateTime, OrgId};

use crate::cli::{AcmeCommand, Command, Target};
use crate::gateway::{Gateway, TlsOptions, encode, failure, parse};
use crate::report::printable;

/// What a store command prints, and whether it succeeded.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Standard output.
    pub(crate) stdout: String,
    /// Lines for standard error (each is prefixed with `certctl: `).
    pub(crate) problems: Vec<String>,
    /// True when the command failed (exit status 1), even if it printed something.
    pub(crate) failed: bool,
}

impl Outcome {
    pub(crate) fn ok(stdout: String) -> Self {
        Self {
            stdout,
            ..Self::default()
        }
    }
}

/// Runs a store command on a small Tokio runtime.
pub(crate) fn run(command: Command) -> Result<Outcome, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_async(command))
}

async fn run_async(command: Command) -> Result<Outcome, String> {
    match command {
        Command::Id(_) | Command::Inspect(_) => Err("not a store command".to_owned()),
        Command::Acme(AcmeCommand::Status(args)) => crate::acme_status::run(args).await,
        Command::Add(args) => {
            let backend = Backend::open(&args.target, args.at).await?;
            let pem = crate::input::read_text(&args.file)?;
            let id = backend.add(pem, &args.org.unwrap_or_default()).await?;
            Ok(Outcome::ok(format!("{id}\n")))
        }
        Command::List(args) => {
            let backend = Backend::open(&args.target, None).await?;
            let org = args.org.as_ref();
            if args.detailed {
                let entries = backend.list_detailed(org).await?;
                Ok(Outcome::ok(if args.json {
                    to_json(&entries)?
                } else {
                    detailed_table(&entries)
                }))
            } else {
                let ids = backend.list_ids(org).await?;
                Ok(Outcome::ok(if args.json {
                    to_json(&ids)?
                } else {
                    ids.iter()
                        .map(|id| format!("{}\n", printable(id)))
                        .collect()
                }))
            }
        }
        Command::Get(args) => {
            let backend = Backend::open(&args.target, None).await?;
            let ids: Vec<String> = args
                .ids
                .iter()
                .flat_map(|arg| arg.split(','))
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect();
            if ids.is_empty() {
                return Err("no certificate ID given".to_owned());
            }
            let found = backend.get(&ids).await?;
            let mut outcome = Outcome::default();
            for (id, summary) in ids.iter().zip(&found) {
                if summary.is_none() {
                    outcome
                        .problems
                        .push(format!("{}: not found", printable(id)));
                    outcome.failed = true;
                }
            }
            outcome.stdout = if args.json {
                to_json(&found)?
            } else {
                found
                    .iter()
                    .flatten()
                    .map(Summary::to_text)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(outcome)
        }
        Command::Delete(args) => {
            let backend = Backend::open(&args.target, None).await?;
            Ok(match backend.delete(&args.id).await? {
                Some(false) => Outcome {
                    problems: vec![format!(
                        "{}: no such certificate; nothing removed",
                        printable(&args.id)
                    )],
                    ..Outcome::default()
                },
                Some(true) | None => Outcome::ok(format!("removed {}\n", printable(&args.id))),
            })
        }
        Command::Apis(args) => {
            let backend = Backend::open(&args.target, None).await?;
            let uses = backend.apis(&args.id).await?;
            Ok(Outcome::ok(
                uses.iter()
                    .map(|(api, role)| format!("{}\t{}\n", printable(api), printable(role)))
                    .collect(),
            ))
        }
        Command::Expiry(args) => {
            let backend = Backend::open(&args.target, None).await?;
            let now = args.at.unwrap_or_else(crate::clock::now);
            let entries = backend.list_detailed(args.org.as_ref()).await?;
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let report = expiry_table(&entries, now, args.within_days, args.warn_days, colour);
            Ok(Outcome {
                stdout: report.0,
                problems: report.1,
                failed: false,
            })
        }
        Command::Repair(args) => {
            let Some(redis) = redis_target(&args.target)? else {
                return Err("repair works only with --redis".to_owned());
            };
            let report = redis_storage(redis)
                .await?
                .repair()
                .await
                .map_err(|e| format!("repair stopped: {e}"))?;
            Ok(Outcome::ok(format!(
                "records {}, added to their index {}, dead index entries dropped {}\n",
                report.records, report.indexed, report.dropped
            )))
        }
        Command::Rekey(args) => {
            let Some(redis) = redis_target(&args.target)? else {
                return Err(
                    "rekey works only with --redis: it rewrites the stored records, which a gateway's control API does not do"
                        .to_owned(),
                );
            };
            let store = redis_store(
                redis,
                &args.target,
                Arc::new(SystemClock),
                args.previous_secret.as_deref(),
            )
            .await?;
            let new_secret = match (&args.new_secret, &args.target.encoding_secret) {
                (Some(new), _) | (None, Some(new)) => new.clone(),
                (None, None) => String::new(),
            };
            let report = store
                .rekey(EncodingSecret::new(new_secret))
                .await
                .map_err(|e| format!("rekey stopped: {e}"))?;
            let mut outcome = Outcome::ok(format!(
                "rekeyed {}, unchanged {}, failed {}\n",
                report.rekeyed,
                report.unchanged,
                report.failed.len()
            ));
            for (id, error) in &report.failed {
                outcome
                    .problems
                    .push(format!("{id}: {}", problem_text(error)));
            }
            if report.failed.is_empty() {
                let format = match args.target.key_format {
                    KeyFormat::Legacy => "legacy",
                    _ => "modern",
                };
                outcome.stdout.push_str(&format!(
                    "every key is now in the {format} format and opens with the new secret: configure gateways with it (security.private_certificate_encoding_secret) and with security.private_certificate_key_format \"{format}\"\n",
                ));
            } else {
                outcome.failed = true;
                outcome.problems.push(
                    "some keys were not re-encrypted; run rekey again with --previous-secret for keys under an older secret"
                        .to_owned(),
                );
            }
            Ok(outcome)
        }
        Command::Reindex(args) => {
            let Some(redis) = redis_target(&args.target)? else {
                return Err(
                    "reindex works only with --redis: it writes Redis index keys, which a gateway's control API does not do"
                        .to_owned(),
                );
            };
            let report = redis_storage(redis)
                .await?
                .reindex()
                .await
                .map_err(|e| format!("reindex stopped: {e}"))?;
            Ok(Outcome::ok(format!(
                "orgs {}, records {}, index entries added {}, org-less entries moved from cert--index {}\n",
                report.orgs, report.records, report.added, report.moved_orgless
            )))
        }
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| format!("cannot write JSON: {e}"))
}

/// A gateway or a store in Redis.
enum Backend {
    Gateway(Box<Gateway>),
    Redis(CertStore),
}

async fn redis_store(
    redis: RedisTarget,
    target: &Target,
    clock: Arc<dyn Clock>,
    previous_secret: Option<&str>,
) -> Result<CertStore, String> {
    let Some(secret) = &target.encoding_secret else {
        return Err(
            "--redis needs --encoding-secret (or CERTCTL_ENCODING_SECRET): the secret that encrypts private keys"
                .to_owned(),
        );
    };
    let storage = redis_storage(redis).await?;
    let mut builder = CertStore::builder(Arc::new(storage))
        .encoding_secret(EncodingSecret::new(secret.clone()))
        .key_format(target.key_format)
        .clock(clock);
    if let Some(previous) = previous_secret {
        builder = builder.previous_encoding_secret(EncodingSecret::new(previous));
    }
    Ok(builder.build())
}

/// The Redis store a target names, parsed once: cert-store's settings and the URL without its
/// password, for messages.
struct RedisTarget {
    config: RedisConfig,
    shown: String,
}

impl RedisTarget {
    /// Parses `url` (one node, a cluster or sentinels) with the target's prefix, sentinel
    /// credentials and replica acknowledgements.
    fn parse(url: &str, target: &Target) -> Result<Self, String> {
        let shown = redacted(url);
        let mut config = RedisConfig::from_url(url)
            .map_err(|e| format!("--redis {shown}: {e}"))?
            .with_key_prefix(target.redis_prefix.clone())
            .with_min_replicas_to_ack(
                target.min_replicas_to_ack,
                std::time::Duration::from_secs(2),
            );
        config.connection = config.connection.with_sentinel_credentials(
            target.sentinel_username.as_deref().unwrap_or_default(),
            target.sentinel_password.as_deref().unwrap_or_default(),
        );
        Ok(Self { config, shown })
    }
}

/// The Redis store a Redis-only command works on: --redis, or $CERTCTL_REDIS when --url is not
/// given either.
fn redis_target(target: &Target) -> Result<Option<RedisTarget>, String> {
    let url = match (&target.url, &target.redis) {
        (_, Some(redis)) => Some(redis.clone()),
        (Some(_), None) => None,
        (None, None) => env_target("CERTCTL_REDIS")?,
    };
    url.map(|url| RedisTarget::parse(&url, target)).transpose()
}

/// Connects to the Redis store `redis` describes.
async fn redis_storage(redis: RedisTarget) -> Result<RedisStorage, String> {
    RedisStorage::connect(redis.config)
        .await
        .map_err(|e| format!("cannot use Redis at {}: {e}", redis.shown))
}

/// A Redis URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// A default target from the environment; set but empty counts as unset.
fn env_target(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// The gateway `target` names, for `command`, which only a gateway answers.
pub(crate) async fn gateway_target(target: &Target, command: &str) -> Result<Gateway, String> {
    let only_gateway = || {
        format!(
            "{command} needs --url: only a running gateway knows its automatic certificates' state"
        )
    };
    if redis_target(target)?.is_some() {
        return Err(only_gateway());
    }
    match Backend::open(target, None).await? {
        Backend::Gateway(gateway) => Ok(*gateway),
        Backend::Redis(_) => Err(only_gateway()),
    }
}

impl Backend {
    /// Connects to what `target` names; `at` fixes the clock that judges uploads (Redis only).
    async fn open(target: &Target, at: Option<OffsetDateTime>) -> Result<Self, String> {
        // An explicit --url or --redis wins over the environment's default target.
        let (url, redis) = match (&target.url, &target.redis) {
            (None, None) => (env_target("CERTCTL_URL")?, env_target("CERTCTL_REDIS")?),
            (url, redis) => (url.clone(), redis.clone()),
        };
        match (&url, &redis) {
            (Some(url), None) => {
                if at.is_some() {
                    return Err(
                        "--at works only with --redis: the gateway judges uploads by its own clock"
                            .to_owned(),
                    );
                }
                let Some(secret) = &target.secret else {
                    return Err(
                        "--url needs --secret (or CERTCTL_SECRET): the gateway's control API secret"
                            .to_owned(),
                    );
                };
                let tls = TlsOptions {
                    cacert: target.cacert.clone(),
                    insecure: target.insecure,
                    cert: target.cert.clone(),
                    key: target.key.clone(),
                };
                Gateway::new(url, secret, &tls).map(|g| Self::Gateway(Box::new(g)))
            }
            (None, Some(url)) => {
                let clock: Arc<dyn Clock> = match at {
                    Some(at) => Arc::new(ManualClock::new(at)),
                    None => Arc::new(SystemClock),
                };
                let redis = RedisTarget::parse(url, target)?;
                redis_store(redis, target, clock, None)
                    .await
                    .map(Self::Redis)
            }
            (Some(_), Some(_)) => Err(
                "give either --url or --redis, not both (CERTCTL_URL and CERTCTL_REDIS are both set)"
                    .to_owned(),
            ),
            (None, None) => Err(
                "say where the certificates are: --url URL --secret S (a gateway), or --redis URL --encoding-secret S"
                    .to_owned(),
            ),
        }
    }

    async fn add(&self, pem: String, org: &OrgId) -> Result<String, String> {
        match self {
            Self::Gateway(gateway) => {
                let path = if org.is_empty() {
                    "/tyk/certs".to_owned()
                } else {
                    format!("/tyk/certs?org_id={}", encode(org.as_str()))
                };
                let body = gateway
                    .call_ok(Method::POST, &path, pem.into_bytes())
                    .await?;
                let added: CertificateStatus<'_> = parse(&body, "a certificate status")?;
                Ok(added.id)
            }
            Self::Redis(store) => store
                .add(&pem, org)
                .await
                .map(|id| id.to_string())
                .map_err(|e| e.to_string()),
        }
    }

    async fn list_ids(&self, org: Option<&OrgId>) -> Result<Vec<String>, String> {
        match self {
            Self::Gateway(gateway) => {
                let body = gateway
                    .call_ok(Method::GET, &list_path(org, false), Vec::new())
                    .await?;
                let list: IdList = parse(&body, "a list of IDs")?;
                Ok(list.certs.unwrap_or_default())
            }
            Self::Redis(store) => {
                let mut ids = Vec::new();
                let mut walk = PageWalk::new(1000);
                while let Some(request) = walk.request() {
                    let page = store.list(org, request).await.map_err(|e| e.to_string())?;
                    ids.extend(walk.advance(page).iter().map(ToString::to_string));
                }
                Ok(ids)
            }
        }
    }

    async fn list_detailed(&self, org: Option<&OrgId>) -> Result<Vec<Summary>, String> {
        match self {
            Self::Gateway(gateway) => {
                let body = gateway
                    .call_ok(Method::GET, &list_path(org, true), Vec::new())
                    .await?;
                let list: DetailedList = parse(&body, "a detailed list")?;
                Ok(list.certs.into_iter().map(Summary::from_basics).collect())
            }
            Self::Redis(store) => {
                let mut out = Vec::new();
                let mut walk = PageWalk::new(500);
                while let Some(request) = walk.request() {
                    let page = store
                        .list_detailed(org, request)
                        .await
                        .map_err(|e| e.to_string())?;
                    out.extend(walk.advance(page).iter().map(Summary::from_listed));
                }
                Ok(out)
            }
        }
    }

    /// Each ID's certificate, in order; `None` for one that is not found.
    async fn get(&self, ids: &[String]) -> Result<Vec<Option<Summary>>, String> {
        match self {
            Self::Gateway(gateway) => {
                let path = format!(
                    "/tyk/certs/{}",
                    ids.iter()
                        .map(|id| encode(id))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let (status, body) = gateway.call(Method::GET, &path, Vec::new()).await?;
                match (status, ids.len()) {
                    (StatusCode::OK, 1) => {
                        let meta: CertificateMeta = parse(&body, "a certificate")?;
                        Ok(vec![Some(Summary::from_meta(meta))])
                    }
                    (StatusCode::NOT_FOUND, 1) => Ok(vec![None]),
                    (StatusCode::OK, _) => {
                        let metas: Vec<Option<CertificateMeta>> =
                            parse(&body, "a list of certificates")?;
                        Ok(metas
                            .into_iter()
                            .map(|meta| meta.map(Summary::from_meta))
                            .collect())
                    }
                    (status, _) => Err(failure(status, &body)),
                }
            }
            Self::Redis(store) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let Ok(cert_id) = id.parse::<CertId>() else {
                        out.push(None);
                        continue;
                    };
                    match store.details(&cert_id).await {
                        Ok(meta) => out.push(Some(Summary::new(&cert_id.to_string(), Some(&meta)))),
                        Err(StoreError::NotFound { .. }) => out.push(None),
                        Err(e) if e.is_temporary() => return Err(e.to_string()),
                        Err(e) => out.push(Some(Summary {
                            error: Some(problem_text(&e)),
                            ..Summary::new(id, None)
                        })),
                    }
                }
                Ok(out)
            }
        }
    }

    /// Deletes `id`; whether it existed, when the backend says (a gateway does not).
    async fn delete(&self, id: &str) -> Result<Option<bool>, String> {
        match self {
            Self::Gateway(gateway) => {
                gateway
                    .call_ok(
                        Method::DELETE,
                        &format!("/tyk/certs/{}", encode(id)),
                        Vec::new(),
                    )
                    .await?;
                Ok(None)
            }
            Self::Redis(store) => {
                let cert_id: CertId = id.parse().map_err(|e| format!("{e}"))?;
                store
                    .delete(&cert_id)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn apis(&self, id: &str) -> Result<Vec<(String, String)>, String> {
        match self {
            Self::Gateway(gateway) => {
                let (status, body) = gateway
                    .call(
                        Method::GET,
                        &format!("/tyk/certs/{}/apis", encode(id)),
                        Vec::new(),
                    )
                    .await?;
                if status == StatusCode::NOT_FOUND {
                    return Err(format!("{}: not a certificate ID", printable(id)));
                }
                if status != StatusCode::OK {
                    return Err(failure(status, &body));
                }
                let uses: ApiUses = parse(&body, "a list of API uses")?;
                Ok(uses
                    .apis
                    .into_iter()
                    .map(|u| (u.api_id, role_name(u.role)))
                    .collect())
            }
            Self::Redis(_) => Err(
                "apis needs --url: which API uses a certificate is known only to a running gateway, not to the store"
                    .to_owned(),
            ),
        }
    }
}

fn list_path(org: Option<&OrgId>, detailed: bool) -> String {
    let mut params = Vec::new();
    if let Some(org) = org.filter(|o| !o.is_empty()) {
        params.push(format!("org_id={}", encode(org.as_str())));
    }
    if detailed {
        params.push("mode=detailed&sort=not_after".to_owned());
    }
    if params.is_empty() {
        "/tyk/certs".to_owned()
    } else {
        format!("/tyk/certs?{}", params.join("&"))
    }
}

/// A problem with a record, without the ID shown beside it.
fn problem_text(error: &StoreError) -> String {
    match error {
        StoreError::Record { source, .. } => format!("the record cannot be read: {source}"),
        StoreError::Key { source, .. } => format!("the private key cannot be used: {source}"),
        other => other.to_string(),
    }
}

/// What certctl shows of a certificate, from a gateway's answer or from the store.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    subject_cn: String,
    issuer_cn: String,
    dns_names: Vec<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    has_private: bool,
    is_ca: bool,
    is_public_key: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The renewal state, for a certificate a gateway's ACME manages (`get --url` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    acme: Option<AcmeRenewal>,
    #[serde(skip)]
    expires: Option<OffsetDateTime>,
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(&Rfc3339).unwrap_or_else(|_| utc.to_string())
}

/// A role as the control API writes it (`server`, `client`, `upstream`, `pin`).
fn role_name(role: CertRole) -> String {
    match serde_json::to_value(role) {
        Ok(Value::String(name)) => name,
        _ => format!("{role:?}").to_lowercase(),
    }
}

impl Summary {
    /// From the store's metadata.
    fn new(id: &str, meta: Option<&Metadata>) -> Self {
        let Some(meta) = meta else {
            return Self {
                id: id.to_owned(),
                fingerprint: None,
                subject_cn: String::new(),
                issuer_cn: String::new(),
                dns_names: Vec::new(),
                not_before: None,
                not_after: None,
                has_private: false,
                is_ca: false,
                is_public_key: false,
                error: None,
                acme: None,
                expires: None,
            };
        };
        let fingerprint = meta.fingerprint.to_hex();
        let subject_cn = if meta.is_public_key {
            format!("Public Key: {fingerprint}")
        } else {
            meta.subject.common_name.clone().unwrap_or_default()
        };
        Self {
            id: id.to_owned(),
            fingerprint: Some(fingerprint),
            subject_cn,
            issuer_cn: meta.issuer.common_name.clone().unwrap_or_default(),
            dns_names: meta.dns_names.clone(),
            not_before: meta.not_before.map(rfc3339),
            not_after: meta.not_after.map(rfc3339),
            has_private: meta.has_private,
            is_ca: meta.is_ca,
            is_public_key: meta.is_public_key,
            error: None,
            acme: None,
            expires: meta.not_after,
        }
    }

    fn from_listed(listed: &Listed) -> Self {
        Self {
            error: listed.problem.as_ref().map(problem_text),
            ..Self::new(&listed.id.to_string(), listed.metadata.as_ref())
        }
    }

    /// From a gateway's `CertificateBasics`.
    fn from_basics(basics: CertificateBasics) -> Self {
        let expires = basics.not_after.0;
        Self {
            id: basics.id,
            fingerprint: None,
            is_public_key: basics.subject_cn.starts_with("Public Key: ") && expires.is_none(),
            subject_cn: basics.subject_cn,
            issuer_cn: basics.issuer_cn,
            dns_names: basics.dns_names.unwrap_or_default(),
            not_before: basics.not_before.0.map(rfc3339),
            not_after: expires.map(rfc3339),
            has_private: basics.has_private,
            is_ca: basics.is_ca,
            error: basics.error,
            acme: None,
            expires,
        }
    }

    /// From a gateway's `CertificateMeta`.
    fn from_meta(meta: CertificateMeta) -> Self {
        let expires = meta.not_after.0;
        Self {
            id: meta.id,
            fingerprint: Some(meta.fingerprint),
            is_public_key: meta.subject.common_name.starts_with("Public Key: ")
                && expires.is_none(),
            subject_cn: meta.subject.common_name,
            issuer_cn: meta.issuer.common_name,
            dns_names: meta.dns_names,
            not_before: meta.not_before.0.map(rfc3339),
            not_after: expires.map(rfc3339),
            has_private: meta.has_private,
            is_ca: meta.is_ca,
            error: None,
            acme: meta.acme,
            expires,
        }
    }

    /// One field a line, like `inspect`.
    fn to_text(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let mut lines = vec![("ID", self.id.clone())];
        if let Some(fingerprint) = &self.fingerprint {
            lines.push(("Fingerprint", fingerprint.clone()));
        }
        if self.is_public_key {
            lines.push(("Public key only", "yes".to_owned()));
        } else {
            let none = || "(none)".to_owned();
            lines.extend([
                ("Subject CN", self.subject_cn.clone()),
                ("Issuer CN", self.issuer_cn.clone()),
                (
                    "DNS names",
                    if self.dns_names.is_empty() {
                        none()
                    } else {
                        self.dns_names.join(", ")
                    },
                ),
                ("Not before", self.not_before.clone().unwrap_or_else(none)),
                ("Not after", self.not_after.clone().unwrap_or_else(none)),
                ("CA", yes_no(self.is_ca)),
            ]);
        }
        lines.push(("Private key", yes_no(self.has_private)));
        if let Some(error) = &self.error {
            lines.push(("Problem", error.clone()));
        }
        if let Some(acme) = &self.acme {
            lines.push(("ACME name", acme.name.clone()));
            lines.push((
                "Next renewal",
                acme.next_renewal.map_or_else(|| "now".to_owned(), rfc3339),
            ));
            lines.push(("ACME failures", acme.failures.to_string()));
            if let Some(error) = &acme.last_error {
                lines.push(("ACME last error", error.clone()));
            }
        }
        lines
            .into_iter()
            .map(|(label, value)| format!("{:<17}{}\n", format!("{label}:"), printable(&value)))
            .collect()
    }
}

/// `list --detailed` as a table.
fn detailed_table(entries: &[Summary]) -> String {
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            let mut subject = printable(&e.subject_cn);
            if let Some(error) = &e.error {
                subject = format!("{subject} (problem: {})", printable(error));
            }
            [
                printable(&e.id),
                e.not_after.clone().unwrap_or_else(|| "-".to_owned()),
                if e.has_private { "yes" } else { "no" }.to_owned(),
                if e.is_ca { "yes" } else { "no" }.to_owned(),
                subject,
            ]
        })
        .collect();
    table(&["ID", "NOT AFTER", "KEY", "CA", "SUBJECT CN"], &rows)
        .into_iter()
        .map(|(line, _)| line)
        .collect()
}

/// Left-aligned columns; the last column is not padded. Returns each line with its row index
/// (`None` for the header).
pub(crate) fn table<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
) -> Vec<(String, Option<usize>)> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; N]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        format!("{}\n", text.trim_end())
    };
    let mut out = vec![(line(&header.map(str::to_owned)), None)];
    out.extend(rows.iter().enumerate().map(|(i, row)| (line(row), Some(i))));
    out
}

/// How a row of the expiry table is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Urgency {
    Expired,
    Soon,
    Fine,
}

/// `expiry`: certificates by days remaining, soonest first. Returns the table and the problems
/// (records whose expiry cannot be read).
fn expiry_table(
    entries: &[Summary],
    now: OffsetDateTime,
    within_days: Option<u32>,
    warn_days: u32,
    colour: bool,
) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    let deadline = within_days.map(|days| now + Duration::days(i64::from(days)));
    let mut dated: Vec<(OffsetDateTime, &Summary)> = Vec::new();
    for entry in entries {
        match entry.expires {
            Some(expires) => {
                if deadline.is_none_or(|deadline| expires <= deadline) {
                    dated.push((expires, entry));
                }
            }
            None if entry.is_public_key => {}
            None => problems.push(format!(
                "{}: expiry unknown: {}",
                printable(&entry.id),
                entry.error.as_deref().unwrap_or("no expiry date")
            )),
        }
    }
    dated.sort_by_key(|(expires, entry)| (*expires, entry.id.clone()));
    let mut urgencies = Vec::with_capacity(dated.len());
    let rows: Vec<[String; 5]> = dated
        .iter()
        .map(|(expires, entry)| {
            let remaining = *expires - now;
            let days = remaining
                .whole_seconds()
                .div_euclid(Duration::DAY.whole_seconds());
            let (days, urgency) = if remaining <= Duration::ZERO {
                (days.min(-1), Urgency::Expired)
            } else if remaining <= Duration::days(i64::from(warn_days)) {
                (days, Urgency::Soon)
            } else {
                (days, Urgency::Fine)
            };
            urgencies.push(urgency);
            [
                days.to_string(),
                match urgency {
                    Urgency::Expired => "expired",
                    Urgency::Soon => "expiring",
                    Urgency::Fine => "valid",
                }
                .to_owned(),
                rfc3339(*expires),
                printable(&entry.id),
                printable(&entry.subject_cn),
            ]
        })
        .collect();
    let lines = table(&["DAYS", "STATUS", "NOT AFTER", "ID", "SUBJECT CN"], &rows);
    let text = lines
        .into_iter()
        .map(|(line, row)| match (colour, row.map(|i| urgencies[i])) {
            (true, Some(urgency)) => {
                let code = match urgency {
                    Urgency::Expired => "31",
                    Urgency::Soon => "33",
                    Urgency::Fine => "32",
                };
                format!("\x1b[{code}m{}\x1b[0m\n", line.trim_end_matches('\n'))
            }
            _ => line,
        })
        .collect();
    (text, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(id: &str, expires: Option<OffsetDateTime>) -> Summary {
        Summary {
            expires,
            not_after: expires.map(rfc3339),
            subject_cn: format!("{id}.test"),
            ..Summary::new(id, None)
        }
    }

    #[test]
    fn expiry_table_sorts_by_days_filters_and_colours_only_when_asked() {
        let now = datetime!(2026-11-29 04:57:32 UTC);
        let entries = [
            entry("later", Some(now + Duration::days(400))),
            entry("gone", Some(now - Duration::minutes(30))),
            entry("soon", Some(now + Duration::days(10))),
            entry("broken", None),
        ];
        let (text, problems) = expiry_table(&entries, now, None, 30, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("DAYS  STATUS"));
        assert!(lines[1].starts_with("-1    expired   2026-11-29T04:27:32Z  gone"));
        assert!(lines[2].starts_with("10    expiring"));
        assert!(lines[3].starts_with("400   valid"));
        assert_eq!(lines.len(), 4);
        assert!(!text.contains('\x1b'));
        assert_eq!(problems.len(), 1);
        let (text, _) = expiry_table(&entries, now, Some(10), 30, true);
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains("\x1b[31m-1"));
        assert!(text.contains("\x1b[33m10"));
    }
}
