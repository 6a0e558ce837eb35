//! Decodes one PROXY header from a file (or stdin) and prints it on one line.
//!
//! ```text
//! cargo run -p proxy-proto --example decode -- header.bin
//! version=2 command=proxy family=inet transport=stream src=192.0.2.1:56324 dst=198.51.100.7:443 consumed=28
//! ```
//! Exit status: 0 decoded, 2 incomplete (`partial needed=N`), 1 invalid (`error=KIND: message`).

use std::io::Read;
use std::process::ExitCode;

use proxy_proto::{Addresses, Command, Needed, Parser, Status, Transport, Version};

fn main() -> ExitCode {
    let mut bytes = Vec::new();
    let read = match std::env::args_os().nth(1) {
        Some(path) if path != "-" => {
            std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes))
        }
        _ => std::io::stdin().read_to_end(&mut bytes),
    };
    if let Err(e) = read {
        eprintln!("decode: {e}");
        return ExitCode::from(1);
    }
    // Files may hold headers up to the format's own limit.
    match Parser::new().max_v2_len(65_551).parse(&bytes) {
        Ok(Status::Complete(h)) => {
            println!("{}", describe(&h));
            ExitCode::SUCCESS
        }
        Ok(Status::Partial(needed)) => {
            match needed {
                Needed::Unknown => println!("partial needed=unknown"),
                n => println!("partial needed={}", n.min()),
            }
            ExitCode::from(2)
        }
        Err(e) => {
            println!("error={}: {e}", e.kind());
            ExitCode::from(1)
        }
    }
}

fn describe(h: &proxy_proto::Header<'_>) -> String {
    let version = match h.version() {
        Version::V1 => 1,
        Version::V2 => 2,
    };
    let command = match h.command() {
        Command::Local => "local",
        Command::Proxy => "proxy",
    };
    let transport = match h.transport() {
        Transport::Unspec => "unspec",
        Transport::Stream => "stream",
        Transport::Dgram => "dgram",
    };
    let mut line = format!("version={version} command={command}");
    match h.addresses() {
        Addresses::Unspec => line.push_str(" family=unspec"),
        Addresses::Ipv4 { src, dst } => {
            line += &format!(" family=inet transport={transport} src={src} dst={dst}")
        }
        Addresses::Ipv6 { src, dst } => {
            line += &format!(" family=inet6 transport={transport} src={src} dst={dst}")
        }
        Addresses::Unix { src, dst } => {
            let path = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
            line += &format!(
                " family=unix transport={transport} src={} dst={}",
                path(src),
                path(dst)
            );
        }
    }
    line += &format!(" consumed={}", h.len());
    for tlv in h.tlvs() {
        let hex: String = tlv.value.iter().map(|b| format!("{b:02x}")).collect();
        line += &format!(" tlv={:#04x}:{hex}", tlv.kind.0);
    }
    line
}
