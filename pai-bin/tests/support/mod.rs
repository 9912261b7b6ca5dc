//! A real `pai serve` for the connection tests: its own data directory, port 0 for both
//! listeners, stderr to a file the test can read, optionally under a lower fd limit.

// Test code: a failed set-up should stop the test loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for these tests.
pub const PAI: &str = env!("CARGO_BIN_EXE_pai");

/// One provider whose endpoint nobody listens on: the giant-body requests are refused before
/// any upstream call, and nothing else reaches it.
const RESOURCES: &str = r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {name: upstream}
data: {api-key: sk-test-not-a-real-key}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {name: oai}
spec:
  provider: openai
  endpoint: http://127.0.0.1:9/v1
  apiKeySecretRef: {name: upstream}
  allowedModels: [gpt-4o-mini]
  externalAccess: {enabled: true}
"#;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    child: Child,
}

impl Server {
    /// Start `pai serve` with `extra` flags; `nofile` lowers its soft fd limit.
    pub fn start(nofile: Option<u64>, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let resources = dir.path().join("resources.yaml");
        std::fs::write(&resources, RESOURCES).unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let data = dir.path().join("data");
        let mut args: Vec<String> = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(data.display().to_string());
        args.push("-f".into());
        args.push(resources.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut command = match nofile {
            // The shell lowers the soft limit for the child only, then becomes pai.
            Some(n) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(PAI);
                c
            }
            None => Command::new(PAI),
        };
        let child = command
            .args(&args)
            .env("RUST_LOG", "info")
            .env_remove("PAI_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Server {
            dir,
            gateway: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
            child,
        };
        server.gateway = server.wait_for_addr("pai gateway listening on http://");
        server.admin = server.wait_for_addr("pai admin API listening on http://");
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// The process id of `pai serve` (when started without a shell in between).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn wait_for_addr(&mut self, prefix: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(rest) = log.lines().find_map(|l| l.strip_prefix(prefix)) {
                return rest.trim().parse().unwrap();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pai serve exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "pai serve did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mint an access key for the provider `oai` with the CLI.
    pub fn mint(&self, name: &str) -> String {
        let out = Command::new(PAI)
            .args([
                "access-key",
                "create",
                "--name",
                name,
                "--model-provider",
                "oai",
            ])
            .env("PAI_ADMIN_URL", format!("http://{}", self.admin))
            .env("PAI_DATA_DIR", self.data_dir())
            .env_remove("PAI_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("pak_"), "{key}");
        key
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET /healthz on a fresh connection, the way a load balancer probes; the time to the whole
/// answer, or None if it did not come within `within`.
pub fn healthz(addr: SocketAddr, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, within).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: pai\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let ok = answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"ok");
    let took = start.elapsed();

    (ok && took <= within).then_some(took)
}

/// The p-th percentile (0–100) of `samples`, a missed probe counting as infinitely slow.
pub fn percentile(samples: &[Option<Duration>], p: usize) -> Option<Duration> {
    let mut sorted: Vec<Duration> = samples.iter().map(|s| s.unwrap_or(Duration::MAX)).collect();
    sorted.sort();
    let i = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted.get(i).copied().filter(|d| *d != Duration::MAX)
}

/// Whether the peer closed `stream` (EOF or reset) within `within`, sending nothing back.
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(200))));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}
