//! The `[nat64]` section: the NAT64 gateway's device and translation settings, checked like the
//! rest of the file. `mode = "stateful"` adds the RFC 6146 keys (pool4, customers, the block
//! layout, limits and timeouts); in the default stateless mode they are refused.

use core::ops::{Range, RangeInclusive};

use serde::Deserialize;
use sixgate::gateway::{self, Settings};
use sixgate::nat64_xlat::stateful::{
    Filtering, Layout, LayoutError, Limits, StatefulConfig, Timeouts,
};
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
    #[serde(default)]
    mode: Option<Spanned<RawMode>>,
    // The stateful keys: refused unless mode = "stateful" (see `stateful_keys`).
    #[serde(default)]
    pool4: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    customers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    ports: Option<Spanned<String>>,
    #[serde(default)]
    block_prefix_len: Option<Spanned<u32>>,
    #[serde(default)]
    ports_per_block: Option<Spanned<u32>>,
    #[serde(default)]
    max_sessions_per_block: Option<Spanned<u32>>,
    #[serde(default)]
    new_sessions_per_second: Option<Spanned<u32>>,
    #[serde(default)]
    refuse_ports: Option<Spanned<Vec<Spanned<u32>>>>,
    #[serde(default)]
    filtering: Option<Spanned<RawFiltering>>,
    #[serde(default)]
    log_mappings: Option<Spanned<bool>>,
    #[serde(default)]
    udp_timeout: Option<Spanned<String>>,
    #[serde(default)]
    tcp_established_timeout: Option<Spanned<String>>,
    #[serde(default)]
    tcp_transitory_timeout: Option<Spanned<String>>,
    #[serde(default)]
    icmp_timeout: Option<Spanned<String>>,
    #[serde(default)]
    session_capacity: Option<Spanned<u64>>,
    #[serde(default)]
    allow_short_timeouts: Option<Spanned<bool>>,
}

