//! The server's CPU cost of one full TLS 1.3 handshake, in memory: the gateway's real rustls
//! configuration against a bare rustls server, the limit.
//!
//! `bench/compare.sh` measures whole servers over sockets, where the clients, the kernel and the
//! machine's load blur the picture. This bench isolates what the gateway adds to the TLS work
//! itself. As rustls' own `bench` does, a rustls client and server exchange their bytes through
//! buffers (`write_tls`, `read_tls`, `process_new_packets`; no sockets, no runtime), and only the
//! server's calls are timed (`iter_custom` adds them up): the client's work, which for ECDSA costs
//! more than the server's, is left out. Every handshake is full: the client never resumes
//! (`Resumption::disabled()`). The client offers only TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519,
//! so every server negotiates the same parameters as in `bench/compare.sh`; each case checks that
//! it does before it is measured. Criterion's throughput is handshakes per second of server time.
//!
//! - `limit/{ecdsa,rsa}`: a plain rustls server (ring), one certificate (`with_single_cert`), no
//!   client authentication, no session tickets (`send_tls13_tickets = 0`).
//! - `limit-tickets/ecdsa`: the same issuing the gateway's tickets, to tell their cost from the
//!   rest of the gateway's.
//! - `gateway/{ecdsa,rsa}`: the `ServerConfig` the gateway builds at start-up
//!   (`internals::server_config`) with the certificate in a memory store named in
//!   `http_server_options.ssl_certificates` and `min_version: 772`, as in `bench/compare.sh`.
//!   The server starts as the gateway's listener does (`src/server.rs`): an `Acceptor` reads the
//!   ClientHello and the lowercased SNI is taken before `into_connection`. The gateway issues
//!   stateless session tickets (a ring `Ticketer`, rustls' default of 2 per handshake): that is
//!   part of its real cost and is kept.
//! - `gateway-sni/{1,100000}`: the limit's configuration with the gateway's own SNI resolver
//!   (`internals::Resolver`) in place of the single certificate, holding one certificate under 1
//!   or 100,000 names `h{i:06}.bench.example`. The client sends one of 4,096 of those names, in a
//!   scrambled order: the ratio shows what the size of the resolver's map costs per handshake.
//! - `limit-mtls/ecdsa`, `gateway-mtls/ecdsa`, `gateway-mtls-allowlist/ecdsa`: the client
//!   presents an ECDSA P-256 certificate issued by a client CA. The limit verifies it with
//!   rustls' `WebPkiClientVerifier`; the gateway's configuration is the one for the domain of an
//!   API with `use_mutual_tls_auth`, listing the CA (chain verified) or, in `-allowlist`, the
//!   client's certificate itself (allow-listed by fingerprint).
//!
//! Certificates are made by rcgen at start-up (ECDSA P-256, rcgen's default validity, which
//! covers the clock rustls reads); the RSA-2048 key is the shared test vectors' (rcgen cannot
//! make RSA keys with ring), from `testdata/vectors` in the repository or `$CERTGATE_VECTORS`.
//! Servers send their leaf only, as in `bench/compare.sh`.
//!
//! Run (pinned to one core): `taskset -c 1 cargo bench -p certgate-gateway-runtime --features internals
//! --bench handshake -- --warm-up-time 1 --measurement-time 5`
//!
//! Instruction counts of the server's work alone, one case at a time (divide `Collected` by the
//! handshakes the bench reports): `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='handshake::server_first' --toggle-collect='handshake::server_next'
//! target/release/deps/handshake-<hash> --bench --profile-time 1 --exact limit/ecdsa`. Under
//! valgrind, ring does not see ADX and BMI2 and takes its generic X25519 and P-256 code, so the
//! counts compare cases with each other, not with native runs.

mod common;
use common::probes;

use std::fmt::Display;
use std::hint::black_box;
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cert_store::{CertStorage, CertStore, MemoryStorage};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gateway_runtime::internals::{Resolver, server_config};
use gateway_runtime::{ApiDefinition, GatewayConfig};
use rcgen::KeyPair;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::pki_types::ServerName;
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, ProtocolVersion, RootCertStore, ServerConfig,
    ServerConnection,
};
use test_support::pki::{Leaf, TestCa, Usage};
use test_support::vectors::read as vector;
use tls_core::{EncodingSecret, OrgId};

/// The name every server certificate is for (and, as `*.bench.example`, the SNI cases' names).
const SERVER_NAME: &str = "bench.example";
/// Resolver sizes of the SNI cases.
const SNI_SIZES: [usize; 2] = [1, 100_000];
/// The SNI cases cycle through this many precomputed names, in a scrambled order.
const PROBES: usize = 4096;

