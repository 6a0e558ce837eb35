//! The `[nat64]` section: the NAT64 gateway's device and translation settings, checked like the
//! rest of the file.

use serde::Deserialize;
use sixgate::gateway::{self, Settings};
use sixgate::nat64_xlat::{Eam, Ipv4Prefix, Ipv6Prefix, Pool6, UdpZeroChecksum};
use toml::Spanned;

use super::Checker;

/// A checked `[nat64]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Nat64 {
    /// The TUN device's name.
    pub tun: String,
    /// Queues, one worker thread each; 0: one per CPU.
    pub queues: usize,
    pub settings: Settings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNat64 {
    tun: Spanned<String>,
    #[serde(default)]
    pool6: Option<Spanned<String>>,
    #[serde(default)]
    own_v4: Option<Spanned<String>>,
    #[serde(default)]
    own_v6: Option<Spanned<String>>,
    #[serde(default)]
    eam: Vec<Spanned<RawEam>>,
    #[serde(default)]
    non_global: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    rfc6791_v4: Option<Spanned<String>>,
    #[serde(default)]
    rfc6791_v6: Option<Spanned<String>>,
    #[serde(default)]
    mtu: Option<Spanned<u32>>,
    #[serde(default)]
    lowest_ipv6_mtu: Option<Spanned<u32>>,
    #[serde(default)]
    udp_zero_checksum: Option<RawUdpZeroChecksum>,
    #[serde(default)]
    queues: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEam {
    v4: Spanned<String>,
    v6: Spanned<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawUdpZeroChecksum {
    Drop,
    Icmp,
    Compute,
}

/// More queues than a TUN device may have.
const MAX_QUEUES: usize = 256;

impl Checker<'_> {
    pub(super) fn nat64(&mut self, raw: Spanned<RawNat64>) -> Nat64 {
        let span = raw.span();
        let raw = raw.into_inner();
        if let Err(e) = gateway::check_device_name(raw.tun.get_ref()) {
            self.error::<()>(raw.tun.span(), format!("tun: {e}"));
        }
        let pool6 = raw.pool6.as_ref().and_then(|p| {
            let pool = p
                .get_ref()
                .parse::<Ipv6Prefix>()
                .map_err(|e| e.to_string())
                .and_then(|prefix| Pool6::new(prefix).map_err(|e| e.to_string()));
            match pool {
                Ok(pool) => Some(pool),
                Err(e) => self.error(p.span(), format!("pool6 {:?}: {e}", p.get_ref())),
            }
        });
        let mut settings = Settings::new(pool6);
        settings.own_v4 = raw.own_v4.as_ref().and_then(|a| self.address(a, "own_v4"));
        settings.own_v6 = raw.own_v6.as_ref().and_then(|a| self.address(a, "own_v6"));
        settings.eam = self.eam(&raw.eam);
        // The gateway answers its own addresses itself: one inside an EAM range would hide the
        // host mapped there.
        if let (Some(a), Some(raw)) = (settings.own_v4, &raw.own_v4) {
            if let Some(e) = settings.eam.iter().find(|e| e.v4().contains(a)) {
                self.error::<()>(raw.span(), format!("own_v4 {a} lies in the EAM range {}: the host mapped there would be unreachable", e.v4()));
            }
        }
        if let (Some(a), Some(raw)) = (settings.own_v6, &raw.own_v6) {
            if let Some(e) = settings.eam.iter().find(|e| e.v6().contains(a)) {
                self.error::<()>(raw.span(), format!("own_v6 {a} lies in the EAM range {}: the host mapped there would be unreachable", e.v6()));
            }
        }
        if raw.pool6.is_none() && raw.eam.is_empty() {
            self.error::<()>(
                span.clone(),
                "[nat64] needs pool6, eam, or both: nothing would be translated",
            );
        }
        if let Some(list) = &raw.non_global {
            settings.non_global = list
                .iter()
                .filter_map(|n| self.prefix::<Ipv4Prefix>(n, "non_global"))
                .collect();
        }
        settings.rfc6791_v4 = raw
            .rfc6791_v4
            .as_ref()
            .and_then(|p| self.prefix(p, "rfc6791_v4"));
        settings.rfc6791_v6 = raw
            .rfc6791_v6
            .as_ref()
            .and_then(|p| self.prefix(p, "rfc6791_v6"));
        settings.mtu = self.mtu(&raw.mtu, "mtu", 1500);
        settings.lowest_ipv6_mtu = self.mtu(&raw.lowest_ipv6_mtu, "lowest_ipv6_mtu", 1280);
        if let Some(m) = &raw.lowest_ipv6_mtu {
            if settings.lowest_ipv6_mtu > settings.mtu {
                self.error::<()>(
                    m.span(),
                    format!(
                        "lowest_ipv6_mtu {} is above the device's mtu {}",
                        settings.lowest_ipv6_mtu, settings.mtu
                    ),
                );
            }
        }
        if let Some(policy) = raw.udp_zero_checksum {
            settings.udp_zero_checksum = match policy {
                RawUdpZeroChecksum::Drop => UdpZeroChecksum::Drop,
                RawUdpZeroChecksum::Icmp => UdpZeroChecksum::Icmp,
                RawUdpZeroChecksum::Compute => UdpZeroChecksum::Compute,
            };
        }
        let queues = match &raw.queues {
            Some(q) if *q.get_ref() > MAX_QUEUES => self
                .error(q.span(), format!("queues must be at most {MAX_QUEUES}"))
                .unwrap_or(0),
            Some(q) => *q.get_ref(),
            None => 0,
        };
        Nat64 {
            tun: raw.tun.into_inner(),
            queues,
            settings,
        }
    }

    fn address<A: core::str::FromStr>(&mut self, a: &Spanned<String>, key: &str) -> Option<A> {
        match a.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => self.error(
                a.span(),
                format!("{key} {:?} is not an address", a.get_ref()),
            ),
        }
    }

    fn prefix<P>(&mut self, p: &Spanned<String>, key: &str) -> Option<P>
    where
        P: core::str::FromStr,
        P::Err: core::fmt::Display,
    {
        match p.get_ref().parse() {
            Ok(p) => Some(p),
            Err(e) => self.error(p.span(), format!("{key} {:?}: {e}", p.get_ref())),
        }
    }

    fn mtu(&mut self, value: &Option<Spanned<u32>>, key: &str, default: u16) -> u16 {
        match value {
            None => default,
            // IPv6 needs 1280 on every link (RFC 8200 §5); an IP packet is at most 65535.
            Some(m) if (1280..=65535).contains(m.get_ref()) => *m.get_ref() as u16,
            Some(m) => self
                .error(
                    m.span(),
                    format!("{key} {} must be between 1280 and 65535", m.get_ref()),
                )
                .unwrap_or(default),
        }
    }

    /// EAM entries, each checked (RFC 7757: the IPv4 suffix no longer than the IPv6 one), and no
    /// prefix listed twice: the longest match would pick one of the two at random.
    fn eam(&mut self, raw: &[Spanned<RawEam>]) -> Vec<Eam> {
        let mut entries: Vec<Eam> = Vec::new();
        for e in raw {
            let r = e.get_ref();
            let v4 = self.prefix::<Ipv4Prefix>(&r.v4, "eam v4");
            let v6 = self.prefix::<Ipv6Prefix>(&r.v6, "eam v6");
            let (Some(v4), Some(v6)) = (v4, v6) else {
                continue;
            };
            match Eam::new(v4, v6) {
                Ok(entry) => {
                    if entries.iter().any(|x| x.v4() == entry.v4()) {
                        self.error::<()>(
                            r.v4.span(),
                            format!("eam: {} is listed twice", r.v4.get_ref()),
                        );
                    } else if entries.iter().any(|x| x.v6() == entry.v6()) {
                        self.error::<()>(
                            r.v6.span(),
                            format!("eam: {} is listed twice", r.v6.get_ref()),
                        );
                    } else {
                        entries.push(entry);
                    }
                }
                Err(err) => {
                    self.error::<()>(e.span(), format!("eam: {err}"));
                }
            }
        }
        entries
    }
}
