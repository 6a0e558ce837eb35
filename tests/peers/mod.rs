//! Running real peer programs (haproxy, nginx, openssl, curl) for interop tests: find them, give
//! them generated configs on free loopback ports, wait for them, and stop them by PID.
//!
//! A missing program skips the test with a printed reason ([`skip`]), unless
//! `SIXGATE_REQUIRE_PEERS=1`, which turns the skip into a failure (CI installs every peer first).
#![allow(dead_code, unreachable_pub)] // each test binary uses a part

#[path = "../support/skip.rs"]
mod skip;
pub(crate) use skip::skip;

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The program's path, or `None` (after saying why) when it is missing and not required.
pub fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(&format!("{name} is not installed"));
    }
    found
}

/// A free TCP port on loopback (the kernel's pick; released for the peer to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory for one test's files, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sixgate-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.path(file);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running peer, killed (by PID) and reaped when dropped.
pub struct Running {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Running {
    /// Starts `program args…` with its output in `log`, and waits until `ready` accepts TCP.
    pub fn start(program: &Path, args: &[&str], log: PathBuf, ready: SocketAddr) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let mut running = Running {
            child,
            name: program.display().to_string(),
            log,
        };
        running.wait_for(ready);
        running
    }

    fn wait_for(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} never listened on {addr}:\n{}",
            self.name,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects, writes `request` in one write, and reads the whole answer: empty when the peer
/// closed instead, which can happen before the request is even written.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(request).is_err() {
        return Vec::new();
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

/// A self-signed certificate and key for `name`, made with the openssl CLI.
pub fn self_signed(openssl: &Path, dir: &Scratch, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.path(&format!("{name}.crt")),
        dir.path(&format!("{name}.key")),
    );
    run(
        openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    (cert, key)
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run(program: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// nginx in the foreground, one process, its files in `dir`: `modules` (e.g. a `load_module`
/// line), then the `server` blocks of `http` and, when given, of `stream`. Waits for `ready`.
pub fn start_nginx(
    nginx: &Path,
    dir: &Scratch,
    modules: &str,
    http: &str,
    stream: Option<&str>,
    ready: SocketAddr,
) -> Running {
    let d = dir.0.display();
    let stream = stream
        .map(|s| format!("stream {{\n{s}\n}}\n"))
        .unwrap_or_default();
    let config = format!(
        "{modules}\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{http}\n}}\n{stream}"
    );
    let cfg = dir.write("nginx.conf", &config);
    let args = [
        "-p",
        &d.to_string(),
        "-c",
        cfg.to_str().unwrap(),
        "-e",
        &format!("{d}/nginx-error.log"),
    ]
    .map(String::from);
    Running::start(
        nginx,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path("nginx.out"),
        ready,
    )
}

/// Bytes that differ from offset to offset (xorshift), so a dropped, doubled or moved segment
/// shows when a transfer is compared with what was sent.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
