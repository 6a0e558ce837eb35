//! A translator on stdin/stdout, speaking the line protocol of the Jool-derived SIIT conformance
//! checker (`shared/conformance/jool-siit/check.py`):
//!
//! ```text
//! -> CASE <id> <config> <4to6|6to4> <packet as hex>
//! <- OUT [<packet as hex> ...]
//! ```
//!
//! Each request starts from the checker's base configuration (its CONFIG.md), changed by the
//! comma-separated `key=value` list in `<config>` (`-` for none). Diagnostics go to stderr.
//!
//! Run: `cargo run -p nat64-xlat --example xlat-pipe`, then type requests.

use core::net::{Ipv4Addr, Ipv6Addr};
use std::io::{self, BufRead, Write};

use nat64_xlat::{Config, DropReason, Eam, Outcome, Pool6, Translator, UdpZeroChecksum};

/// The base configuration's address plan.
fn base_eams() -> Vec<Eam> {
    vec![
        Eam::new(
            "1.0.0.0/24".parse().unwrap(),
            "2001:db8:3::/120".parse().unwrap(),
        )
        .unwrap(),
        Eam::new(
            "10.0.0.0/24".parse().unwrap(),
            "2001:db8:2::/120".parse().unwrap(),
        )
        .unwrap(),
    ]
}

fn base_config(eams: &[Eam]) -> Config<'_> {
    let pool6 = Pool6::new("2001:db8:100::/40".parse().unwrap()).unwrap();
    let mut cfg = Config::new(Some(pool6));
    cfg.eam = eams;
    cfg.rfc6791_v4 = Some("203.0.113.8/32".parse().unwrap());
    cfg.own_v4 = Some(Ipv4Addr::new(198, 51, 100, 1));
    cfg.own_v6 = Some("2001:db8:1c0:2:1::".parse::<Ipv6Addr>().unwrap());
    // amend-udp-checksum-zero off: Jool answers a zero UDP checksum with 3/13.
    cfg.udp_zero_checksum = UdpZeroChecksum::Icmp;
    cfg
}

/// Applies one `config` column to the base configuration.
fn configure<'a>(spec: &str, eams: &'a mut Vec<Eam>) -> Result<Config<'a>, String> {
    let mut changes = Vec::new();
    for item in spec.split(',').filter(|s| !s.is_empty() && *s != "-") {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("config item without '=': {item}"))?;
        if k == "eamt-add" {
            let (a, b) = v
                .split_once('|')
                .ok_or_else(|| format!("eamt-add wants V4|V6: {v}"))?;
            let v4 = a.parse().map_err(|e| format!("{a}: {e}"))?;
            let v6 = b.parse().map_err(|e| format!("{b}: {e}"))?;
            eams.push(Eam::new(v4, v6).map_err(|e| format!("{item}: {e}"))?);
        } else {
            changes.push((k, v));
        }
    }
    let mut cfg = base_config(eams);
    let num = |v: &str| v.parse::<u16>().map_err(|e| format!("{v}: {e}"));
    for (k, v) in changes {
        match k {
            "lowest-ipv6-mtu" => cfg.lowest_ipv6_mtu = num(v)?,
            "mtu6" => cfg.mtu6 = num(v)?,
            "mtu4" => cfg.mtu4 = num(v)?,
            "pool6" if v == "none" => cfg.pool6 = None,
            "pool6" => {
                cfg.pool6 = Some(
                    Pool6::new(v.parse().map_err(|e| format!("{v}: {e}"))?)
                        .map_err(|e| e.to_string())?,
                )
            }
            "rfc6791v4" if v == "none" => cfg.rfc6791_v4 = None,
            "rfc6791v4" => cfg.rfc6791_v4 = Some(v.parse().map_err(|e| format!("{v}: {e}"))?),
            "rfc6791v6" if v == "none" => cfg.rfc6791_v6 = None,
            "rfc6791v6" => cfg.rfc6791_v6 = Some(v.parse().map_err(|e| format!("{v}: {e}"))?),
            // See `answer` for the fragments Jool cannot amend.
            "amend-udp-checksum-zero" => {
                cfg.udp_zero_checksum = if v == "1" {
                    UdpZeroChecksum::Compute
                } else {
                    UdpZeroChecksum::Icmp
                }
            }
            _ => return Err(format!("unknown config key {k}")),
        }
    }
    Ok(cfg)
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex at {i}: {e}")))
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Answers one request line with the `OUT` line.
fn answer(line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    let (Some("CASE"), Some(id), Some(spec), Some(dir), Some(hex)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(format!("not a CASE line: {line}"));
    };
    let input = hex_decode(hex)?;
    let mut eams = base_eams();
    let cfg = configure(spec, &mut eams)?;
    let mut out = vec![0u8; Translator::out_len(input.len())];
    let translate = |cfg, out: &mut [u8]| {
        let xlat = Translator::new(cfg);
        match dir {
            "4to6" => Ok(xlat.translate_4to6(&input, out)),
            "6to4" => Ok(xlat.translate_6to4(&input, out)),
            _ => Err(format!("unknown direction {dir}")),
        }
    };
    let mut outcome = translate(cfg, &mut out)?;
    // Jool's amending computes what it can and still answers 3/13 for the rest (a first fragment,
    // case ect1-amend), where `Compute` drops that silently as RFC 7915 §4.5 asks: ask again
    // under `Icmp` for the answer.
    if outcome == Outcome::Dropped(DropReason::UdpZeroChecksum)
        && cfg.udp_zero_checksum == UdpZeroChecksum::Compute
    {
        let mut icmp = cfg;
        icmp.udp_zero_checksum = UdpZeroChecksum::Icmp;
        outcome = translate(icmp, &mut out)?;
    }
    let mut reply = String::from("OUT");
    let emitted = match outcome {
        Outcome::Translated(e) | Outcome::Hairpinned(e) => Some(e),
        Outcome::IcmpError { reason, reply } => {
            eprintln!("{id}: refused ({reason}), ICMP error sent back");
            Some(reply)
        }
        Outcome::Dropped(reason) => {
            eprintln!("{id}: dropped ({reason})");
            None
        }
        other => return Err(format!("{id}: unexpected outcome {other:?}")),
    };
    for pkt in emitted.iter().flat_map(|e| e.packets(&out)) {
        reply.push(' ');
        reply.push_str(&hex_encode(pkt));
    }
    Ok(reply)
}

fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = answer(&line).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            String::from("OUT")
        });
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}
