//! What the engine is told: listeners, routes and limits. Plain values, checked when a server
//! starts or a table is swapped; a program reads them from its own file format.

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::str::FromStr;
use core::time::Duration;
use std::sync::Arc;

use proxy_proto::Cidr;
use sni_peek::HostName;

/// Everything a [`Server`](super::Server) runs: its listeners, its routes and its limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Where connections are accepted.
    pub listeners: Vec<Listener>,
    /// Where they go, by name. Shared with the table built from them: a reload that keeps a
    /// route copies no part of it.
    pub routes: Vec<Arc<Route>>,
    /// Limits every connection shares.
    pub limits: Limits,
}

/// Addresses accepting connections of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// The name routes use to bind themselves to this listener ([`Route::listeners`]).
    pub name: Option<String>,
    /// Each bound on its own; an IPv6 address only for IPv6, so `0.0.0.0:443` and `[::]:443`
    /// can both be listed. Port 0 takes a free port ([`Server::local_addrs`](super::Server::local_addrs)).
    pub addresses: Vec<SocketAddr>,
    /// Which protocol's name to route on.
    pub mode: Mode,
    /// How long a client has to send its PROXY header and the bytes that name its host.
    pub peek_timeout: Duration,
    /// Sources that must send a PROXY header; everyone else must not.
    pub accept_proxy_from: Vec<Cidr>,
    /// Accept the v1 lines nginx 1.22 sends (mixed families, leading zeros) from those sources.
    pub accept_proxy_lenient: bool,
}

impl Listener {
    /// A listener on `address` in `mode`, with a 5 s peek timeout and no PROXY header accepted.
    pub fn new(address: SocketAddr, mode: Mode) -> Self {
        Listener {
            name: None,
            addresses: vec![address],
            mode,
            peek_timeout: Duration::from_secs(5),
            accept_proxy_from: Vec::new(),
            accept_proxy_lenient: false,
        }
    }

    /// The same listener, named for routes to bind to.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

/// How a listener finds the name to route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The TLS SNI; anything else is refused.
    Tls,
    /// The HTTP/1 Host (or HTTP/2 `:authority`); anything else is refused.
    Http,
    /// Whichever the first bytes turn out to be.
    Auto,
}

/// Where connections for some names go.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// How logs, metrics and [`Server::remove_route`](super::Server::remove_route) name it;
    /// unique in a table.
    pub name: String,
    /// The names it serves.
    pub hosts: Vec<HostPattern>,
    /// The names of the listeners it serves; empty: all of them.
    pub listeners: Vec<String>,
    /// How a backend is picked.
    pub balance: Balance,
    /// The PROXY header sent to the backend before the client's bytes.
    pub proxy_protocol: ProxyOut,
    /// How long one connect may take.
    pub connect_timeout: Duration,
    /// Backends tried for one connection before giving up (the first one included).
    pub connect_attempts: u32,
    /// Where connections go, by weight.
    pub backends: Vec<BackendSpec>,
    /// Active checks; boxed: most routes have none, and a route is held per customer.
    pub health: Option<Box<Health>>,
    /// The client's address in a header of every HTTP/1 request, for backends that cannot read
    /// PROXY; boxed: most routes have none.
    pub forwarded: Option<Box<Forwarding>>,
}

/// How a route tells its backends the client's address in every HTTP/1 request: HAProxy's
/// `option forwardfor`, nginx's `proxy_set_header X-Forwarded-For`.
///
/// Each request head on the connection is parsed and checked (RFC 9112), the fields are
/// inserted, and its body follows by its framing, untouched; a request that could be framed two
/// ways is answered 400 and the connection closed (see [`crate::proxy`]). TLS and HTTP/2
/// connections are relayed as they are: use [`ProxyOut`] for them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forwarding {
    /// Which field carries the address.
    pub field: ForwardedField,
    /// Also `X-Forwarded-Proto: http` (with [`ForwardedField::Forwarded`], `proto=http` in the
    /// element instead).
    pub proto: bool,
    /// Sources whose own forwarding fields are kept and appended to; everyone else's are
    /// removed. The source is the client's real address (from a trusted PROXY header when
    /// there was one).
    pub trust_from: Vec<Cidr>,
}

impl Forwarding {
    /// `field`, with the proto and no source trusted.
    pub fn new(field: ForwardedField) -> Self {
        Forwarding {
            field,
            proto: true,
            trust_from: Vec::new(),
        }
    }
}

/// The field a route writes the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardedField {
    /// `X-Forwarded-For: <ip>` (a list, each proxy appending).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=<ip>;proto=http;host=<host>`, IPv6 quoted and bracketed.
    Forwarded,
}

