//! The control API handler (`/tyk/certs`, `/tyk/certs/{id}[/apis]`, `/hello`, `/metrics`) on
//! short sessions of structured requests.
//!
//! Each input is up to four requests against a memory store that holds a few certificates from
//! the shared vectors (`$CERTGATE_VECTORS`, or `testdata/vectors` in the repository, read through
//! `certgate-test-support`): one per kind, one whose key was sealed under another secret, one in
//! Tyk's legacy key format and a corrupted record. The gateway is kept from one input to the
//! next (building one costs more than most inputs) and rebuilt after any input that changed its
//! store, so every input starts from the same records and a crash replays from its input alone.
//! Within a session a request may name what an earlier one added, or the cursor it was given.
//!
//! Checked on every answer, beyond "no panic": a status the API gives over a memory store; JSON
//! ending in a newline (but `/metrics`); without the right `x-tyk-authorization`, Tyk's 403
//! (`/hello` aside) and an unchanged store; only a 200 POST adds (exactly the ID it answers)
//! and only a 200 DELETE removes (one record at most); no private key material in any answer.
#![no_main]

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};

use arbitrary::Arbitrary;
use bytes::Bytes;
use cert_store::{
    CertRole, CertStorage, CertStore, ManualClock, MemoryStorage, PageRequest, Scope,
};
use gateway_runtime::GatewayConfig;
use gateway_runtime::internals::Control;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body::Frame;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use test_support::vectors::{self, Vectors, read as vector};
use tls_core::{CertId, EncodingSecret, KeyFormat, OrgId};

/// The control API secret of the gateway under test.
const SECRET: &str = "fuzz-control-secret";
const AUTH_HEADER: &str = "x-tyk-authorization";
/// Tyk's answer to a missing or wrong secret, byte for byte.
const AUTH_FAILED: &str = "{\"status\":\"error\",\"message\":\"Attempted administrative access with invalid or missing key!\"}\n";
/// `max_request_body_bytes`: small, so that a repeated PEM reaches it.
const MAX_BODY: usize = 16 * 1024;
/// Characters of a key's base64 line that identify it.
const ANCHOR: usize = 32;
/// Requests per input.
const MAX_CALLS: usize = 4;
/// Orgs that requests name; the stored certificates belong to the first three.
const ORGS: &[&str] = &[
    "",
    "org1",
    "org2",
    "5e9d9544a1dcd60001d0ed20",
    "org 1",
    "../org",
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread Tokio runtime")
});

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| RUNTIME.block_on(Fixtures::load()));

/// The gateway under test, kept from one input to the next while they leave its store as the
/// fixtures made it.
static GATEWAY: Mutex<Option<Gateway>> = Mutex::new(None);

fuzz_target!(|session: Session| {
    let fixtures = &*FIXTURES;
    let mut gateway = GATEWAY.lock().unwrap_or_else(PoisonError::into_inner);
    RUNTIME.block_on(session.run(fixtures, &mut gateway));
});

/// The control API handler and the storage under its store.
struct Gateway {
    control: Control,
    storage: Arc<MemoryStorage>,
}

/// What every session starts from, built once per process.
struct Fixtures {
    /// Every `*.pem` of the vectors, by file name: the PEM bodies a request may carry.
    pems: Vec<String>,
    /// The records in the store when a session starts.
    records: Vec<(CertId, String)>,
    /// The APIs registered as users of some of them.
    uses: Vec<(CertId, &'static str, CertRole)>,
    encoding_secret: String,
    clock: Arc<ManualClock>,
    /// The first [`ANCHOR`] characters of every base64 line of every private key block, plain
    /// in the vectors and sealed in the records: text only a key holds.
    key_anchors: HashSet<Vec<u8>>,
}

impl Fixtures {
    async fn load() -> Self {
        let vectors = Vectors::load();
        let encoding_secret = vectors.secret().to_owned();
        let clock = Arc::new(ManualClock::new(vectors.generated_at));

        let mut names: Vec<String> = std::fs::read_dir(vectors::dir())
            .expect("the vectors directory lists")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".pem"))
            .collect();
        names.sort();
        let pems: Vec<String> = names.iter().map(|name| vector(name)).collect();