/// The bench's certificates.
struct Pki {
    server_ca: TestCa,
    ecdsa: Leaf,
    rsa: Leaf,
    client_ca: TestCa,
    client: Leaf,
}

impl Pki {
    fn new() -> Self {
        let server_ca = TestCa::root("bench server CA");
        let names = [SERVER_NAME, "*.bench.example"];
        let ecdsa = server_ca.leaf(&names, Usage::Server);
        let rsa_key = KeyPair::from_pem(&vector("leaf-rsa2048-pkcs8.key.pem"))
            .expect("the RSA-2048 vector key loads");
        let rsa = server_ca.leaf_on_key(rsa_key, &names, Usage::Server);
        let client_ca = TestCa::root("bench client CA");
        let client = client_ca.issue(&[], "client", Usage::Client, None);
        Self {
            server_ca,
            ecdsa,
            rsa,
            client_ca,
            client,
        }
    }
}

/// A resumption-less TLS 1.3 client offering only TLS_AES_128_GCM_SHA256 and X25519, trusting
/// `server_ca`, presenting `identity` when asked.
fn client_config(server_ca: &TestCa, identity: Option<&Leaf>) -> Arc<ClientConfig> {
    let provider = CryptoProvider {
        cipher_suites: vec![cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![kx_group::X25519],
        ..rustls::crypto::ring::default_provider()
    };
    let mut roots = RootCertStore::empty();
    roots
        .add(server_ca.ca_der())
        .expect("the CA is a trust anchor");
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key())
            .expect("the client certificate loads"),
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// The bare server's builder: ring, TLS 1.3.
fn limit_builder() -> rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier> {
    ServerConfig::builder_with_provider(tls_core::default_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
}

/// `config` without session tickets.
fn without_tickets(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// `config` issuing stateless session tickets as the gateway does: a ring `Ticketer`, rustls'
/// default number of tickets.
fn with_stateless_tickets(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("a ticketer");
    Arc::new(config)
}

/// A bare server serving `leaf`, verifying client certificates against `client_ca` if given.
fn limit_config(leaf: &Leaf, client_ca: Option<&TestCa>) -> ServerConfig {
    let builder = limit_builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(ca.ca_der())
                .expect("the client CA is a trust anchor");
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                tls_core::default_provider(),
            )
            .build()
            .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .expect("the certificate and key load")
}

/// A memory store like the gateway's, empty.
fn memory_store() -> CertStore {
    CertStore::builder(Arc::new(MemoryStorage::new()) as Arc<dyn CertStorage>)
        .encoding_secret(EncodingSecret::new("bench secret"))
        .build()
}

/// The gateway's configuration for handshakes with SNI `bench.example`: `leaf` stored and named
/// in `ssl_certificates`, TLS 1.3 only, and, with `client_certificate` (a PEM: a CA or a leaf),
/// a mutual-TLS API on `bench.example` accepting it.
fn gateway_config(
    runtime: &tokio::runtime::Runtime,
    leaf: &Leaf,
    client_certificate: Option<String>,
) -> Arc<ServerConfig> {
    runtime.block_on(async {
        let store = memory_store();
        let add = |pem: String| {
            let store = store.clone();
            async move {
                store
                    .add(&pem, &OrgId::EMPTY)
                    .await
                    .expect("the certificate is stored")
                    .to_string()
            }
        };
        let mut config = GatewayConfig::default();
        config.http_server_options.use_ssl = true;
        config.http_server_options.min_version = 772;
        config.http_server_options.ssl_certificates =
            vec![add(leaf.bundle()).await.parse().unwrap()];
        let mut apis = Vec::new();
        if let Some(pem) = client_certificate {
            let json = serde_json::json!({
                "api_id": "mtls",
                "domain": SERVER_NAME,
                "use_mutual_tls_auth": true,
                "client_certificates": [add(pem).await],
                "proxy": {"listen_path": "/", "target_url": "http://127.0.0.1:9"},
            });
            apis.push(
                ApiDefinition::from_json(&json.to_string(), std::path::Path::new("bench.json"))
                    .expect("a valid API definition"),
            );
        }
        server_config(&config, apis, &store, Some(SERVER_NAME))
            .await
            .expect("the gateway's TLS configuration builds")
    })
}

/// How the server side takes a new connection.
enum Server {
    /// `ServerConnection::new`, as a plain rustls server.
    Direct(Arc<ServerConfig>),
    /// As the gateway's listener: an `Acceptor` reads the ClientHello, the SNI is lowercased (to
    /// pick the configuration), then `into_connection`.
    Accepting(Arc<ServerConfig>),
}

impl Server {
    /// A server connection that has read `hello`, the client's first flight.
    fn accept(&self, hello: &[u8]) -> ServerConnection {
        match self {
            Self::Direct(config) => {
                let mut server =
                    ServerConnection::new(Arc::clone(config)).expect("a server connection");
                deliver(&mut server, hello);
                server
            }
            Self::Accepting(config) => {
                let mut acceptor = Acceptor::default();
                let mut rest = hello;
                let accepted = loop {
                    acceptor.read_tls(&mut rest).expect("the acceptor reads");
                    if let Some(accepted) = acceptor
                        .accept()
                        .map_err(|(e, _)| e)
                        .expect("a valid ClientHello")
                    {
                        break accepted;
                    }
                    assert!(!rest.is_empty(), "the ClientHello is incomplete");
                };
                black_box(
                    accepted
                        .client_hello()
                        .server_name()
                        .map(str::to_ascii_lowercase),
                );
                let mut server = accepted
                    .into_connection(Arc::clone(config))
                    .map_err(|(e, _)| e)
                    .expect("the handshake proceeds");
                deliver(&mut server, rest);
                server
            }
        }
    }
}

/// One bench case: a client configuration, a server, and the names the client sends.
struct Case {
    client: Arc<ClientConfig>,
    server: Server,
    names: Vec<ServerName<'static>>,
}

impl Case {
    fn new(client: Arc<ClientConfig>, server: Server) -> Self {
        let name = ServerName::try_from(SERVER_NAME).expect("a valid name");
        Self::with_names(client, server, vec![name])
    }

    fn with_names(
        client: Arc<ClientConfig>,
        server: Server,
        names: Vec<ServerName<'static>>,
    ) -> Self {
        Self {
            client,
            server,
            names,
        }
    }
}

/// A completed handshake and the time the server's calls took.
struct Handshake {
    server_time: Duration,
    server: ServerConnection,
    client: ClientConnection,
}

/// Feeds `bytes` to `conn` and processes them.
fn deliver<C, D>(conn: &mut C, mut bytes: &[u8])
where
    C: DerefMut<Target = ConnectionCommon<D>>,
{
    while !bytes.is_empty() {
        conn.read_tls(&mut bytes).expect("reads from memory");
        conn.process_new_packets()
            .expect("the peer's messages are accepted");
    }
}

/// Appends everything `conn` has to send to `out`.
fn flush<C, D>(conn: &mut C, out: &mut Vec<u8>)
where
    C: DerefMut<Target = ConnectionCommon<D>>,
{
    while conn.wants_write() {
        conn.write_tls(out).expect("writes to memory");
    }
}

/// The server's first step: takes the client's first flight, `hello`, and writes its own to
/// `out`. Never inlined, nor is [`server_next`], so that callgrind can count the server's work
/// alone (`--toggle-collect`).
#[inline(never)]
fn server_first(server: &Server, hello: &[u8], out: &mut Vec<u8>) -> ServerConnection {
    let mut conn = server.accept(hello);
    flush(&mut conn, out);
    conn
}

/// The server's later steps: takes `input` from the client and writes its answer to `out`.
#[inline(never)]
fn server_next(conn: &mut ServerConnection, input: &[u8], out: &mut Vec<u8>) {
    deliver(conn, input);
    flush(conn, out);
}

/// One full handshake with `name`, timing only the server's calls.
fn handshake(case: &Case, name: &ServerName<'static>) -> Handshake {
    let mut client =
        ClientConnection::new(Arc::clone(&case.client), name.clone()).expect("a client");
    let mut to_server = Vec::with_capacity(16 * 1024);
    let mut to_client = Vec::with_capacity(16 * 1024);
    flush(&mut client, &mut to_server);

    let started = Instant::now();
    let mut server = server_first(&case.server, &to_server, &mut to_client);
    let mut server_time = started.elapsed();
    to_server.clear();

    loop {
        deliver(&mut client, &to_client);
        to_client.clear();
        flush(&mut client, &mut to_server);
        if to_server.is_empty() {
            break;
        }
        let started = Instant::now();
        server_next(&mut server, &to_server, &mut to_client);
        server_time += started.elapsed();
        to_server.clear();
    }
    assert!(
        !server.is_handshaking() && !client.is_handshaking(),
        "the handshake completes"
    );
    Handshake {
        server_time,
        server,
        client,
    }
}

/// Checks that `case` negotiates what every case must, and says what it sends beyond that.
fn check(id: &str, case: &Case) {
    let done = handshake(case, &case.names[0]);
    assert_eq!(
        done.server.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        done.server.negotiated_cipher_suite(),
        Some(cipher_suite::TLS13_AES_128_GCM_SHA256)
    );
    assert_eq!(
        done.server
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(kx_group::X25519.name())
    );
    assert_eq!(
        done.server.peer_certificates().is_some(),
        case.client.client_auth_cert_resolver.has_certs(),
        "{id}: a client certificate is verified when the client has one"
    );
    eprintln!(
        "{id}: TLS 1.3, TLS_AES_128_GCM_SHA256, X25519; {} session tickets per handshake",
        done.client.tls13_tickets_received()
    );
}

/// Benches `case` as `{group}/{parameter}`: the server's time over full handshakes, after a
/// [`check`] if the bench is selected. Says how many handshakes ran (warm-up and check
/// included), which turns callgrind's totals into per-handshake counts.
fn bench_case(c: &mut Criterion, group: &str, parameter: impl Display, case: &Case) {
    let id = format!("{group}/{parameter}");
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    let mut runs = 0usize;
    group.bench_function(BenchmarkId::from_parameter(parameter), |b| {
        if runs == 0 {
            check(&id, case);
            runs = 1;
        }
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += handshake(case, &case.names[runs % case.names.len()]).server_time;
                runs += 1;
            }
            total
        })
    });
    group.finish();
    if runs > 0 {
        eprintln!("{id}: {runs} handshakes");
    }
}

