//! `danger::AcceptAnyServerCertificate` in real rustls handshakes (in memory, TLS 1.2 and 1.3):
//! a certificate from an unknown CA for another name is accepted, but a server that signs the
//! handshake with a key other than its certificate's is refused.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, ServerConfig, ServerConnection, SupportedProtocolVersion,
};
use test_support::pki::TestCa;
use tls_core::danger::AcceptAnyServerCertificate;

/// Always presents `0`.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesServerCert for Present {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The server presents `cert_of`'s certificate and signs with `key_of`'s key.
fn server(
    provider: &Arc<CryptoProvider>,
    cert_of: &test_support::pki::Leaf,
    key_of: &test_support::pki::Leaf,
) -> ServerConnection {
    let key = provider
        .key_provider
        .load_private_key(key_of.key())
        .unwrap();
    let certified = Arc::new(CertifiedKey::new(cert_of.chain.clone(), key));
    let config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Present(certified)));
    ServerConnection::new(Arc::new(config)).unwrap()
}

fn client(
    provider: &Arc<CryptoProvider>,
    version: &'static SupportedProtocolVersion,
) -> ClientConnection {
    let verifier = AcceptAnyServerCertificate::new(provider.signature_verification_algorithms);
    let config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = ServerName::try_from("not-the-certificates-name.test").unwrap();
    ClientConnection::new(Arc::new(config), name).unwrap()
}

/// Runs the handshake in memory; the client's error if it refuses the server.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).unwrap();
        }
        server.read_tls(&mut bytes.as_slice()).unwrap();
        if server.process_new_packets().is_err() {
            // The server's alert reaches the client below.
        }
        let mut bytes = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut bytes).unwrap();
        }
        client.read_tls(&mut bytes.as_slice()).unwrap();
        client.process_new_packets()?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

const VERSIONS: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS12, &rustls::version::TLS13];

#[test]
fn any_certificate_is_accepted_from_a_server_holding_its_key() {
    let provider = tls_core::default_provider();
    let leaf = TestCa::root("unknown ca").server(&["some-other-name.test"]);
    for version in VERSIONS {
        let (mut client, mut server) =
            (client(&provider, version), server(&provider, &leaf, &leaf));
        handshake(&mut client, &mut server).unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(client.protocol_version(), Some(version.version));
        assert_eq!(
            client.peer_certificates().unwrap().first(),
            Some(&leaf.der()),
            "{version:?}"
        );
    }
}

#[test]
fn a_handshake_signed_with_another_key_is_refused() {
    let provider = tls_core::default_provider();
    let ca = TestCa::root("unknown ca");
    let (presented, signer) = (ca.server(&["a.test"]), ca.server(&["b.test"]));
    for version in VERSIONS {
        let (mut client, mut server) = (
            client(&provider, version),
            server(&provider, &presented, &signer),
        );
        let error = handshake(&mut client, &mut server).unwrap_err();
        assert!(
            matches!(
                error,
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
            ),
            "{version:?}: {error}"
        );
    }
}