        let seal =
            |secret: &str, format: KeyFormat, uploads: &'static [(&'static str, &'static str)]| {
                let clock = clock.clone();
                let secret = secret.to_owned();
                async move {
                    let storage = Arc::new(MemoryStorage::new());
                    let store = CertStore::builder(storage.clone())
                        .encoding_secret(EncodingSecret::new(secret))
                        .key_format(format)
                        .clock(clock)
                        .build();
                    let mut out = Vec::new();
                    for (org, file) in uploads {
                        let org = OrgId::new(*org).expect("a fixture org");
                        let id = store
                            .add(&vector(file), &org)
                            .await
                            .unwrap_or_else(|e| panic!("{file} is accepted: {e}"));
                        let record = storage
                            .get(&id)
                            .await
                            .expect("memory storage")
                            .expect("stored");
                        out.push((id, record));
                    }
                    out
                }
            };
        let mut records = seal(
            &encoding_secret,
            KeyFormat::Modern,
            &[
                ("", "root-ca.pem"),
                ("org1", "leaf-p256-traditional.bundle.pem"),
                ("org2", "pubkey-p256.pem"),
                ("org1", "expiring-10d.bundle.pem"),
            ],
        )
        .await;
        records.extend(
            seal(
                &encoding_secret,
                KeyFormat::Legacy,
                &[("org2", "leaf-p384-pkcs8.bundle.pem")],
            )
            .await,
        );
        records.extend(
            seal(
                "not the store's secret",
                KeyFormat::Modern,
                &[("org1", "leaf-ed25519-pkcs8.bundle.pem")],
            )
            .await,
        );
        let corrupt: CertId = format!("org1{}", "f".repeat(64))
            .parse()
            .expect("a valid ID");
        records.push((
            corrupt,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
                .to_owned(),
        ));

        let uses = vec![
            (records[0].0.clone(), "api-mtls", CertRole::Client),
            (records[1].0.clone(), "api-tls", CertRole::Server),
            (records[1].0.clone(), "api-upstream", CertRole::Upstream),
            (records[2].0.clone(), "api-upstream", CertRole::Pin),
        ];

        let key_anchors: HashSet<Vec<u8>> = pems
            .iter()
            .chain(records.iter().map(|(_, record)| record))
            .flat_map(|text| key_lines(text))
            .map(|line| line.as_bytes()[..ANCHOR].to_vec())
            .collect();
        assert!(!key_anchors.is_empty(), "the vectors hold private keys");

        Self {
            pems,
            records,
            uses,
            encoding_secret,
            clock,
            key_anchors,
        }
    }

    /// The start of a key line that `text` holds, if any: a window of a base64 run (a JSON
    /// escape such as `\n` before a line only lengthens the run).
    fn key_material<'a>(&self, text: &'a [u8]) -> Option<&'a [u8]> {
        text.split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
            .filter(|run| run.len() >= ANCHOR)
            .flat_map(|run| run.windows(ANCHOR))
            .find(|window| self.key_anchors.contains(*window))
    }

    fn pem(&self, index: u8) -> &str {
        &self.pems[usize::from(index) % self.pems.len()]
    }

    fn stored_id(&self, index: u8) -> String {
        self.records[usize::from(index) % self.records.len()]
            .0
            .to_string()
    }

    /// A store holding the fixture records, its cache warm, and the handler over it.
    async fn open(&self) -> Gateway {
        let storage = Arc::new(MemoryStorage::new());
        for (id, record) in &self.records {
            storage
                .insert(id, record)
                .await
                .expect("a fresh memory store takes every record");
        }
        let store = CertStore::builder(storage.clone())
            .encoding_secret(EncodingSecret::new(&self.encoding_secret))
            .clock(self.clock.clone())
            .build();
        for (id, api, role) in &self.uses {
            store.usage().register(id.clone(), *api, *role);
        }
        // What the first listing would cache, so that a session allocates no more than it frees
        // (libFuzzer's leak check runs LeakSanitizer, which is slow, after every input that does).
        store
            .list_detailed(None, &PageRequest::first(self.records.len()))
            .await
            .expect("memory storage lists");
        let mut config = GatewayConfig::default();
        config.secret = SECRET.to_owned();
        config.max_request_body_bytes = MAX_BODY;
        let control = Control::new(config, store);
        // The same for the request counters of `/metrics`.
        let hello = Request::get("/hello")
            .body(FuzzBody::default())
            .expect("a valid request");
        control.handle(hello).await;
        Gateway { control, storage }
    }
}

