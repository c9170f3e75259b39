//! Real server processes for the failure tests: the built `retract-server` binary started
//! with `RETRACT_*` variables, stopped with SIGKILL or SIGTERM, and a TCP proxy that can take
//! the database away from it.
//!
//! The binary is `RETRACT_SERVER_BIN` (`.ci/run` builds it once and sets it), else
//! `retract-server` beside this test binary's target folder (whatever `cargo build -p
//! retract-server` last built there). Under `CI=true`, or with `RETRACT_SERVER_BIN` naming a
//! missing file, a missing binary fails the test; elsewhere the test is skipped loudly.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use retract_client::{Client, DevToken};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::oneshot,
};
use tokio_util::sync::CancellationToken;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
};

use crate::scenarios::{CLIENT_ID, CLIENT_SECRET};

/// The `retract-server` binary to run, or `None` (after saying why) when it is not built and
/// this is not CI.
pub fn server_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("RETRACT_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "RETRACT_SERVER_BIN={} is not a file",
            path.display()
        );
        return Some(path);
    }
    // target/<profile>/deps/retract_e2e-… → target/<profile>/retract-server
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("retract-server")))
        .filter(|p| p.is_file());
    if beside.is_none() {
        let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
        assert!(
            !ci,
            "CI: the retract-server binary is missing; build it (cargo build -p retract-server) \
             and set RETRACT_SERVER_BIN"
        );
        eprintln!(
            "skipped: no retract-server binary (cargo build -p retract-server, or set RETRACT_SERVER_BIN)"
        );
    }
    beside
}

/// `RETRACT_*` settings of a server process pointed at graph-sim, tuned for tests (fast
/// polling, retries and health probes, a short grace period, JSON logs).
#[derive(Debug, Clone)]
pub struct ProcessSettings(BTreeMap<String, String>);

impl ProcessSettings {
    /// A server on `database_url` against graph-sim's two base URLs.
    pub fn new(database_url: &str, graph_base_url: &str, login_base_url: &str) -> Self {
        let mut s = Self(BTreeMap::new());
        for (name, value) in [
            ("listen_addr", "127.0.0.1:0"),
            ("database_url", database_url),
            ("database_max_connections", "4"),
            ("database_acquire_timeout_ms", "1000"),
            ("graph_base_url", graph_base_url),
            ("login_base_url", login_base_url),
            ("graph_client_id", CLIENT_ID),
            ("graph_client_secret", CLIENT_SECRET),
            ("graph_backoff_base_ms", "20"),
            ("graph_backoff_max_ms", "200"),
            ("graph_max_attempts", "10"),
            ("engine_poll_interval_ms", "50"),
            ("watch_heartbeat_ms", "500"),
            ("health_probe_interval_ms", "50"),
            ("health_probe_timeout_ms", "500"),
            ("shutdown_grace_ms", "2000"),
            ("rate_limit_per_second", "0"),
            ("log_format", "json"),
            ("log_filter", "info"),
        ] {
            s = s.set(name, value);
        }
        s
    }

    /// Drops one setting, so the server's default applies.
    #[must_use]
    pub fn unset(mut self, name: &str) -> Self {
        self.0
            .remove(&format!("RETRACT_{}", name.to_ascii_uppercase()));
        self
    }

    /// Sets one setting (by its name in `--help`, e.g. `job_lease_ms`).
    #[must_use]
    pub fn set(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.0.insert(
            format!("RETRACT_{}", name.to_ascii_uppercase()),
            value.to_string(),
        );
        self
    }
}

/// A running `retract-server` process; killed when dropped. A test that panics prints the
/// end of its log.
pub struct ServerProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    name: String,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    client: Client,
}

