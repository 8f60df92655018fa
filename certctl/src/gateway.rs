//! A small client of a gateway's control API (`/tyk/certs`) over HTTP/1.1, plain or TLS.
//!
//! `https://` URLs are verified against the system's roots, or only against `--cacert` when it
//! is given; `--insecure` skips the certificate check (the handshake's signatures are still
//! verified) and says so on standard error. A control API that requires mutual TLS gets the
//! client certificate of `--cert`/`--key`. Each call opens its own connection: certctl makes a
//! handful of calls, and a fresh connection never trips over an idle timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_runtime::wire::StatusMessage;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tls_core::danger::AcceptAnyServerCertificate;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How long one request may take, connection and TLS handshake included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How certctl talks TLS to an `https://` control API.
#[derive(Debug, Default)]
pub(crate) struct TlsOptions {
    /// PEM file of the CA certificates to trust instead of the system's roots.
    pub(crate) cacert: Option<PathBuf>,
    /// Do not verify the gateway's certificate.
    pub(crate) insecure: bool,
    /// PEM file of the client certificate (and its chain), for a control API with mutual TLS.
    pub(crate) cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub(crate) key: Option<PathBuf>,
}

/// A gateway's control API.
pub(crate) struct Gateway {
    base: String,
    host: String,
    port: u16,
    authority: String,
    secret: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Gateway {
    /// A client of the control API at `base` (e.g. `https://127.0.0.1:8443`).
    pub(crate) fn new(base: &str, secret: &str, options: &TlsOptions) -> Result<Self, String> {
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("--url {base:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "--url {base:?} must start with http:// or https://"
                ));
            }
        };
        let Some(host) = uri.host() else {
            return Err(format!("--url {base:?} has no host"));
        };
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(format!(
                "--url {base:?}: give the gateway's base URL only (scheme, host and port), without a path"
            ));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // `[::1]` in a URL is `::1` to the resolver and to the TLS name.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| format!("--url {base:?}: {host:?} is not a valid TLS server name"))?;
            Some((TlsConnector::from(Arc::new(client_config(options)?)), name))
        } else {
            if options.cacert.is_some() || options.insecure || options.cert.is_some() {
                return Err(format!(
                    "--url {base:?} is plain HTTP: --cacert, --insecure, --cert and --key apply to https:// URLs only"
                ));
            }
            None
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            authority: uri
                .authority()
                .map_or_else(|| host.clone(), |a| a.as_str().to_owned()),
            host,
            port,
            secret: secret.to_owned(),
            tls,
        })
    }

    /// Sends a request; returns the status and the body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), String> {
        let url = format!("{}{path_and_query}", self.base);
        let request = Request::builder()
            .method(method.clone())
            .uri(path_and_query)
            .header(http::header::HOST, &self.authority)
            .header("X-Tyk-Authorization", &self.secret)
            .header("Content-Type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make a request to {url}: {e}"))?;
        let (status, bytes) = tokio::time::timeout(TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| format!("{method} {url}: no answer within {} s", TIMEOUT.as_secs()))??;
        Ok((status, bytes))
    }

    /// Connects, sends `request` and reads the whole answer.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let unreachable = |e: &dyn std::error::Error| {
            format!("cannot reach the gateway at {}: {}", self.base, chain(e))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => send(tcp, request).await,
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    format!(
                        "TLS with the gateway at {} failed: {}",
                        self.base,
                        tls_advice(chain(&e))
                    )
                })?;
                send(tls, request).await.map_err(tls_advice)
            }
        }
        .map_err(|e| format!("the exchange with the gateway at {} failed: {e}", self.base))
    }

    /// Like [`Gateway::call`], but any status other than 200 is an error with the gateway's
    /// message; returns the body.
    pub(crate) async fn call_ok(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Bytes, String> {
        let (status, bytes) = self.call(method, path_and_query, body).await?;
        if status == StatusCode::OK {
            Ok(bytes)
        } else {
            Err(failure(status, &bytes))
        }
    }
}

/// One HTTP/1.1 exchange over an open connection.
async fn send<S>(io: S, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| chain(&e))?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| chain(&e))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the answer broke off: {}", chain(&e)))?
        .to_bytes();
    driver.abort();
    Ok((status, bytes))
}

/// The rustls client configuration for `options`.
fn client_config(options: &TlsOptions) -> Result<ClientConfig, String> {
    let provider = tls_core::default_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let builder = if options.insecure {
        if options.cacert.is_some() {
            return Err("give --cacert or --insecure, not both".to_owned());
        }
        eprintln!(
            "certctl: warning: --insecure: the gateway's certificate is not verified; anyone on the path can read the secret"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate::new(
                provider.signature_verification_algorithms,
            )))
    } else {
        builder.with_root_certificates(roots(options.cacert.as_deref())?)
    };
    match (&options.cert, &options.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert, "--cert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "--key {}: no private key could be read: {}",
                    key.display(),
                    pem_problem(&e)
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--cert/--key cannot be used: {e}"))
        }
        _ => Err("--cert and --key go together: give both".to_owned()),
    }
}

/// The CAs to trust: `--cacert`'s certificates, or the system's roots.
fn roots(cacert: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match cacert {
        Some(path) => {
            for cert in read_certificates(path, "--cacert")? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "--cacert {}: not a usable CA certificate: {e}",
                        path.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no system CA certificates were found: give the gateway's CA with --cacert"
                        .to_owned(),
                );
            }
        }
    }
    Ok(roots)
}

/// Every CERTIFICATE block of a PEM file; none is an error naming the option.
fn read_certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{option} {}: {}", path.display(), pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{option} {}: no CERTIFICATE block in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// A PEM reading problem in words.
fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => format!("cannot read: {e}"),
        Error::NoItemsFound => "no such PEM block in the file".to_owned(),
        _ => "not valid PEM".to_owned(),
    }
}

/// A TLS failure with what to do about the usual causes.
fn tls_advice(text: String) -> String {
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!(
            "the gateway's certificate is not trusted ({text}); give its CA with --cacert, or --insecure to skip the check"
        )
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        format!("the gateway requires a client certificate ({text}); give it with --cert and --key")
    } else {
        text
    }
}

/// The gateway's error as a sentence, with its message when the body is Tyk's
/// `{"status","message"}`.
pub(crate) fn failure(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<StatusMessage<'_>>(body) {
        Ok(answer) => format!("the gateway answered {status}: {}", answer.message),
        Err(_) => format!("the gateway answered {status}"),
    }
}

/// A 200 answer's body as the control API's typed shape `T` (`what` names it in the error).
pub(crate) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!("the gateway's answer is not {what} as the control API writes it: {e}")
    })
}

/// An error and its sources, so that "connection refused" is not hidden behind "client error".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// Everything but RFC 3986's unreserved characters is escaped.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}