/// The base64 lines of every private key block of `text` (plain or sealed), but short ones
/// (the last of a block), which could match by chance.
fn key_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_key = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            in_key = line.contains("PRIVATE KEY");
        } else if line.starts_with("-----END ") {
            in_key = false;
        } else if in_key && line.len() >= ANCHOR && !line.contains(':') {
            // RFC 1423 headers (`Proc-Type: ...`) have a colon; base64 has none.
            out.push(line);
        }
    }
    out
}

/// One input: a few requests in a row against one store.
#[derive(Arbitrary, Debug)]
struct Session {
    calls: Vec<Call>,
}

#[derive(Arbitrary, Debug)]
struct Call {
    method: MethodChoice,
    path: PathChoice,
    /// Extra `/` after the `n`-th slash of the path (`/tyk//certs`).
    doubled_slash: Option<u8>,
    trailing_slashes: u8,
    query: Vec<QueryPair>,
    auth: Auth,
    body: BodyChoice,
    delivery: Delivery,
}

#[derive(Arbitrary, Debug)]
enum MethodChoice {
    Get,
    Post,
    Delete,
    Put,
    Patch,
    Head,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum PathChoice {
    Hello,
    Metrics,
    Certs,
    Cert(IdList),
    CertApis(IdList),
    /// `/tyk/certs/{id}/{segment}`.
    CertThen(IdList, Segment),
    /// `/tyk/{segment}`.
    Tyk(Segment),
    Raw(String),
}

/// `{certID}`: one ID or several, comma-separated.
#[derive(Arbitrary, Debug)]
struct IdList {
    first: Segment,
    more: Vec<Segment>,
    /// Commas as `%2C`.
    encoded_commas: bool,
}

#[derive(Arbitrary, Debug)]
struct Segment {
    text: SegmentText,
    encoding: Encoding,
}

#[derive(Arbitrary, Debug)]
enum SegmentText {
    /// A stored certificate's ID.
    Stored(u8),
    /// The ID an earlier POST of the session answered.
    Added,
    /// A stored certificate's fingerprint alone.
    Fingerprint(u8),
    /// A stored certificate's fingerprint under another org.
    OtherOrg(u8, u8),
    Uppercase(u8),
    Truncated(u8, u8),
    Text(String),
}

/// How text goes into the URI.
#[derive(Arbitrary, Debug)]
enum Encoding {
    Plain,
    /// Every byte as `%XX`.
    All,
    /// Byte `i` as `%XX` when bit `i % 64` is set.
    Mask(u64),
}

#[derive(Arbitrary, Debug)]
struct QueryPair {
    name: QueryName,
    value: QueryValue,
    encoding: Encoding,
}

#[derive(Arbitrary, Debug)]
enum QueryName {
    OrgId,
    Mode,
    Sort,
    ExpiringWithinDays,
    Limit,
    Cursor,
    CertId,
    P,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum QueryValue {
    /// `name` alone, no `=`.
    Bare,
    Empty,
    Detailed,
    NotAfter,
    Number(i64),
    Small(u8),
    Org(u8),
    /// Comma-separated IDs (`certID=a,b`).
    Ids(IdList),
    /// The `next` cursor of an earlier listing of the session.
    LastCursor,
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    Right,
    Missing,
    Empty,
    Wrong(String),
    /// The secret cut after `n` bytes.
    Prefix(u8),
    Uppercase,
    /// The secret with a space after it.
    Padded,
    RightThenWrong(String),
    WrongThenRight(String),
}

#[derive(Arbitrary, Debug)]
enum BodyChoice {
    Empty,
    Pem(u8),
    PemCrlf(u8),
    Pair(u8, u8),
    Truncated(u8, u16),
    PemThen(u8, Vec<u8>),
    /// A PEM `n % 16 + 1` times.
    Repeated(u8, u8),
    Raw(Vec<u8>),
}

/// How the body reaches the handler.
#[derive(Arbitrary, Debug)]
struct Delivery {
    /// Frames of `n * 7` bytes; 0 sends one frame.
    chunk: u8,
    /// The client fails after the last frame when `n % 8 == 7`.
    failure: u8,
    content_length: ContentLength,
}

#[derive(Arbitrary, Debug)]
enum ContentLength {
    Absent,
    Exact,
    Value(u64),
    Text(String),
}

/// What earlier requests of a session left for later ones.
#[derive(Debug, Default)]
struct Memory {
    added: Option<String>,
    cursor: Option<String>,
}

impl Session {
    /// Runs the calls on the kept gateway; replaces it when they changed its store, so that
    /// every input starts from the same records (a crash replays from its input alone).
    async fn run(self, fixtures: &Fixtures, kept: &mut Option<Gateway>) {
        let gateway = match kept.take() {
            Some(gateway) => gateway,
            None => fixtures.open().await,
        };
        let mut memory = Memory::default();
        let mut changed = false;
        for call in self.calls.iter().take(MAX_CALLS) {
            changed |= call.run(fixtures, &gateway, &mut memory).await;
        }
        if changed {
            drop(gateway);
            // Lets the old store's change-notice task see the store go, and end.
            tokio::task::yield_now().await;
            *kept = Some(fixtures.open().await);
        } else {
            *kept = Some(gateway);
        }
    }
}

impl Call {
    /// Sends the call and checks the answer; says whether the store changed.
    async fn run(&self, fixtures: &Fixtures, gateway: &Gateway, memory: &mut Memory) -> bool {
        let Some((request, authorised)) = self.request(fixtures, memory) else {
            // A request line or header no server would hand over.
            return false;
        };
        let Gateway { control, storage } = gateway;
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();

        let before = snapshot(storage).await;
        let response = control.handle(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a response body reads")
            .to_bytes();
        let after = snapshot(storage).await;

        let text = String::from_utf8_lossy(&body);
        let exchange = Exchange {
            call: self,
            method: &method,
            path: &path,
            query: &query,
            authorised,
            status,
            text: &text,
        };
        let json = exchange.check_answer(&headers, &body, fixtures);
        exchange.check_store(&json, &before, &after);
        exchange.check_meaning(&json, &before, fixtures);
        if let Some(id) = json["id"].as_str().filter(|_| method == Method::POST) {
            memory.added = Some(id.to_owned());
        }
        if let Some(next) = json.get("next").and_then(Value::as_str) {
            memory.cursor = Some(next.to_owned());
        }
        before != after
    }

    /// The request, and whether it carries the right secret first (the one the API reads).
    fn request(&self, fixtures: &Fixtures, memory: &Memory) -> Option<(Request<FuzzBody>, bool)> {
        let method = match &self.method {
            MethodChoice::Get => Method::GET,
            MethodChoice::Post => Method::POST,
            MethodChoice::Delete => Method::DELETE,
            MethodChoice::Put => Method::PUT,
            MethodChoice::Patch => Method::PATCH,
            MethodChoice::Head => Method::HEAD,
            MethodChoice::Options => Method::OPTIONS,
            MethodChoice::Other(name) => Method::from_bytes(name.as_bytes()).ok()?,
        };
        let mut uri = self.path.render(fixtures, memory);
        if let Some(n) = self.doubled_slash
            && let Some((at, _)) = uri.match_indices('/').nth(usize::from(n % 4))
        {
            uri.insert(at, '/');
        }
        uri.push_str(&"/".repeat(usize::from(self.trailing_slashes % 4)));
        let query: Vec<String> = self
            .query
            .iter()
            .map(|pair| pair.render(fixtures, memory))
            .collect();
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query.join("&"));
        }