impl ServerProcess {
    /// Starts `binary` with `settings` (and nothing else from this process's environment) and
    /// waits until it listens. `name` labels its log lines.
    pub async fn start(binary: &std::path::Path, name: &str, settings: &ProcessSettings) -> Self {
        let mut child = Command::new(binary)
            .env_clear()
            .envs(&settings.0)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (listening, addr) = oneshot::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(collect(stdout, logs.clone(), Some(listening)));
        tokio::spawn(collect(stderr, logs.clone(), None));
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let status = child.try_wait().ok().flatten();
                panic!(
                    "{name} did not start listening (exit: {status:?}):\n{}",
                    tail(&logs, 60)
                );
            }
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint URL")
            .connect_lazy();
        Self {
            addr,
            name: name.to_owned(),
            child,
            logs,
            client: Client::from_channel(channel),
        }
    }

    /// The platform service (all tenants, every permission).
    pub fn service(&self) -> Client {
        self.with_token(&DevToken::service("portal-backend").all_permissions())
    }

    /// The security administrator of tenant `acme`, with every permission.
    pub fn admin(&self) -> Client {
        self.with_token(&DevToken::admin("admin@contoso.com", "acme").all_permissions())
    }

    /// A caller with `token` (each its own rate-limit and stream budget).
    pub fn with_token(&self, token: &DevToken) -> Client {
        self.client
            .with_token(&token.mint().expect("mint token"))
            .expect("token is ASCII")
    }

    /// `grpc.health.v1.Health/Check` of `service` (`""` for the whole server); `None` when
    /// the call fails.
    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(1))
            .connect()
            .await
            .ok()?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .ok()?
            .into_inner();
        Some(match answer.status() {
            tonic_health::pb::health_check_response::ServingStatus::Serving => {
                ServingStatus::Serving
            }
            tonic_health::pb::health_check_response::ServingStatus::NotServing => {
                ServingStatus::NotServing
            }
            _ => ServingStatus::Unknown,
        })
    }

    /// Waits (up to `limit`) until `service`'s health is `status`.
    pub async fn wait_for_health(&self, service: &str, status: ServingStatus, limit: Duration) {
        let waited = tokio::time::timeout(limit, async {
            while self.health(service).await != Some(status) {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{}: health of {service:?} did not become {status:?} within {limit:?}",
            self.name
        );
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, as a crash or an OOM kill: nothing runs after it. Waits until it is gone.
    pub async fn kill9(mut self) {
        self.child.kill().await.expect("SIGKILL the server");
    }

    /// SIGTERM, as a deploy does, and waits (up to `limit`) for the process to exit.
    pub async fn terminate(mut self, limit: Duration) -> ExitStatus {
        let pid = self.child.id().expect("the server still runs");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("wait for the server"),
            Err(_) => panic!(
                "{} did not exit within {limit:?} of SIGTERM:\n{}",
                self.name,
                tail(&self.logs, 60)
            ),
        }
    }

    /// The log lines seen so far that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.name,
                tail(&self.logs, 80)
            );
        }
    }
}

/// Reads a pipe to its end into `logs`; from stdout, the JSON line announcing the listen
/// address answers `listening`.
async fn collect(
    pipe: impl tokio::io::AsyncRead + Unpin,
    logs: Arc<Mutex<Vec<String>>>,
    mut listening: Option<oneshot::Sender<SocketAddr>>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if listening.is_some()
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
            && json["message"] == "retract-server listening"
            && let Some(addr) = json["local_addr"].as_str().and_then(|a| a.parse().ok())
            && let Some(tx) = listening.take()
        {
            tx.send(addr).ok();
        }
        logs.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }
}

fn tail(logs: &Mutex<Vec<String>>, n: usize) -> String {
    let logs = logs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    logs[logs.len().saturating_sub(n)..].join("\n")
}

/// A TCP proxy in front of a server (PostgreSQL) that the test can cut: every open
/// connection closed and new ones refused, until restored. The database server itself is
/// never touched, so other tests keep using it.
pub struct TcpProxy {
    /// Where clients connect instead.
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    stop: CancellationToken,
}

struct ProxyState {
    /// `None` while cut; the open connections end when it is cancelled.
    open: Option<CancellationToken>,
}

impl TcpProxy {
    /// A proxy on 127.0.0.1:0 forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(ProxyState {
            open: Some(CancellationToken::new()),
        }));
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, state.clone(), stop.clone()));
        Self { addr, state, stop }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        let open = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .open
            .take();
        if let Some(open) = open {
            open.cancel();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .open
            .get_or_insert_with(CancellationToken::new);
    }

    /// `url` (a `postgres://` URL) through this proxy.
    pub fn url_through(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("database URL");
        url.set_host(Some(&self.addr.ip().to_string()))
            .expect("set host");
        url.set_port(Some(self.addr.port())).expect("set port");
        url.to_string()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        let open = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .open
            .clone();
        // Cut: the connection is closed at once, as a refused one would be.
        let Some(open) = open else {
            drop(client);
            continue;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut client, mut server) = (client, server);
            tokio::select! {
                () = open.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            }
        });
    }
}

/// The `host:port` of a `postgres://` URL.
pub fn postgres_addr(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("database URL");
    let host = url.host_str().expect("database host");
    let port = url.port().unwrap_or(5432);
    format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|e| panic!("{host}:{port} is not an IP address and port: {e}"))
}