fn handshakes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a Tokio runtime");
    let pki = Pki::new();
    let client = client_config(&pki.server_ca, None);
    let mtls_client = client_config(&pki.server_ca, Some(&pki.client));
    let servers = [("ecdsa", &pki.ecdsa), ("rsa", &pki.rsa)];

    for (kind, leaf) in servers {
        let server = Server::Direct(without_tickets(limit_config(leaf, None)));
        bench_case(c, "limit", kind, &Case::new(Arc::clone(&client), server));
    }
    // The limit with the gateway's tickets, to tell their cost from the rest of the gap.
    let server = Server::Direct(with_stateless_tickets(limit_config(&pki.ecdsa, None)));
    let case = Case::new(Arc::clone(&client), server);
    bench_case(c, "limit-tickets", "ecdsa", &case);
    for (kind, leaf) in servers {
        let server = Server::Accepting(gateway_config(&runtime, leaf, None));
        bench_case(c, "gateway", kind, &Case::new(Arc::clone(&client), server));
    }

    let store = memory_store();
    let (cert, key) = runtime.block_on(async {
        let id = store
            .add(&pki.ecdsa.bundle(), &OrgId::EMPTY)
            .await
            .expect("the bundle is stored");
        let cert = store.get(&id).await.expect("the certificate loads");
        let key = store.tls_key(&cert).expect("the key loads");
        (cert, key)
    });
    let sni_name = |i: usize| format!("h{i:06}.bench.example");
    for n in SNI_SIZES {
        let mut resolver = Resolver::default();
        let names: Vec<String> = (0..n).map(sni_name).collect();
        resolver.add(Arc::clone(&cert), Arc::clone(&key), &names);
        let config = without_tickets(
            limit_builder()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver)),
        );
        let probes = probes(n, PROBES)
            .into_iter()
            .map(|i| ServerName::try_from(sni_name(i)).expect("a valid name"))
            .collect();
        let case = Case::with_names(Arc::clone(&client), Server::Direct(config), probes);
        bench_case(c, "gateway-sni", n, &case);
    }

    let limit = without_tickets(limit_config(&pki.ecdsa, Some(&pki.client_ca)));
    let gateway_ca = gateway_config(&runtime, &pki.ecdsa, Some(pki.client_ca.cert_pem.clone()));
    let gateway_leaf = gateway_config(&runtime, &pki.ecdsa, Some(pki.client.cert_pem.clone()));
    for (group, server) in [
        ("limit-mtls", Server::Direct(limit)),
        ("gateway-mtls", Server::Accepting(gateway_ca)),
        ("gateway-mtls-allowlist", Server::Accepting(gateway_leaf)),
    ] {
        let case = Case::new(Arc::clone(&mtls_client), server);
        bench_case(c, group, "ecdsa", &case);
    }
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