impl Route {
    /// A route for `hosts` (patterns as [`HostPattern::parse`] reads them) to `backends`, each
    /// with weight 1; round robin, no PROXY header, 3 s connect timeout, 3 attempts, no checks.
    /// Named after its first host.
    pub fn new<'a>(
        hosts: impl IntoIterator<Item = &'a str>,
        backends: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Self, sni_peek::Error> {
        let hosts = hosts
            .into_iter()
            .map(HostPattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Route {
            name: hosts.first().map(ToString::to_string).unwrap_or_default(),
            hosts,
            listeners: Vec::new(),
            balance: Balance::RoundRobin,
            proxy_protocol: ProxyOut::None,
            connect_timeout: Duration::from_secs(3),
            connect_attempts: 3,
            backends: backends.into_iter().map(BackendSpec::from).collect(),
            health: None,
            forwarded: None,
        })
    }
}

/// How a route picks among its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// The fewest connections in flight, relative to weight.
    LeastConn,
    /// The client's address, hashed (Maglev): a client keeps its backend.
    Consistent,
}

/// The PROXY header a route sends its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyOut {
    /// None: the backend sees the proxy's address.
    None,
    /// Text, version 1.
    V1,
    /// Binary, version 2, with the name as its AUTHORITY.
    V2,
}

/// The names a route serves, normalised as the peeker normalises the names it routes on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `www.example.com`
    Exact(String),
    /// `*.example.org`: any name ending in `.example.org` (kept with its leading dot).
    Suffix(String),
    /// `*`: every name no other route has, and no name at all.
    Any,
}

impl HostPattern {
    /// `www.example.com`, `*.example.org` or `*`, normalised by [`HostName::new`]'s rules
    /// (lowercase, one trailing dot dropped, the same label rules).
    pub fn parse(s: &str) -> Result<Self, sni_peek::Error> {
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        Ok(match s.strip_prefix("*.") {
            Some(domain) => {
                let domain = HostName::new(domain)?;
                let mut suffix = String::with_capacity(domain.as_str().len() + 1);
                suffix.push('.');
                suffix.push_str(domain.as_str());
                HostPattern::Suffix(suffix)
            }
            None => HostPattern::Exact(HostName::new(s)?.as_str().to_owned()),
        })
    }

    /// The text the table keys on: the name, the suffix with its dot, "" for `*`.
    pub(crate) fn key(&self) -> &str {
        match self {
            HostPattern::Exact(text) | HostPattern::Suffix(text) => text,
            HostPattern::Any => "",
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// One backend of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSpec {
    /// Its address.
    pub ip: IpAddr,
    /// `None`: the port the client connected to.
    pub port: Option<u16>,
    /// Its share of the route's connections; 0 takes none.
    pub weight: u32,
    /// Used only when no other backend is healthy.
    pub backup: bool,
}

impl From<SocketAddr> for BackendSpec {
    fn from(address: SocketAddr) -> Self {
        BackendSpec {
            ip: address.ip(),
            port: Some(address.port()),
            weight: 1,
            backup: false,
        }
    }
}

/// Active health checks of a route's backends: HAProxy's `check inter <interval> rise <rise>
/// fall <fall>`, with `timeout check <timeout>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Health {
    /// Between the starts of two checks of a backend (each backend on its own cadence, with
    /// up to 10 % jitter).
    pub interval: Duration,
    /// For one check, connect included.
    pub timeout: Duration,
    /// Successes in a row that bring a backend back.
    pub rise: u32,
    /// Failures in a row that take it out.
    pub fall: u32,
    /// What one check asks of a backend.
    pub check: Check,
}

/// What one health check asks of a backend; a check that takes longer than
/// [`Health::timeout`] fails. Each closes its connection when done.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Check {
    /// A TCP connection opens. HAProxy's plain `check`.
    #[default]
    Connect,
    /// The backend answers `send` with `expect`: connect, write `send` (empty: the server
    /// speaks first), read until `expect` appears anywhere in the answer's first 16 KiB (empty:
    /// writing is enough). The answer ending or reaching 16 KiB first fails. HAProxy's
    /// `option tcp-check` with `tcp-check send <send>` and `tcp-check expect string <expect>`.
    ///
    /// An `expect` longer than 16 KiB could never match: a table with one is refused
    /// ([`Error::Pool`](super::Error::Pool)).
    Exchange {
        /// Written as soon as the connection opens, as raw bytes.
        send: Box<[u8]>,
        /// Looked for in the answer, as raw bytes.
        expect: Box<[u8]>,
    },
    /// A TLS handshake (1.3 or 1.2) completes; then close_notify and close. The certificate is
    /// not verified (the question is whether the TLS service answers, not whether it is
    /// trusted), but the handshake's signatures are. HAProxy's `check-ssl verify none`, with
    /// `check-sni <server_name>`.
    ///
    /// A `server_name` that is neither a DNS name nor an IP address is refused at table build
    /// ([`Error::Pool`](super::Error::Pool)).
    Tls {
        /// Sent as SNI (an IP address is accepted but, as in any TLS client, not sent);
        /// `None`: no SNI is sent.
        server_name: Option<String>,
    },
}

