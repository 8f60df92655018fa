//! A Pebble harness for tests: `pebble` (a test ACME CA) and `pebble-challtestsrv` (a DNS server
//! answering every name with 127.0.0.1) on private loopback ports, stopped on drop.
//!
//! When the binaries are missing the harness returns `None` so that a developer without them can
//! run the rest; with `CI=true` it panics instead, so that CI never skips these tests silently.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A free UDP and TCP port on 127.0.0.1, for the DNS server.
fn free_dns_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running Pebble and its DNS server.
pub struct Pebble {
    pebble: Child,
    dns: Child,
    dir: tempfile::TempDir,
    /// The directory URL.
    pub directory_url: String,
    /// The root of Pebble's own HTTPS certificate (trust it as the CA's root).
    pub https_root: CertificateDer<'static>,
    management_port: u16,
    dns_management_port: u16,
}

fn unavailable(what: &str) -> Option<Pebble> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: Pebble is required in CI (install Debian's `pebble` package)");
    }
    eprintln!("skipping: {what} (install Debian's `pebble` package to run this test)");
    None
}

impl Pebble {
    /// Starts Pebble validating `http-01` on `http_port` and `tls-alpn-01` on `tls_port`.
    pub fn start(http_port: u16, tls_port: u16) -> Option<Self> {
        for binary in ["pebble", "pebble-challtestsrv"] {
            if Command::new(binary)
                .arg("-h")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                return unavailable(&format!("{binary} cannot be run"));
            }
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = rcgen::KeyPair::generate().expect("a key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("names");
        let cert = params.self_signed(&key).expect("a certificate");
        let cert_path = dir.path().join("pebble.crt");
        let key_path = dir.path().join("pebble.key");
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        let (listen_port, management_port, dns_port) = (free_port(), free_port(), free_dns_port());
        let dns_management_port = free_port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert_path,
            "privateKey": key_path,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("a log file");
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn();
        let Ok(dns) = dns else {
            return unavailable("pebble-challtestsrv does not start");
        };
        let pebble = Command::new("pebble")
            .args(["-config".as_ref(), config_path.as_os_str()])
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn();
        let Ok(pebble) = pebble else {
            let mut dns = dns;
            let _ = dns.kill();
            let _ = dns.wait();
            return unavailable("pebble does not start");
        };
        let mut started = Self {
            pebble,
            dns,
            dir,
            directory_url: format!("https://127.0.0.1:{listen_port}/dir"),
            https_root: CertificateDer::from(cert.der().to_vec()),
            management_port,
            dns_management_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while [listen_port, management_port, dns_management_port]
            .iter()
            .any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err())
        {
            if Instant::now() > deadline
                || started.pebble.try_wait().ok().flatten().is_some()
                || started.dns.try_wait().ok().flatten().is_some()
            {
                let log = started.log();
                drop(started);
                return unavailable(&format!("pebble did not come up:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(started)
    }

    /// Publishes a TXT record in the DNS server Pebble asks (`host` without the final dot).
    pub fn set_txt(&self, host: &str, value: &str) {
        self.dns_management(
            "set-txt",
            &serde_json::json!({"host": format!("{host}."), "value": value}),
        );
    }

    /// Answers `host` with `address` instead of 127.0.0.1: an address where nothing listens
    /// makes every validation of `host` fail to connect.
    pub fn set_a(&self, host: &str, address: &str) {
        self.dns_management(
            "add-a",
            &serde_json::json!({"host": format!("{host}."), "addresses": [address]}),
        );
    }

    /// Removes the TXT records of `host`.
    pub fn clear_txt(&self, host: &str) {
        self.dns_management(
            "clear-txt",
            &serde_json::json!({"host": format!("{host}.")}),
        );
    }

    fn dns_management(&self, path: &str, body: &serde_json::Value) {
        let output = Command::new("curl")
            .args(["-sS", "--fail", "-X", "POST", "-d", &body.to_string()])
            .arg(format!(
                "http://127.0.0.1:{}/{path}",
                self.dns_management_port
            ))
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// An `http_server_options.acme` block ordering `domains` from this Pebble with
    /// `challenges`, terms accepted and Pebble's HTTPS root trusted; add fields (`http_port`,
    /// `key_type`, `lock_ttl_seconds`) to the returned object as a test needs.
    pub fn acme_block(&self, domains: &[&str], challenges: &[&str]) -> serde_json::Value {
        serde_json::json!({
            "enabled": true,
            "directory": self.directory_url,
            "email": "ops@certgate.test",
            "accept_terms": true,
            "domains": domains,
            "challenges": challenges,
            "ca_root": self.https_root_path(),
        })
    }

    /// Path of the PEM file of Pebble's HTTPS root.
    pub fn https_root_path(&self) -> PathBuf {
        self.dir.path().join("pebble.crt")
    }

    /// Pebble's output so far (its log names every order it creates).
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "{}{}{}",
            read("pebble.log"),
            read("pebble.err"),
            read("challtestsrv.err")
        )
    }

    /// How many orders Pebble has created, counted from its log (it logs "There are now N
    /// orders in the db" once per new order).
    pub fn orders_created(&self) -> usize {
        self.log().matches("orders in the db").count()
    }

    /// The root that the issued certificates chain to, to verify them with.
    pub fn issuing_root(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.issuing_root_pem().as_bytes())
            .expect("Pebble's root is PEM")
    }

    /// The root that the issued certificates chain to (PEM), fetched from the management port.
    pub fn issuing_root_pem(&self) -> String {
        let output = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.https_root_path())
            .arg(format!(
                "https://127.0.0.1:{}/roots/0",
                self.management_port
            ))
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pem = String::from_utf8(output.stdout).expect("PEM text");
        assert!(
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .next()
                .is_some(),
            "{pem}"
        );
        pem
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