        let body = self.body.render(fixtures);
        let mut builder = Request::builder().method(method).uri(uri);
        match &self.delivery.content_length {
            ContentLength::Absent => {}
            ContentLength::Exact => builder = builder.header(header::CONTENT_LENGTH, body.len()),
            ContentLength::Value(n) => builder = builder.header(header::CONTENT_LENGTH, *n),
            ContentLength::Text(text) => {
                builder = builder.header(header::CONTENT_LENGTH, text.as_str())
            }
        }
        let (values, authorised): (Vec<String>, bool) = match &self.auth {
            Auth::Right => (vec![SECRET.to_owned()], true),
            Auth::Missing => (vec![], false),
            Auth::Empty => (vec![String::new()], false),
            Auth::Wrong(text) => (vec![text.clone()], text == SECRET),
            Auth::Prefix(n) => (
                vec![SECRET[..usize::from(*n) % SECRET.len()].to_owned()],
                false,
            ),
            Auth::Uppercase => (vec![SECRET.to_uppercase()], false),
            Auth::Padded => (vec![format!("{SECRET} ")], false),
            Auth::RightThenWrong(text) => (vec![SECRET.to_owned(), text.clone()], true),
            Auth::WrongThenRight(text) => (vec![text.clone(), SECRET.to_owned()], text == SECRET),
        };
        for value in values {
            builder = builder.header(AUTH_HEADER, value);
        }
        let request = builder.body(FuzzBody::new(body, &self.delivery)).ok()?;
        Some((request, authorised))
    }
}

impl PathChoice {
    fn render(&self, fixtures: &Fixtures, memory: &Memory) -> String {
        match self {
            Self::Hello => "/hello".to_owned(),
            Self::Metrics => "/metrics".to_owned(),
            Self::Certs => "/tyk/certs".to_owned(),
            Self::Cert(ids) => format!("/tyk/certs/{}", ids.render_path(fixtures, memory)),
            Self::CertApis(ids) => format!("/tyk/certs/{}/apis", ids.render_path(fixtures, memory)),
            Self::CertThen(ids, rest) => format!(
                "/tyk/certs/{}/{}",
                ids.render_path(fixtures, memory),
                rest.render(fixtures, memory)
            ),
            Self::Tyk(rest) => format!("/tyk/{}", rest.render(fixtures, memory)),
            Self::Raw(text) => text.clone(),
        }
    }
}

impl IdList {
    fn render_path(&self, fixtures: &Fixtures, memory: &Memory) -> String {
        let comma = if self.encoded_commas { "%2C" } else { "," };
        std::iter::once(&self.first)
            .chain(&self.more)
            .map(|segment| segment.render(fixtures, memory))
            .collect::<Vec<_>>()
            .join(comma)
    }