/// What every connection shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; one more is closed at accept.
    pub max_connections: usize,
    /// How bytes cross the proxy.
    pub relay: RelayMethod,
    /// A connection on which nothing moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// How long open connections may run on after [`Server::shutdown`](super::Server::shutdown).
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            relay: RelayMethod::Splice,
            idle_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// How bytes cross the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMethod {
    /// Read into a buffer here, write it out.
    Copy,
    /// Bulk transfers through `splice(2)` and a pipe: the bytes stay in the kernel. Linux only;
    /// elsewhere it copies. On loopback it moved 2 GiB responses ~20 % faster than copying, on
    /// half the proxy's CPU time.
    Splice,
    /// Reads and writes through an io_uring per thread: one system call submits the operations
    /// of every connection that moved in a loop turn, where the others make a `read` and a
    /// `write` per message. Measured on Linux 6.18 (loopback, keep-alive 1 KiB): 0.25 system
    /// calls per request against 6, but the kernel's work per operation outweighs the calls
    /// saved: end to end (`benches/full-proxy-vs-haproxy.sh`, relays) about 1.55× splice's CPU
    /// per request and 0.7× its requests/s, and 3.4 KiB per idle TLS connection against 2.0 KiB.
    /// Not the default for that reason. Bulk transfers splice, as with
    /// [`RelayMethod::Splice`]. Linux only; where the kernel refuses io_uring (too old,
    /// seccomp, `io_uring_disabled`), the engine logs it once and splices; elsewhere it copies.
    Uring,
}

impl RelayMethod {
    /// Whether this method runs here as itself: for [`RelayMethod::Uring`], the kernel's answer
    /// to a ring like the relay's (the relay then splices instead); the others always run.
    pub fn available(self) -> Result<(), std::io::Error> {
        match self {
            RelayMethod::Copy | RelayMethod::Splice => Ok(()),
            #[cfg(target_os = "linux")]
            RelayMethod::Uring => super::uring::open().map(drop),
            #[cfg(not(target_os = "linux"))]
            RelayMethod::Uring => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }
}

/// A value that is not one of a setting's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {expected}")]
pub struct UnknownName {
    given: String,
    expected: &'static str,
}

/// `FromStr` by a fixed list of names, the ones configuration files use.
macro_rules! named {
    ($type:ty, $first:literal => $first_value:expr $(, $name:literal => $value:expr)* $(,)?) => {
        impl FromStr for $type {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $first => Ok($first_value),
                    $($name => Ok($value),)*
                    _ => Err(UnknownName {
                        given: s.to_owned(),
                        expected: concat!("\"", $first, "\"", $(", \"", $name, "\""),*),
                    }),
                }
            }
        }
    };
}

named!(Mode, "tls" => Mode::Tls, "http" => Mode::Http, "auto" => Mode::Auto);
named!(Balance, "round-robin" => Balance::RoundRobin, "least-conn" => Balance::LeastConn,
    "consistent" => Balance::Consistent);
named!(ProxyOut, "none" => ProxyOut::None, "v1" => ProxyOut::V1, "v2" => ProxyOut::V2);
named!(RelayMethod, "copy" => RelayMethod::Copy, "splice" => RelayMethod::Splice,
    "uring" => RelayMethod::Uring);
named!(ForwardedField, "x-forwarded-for" => ForwardedField::XForwardedFor,
    "forwarded" => ForwardedField::Forwarded);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_say_what_is_allowed() {
        assert_eq!("least-conn".parse(), Ok(Balance::LeastConn));
        assert_eq!("v2".parse(), Ok(ProxyOut::V2));
        let e = "V2".parse::<ProxyOut>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"V2\" is not one of \"none\", \"v1\", \"v2\""
        );
    }

    #[test]
    fn patterns_are_normalised_like_peeked_names() {
        assert_eq!(
            HostPattern::parse("WWW.Example.COM.").unwrap(),
            HostPattern::Exact("www.example.com".into())
        );
        assert_eq!(
            HostPattern::parse("*.Example.org").unwrap().to_string(),
            "*.example.org"
        );
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("a..b").is_err());
    }
}
