//! The demo: certificates in a folder, an in-memory store, an echo upstream, two APIs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::rand::SecureRandom as _;
use tls_core::OrgId;

const FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
];

/// Starts the demo gateway on 127.0.0.1:`port` and prints how to use it.
pub(crate) async fn start(dir: &Path, port: u16) -> Result<Gateway, String> {
    ensure_certificates(dir)?;
    let read = |name: &str| read_demo_file(&dir.join(name));
    let upstream = start_echo_upstream().await?;

    let mut secret_bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut secret_bytes)
        .map_err(|_| "no randomness".to_owned())?;
    let secret: String = secret_bytes.iter().map(|b| format!("{b:02x}")).collect();

    let mut config = GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = port;
    config.secret = secret.clone();
    config.certificate_ui.enabled = true;
    config.http_server_options.use_ssl = true;
    config.http_server_options.enable_http2 = true;

    let store = gateway_runtime::store_from_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let server_id = add(&store, &(read("server.pem")? + &read("server.key")?)).await?;
    let ca_id = add(&store, &read("ca.pem")?).await?;
    config.http_server_options.ssl_certificates = vec![(&server_id).into()];

    let api = |id: &str, path: &str, mtls: bool| {
        let json = serde_json::json!({
            "api_id": id, "name": id, "org_id": "", "active": true,
            "use_mutual_tls_auth": mtls,
            "client_certificates": if mtls { vec![ca_id.to_string()] } else { Vec::new() },
            "proxy": { "listen_path": path, "target_url": format!("http://{upstream}"), "strip_listen_path": true },
        });
        ApiDefinition::from_json(&json.to_string(), Path::new(id))
    };
    let apis = vec![
        api("open", "/open/", false).map_err(|e| e.to_string())?,
        api("secure", "/secure/", true).map_err(|e| e.to_string())?,
    ];
    let gateway = GatewayBuilder::new(config)
        .store(store)
        .apis(apis)
        .start()
        .await
        .map_err(|e| e.to_string())?;

    let d = dir.display();
    let port = gateway.local_addr().port();
    println!(
        "certgate demo gateway on https://localhost:{port} (upstream echo on http://{upstream})\n\n\
         # an open API over TLS\n\
         curl --cacert {d}/ca.pem https://localhost:{port}/open/hello\n\n\
         # a mutual-TLS API: with the client certificate, then without (403)\n\
         curl --cacert {d}/ca.pem --cert {d}/client.pem --key {d}/client.key https://localhost:{port}/secure/hello\n\
         curl --cacert {d}/ca.pem https://localhost:{port}/secure/hello\n\n\
         # the certificate API\n\
         curl --cacert {d}/ca.pem -H 'X-Tyk-Authorization: {secret}' https://localhost:{port}/tyk/certs\n\
         curl --cacert {d}/ca.pem -H 'X-Tyk-Authorization: {secret}' https://localhost:{port}/tyk/certs/{server_id}\n\n\
         # the certificate page (sign in with the secret above)\n\
         https://localhost:{port}/ui/\n\n\
         Press Ctrl-C to stop."
    );
    Ok(gateway)
}

async fn add(store: &cert_store::CertStore, pem: &str) -> Result<tls_core::CertId, String> {
    match store.add(pem, &OrgId::EMPTY).await {
        Ok(id) => Ok(id),
        Err(cert_store::StoreError::AlreadyExists { id }) => Ok(id),
        Err(e) => Err(e.to_string()),
    }
}

/// Makes the demo CA, server and client certificates unless all are already there.
///
/// Never through a symbolic link: the folder and every file must be real (a link is refused
/// with an error naming it), new files are created with `O_CREAT|O_EXCL` and mode 0600 (so a
/// link planted at a file's path fails the creation instead of being followed), the folder
/// with 0700. Existing files are reused only if all six are regular files of this user, and
/// the keys are readable by this user only.
fn ensure_certificates(dir: &Path) -> Result<(), String> {
    refuse_symlink(dir)?;
    let present: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
        .collect();
    for name in &present {
        check_demo_file(&dir.join(name))?;
    }
    if present.len() == FILES.len() {
        return Ok(());
    }
    if !present.is_empty() {
        return Err(format!(
            "{}: holds some demo files ({}) but not all; remove them or choose another --demo-dir",
            dir.display(),
            present.join(", ")
        ));
    }
    let err = |e: rcgen::Error| format!("making demo certificates: {e}");
    let yesterday = cert_store::Clock::now(&cert_store::SystemClock) - time::Duration::days(1);
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    refuse_symlink(dir)?;

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certgate demo CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = yesterday;
    ca_params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate().map_err(err)?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(err)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.not_before = yesterday;
    server_params.not_after = rcgen::date_time_ymd(2034, 1, 1);
    let server_cert = server_params.signed_by(&server_key, &issuer).map_err(err)?;

    let client_key = KeyPair::generate().map_err(err)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "certgate demo client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.not_before = yesterday;
    client_params.not_after = rcgen::date_time_ymd(2034, 1, 1);
    let client_cert = client_params.signed_by(&client_key, &issuer).map_err(err)?;

    let contents = [
        ca_cert.pem(),
        ca_key.serialize_pem(),
        server_cert.pem(),
        server_key.serialize_pem(),
        client_cert.pem(),
        client_key.serialize_pem(),
    ];
    for (name, text) in FILES.iter().zip(contents) {
        write_private(&dir.join(name), &text)?;
    }
    Ok(())
}

