//! A real Kafka-protocol broker for tests: tansu, started on a free loopback port with
//! in-memory storage and stopped (killed) when the [`Broker`] is dropped.
//! [`Broker::start_with`] can advertise another address (a fault-injecting forwarder in
//! front of it) and require SASL authentication.
//!
//! tansu must be installed (`.ci/run` does, with `.ci/tansu/install`: tansu 0.6.0 with a
//! fix for fetches that start inside a record batch). Without it the Kafka tests FAIL with
//! a message saying so: they never pass silently.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod kafka;

/// A running tansu broker.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    tansu: PathBuf,
}

/// The tansu binary, if installed: on PATH, or in ~/.cargo/bin.
pub fn find_tansu() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).map(|d| d.join("tansu"));
    let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    on_path.chain(cargo_bin).find(|p| p.is_file())
}

/// The tansu binary; panics with how to install it when it is missing.
fn tansu() -> PathBuf {
    find_tansu().unwrap_or_else(|| panic!("the Kafka tests need the tansu broker, which is not installed: run `.ci/tansu/install` (as .ci/run does: tansu 0.6.0 with a fetch fix) and put ~/.cargo/bin on PATH"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How to start the broker.
#[derive(Debug, Default, Clone)]
pub struct BrokerOptions {
    /// The `host:port` advertised to clients in metadata (default: the listen address).
    pub advertised: Option<String>,
    /// Require SASL authentication (`tansu broker --authentication`).
    pub authentication: bool,
}

impl Broker {
    /// Starts tansu on a free loopback port and waits until it accepts connections.
    pub fn start() -> Broker {
        Broker::start_with(&BrokerOptions::default())
    }

    /// Starts tansu as [`Broker::start`] does, with `opts`.
    pub fn start_with(opts: &BrokerOptions) -> Broker {
        let tansu = tansu();
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let url = format!("tcp://{addr}");
            let advertised = opts.advertised.as_ref().map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
            let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
            let log = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(&tansu);
            cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &advertised, "--storage-engine", "memory://tansu/"]);
            if opts.authentication {
                cmd.arg("--authentication");
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", tansu.display()));
            let mut b = Broker { child, addr: addr.clone(), tansu: tansu.clone() };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = b.child.try_wait() {
                    eprintln!("tansu exited at start ({status}); retrying on another port");
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return b;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("tansu did not start listening");
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.tansu)
            .args(["topic", "create", name, "--broker", &self.url(), "--partitions", &partitions.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "tansu topic create {name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
