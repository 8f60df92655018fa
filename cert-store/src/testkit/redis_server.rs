//! A private `redis-server` for tests: its own port and data folder, never the machine's shared
//! instance. Data is written with `appendfsync always`, so a stop and restart loses nothing.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    ///
    /// When `redis-server` is not installed: panics if the environment variable `CI` is `true`
    /// (Redis tests must run in CI), otherwise prints why and returns `None` so the caller can
    /// skip.
    pub fn start() -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            let message = "redis-server is not installed (Debian: apt-get install redis-server)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{message}; Redis tests must run in CI"
            );
            eprintln!("skipping a Redis test: {message}");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary folder for redis-server");
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.launch();
        Some(server)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        answers_ping(self.port)
    }

    /// A connection description for this server.
    #[cfg(feature = "redis")]
    pub fn connection(&self) -> crate::RedisConnection {
        crate::RedisConnection::single(format!("127.0.0.1:{}", self.port))
    }

    /// The URL to connect to, e.g. `redis://127.0.0.1:6390/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (as a crash would: SIGKILL). Its data stays in its folder.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Stops it, deletes its data, and starts it again on the same port, empty (a server that
    /// lost its disk, or came back without persistence).
    pub fn restart_empty(&mut self) {
        self.stop();
        let entries = std::fs::read_dir(self.dir.path()).expect("the data folder is readable");
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.expect("redis-server's data is deleted");
        }
        self.launch();
    }

    /// The process ID of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Pauses the server (`SIGSTOP`) until the guard is dropped or [`Paused::resume`]d
    /// (`SIGCONT`): its connections stay open, but it answers nothing, applies no replication
    /// stream and acknowledges nothing to its master.
    pub fn pause(&self) -> Paused<'_> {
        self.signal("-STOP");
        Paused(self)
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server runs").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// A [`RedisServer`] paused by [`RedisServer::pause`]; resumed on drop, even when a test fails
/// half-way.
#[derive(Debug)]
#[must_use = "the server resumes when this is dropped"]
pub struct Paused<'a>(&'a RedisServer);

impl Paused<'_> {
    /// Resumes the server now.
    pub fn resume(self) {}
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if self.0.child.is_some() {
            self.0.signal("-CONT");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

pub(super) fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