    /// The IDs as plain text, for a query value that is encoded as a whole.
    fn render_plain(&self, fixtures: &Fixtures, memory: &Memory) -> String {
        std::iter::once(&self.first)
            .chain(&self.more)
            .map(|segment| segment.text.render(fixtures, memory))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Segment {
    fn render(&self, fixtures: &Fixtures, memory: &Memory) -> String {
        encode(&self.text.render(fixtures, memory), &self.encoding)
    }
}

impl SegmentText {
    fn render(&self, fixtures: &Fixtures, memory: &Memory) -> String {
        let fingerprint = |index: u8| {
            let id = fixtures.stored_id(index);
            id[id.len() - 64..].to_owned()
        };
        match self {
            Self::Stored(index) => fixtures.stored_id(*index),
            Self::Added => memory
                .added
                .clone()
                .unwrap_or_else(|| fixtures.stored_id(0)),
            Self::Fingerprint(index) => fingerprint(*index),
            Self::OtherOrg(index, org) => {
                format!(
                    "{}{}",
                    ORGS[usize::from(*org) % ORGS.len()],
                    fingerprint(*index)
                )
            }
            Self::Uppercase(index) => fixtures.stored_id(*index).to_uppercase(),
            Self::Truncated(index, len) => {
                let id = fixtures.stored_id(*index);
                id[..usize::from(*len) % id.len()].to_owned()
            }
            Self::Text(text) => text.clone(),
        }
    }
}

impl QueryPair {
    fn render(&self, fixtures: &Fixtures, memory: &Memory) -> String {
        let name = match &self.name {
            QueryName::OrgId => "org_id",
            QueryName::Mode => "mode",
            QueryName::Sort => "sort",
            QueryName::ExpiringWithinDays => "expiring_within_days",
            QueryName::Limit => "limit",
            QueryName::Cursor => "cursor",
            QueryName::CertId => "certID",
            QueryName::P => "p",
            QueryName::Other(name) => name,
        };
        let value = match &self.value {
            QueryValue::Bare => return encode(name, &self.encoding),
            QueryValue::Empty => String::new(),
            QueryValue::Detailed => "detailed".to_owned(),
            QueryValue::NotAfter => "not_after".to_owned(),
            QueryValue::Number(n) => n.to_string(),
            QueryValue::Small(n) => n.to_string(),
            QueryValue::Org(index) => ORGS[usize::from(*index) % ORGS.len()].to_owned(),
            QueryValue::Ids(ids) => ids.render_plain(fixtures, memory),
            QueryValue::LastCursor => memory.cursor.clone().unwrap_or_default(),
            QueryValue::Text(text) => text.clone(),
        };
        format!("{name}={}", encode(&value, &self.encoding))
    }
}

impl BodyChoice {
    fn render(&self, fixtures: &Fixtures) -> Vec<u8> {
        match self {
            Self::Empty => Vec::new(),
            Self::Pem(index) => fixtures.pem(*index).as_bytes().to_vec(),
            Self::PemCrlf(index) => fixtures.pem(*index).replace('\n', "\r\n").into_bytes(),
            Self::Pair(a, b) => format!("{}{}", fixtures.pem(*a), fixtures.pem(*b)).into_bytes(),
            Self::Truncated(index, len) => {
                let pem = fixtures.pem(*index).as_bytes();
                pem[..usize::from(*len) % (pem.len() + 1)].to_vec()
            }
            Self::PemThen(index, tail) => {
                let mut out = fixtures.pem(*index).as_bytes().to_vec();
                out.extend_from_slice(tail);
                out
            }
            Self::Repeated(index, times) => fixtures
                .pem(*index)
                .repeat(usize::from(times % 16) + 1)
                .into_bytes(),
            Self::Raw(bytes) => bytes.clone(),
        }
    }
}

/// `text` with the bytes that `encoding` picks as `%XX`.
fn encode(text: &str, encoding: &Encoding) -> String {
    let mut out = Vec::with_capacity(text.len() * 3);
    for (i, byte) in text.bytes().enumerate() {
        let escape = match encoding {
            Encoding::Plain => false,
            Encoding::All => true,
            Encoding::Mask(mask) => mask >> (i % 64) & 1 == 1,
        };
        if escape {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        } else {
            out.push(byte);
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Percent-decodes `text` as the handler does: `%` and two hex digits is a byte, any other `%`
/// stays; `+` is a space in a query.
fn percent_decode(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high << 4 | low).expect("two hex digits make a byte"));
                i += 3;
                continue;
            }
            (b'+', _, _) if plus_is_space => out.push(b' '),
            (other, _, _) => out.push(other),
        }
        i += 1;
    }
    out
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A call and its answer. Displayed (only when a check fails) as the call, the request line and
/// the answer.
struct Exchange<'a> {
    call: &'a Call,
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    authorised: bool,
    status: StatusCode,
    text: &'a str,
}

impl fmt::Display for Exchange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            call,
            method,
            path,
            query,
            authorised,
            status,
            text,
        } = self;
        write!(
            f,
            "{call:#?}\n{method} {path}?{query} (authorised: {authorised}) -> {status}\n{text}"
        )
    }
}