/// Creates `path` (it must not exist: `O_CREAT|O_EXCL`, which also refuses a symbolic link
/// there) with mode 0600 and writes `text`.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{}: already exists (a file or a symbolic link appeared while the demo files were made); not overwritten",
                path.display()
            ),
            _ => format!("{}: {e}", path.display()),
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Refuses `path` if it is a symbolic link.
fn refuse_symlink(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{}: is a symbolic link; the demo does not follow links (use a real folder and files)",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// An existing demo file must be a regular file (not a link) owned by this user; a key must
/// be readable by this user only.
fn check_demo_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    refuse_symlink(path)?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    // The owner of this process's /proc entry is its effective user (Linux).
    if let Ok(me) = std::fs::metadata("/proc/self")
        && meta.uid() != me.uid()
    {
        return Err(format!(
            "{}: owned by user {}, not by this user ({}); refusing to use it",
            path.display(),
            meta.uid(),
            me.uid()
        ));
    }
    let is_key = path.extension().is_some_and(|e| e == "key");
    if is_key && meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: a private key readable or writable by others (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Reads a demo file checked by [`check_demo_file`]; the file opened must be the one checked
/// (same device and inode, still not a link), so a swap in between is refused.
fn read_demo_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let shown = || path.display().to_string();
    check_demo_file(path)?;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", shown()))?;
    let opened = file.metadata().map_err(|e| format!("{}: {e}", shown()))?;
    let at_path = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", shown()))?;
    if !opened.file_type().is_file()
        || at_path.file_type().is_symlink()
        || (opened.dev(), opened.ino()) != (at_path.dev(), at_path.ino())
    {
        return Err(format!(
            "{}: changed while being opened; refusing it",
            shown()
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", shown()))?;
    Ok(text)
}

/// An HTTP server that answers every request with what it received.
async fn start_echo_upstream() -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(echo);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let length = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::from(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let answer = serde_json::json!({
        "upstream": "certgate demo echo",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": length,
    });
    let mut text = answer.to_string();
    text.push('\n');
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};

    use super::*;

    #[test]
    fn demo_files_are_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo-certs");
        ensure_certificates(&demo).unwrap();
        for name in FILES {
            let meta = std::fs::symlink_metadata(demo.join(name)).unwrap();
            assert!(meta.file_type().is_file(), "{name}");
            assert_eq!(meta.mode() & 0o777, 0o600, "{name}");
        }
        assert_eq!(std::fs::metadata(&demo).unwrap().mode() & 0o777, 0o700);
        let key = read_demo_file(&demo.join("ca.key")).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        // A second run reuses them unchanged.
        ensure_certificates(&demo).unwrap();
        assert_eq!(read_demo_file(&demo.join("ca.key")).unwrap(), key);
    }

    #[test]
    fn a_symlinked_demo_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo-certs");
        std::fs::create_dir(&demo).unwrap();
        // The attack: a link where the CA key will be written, to a world-readable file.
        let target = dir.path().join("elsewhere.txt");
        std::fs::write(&target, "original").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        symlink(&target, demo.join("ca.key")).unwrap();

        let error = ensure_certificates(&demo).unwrap_err();
        assert!(
            error.contains("ca.key") && error.contains("symbolic link"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
        assert_eq!(
            std::fs::metadata(&target).unwrap().mode() & 0o777,
            0o644,
            "the target's mode is unchanged"
        );
        assert!(
            std::fs::symlink_metadata(demo.join("ca.pem")).is_err(),
            "nothing else was written"
        );
    }

    #[test]
    fn a_symlink_among_complete_demo_files_or_as_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo-certs");
        ensure_certificates(&demo).unwrap();
        // Replace the server key with a link to another private file.
        let other = dir.path().join("other.key");
        std::fs::write(&other, "not a key").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(demo.join("server.key")).unwrap();
        symlink(&other, demo.join("server.key")).unwrap();
        let error = ensure_certificates(&demo).unwrap_err();
        assert!(
            error.contains("server.key") && error.contains("symbolic link"),
            "{error}"
        );
        let error = read_demo_file(&demo.join("server.key")).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");

        // The folder itself as a link.
        let linked = dir.path().join("linked-certs");
        symlink(&demo, &linked).unwrap();
        let error = ensure_certificates(&linked).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn a_key_readable_by_others_or_a_partial_set_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo-certs");
        ensure_certificates(&demo).unwrap();
        std::fs::set_permissions(
            demo.join("client.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let error = ensure_certificates(&demo).unwrap_err();
        assert!(
            error.contains("client.key") && error.contains("chmod 600"),
            "{error}"
        );

        let partial = dir.path().join("partial");
        std::fs::create_dir(&partial).unwrap();
        std::fs::write(partial.join("ca.pem"), "x").unwrap();
        let error = ensure_certificates(&partial).unwrap_err();
        assert!(error.contains("not all"), "{error}");
        assert_eq!(
            std::fs::read_to_string(partial.join("ca.pem")).unwrap(),
            "x"
        );
    }
}
