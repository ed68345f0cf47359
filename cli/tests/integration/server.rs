//! Starts the real server binary on a free loopback port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reprise_sdk::blocking::Client;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_reprise")
}

/// The demo music catalogue's migrations (the default `migrations/`).
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
}

/// The MovieLens catalogue's migrations.
pub fn movielens_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalogs/movielens/migrations")
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub client: Client,
}

impl Server {
    /// Starts `reprise serve` on `data_dir` with the demo catalogue's
    /// migrations.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(&migrations_dir(), data_dir, free_port(), extra)
    }

    /// Starts `reprise serve` on `data_dir` with the MovieLens catalogue's
    /// migrations.
    pub fn start_ml(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(&movielens_migrations(), data_dir, free_port(), extra)
    }

    /// [`Server::start`] on a given port.
    pub fn start_on(data_dir: &Path, port: u16, extra: &[&str]) -> Server {
        Server::start_with(&migrations_dir(), data_dir, port, extra)
    }

    /// `reprise serve` with `migrations` on `data_dir`, on `port`.
    pub fn start_with(migrations: &Path, data_dir: &Path, port: u16, extra: &[&str]) -> Server {
        Server::start_env(migrations, data_dir, port, extra, &[])
    }

    /// [`Server::start_with`] with extra environment variables.
    pub fn start_env(
        migrations: &Path,
        data_dir: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(binary())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--migrations")
            .arg(migrations)
            .args(["serve", "--listen", &listen, "--http-workers", "2"])
            .args(extra)
            .env("REPRISE_LOG", "warn")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the reprise binary starts");
        let url = format!("http://{listen}");
        let client = Client::new(&url).expect("an HTTP client");
        let mut server = Server { child, url, client };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited early: {status}");
            }
            if matches!(self.client.get("/readyz"), Ok((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server at {} not ready in 60 s", self.url);
    }

    /// SIGKILL: no shutdown hooks, no flush.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// POSTs `body` as JSON; the status and the JSON answer (null if none).
    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let (status, bytes) = self
            .client
            .post_bytes(path, body.to_string().as_bytes())
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// GETs `path`; the status and the JSON answer (null if none).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, bytes) = self.client.get(path).unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// PUTs `body` as JSON to `path`; the status and the JSON answer.
    pub fn put(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .put(format!("{}{path}", self.url))
            .send_json(body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// GETs `path`; the status and the body as text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        let (status, bytes) = self.client.get(path).unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The value of an unlabelled metric in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.client.get("/metrics").unwrap();
        String::from_utf8(body)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
            .parse()
            .unwrap()
    }

    /// `k` recommendations for `user` on a mobile device in Sweden (200
    /// asserted).
    pub fn recommend(&self, user: &str, k: usize) -> serde_json::Value {
        let (status, body) = self.post(
            "/v1/recommendations",
            &serde_json::json!({"user_id": user, "context": {"device": "mobile", "country": "SE"}, "k": k}),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn store_version(&self) -> u64 {
        let (_, body) = self.client.get("/readyz").unwrap();
        let ready: serde_json::Value = serde_json::from_slice(&body).unwrap();
        ready["store_version"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data directory (`DIR/data`) holding generated MovieLens-format data
/// (`users` users, `2 × items_per_group` items), imported and trained with
/// `train_args` (after `train`).
pub fn trained_data(
    users: u32,
    items_per_group: u32,
    train_args: &[&str],
) -> (tempfile::TempDir, PathBuf) {
    trained_data_with(&movielens_migrations(), users, items_per_group, train_args)
}

/// [`trained_data`] with the migrations in `migrations` (a MovieLens
/// catalogue, perhaps with more views).
pub fn trained_data_with(
    migrations: &Path,
    users: u32,
    items_per_group: u32,
    train_args: &[&str],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ml = dir.path().join("ml");
    std::fs::create_dir(&ml).unwrap();
    reprise_trainer::synthetic::write_movielens(&ml, users, items_per_group).unwrap();
    let data = dir.path().join("data");
    reprise_with(
        migrations,
        &data,
        &["import", "movielens", ml.to_str().unwrap()],
    );
    let mut args = vec!["train"];
    args.extend_from_slice(train_args);
    reprise_with(migrations, &data, &args);
    (dir, data)
}

/// The ranker inputs the MovieLens catalogue declares (what a ranker
/// trained on it is served with).
pub fn declared_inputs() -> reprise_trainer::features::RankerInputs {
    declared_inputs_in(&movielens_migrations())
}

/// The ranker inputs the catalogue in `migrations` declares.
pub fn declared_inputs_in(migrations: &Path) -> reprise_trainer::features::RankerInputs {
    let mut registry = reprise_store::registry::Registry::default();
    for file in reprise_store::migrations::read_dir(migrations).unwrap() {
        let definitions = reprise_store::definitions::DefinitionFile::parse(&file.source).unwrap();
        registry.apply(&file.file_name, &definitions).unwrap();
    }
    let declared = registry
        .recommender()
        .expect("a [recommender] declaration")
        .ranker_features
        .clone();
    reprise_trainer::features::RankerInputs::compile(&registry, &declared).unwrap()
}

/// [`run_cli_ml`], asserting success (the stderr is the failure message).
pub fn reprise_ml(data: &Path, args: &[&str]) -> std::process::Output {
    succeeded(args, run_cli_ml(data, args))
}

/// [`run_cli_with`], asserting success.
pub fn reprise_with(migrations: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    succeeded(args, run_cli_with(migrations, data, args))
}

fn succeeded(args: &[&str], out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "reprise {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `reprise --data-dir DATA --migrations <demo catalogue's> ARGS...`
/// to completion.
pub fn run_cli(data: &Path, args: &[&str]) -> std::process::Output {
    run_cli_with(&migrations_dir(), data, args)
}

/// [`run_cli`] with the MovieLens catalogue's migrations.
pub fn run_cli_ml(data: &Path, args: &[&str]) -> std::process::Output {
    run_cli_with(&movielens_migrations(), data, args)
}

/// Runs `reprise --data-dir DATA --migrations MIGRATIONS ARGS...`.
pub fn run_cli_with(migrations: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .arg("--migrations")
        .arg(migrations)
        .args(args)
        .env("REPRISE_LOG", "warn")
        .output()
        .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A stand-in HTTP receiver (OTLP collector, alert webhook): answers every
/// POST with 200 and hands the bodies over. Returns its URL with `path`.
pub fn http_sink(path: &str) -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
    stub_http(path, |_| {
        Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into())
    })
}

/// A scripted HTTP server: request `n` (0-based) gets `respond(n)` as the
/// raw response, or no answer at all (the connection stays open) when it
/// is `None`. Hands the request bodies over. Returns its URL with `path`.
pub fn stub_http(
    path: &str,
    respond: impl Fn(usize) -> Option<String> + Send + 'static,
) -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let _ = tx.send(body);
            }
            match respond(n) {
                Some(response) => {
                    let _ = stream.write_all(response.as_bytes());
                }
                None => held.push(stream),
            }
        }
    });
    (url, rx)
}

/// An event time one hour before now: inside every demo view's TTL on
/// whatever day the tests run (a fixed date ages out of a 30-day TTL).
pub fn an_hour_ago() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    reprise_store::time::format_rfc3339(now - 3_600_000_000)
}
