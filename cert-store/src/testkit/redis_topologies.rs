//! A private Redis Cluster (3 masters, 3 replicas) and a private Sentinel setup (one master, one
//! replica, three sentinels) for tests, on free loopback ports, each stopped on drop. Built from
//! Debian's `redis-server` (sentinels run as `redis-server <conf> --sentinel`) and `redis-cli`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::redis_server::{answers_ping, free_port};
use crate::RedisConnection;

/// Whether `redis-server` and `redis-cli` are installed; panics under `CI=true` if not.
fn tools_installed() -> bool {
    for tool in ["redis-server", "redis-cli"] {
        if Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            let message = format!("{tool} is not installed (Debian: apt-get install redis-server)");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{message}; Redis tests must run in CI"
            );
            eprintln!("skipping a Redis test: {message}");
            return false;
        }
    }
    true
}

/// One `redis-server` process of a topology.
#[derive(Debug)]
struct Node {
    port: u16,
    args: Vec<String>,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(port: u16, dir: &Path, args: Vec<String>) -> Self {
        std::fs::create_dir_all(dir).expect("a folder for a redis node");
        let mut node = Self {
            port,
            args,
            dir: dir.to_owned(),
            child: None,
        };
        node.launch();
        node
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "a redis node did not answer on port {} within 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn node_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Runs `redis-cli -p port args...` and returns its output.
fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} within {} s",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private Redis Cluster: 3 masters and 3 replicas on free loopback ports.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok`. Returns `None` (or panics under `CI=true`) when Redis is not
    /// installed; panics when the cluster cannot be formed.
    pub fn start() -> Option<Self> {
        if !tools_installed() {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary folder for the cluster");
        let nodes: Vec<Node> = (0..6)
            .map(|n| {
                let port = free_port();
                let mut args = node_args(port);
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1500",
                        "--cluster-replica-validity-factor",
                        "0",
                    ]
                    .iter()
                    .map(|s| (*s).to_owned()),
                );
                Node::start(port, &dir.path().join(format!("node{n}")), args)
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = Command::new("redis-cli")
            .args(&create)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_healthy(Duration::from_secs(60));
        // Each replica must be attached and in sync, so a failover has someone to promote.
        wait_until(
            "the cluster's replicas did not sync",
            Duration::from_secs(60),
            || {
                cluster.nodes.iter().all(|n| {
                    let info = cli(n.port, &["INFO", "replication"]);
                    info.contains("role:slave") && info.contains("master_link_status:up")
                        || info.contains("role:master") && info.contains("connected_slaves:1")
                })
            },
        );
        Some(cluster)
    }

    /// Waits until every running node reports `cluster_state:ok` and all 16384 slots are
    /// served.
    pub fn wait_healthy(&self, timeout: Duration) {
        wait_until("the Redis Cluster did not become ok", timeout, || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = cli(n.port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            })
        });
    }

    /// `host:port` of every node (the seeds to give a client).
    pub fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// A connection description with every node as a seed.
    pub fn connection(&self) -> RedisConnection {
        RedisConnection::cluster(self.addrs())
    }

    /// The port of the master that serves `key` now.
    pub fn master_port_of(&self, key: &str) -> u16 {
        let running = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a running node");
        let slot: u16 = cli(running.port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number");
        let nodes = cli(running.port, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    let addr = fields[1].split('@').next().unwrap_or_default();
                    return addr
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse().ok())
                        .expect("a node port");
                }
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// Waits until the cluster has failed over away from the killed node on `port`: another
    /// node serves every slot it had (its replica was promoted) and the cluster is ok. Restart
    /// a killed master only after this: a node without persistence that comes back before its
    /// replica is promoted returns as an empty master.
    pub fn wait_failover(&self, port: u16, timeout: Duration) {
        let me = format!("127.0.0.1:{port}@");
        wait_until("the Redis Cluster did not fail over", timeout, || {
            let Some(running) = self.nodes.iter().find(|n| n.child.is_some()) else {
                return false;
            };
            let nodes = cli(running.port, &["CLUSTER", "NODES"]);
            let dead_serves_slots = nodes.lines().any(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                fields.get(1).is_some_and(|a| a.starts_with(&me))
                    && fields.get(2).is_some_and(|f| f.contains("master"))
                    && fields.len() > 8
            });
            !dead_serves_slots
        });
        self.wait_healthy(timeout);
    }

    /// Kills (SIGKILL) the node on `port`, as a crash would.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.stop();
        }
    }

    /// Starts the node on `port` again (it rejoins, as a replica if it was failed over).
    pub fn restart(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.stop();
            node.launch();
        }
    }
}

/// What a failover test does to a replicated topology ([`RedisCluster`], [`RedisSentinels`]):
/// kill the master holding a key, then bring the deployment back to full strength.
pub trait Failover {
    /// A connection description for the topology.
    fn connection(&self) -> RedisConnection;
    /// Kills (SIGKILL) the master serving `key`; returns its port.
    fn kill_master_of(&mut self, key: &str) -> u16;
    /// Waits (at most a minute) for a new master, then starts the killed node again, as a
    /// replica, so that writes waiting for one replica can succeed again.
    fn recover(&mut self, killed: u16);
}