impl Exchange<'_> {
    /// The path without trailing slashes, as the router sees it.
    fn route(&self) -> &str {
        let trimmed = self.path.trim_end_matches('/');
        if trimmed.is_empty() { "/" } else { trimmed }
    }

    /// Status, body format, authentication and secrecy; returns the body as JSON (`Null` for
    /// the metrics text).
    fn check_answer(&self, headers: &HeaderMap, body: &[u8], fixtures: &Fixtures) -> Value {
        let (status, text, context) = (self.status, self.text, self);
        let is_metrics =
            self.route() == "/metrics" && *self.method == Method::GET && self.authorised;
        assert!(
            matches!(status.as_u16(), 200 | 400 | 403 | 404 | 405 | 413),
            "a status the control API does not give over a memory store\n{context}"
        );
        if !self.authorised && self.route() != "/hello" {
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "no secret, no access\n{context}"
            );
            assert_eq!(text, AUTH_FAILED, "Tyk's refusal\n{context}");
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let json = if is_metrics {
            assert_eq!(status, StatusCode::OK, "{context}");
            assert!(
                content_type.starts_with("text/plain"),
                "metrics are text\n{context}"
            );
            assert!(
                std::str::from_utf8(body).is_ok(),
                "metrics are UTF-8\n{context}"
            );
            Value::Null
        } else {
            assert_eq!(content_type, "application/json", "{context}");
            assert!(
                body.ends_with(b"\n"),
                "Go's encoder ends with a newline\n{context}"
            );
            let json: Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("the body is not JSON: {e}\n{context}"));
            if status != StatusCode::OK {
                assert_eq!(json["status"], "error", "{context}");
                assert!(json["message"].is_string(), "{context}");
            }
            json
        };
        if status == StatusCode::METHOD_NOT_ALLOWED && json["message"] == "Method not supported" {
            let allow = headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(!allow.is_empty(), "a 405 says what is allowed\n{context}");
        }
        // Error messages may name a PEM block the client sent (`PEM block 1 (PRIVATE KEY): ...`);
        // an answer about stored certificates never mentions a key block, and no answer
        // carries key material.
        let asked = lossy(&percent_decode(
            &format!("{}?{}", self.path, self.query),
            true,
        ));
        if status == StatusCode::OK && !asked.contains("PRIVATE KEY") {
            assert!(
                !text.contains("PRIVATE KEY"),
                "a private key block in an answer\n{context}"
            );
        }
        if let Some(anchor) = fixtures.key_material(body) {
            panic!(
                "private key material ({}) in an answer\n{context}",
                lossy(anchor)
            );
        }
        json
    }

    /// Only an authorised 200 POST adds, one record, the one it names (or nothing, when it
    /// repeats an identical upload); only an authorised
    /// 200 DELETE removes, one record at most, the one it names; nothing else changes the store.
    fn check_store(&self, json: &Value, before: &Records, after: &Records) {
        let context = self;
        let changes = self.authorised && self.status == StatusCode::OK;
        if changes && *self.method == Method::POST {
            let id: CertId = json["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("a 200 POST answers the added ID\n{context}"));
            if before.contains_key(&id) {
                // An identical upload again (a retry): answered with its ID, nothing changes.
                assert!(
                    *before == *after,
                    "a repeated identical POST changes nothing\n{context}"
                );
                return;
            }
            let Some(record) = after.get(&id) else {
                panic!("the added ID is stored\n{context}");
            };
            let mut expected = before.clone();
            expected.insert(id.clone(), record.clone());
            assert!(
                expected == *after,
                "a POST adds one record and changes no other\n{context}"
            );
        } else if changes && *self.method == Method::DELETE {
            assert_eq!(json["message"], "removed", "{context}");
            let removed: Vec<&CertId> = before
                .keys()
                .filter(|id| !after.contains_key(*id))
                .collect();
            assert!(
                removed.len() <= 1,
                "a DELETE removes one record at most: {removed:?}\n{context}"
            );
            assert!(
                after
                    .iter()
                    .all(|(id, record)| before.get(id) == Some(record)),
                "a DELETE adds or changes nothing\n{context}"
            );
            if let [removed] = removed.as_slice() {
                let named = self
                    .cert_segment()
                    .map(|(segment, _)| lossy(&percent_decode(segment, false)));
                assert_eq!(
                    named.as_deref(),
                    Some(removed.to_string().as_str()),
                    "a DELETE removes the ID it names\n{context}"
                );
            }
        } else {
            assert!(before == after, "the store changed\n{context}");
        }
    }

    /// The content of 200 answers to GET, against the store: listings hold stored IDs, once
    /// each, of the org asked for only, and all of them when no filter or page was asked for;
    /// `{id}` answers describe the IDs asked for; `/apis` lists the registered uses.
    fn check_meaning(&self, json: &Value, store: &Records, fixtures: &Fixtures) {
        if !self.authorised || self.status != StatusCode::OK || *self.method != Method::GET {
            return;
        }
        let context = self;
        if self.route() == "/tyk/certs" {
            let listed: Vec<&str> = match &json["certs"] {
                Value::Null => Vec::new(),
                Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .or_else(|| item["id"].as_str())
                            .unwrap_or_else(|| panic!("a listed entry has an ID\n{context}"))
                    })
                    .collect(),
                _ => panic!("a listing has `certs`\n{context}"),
            };
            let org = query_param(self.query, "org_id").map(|org| {
                OrgId::new(org)
                    .unwrap_or_else(|e| panic!("a listing under a bad org: {e}\n{context}"))
            });
            let mut seen = HashSet::new();
            for text in listed {
                let id: CertId = text
                    .parse()
                    .unwrap_or_else(|e| panic!("a listed ID parses: {e}\n{context}"));
                assert!(
                    store.contains_key(&id),
                    "{id} is listed but not stored\n{context}"
                );
                if let Some(org) = &org {
                    assert_eq!(
                        id.org(),
                        org,
                        "a listing of one org shows another's certificate\n{context}"
                    );
                }
                assert!(seen.insert(id), "an ID listed twice\n{context}");
            }
            let whole = ["limit", "cursor", "expiring_within_days"]
                .iter()
                .all(|name| query_param(self.query, name).is_none());
            if whole {
                let expected: HashSet<CertId> = store
                    .keys()
                    .filter(|id| org.as_ref().is_none_or(|org| id.org() == org))
                    .cloned()
                    .collect();
                assert!(
                    seen == expected,
                    "a listing misses stored certificates\n{context}"
                );
            }
            return;
        }
        let Some((segment, apis)) = self.cert_segment() else {
            return;
        };
        let named = lossy(&percent_decode(segment, false));
        if apis {
            assert_eq!(json["id"], named.as_str(), "{context}");
            let id: CertId = named
                .parse()
                .unwrap_or_else(|e| panic!("a 200 for a bad ID: {e}\n{context}"));
            let registered = fixtures
                .uses
                .iter()
                .filter(|(used, _, _)| *used == id)
                .count();
            assert_eq!(
                json["apis"].as_array().map(Vec::len),
                Some(registered),
                "the uses of {id}\n{context}"
            );
        } else if named.contains(',') {
            let asked: Vec<&str> = named.split(',').collect();
            let answered = json
                .as_array()
                .unwrap_or_else(|| panic!("several IDs, a list\n{context}"));
            assert_eq!(
                answered.len(),
                asked.len(),
                "one entry per ID asked for\n{context}"
            );
            for (entry, asked) in answered.iter().zip(asked) {
                if !entry.is_null() {
                    assert_eq!(entry["id"], asked, "entries in the order asked\n{context}");
                    let id: CertId = asked
                        .parse()
                        .unwrap_or_else(|e| panic!("an entry for a bad ID: {e}\n{context}"));
                    assert!(
                        store.contains_key(&id),
                        "an entry for an ID not stored\n{context}"
                    );
                }
            }
        } else {
            assert_eq!(json["id"], named.as_str(), "{context}");
            let id: CertId = named
                .parse()
                .unwrap_or_else(|e| panic!("a 200 for a bad ID: {e}\n{context}"));
            assert!(
                store.contains_key(&id),
                "a 200 for an ID not stored\n{context}"
            );
        }
    }

    /// The raw `{certID}` of a `/tyk/certs/{certID}` or (`true`) `/tyk/certs/{certID}/apis` path.
    fn cert_segment(&self) -> Option<(&str, bool)> {
        let rest = self.route().strip_prefix("/tyk/certs/")?;
        match rest.split_once('/') {
            None => Some((rest, false)),
            Some((segment, "apis")) if !segment.contains('/') => Some((segment, true)),
            Some(_) => None,
        }
    }
}

