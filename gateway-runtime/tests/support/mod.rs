//! Test support for the gateway: a test PKI, a TLS client speaking HTTP/1.1, an echo upstream,
//! and a gateway over a memory store.
#![allow(dead_code, reason = "each test crate uses a different part")]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cert_store::{CertStore, MemoryStorage};
use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use time::{Duration, OffsetDateTime};
use tls_core::EncodingSecret;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A certificate and its key as PEM.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) serial: u64,
}

impl Issued {
    /// Certificate then key, as `add` takes them.
    pub(crate) fn bundle(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }

    pub(crate) fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()
    }
}

/// A test certificate authority.
pub(crate) struct Pki {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) ca_pem: String,
    next_serial: std::sync::atomic::AtomicU64,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Self {
            params,
            key,
            ca_pem,
            next_serial: std::sync::atomic::AtomicU64::new(100),
        }
    }

    pub(crate) fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap()
    }

    fn issue(
        &self,
        names: &[&str],
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.not_before = validity.0;
        params.not_after = validity.1;
        let serial = self
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        params.serial_number = Some(SerialNumber::from(serial));
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }

    fn valid_now() -> (OffsetDateTime, OffsetDateTime) {
        #[allow(
            clippy::disallowed_methods,
            reason = "test certificates are made for the real clock"
        )]
        let now = OffsetDateTime::now_utc();
        (now - Duration::days(1), now + Duration::days(365))
    }

    pub(crate) fn server(&self, names: &[&str]) -> Issued {
        self.issue(
            names,
            names.first().copied().unwrap_or("server"),
            ExtendedKeyUsagePurpose::ServerAuth,
            Self::valid_now(),
        )
    }

    pub(crate) fn client(&self, cn: &str) -> Issued {
        self.issue(
            &[],
            cn,
            ExtendedKeyUsagePurpose::ClientAuth,
            Self::valid_now(),
        )
    }

    /// A client certificate valid from yesterday for `days` more days.
    pub(crate) fn client_expiring_in(&self, cn: &str, days: i64) -> Issued {
        let (yesterday, _) = Self::valid_now();
        let now = yesterday + Duration::days(1);
        self.issue(
            &[],
            cn,
            ExtendedKeyUsagePurpose::ClientAuth,
            (yesterday, now + Duration::days(days)),
        )
    }

    /// A server certificate valid from yesterday for `days` more days.
    pub(crate) fn server_expiring_in(&self, names: &[&str], days: i64) -> Issued {
        let (yesterday, _) = Self::valid_now();
        let now = yesterday + Duration::days(1);
        self.issue(
            names,
            names[0],
            ExtendedKeyUsagePurpose::ServerAuth,
            (yesterday, now + Duration::days(days)),
        )
    }

    /// A client certificate that expired an hour ago.
    pub(crate) fn expired_client(&self, cn: &str) -> Issued {
        let (yesterday, _) = Self::valid_now();
        let now = yesterday + Duration::days(1);
        self.issue(
            &[],
            cn,
            ExtendedKeyUsagePurpose::ClientAuth,
            (now - Duration::days(30), now - Duration::hours(1)),
        )
    }

    /// A CRL revoking `serials`.
    pub(crate) fn crl(&self, serials: &[u64]) -> String {
        let (start, _) = Self::valid_now();
        let params = CertificateRevocationListParams {
            this_update: start,
            next_update: start + Duration::days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: start,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(&issuer).unwrap().pem().unwrap()
    }
}

/// A self-signed client certificate nobody trusts.
pub(crate) fn stranger() -> Issued {
    Pki::new("stranger").client("stranger")
}

/// A memory store with a known secret.
pub(crate) fn memory_store() -> CertStore {
    CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("test secret"))
        .build()
}

/// A gateway configuration with TLS on 127.0.0.1:0.
pub(crate) fn tls_config() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = 0;
    config.secret = "control-secret".into();
    config.http_server_options.use_ssl = true;
    config.http_server_options.enable_http2 = true;
    config
}

/// An API definition from JSON.
pub(crate) fn api(json: serde_json::Value) -> ApiDefinition {
    ApiDefinition::from_json(&json.to_string(), std::path::Path::new("test-api.json")).unwrap()
}

/// Starts a gateway.
pub(crate) async fn start(
    config: GatewayConfig,
    store: CertStore,
    apis: Vec<ApiDefinition>,
) -> Gateway {
    GatewayBuilder::new(config)
        .store(store)
        .apis(apis)
        .start()
        .await
        .unwrap()
}

/// An HTTP upstream answering `upstream says <path>`.
pub(crate) async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().len())
                            .unwrap_or(0);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(format!("upstream says {path} ({body} bytes)")),
                        )))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A TLS client: trusts `roots`, optionally presents `identity`.
pub(crate) fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<&Issued>,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store);
    let config = match identity {
        Some(id) => {
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(vec![id.der()], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The outcome of one HTTPS request.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The certificate the server presented.
    pub(crate) server_cert: CertificateDer<'static>,
    /// HTTP status, or `None` when the connection failed after the handshake.
    pub(crate) status: Option<u16>,
    pub(crate) body: String,
    pub(crate) resumed: bool,
}

/// Connects to `addr` with `sni`, sends `GET path` over HTTP/1.1.
pub(crate) async fn https_get(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    let server_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no server certificate")?;
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    if let Err(e) = tls.write_all(request.as_bytes()).await {
        return Err(format!("write: {e}"));
    }
    let mut raw = Vec::new();
    let read = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    if status.is_none()
        && let Err(e) = read
    {
        return Err(format!("read: {e}"));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Answer {
        server_cert: server_cert.into_owned(),
        status,
        body,
        resumed,
    })
}

/// Sends one Redis command over RESP to the server on `port`; the raw reply (gateway-runtime
/// has no Redis client of its own).
pub(crate) async fn redis_command(port: u16, args: &[&[u8]]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        command.extend_from_slice(arg);
        command.extend_from_slice(b"\r\n");
    }
    stream.write_all(&command).await.unwrap();
    let mut reply = vec![0u8; 65536];
    let n = stream.read(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

/// The status and body of a control API request over TLS to `sni` (HTTP/1.1,
/// `Connection: close`), trusting `roots`' CA and sending `secret`.
pub(crate) async fn tls_control(
    addr: SocketAddr,
    sni: &str,
    roots: &Pki,
    secret: &str,
    (method, path, body): (&str, &str, &[u8]),
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client_config(&[roots.ca_der()], None));
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {sni}\r\nx-tyk-authorization: {secret}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    // The server may answer (413) before reading the whole body: ignore a failed body write.
    let _ = tls.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