impl Failover for RedisCluster {
    fn connection(&self) -> RedisConnection {
        RedisCluster::connection(self)
    }

    fn kill_master_of(&mut self, key: &str) -> u16 {
        let port = self.master_port_of(key);
        self.kill(port);
        port
    }

    fn recover(&mut self, killed: u16) {
        self.wait_failover(killed, Duration::from_secs(60));
        self.restart(killed);
        self.wait_healthy(Duration::from_secs(60));
    }
}

impl Failover for RedisSentinels {
    fn connection(&self) -> RedisConnection {
        RedisSentinels::connection(self)
    }

    /// One master serves every key here.
    fn kill_master_of(&mut self, _key: &str) -> u16 {
        self.kill_master()
    }

    fn recover(&mut self, killed: u16) {
        self.wait_failover(killed, Duration::from_secs(60));
        self.restart(killed);
    }
}

/// A private Sentinel setup: one master, one replica and three sentinels monitoring it under
/// the name [`RedisSentinels::MASTER_NAME`].
#[derive(Debug)]
pub struct RedisSentinels {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
    _dir: TempDir,
}

impl RedisSentinels {
    /// The monitored master's name.
    pub const MASTER_NAME: &'static str = "certgate";

    /// Starts the master, the replica and the sentinels and waits until every sentinel knows
    /// the replica and the other sentinels. Returns `None` (or panics under `CI=true`) when
    /// Redis is not installed; panics when the setup cannot be formed.
    pub fn start() -> Option<Self> {
        if !tools_installed() {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary folder for the sentinel setup");
        let master_port = free_port();
        let master = Node::start(
            master_port,
            &dir.path().join("master"),
            node_args(master_port),
        );
        let replica_port = free_port();
        let mut replica_args = node_args(replica_port);
        replica_args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master_port.to_string(),
        ]);
        let replica = Node::start(replica_port, &dir.path().join("replica"), replica_args);
        let sentinels = (0..3)
            .map(|n| {
                let port = free_port();
                let folder = dir.path().join(format!("sentinel{n}"));
                std::fs::create_dir_all(&folder).expect("a sentinel folder");
                let conf = folder.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndaemonize no\n\
                         sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {name} 1000\n\
                         sentinel failover-timeout {name} 4000\n\
                         sentinel parallel-syncs {name} 1\n",
                        name = Self::MASTER_NAME
                    ),
                )
                .expect("a sentinel configuration");
                Node::start(
                    port,
                    &folder,
                    vec![conf.display().to_string(), "--sentinel".to_owned()],
                )
            })
            .collect();
        let setup = Self {
            master,
            replica,
            sentinels,
            _dir: dir,
        };
        wait_until(
            "the replica did not sync with the master",
            Duration::from_secs(30),
            || cli(setup.replica.port, &["INFO", "replication"]).contains("master_link_status:up"),
        );
        wait_until(
            "the sentinels did not discover the replica and each other",
            Duration::from_secs(60),
            || {
                setup.sentinels.iter().all(|s| {
                    let master = cli(s.port, &["SENTINEL", "MASTER", Self::MASTER_NAME]);
                    let mut lines = master.lines();
                    let mut replicas = 0;
                    let mut others = 0;
                    while let Some(key) = lines.next() {
                        let value = lines.next().unwrap_or_default();
                        match key {
                            "num-slaves" => replicas = value.parse().unwrap_or(0),
                            "num-other-sentinels" => others = value.parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                    replicas >= 1 && others >= 2
                })
            },
        );
        Some(setup)
    }

    /// `host:port` of the sentinels.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// A connection description through the sentinels.
    pub fn connection(&self) -> RedisConnection {
        RedisConnection::sentinel(self.sentinel_addrs(), Self::MASTER_NAME)
    }

    /// The port of the node the sentinels report as master now.
    pub fn master_port(&self) -> u16 {
        for sentinel in self.sentinels.iter().filter(|s| s.child.is_some()) {
            let answer = cli(
                sentinel.port,
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER_NAME],
            );
            if let Some(port) = answer.lines().nth(1).and_then(|p| p.trim().parse().ok()) {
                return port;
            }
        }
        panic!("no sentinel reports a master");
    }

    /// Kills (SIGKILL) the current master; the sentinels promote the replica.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        for node in [&mut self.master, &mut self.replica] {
            if node.port == port {
                node.stop();
            }
        }
        port
    }

    /// Waits until the sentinels report a master other than `old_port` and it answers as one.
    pub fn wait_failover(&self, old_port: u16, timeout: Duration) -> u16 {
        let mut new_port = 0;
        wait_until("the sentinels did not fail over", timeout, || {
            new_port = self.master_port();
            new_port != old_port && cli(new_port, &["ROLE"]).starts_with("master")
        });
        new_port
    }

    /// Starts a killed data node again (the sentinels make it a replica of the new master).
    pub fn restart(&mut self, port: u16) {
        for node in [&mut self.master, &mut self.replica] {
            if node.port == port && node.child.is_none() {
                node.launch();
            }
        }
    }
}