/// The first `name` of `query` as the handler reads it (Go's `URL.Query().Get`): decoded, and
/// `None` when absent or empty.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(n, _)| lossy(&percent_decode(n, true)) == name)
        .map(|(_, value)| lossy(&percent_decode(value, true)))
        .filter(|value| !value.is_empty())
}

/// The records of a store, by ID.
type Records = HashMap<CertId, String>;

/// Every record in `storage`, by ID.
async fn snapshot(storage: &MemoryStorage) -> Records {
    let page = storage
        .list(Scope::All, &PageRequest::first(1_000_000))
        .await
        .expect("memory storage lists");
    assert!(page.next.is_none(), "one page holds every record");
    let mut out = HashMap::new();
    for id in page.items {
        let record = storage
            .get(&id)
            .await
            .expect("memory storage reads")
            .expect("a listed record");
        out.insert(id, record);
    }
    out
}

/// A request body sent in frames, which may end in a client error.
#[derive(Default)]
struct FuzzBody {
    frames: VecDeque<Bytes>,
    fails: bool,
}

impl FuzzBody {
    fn new(body: Vec<u8>, delivery: &Delivery) -> Self {
        let body = Bytes::from(body);
        let mut frames = VecDeque::new();
        match usize::from(delivery.chunk) * 7 {
            0 => frames.push_back(body),
            size => {
                let mut at = 0;
                while at < body.len() {
                    let end = (at + size).min(body.len());
                    frames.push_back(body.slice(at..end));
                    at = end;
                }
            }
        }
        Self {
            frames,
            fails: delivery.failure % 8 == 7,
        }
    }
}

impl http_body::Body for FuzzBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if std::mem::take(&mut this.fails) {
            return Poll::Ready(Some(Err(std::io::Error::other("the client went away"))));
        }
        Poll::Ready(None)
    }
}