impl RawNat64 {
    /// The stateful keys the file sets, with where.
    fn stateful_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        fn at<T>(
            key: &'static str,
            v: &Option<Spanned<T>>,
        ) -> Option<(&'static str, Range<usize>)> {
            v.as_ref().map(|v| (key, v.span()))
        }
        [
            at("pool4", &self.pool4),
            at("customers", &self.customers),
            at("ports", &self.ports),
            at("block_prefix_len", &self.block_prefix_len),
            at("ports_per_block", &self.ports_per_block),
            at("max_sessions_per_block", &self.max_sessions_per_block),
            at("new_sessions_per_second", &self.new_sessions_per_second),
            at("refuse_ports", &self.refuse_ports),
            at("filtering", &self.filtering),
            at("log_mappings", &self.log_mappings),
            at("udp_timeout", &self.udp_timeout),
            at("tcp_established_timeout", &self.tcp_established_timeout),
            at("tcp_transitory_timeout", &self.tcp_transitory_timeout),
            at("icmp_timeout", &self.icmp_timeout),
            at("session_capacity", &self.session_capacity),
            at("allow_short_timeouts", &self.allow_short_timeouts),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawMode {
    Stateless,
    Stateful,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum RawFiltering {
    EndpointIndependent,
    AddressDependent,
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

/// The largest session table: 16 Mi sessions, over a gigabyte. More is surely a typo, and the
/// memory is taken at start.
const MAX_SESSION_CAPACITY: u64 = 1 << 24;

/// The block layout's defaults: the ports above the well-known ones, a /64 per customer
/// sub-prefix, 32 blocks of 2016 ports per pool4 address.
const DEFAULT_PORTS: RangeInclusive<u16> = 1024..=65535;
const DEFAULT_BLOCK_PREFIX_LEN: u8 = 64;
const DEFAULT_PORTS_PER_BLOCK: u16 = 2016;

impl Checker {
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
        let stateful = raw
            .mode
            .as_ref()
            .is_some_and(|m| *m.get_ref() == RawMode::Stateful);
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
        if stateful {
            settings.stateful = self.stateful(&raw, &span);
            if let Some(e) = raw.eam.first() {
                let why = "eam cannot be combined with mode = \"stateful\": a stateful NAT64 maps its IPv6 hosts by session (fixed mappings need a stateless gateway)";
                self.error::<()>(e.span(), why);
            }
            if raw.pool6.is_none() {
                let at = raw.mode.as_ref().map_or(span.clone(), Spanned::span);
                self.error::<()>(
                    at,
                    "mode = \"stateful\" needs pool6: the customers reach IPv4 destinations through it",
                );
            }
            if let (Some(a), Some(raw), Some(cfg)) =
                (settings.own_v4, &raw.own_v4, &settings.stateful)
            {
                if let Some(p) = cfg.layout.pool4().iter().find(|p| p.contains(a)) {
                    let why = format!(
                        "own_v4 {a} lies in pool4 {p}: the gateway answers that address itself, so the sessions mapped to it would be dropped"
                    );
                    self.error::<()>(raw.span(), why);
                }
            }
        } else {
            for (key, at) in raw.stateful_keys() {
                self.error::<()>(
                    at,
                    format!("{key} is a stateful NAT64 key: it needs mode = \"stateful\" (the default is \"stateless\")"),
                );
            }
            if raw.pool6.is_none() && raw.eam.is_empty() {
                self.error::<()>(
                    span.clone(),
                    "[nat64] needs pool6, eam, or both: nothing would be translated",
                );
            }
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

    /// The stateful keys (mode = "stateful"): the block layout, checked as a whole by
    /// [`Layout::new`], and the table's limits and timeouts. `None` after any error.
    fn stateful(&mut self, raw: &RawNat64, section: &Range<usize>) -> Option<StatefulConfig> {
        let mut ok = true;
        let pool4 = match &raw.pool4 {
            Some(list) => self.prefixes::<Ipv4Prefix>(list.get_ref(), "pool4", &mut ok),
            None => {
                ok = false;
                self.error(
                    section.clone(),
                    "mode = \"stateful\" needs pool4: the IPv4 addresses the sessions use",
                )
                .unwrap_or_default()
            }
        };
        let customers = match &raw.customers {
            Some(list) => self.prefixes::<Ipv6Prefix>(list.get_ref(), "customers", &mut ok),
            None => {
                ok = false;
                let why = "mode = \"stateful\" needs customers: the IPv6 prefixes whose hosts share pool4";
                self.error(section.clone(), why).unwrap_or_default()
            }
        };
        let ports = match &raw.ports {
            None => Some(DEFAULT_PORTS),
            Some(p) => port_range(p.get_ref()).or_else(|| {
                self.error(
                    p.span(),
                    format!(
                        "ports {:?} is not a range of ports such as \"1024-65535\" (1 to 65535)",
                        p.get_ref()
                    ),
                )
            }),
        };
        let block_prefix_len = match &raw.block_prefix_len {
            None => Some(DEFAULT_BLOCK_PREFIX_LEN),
            Some(b) if *b.get_ref() <= 128 => Some(*b.get_ref() as u8),
            Some(b) => self.error(
                b.span(),
                format!("block_prefix_len {} must be at most 128", b.get_ref()),
            ),
        };
        let ports_per_block = match &raw.ports_per_block {
            None => Some(DEFAULT_PORTS_PER_BLOCK),
            Some(n) => match u16::try_from(*n.get_ref()) {
                Ok(n) => Some(n),
                Err(_) => self.error(
                    n.span(),
                    format!(
                        "ports_per_block {} is more than there are ports",
                        n.get_ref()
                    ),
                ),
            },
        };
        let layout = match (ok, ports, block_prefix_len, ports_per_block) {
            (true, Some(ports), Some(len), Some(per_block)) => {
                match Layout::new(&pool4, ports, &customers, len, per_block) {
                    Ok(layout) => Some(layout),
                    Err(e) => {
                        let at = layout_error_span(raw, &e).unwrap_or_else(|| section.clone());
                        self.error(at, e.to_string())
                    }
                }
            }
            _ => None,
        };

        let mut timeouts = Timeouts::RFC6146;
        timeouts.udp = self.duration(&raw.udp_timeout, timeouts.udp);
        timeouts.tcp_established =
            self.duration(&raw.tcp_established_timeout, timeouts.tcp_established);
        timeouts.tcp_transitory =
            self.duration(&raw.tcp_transitory_timeout, timeouts.tcp_transitory);
        timeouts.icmp = self.duration(&raw.icmp_timeout, timeouts.icmp);
        if !raw
            .allow_short_timeouts
            .as_ref()
            .is_some_and(|a| *a.get_ref())
        {
            self.rfc6146_timeouts(raw, timeouts, section);
        }

        // The limits are checked whatever became of the layout, so every error is reported.
        let mut limits = Limits::default();
        if let Some(n) = &raw.max_sessions_per_block {
            if *n.get_ref() == 0 {
                self.error::<()>(
                    n.span(),
                    "max_sessions_per_block must be at least 1: 0 would refuse every session",
                );
            }
            limits.max_sessions_per_block = *n.get_ref();
        }
        if let Some(n) = &raw.new_sessions_per_second {
            limits.new_sessions_per_second = *n.get_ref();
        }
        if let Some(list) = &raw.refuse_ports {
            for p in list.get_ref() {
                match u16::try_from(*p.get_ref()) {
                    Ok(0) | Err(_) => {
                        self.error::<()>(
                            p.span(),
                            format!("refuse_ports: {} is not a port (1 to 65535)", p.get_ref()),
                        );
                    }
                    Ok(port) if limits.refuse_ports.contains(&port) => {
                        self.error::<()>(p.span(), format!("refuse_ports: {port} is listed twice"));
                    }
                    Ok(port) => limits.refuse_ports.push(port),
                }
            }
        }
        let capacity = raw
            .session_capacity
            .as_ref()
            .and_then(|c| match *c.get_ref() {
                n @ 1..=MAX_SESSION_CAPACITY => Some(n as u32),
                n => self.error(
                    c.span(),
                    format!("session_capacity {n} must be between 1 and {MAX_SESSION_CAPACITY}"),
                ),
            });

        let mut cfg = StatefulConfig::new(layout?);
        cfg.timeouts = timeouts;
        if let Some(f) = &raw.filtering {
            cfg.filtering = match f.get_ref() {
                RawFiltering::EndpointIndependent => Filtering::EndpointIndependent,
                RawFiltering::AddressDependent => Filtering::AddressDependent,
            };
        }
        cfg.limits = limits;
        if let Some(n) = capacity {
            cfg.capacity = n;
        }
        cfg.log_mappings = raw.log_mappings.as_ref().is_some_and(|l| *l.get_ref());
        Some(cfg)
    }

    /// RFC 6146 §4's minimums, every timeout below one reported on its own line.
    fn rfc6146_timeouts(&mut self, raw: &RawNat64, mut timeouts: Timeouts, section: &Range<usize>) {
        // `check` names the first timeout too short: report it, raise it to its minimum, and
        // ask again (four timeouts, so four rounds at most).
        while let Err(e) = timeouts.check() {
            let (key, field) = match e.name {
                "udp" => (&raw.udp_timeout, &mut timeouts.udp),
                "tcp_established" => (&raw.tcp_established_timeout, &mut timeouts.tcp_established),
                "tcp_transitory" => (&raw.tcp_transitory_timeout, &mut timeouts.tcp_transitory),
                "icmp" => (&raw.icmp_timeout, &mut timeouts.icmp),
                _ => {
                    self.error::<()>(section.clone(), e.to_string());
                    return;
                }
            };
            *field = e.min;
            let message = format!(
                "{}_timeout {} is below RFC 6146's minimum of {}; allow_short_timeouts = true permits it on a test rig (it breaks RFC 6146 §4)",
                e.name,
                super::format_duration(e.got),
                super::format_duration(e.min)
            );
            let at = key.as_ref().map_or_else(|| section.clone(), Spanned::span);
            self.error::<()>(at, message);
        }
    }

    /// A list of prefixes; clears `ok` when one does not parse.
    fn prefixes<P>(&mut self, list: &[Spanned<String>], key: &str, ok: &mut bool) -> Vec<P>
    where
        P: core::str::FromStr,
        P::Err: core::fmt::Display,
    {
        let parsed: Vec<Option<P>> = list.iter().map(|p| self.prefix(p, key)).collect();
        *ok &= parsed.iter().all(Option::is_some);
        parsed.into_iter().flatten().collect()
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

/// `"1024-65535"`: the first and last port, both from 1 to 65535.
fn port_range(s: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = s.split_once('-')?;
    let port = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| p.parse::<u16>().ok())
            .flatten()
            .filter(|&p| p != 0)
    };
    Some(port(lo)?..=port(hi)?)
}

/// The key a layout error is about, where the file sets it.
fn layout_error_span(raw: &RawNat64, e: &LayoutError) -> Option<Range<usize>> {
    fn at<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
        v.as_ref().map(Spanned::span)
    }
    match e {
        LayoutError::NoPool4
        | LayoutError::Pool4TooLarge(_)
        | LayoutError::Pool4Reserved(_)
        | LayoutError::Pool4Overlap(..) => at(&raw.pool4),
        LayoutError::Ports => at(&raw.ports),
        // The default 2016 ports per block may be what a short range cannot hold.
        LayoutError::PortsPerBlock { .. } => at(&raw.ports_per_block).or(at(&raw.ports)),
        LayoutError::BlockPrefixLen { .. } => at(&raw.block_prefix_len).or(at(&raw.customers)),
        _ => at(&raw.customers),
    }
}
