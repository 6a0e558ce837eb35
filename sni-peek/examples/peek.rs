//! Prints what the first bytes of a connection say, one line:
//!
//! ```text
//! tls sni=NAME alpn=h2,http/1.1 ech=no consumed=N      (sni=- / alpn=- when absent)
//! http host=NAME port=N consumed=N                     (port only when given)
//! h2 host=NAME
//! partial needed=N | needed=unknown                    exit status 2
//! unknown                                              exit status 3
//! error=KIND: message                                  exit status 1
//! ```
//!
//! Usage: `cargo run -p sni-peek --example peek -- FILE` (or bytes on stdin).

use core::fmt::Write as _;
use std::io::Read;
use std::process::ExitCode;

use sni_peek::{Detected, HostName, Limits, Needed, Status, peek};

fn main() -> ExitCode {
    let input = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(&path).map_err(|e| format!("{}: {e}", path.to_string_lossy())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map(|_| buf)
                .map_err(|e| format!("stdin: {e}"))
        }
    };
    let input = match input {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("peek: {e}");
            return ExitCode::from(1);
        }
    };
    let limits = Limits::default();
    let mut scratch = vec![0; limits.scratch_len()];
    let (line, code) = match peek(&input, &mut scratch, &limits) {
        Ok(Status::Complete(Detected::Tls(h))) => {
            let alpn: Vec<String> = h.alpn().map(printable).collect();
            let line = format!(
                "tls sni={} alpn={} ech={} consumed={}",
                name_or_dash(h.server_name().as_ref()),
                if alpn.is_empty() {
                    "-".into()
                } else {
                    alpn.join(",")
                },
                if h.has_ech() { "yes" } else { "no" },
                h.consumed()
            );
            (line, 0)
        }
        Ok(Status::Complete(Detected::Http(r))) => {
            let mut line = format!("http host={}", name_or_dash(r.host().as_ref()));
            if let Some(port) = r.port() {
                let _ = write!(line, " port={port}");
            }
            let _ = write!(line, " consumed={}", r.consumed());
            (line, 0)
        }
        Ok(Status::Complete(Detected::H2(r))) => {
            (format!("h2 host={}", name_or_dash(r.host().as_ref())), 0)
        }
        Ok(Status::Complete(Detected::Unknown)) => ("unknown".into(), 3),
        Ok(Status::Partial(Needed::Exactly(n))) => (format!("partial needed={n}"), 2),
        Ok(Status::Partial(Needed::AtLeast(n))) => (format!("partial needed>={n}"), 2),
        Ok(Status::Partial(Needed::Unknown)) => ("partial needed=unknown".into(), 2),
        Err(e) => (format!("error={}: {e}", e.kind()), 1),
    };
    println!("{line}");
    ExitCode::from(code)
}

fn name_or_dash(name: Option<&HostName>) -> &str {
    name.map_or("-", HostName::as_str)
}

/// ALPN names are bytes: show printable ASCII as is, anything else as `\xNN`.
fn printable(p: &[u8]) -> String {
    p.iter().fold(String::new(), |mut s, &b| {
        if b.is_ascii_graphic() && b != b',' && b != b'\\' {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
        s
    })
}
