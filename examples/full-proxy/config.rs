//! The TOML configuration: read, checked as a whole, every mistake reported with its line.

use core::fmt::Write;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use proxy_proto::Cidr;
use serde::Deserialize;
use toml::Spanned;

mod nat64;
pub use nat64::Nat64;

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listeners: Vec<Listener>,
    /// Shared with the routing table built from them.
    pub routes: Vec<Arc<Route>>,
    pub limits: Limits,
    pub metrics: Option<SocketAddr>,
    /// The NAT64 gateway, when the file has a `[nat64]` section.
    pub nat64: Option<Nat64>,
}

impl Config {
    /// What the proxy engine runs (the routes are shared, not copied).
    pub fn engine(&self) -> sixgate::proxy::Config {
        sixgate::proxy::Config {
            listeners: self.listeners.clone(),
            routes: self.routes.clone(),
            limits: self.limits.engine,
        }
    }
}

pub use sixgate::proxy::{
    BackendSpec, Balance, ForwardedField, Forwarding, Health, HostPattern, Listener, Mode,
    ProxyOut, RelayMethod, Route,
};

/// `[limits]`: the engine's, and the program's worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub engine: sixgate::proxy::Limits,
    /// Worker threads, each accepting and serving its own connections; 0: one per CPU.
    pub threads: usize,
}

/// One mistake, with the line it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            // Not about a line: the file as a whole, or one that cannot be read.
            0 => f.write_str(&self.message),
            line => write!(f, "line {line}: {}", self.message),
        }
    }
}

/// A setting given by one of its names (`"tls"`, `"round-robin"`...), read by the engine's
/// `FromStr`, so the file and the engine cannot disagree on a name.
struct Named<T>(T);

impl<'de, T: core::str::FromStr<Err = sixgate::proxy::UnknownName>> Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map(Named).map_err(serde::de::Error::custom)
    }
}

/// `forwarded`: `"none"`, or a field the engine names (its `FromStr`, as for [`Named`]).
struct ForwardedName(Option<ForwardedField>);

impl<'de> Deserialize<'de> for ForwardedName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        if text == "none" {
            return Ok(ForwardedName(None));
        }
        text.parse()
            .map(|field| ForwardedName(Some(field)))
            .map_err(|e| serde::de::Error::custom(format_args!("{e}, or \"none\"")))
    }
}

// ----- the file as written ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Vec<Spanned<RawListen>>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    metrics: Option<Spanned<RawMetrics>>,
    #[serde(default)]
    nat64: Option<Spanned<nat64::RawNat64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    #[serde(default)]
    name: Option<Spanned<String>>,
    addresses: Vec<Spanned<String>>,
    #[serde(default = "default_mode")]
    mode: Named<Mode>,
    #[serde(default)]
    peek_timeout: Option<Spanned<String>>,
    #[serde(default)]
    accept_proxy_from: Vec<Spanned<String>>,
    #[serde(default)]
    accept_proxy_lenient: bool,
}

fn default_mode() -> Named<Mode> {
    Named(Mode::Auto)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    name: Option<Spanned<String>>,
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    listeners: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default = "default_balance")]
    balance: Named<Balance>,
    #[serde(default = "default_proxy")]
    proxy_protocol: Named<ProxyOut>,
    #[serde(default)]
    connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    connect_attempts: Option<Spanned<u32>>,
    /// Without a span of its own: errors point at the address.
    backends: Vec<RawBackend>,
    #[serde(default)]
    health: Option<Spanned<RawHealth>>,
    #[serde(default)]
    forwarded: Option<Spanned<ForwardedName>>,
    #[serde(default)]
    forwarded_proto: Option<Spanned<bool>>,
    #[serde(default)]
    trust_forwarded_from: Option<Spanned<Vec<Spanned<String>>>>,
}

fn default_balance() -> Named<Balance> {
    Named(Balance::RoundRobin)
}

fn default_proxy() -> Named<ProxyOut> {
    Named(ProxyOut::None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: Spanned<String>,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    backup: bool,
}

fn default_weight() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    rise: Option<u32>,
    #[serde(default)]
    fall: Option<u32>,
    /// A plain TCP exchange: what to write, and what the answer must contain.
    #[serde(default)]
    send: Option<Spanned<String>>,
    #[serde(default)]
    expect: Option<Spanned<String>>,
    /// A TLS handshake instead, with `sni` as its server name.
    #[serde(default)]
    tls: Option<Spanned<bool>>,
    #[serde(default)]
    sni: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    relay: Option<Named<RelayMethod>>,
    #[serde(default)]
    idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    drain_timeout: Option<Spanned<String>>,
    #[serde(default)]
    threads: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    address: Spanned<String>,
}

// ----- checking ----------------------------------------------------------------------------

/// Reads and checks a file.
/// With `two_threads`, every other piece is parsed on a second thread: for `--check` only. A
/// configuration that will run is read on one thread: its routes are then freed (at the next
/// reload) from the arena they were allocated in, and a reload leaves the workers a core. Read
/// on two, 100,000 routes kept connections waiting 20-26 ms during a reload; on one, 4-5 ms.
/// A route read again equal to one of `running` (a reload's) is that one: see [`Running`].
pub fn load(
    path: &std::path::Path,
    two_threads: bool,
    running: &[Arc<Route>],
) -> Result<Config, Vec<ConfigError>> {
    let running = Running::of(running);
    let file = std::fs::File::open(path).map_err(|e| {
        vec![ConfigError {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    let reader = |file| std::io::BufReader::with_capacity(64 * 1024, file);
    or_whole(
        parse_from(reader(file), PIECE, two_threads, &running),
        || {
            let file = std::fs::File::open(path).map_err(|e| Stop {
                errors: vec![ConfigError {
                    line: 0,
                    message: format!("cannot read {}: {e}", path.display()),
                }],
                toml: false,
            })?;
            parse_from(reader(file), usize::MAX, two_threads, &running)
        },
    )
}

/// The running configuration's routes, by name. A reload reads every route anew, and the file
/// has most of them unchanged: each one that is equal to the running route of its name is
/// replaced by that route as its piece is added, so the new copy is freed at once instead of
/// being held, with every other, beside the running table until the swap. A name the file does
/// not give has the route's line in it: such a route below a line added or removed is new.
#[derive(Default)]
struct Running<'a>(HashMap<&'a str, &'a Arc<Route>, foldhash::fast::RandomState>);

impl<'a> Running<'a> {
    fn of(routes: &'a [Arc<Route>]) -> Running<'a> {
        Running(routes.iter().map(|r| (r.name.as_str(), r)).collect())
    }

    /// Each of `routes` equal to the running route of its name becomes that route.
    fn keep(&self, routes: &mut [Arc<Route>]) {
        if self.0.is_empty() {
            return;
        }
        for route in routes {
            if let Some(&old) = self.0.get(route.name.as_str())
                && **old == **route
            {
                *route = Arc::clone(old);
            }
        }
    }
}

/// Checks a configuration's text; on failure every error found, in line order.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    parse_with(text, PIECE)
}

/// [`parse`] in pieces of at least `min` bytes.
fn parse_with(text: &str, min: usize) -> Result<Config, Vec<ConfigError>> {
    let running = Running::default();
    or_whole(parse_from(text.as_bytes(), min, true, &running), || {
        parse_from(text.as_bytes(), usize::MAX, true, &running)
    })
}

/// Why reading stopped: the errors, and whether TOML refused a piece.
#[derive(Debug)]
struct Stop {
    errors: Vec<ConfigError>,
    toml: bool,
}

/// The verdict on a file read in pieces, or, when TOML refused a piece, on the file read whole:
/// a piece can fail where the whole file is good TOML (a `[[nat64.eam]]` table after a
/// `[[route]]`, away from its `[nat64]`), and then the whole file's verdict is TOML's.
fn or_whole(
    cut: Result<Config, Stop>,
    whole: impl FnOnce() -> Result<Config, Stop>,
) -> Result<Config, Vec<ConfigError>> {
    match cut {
        Err(Stop { toml: true, .. }) => whole().map_err(|stop| stop.errors),
        other => other.map_err(|stop| stop.errors),
    }
}

/// Reads and checks a configuration a piece at a time: the text is cut before `[[route]]`
/// headers into pieces of at least `min` bytes (the last may be shorter), and each piece is read,
/// parsed and checked, and its TOML tree dropped, before the next is read. A TOML tree costs some
/// kilobytes per route, a checked route a few hundred bytes, and the file itself is never held
/// whole: a file of 100,000 routes is checked in the memory its routes need.
///
/// Each piece means what it means in the whole file: an array of tables goes on in the next
/// piece, and a `[route.x]` or `[[route.x]]` belongs to the route above it, which is in the same
/// piece. A cut is made only at a line that starts with a bare `[[route]]` outside multi-line
/// strings: that is a header, or the file is not TOML at all (a bare word is no value) and then
/// the pieces do not parse either. A `[["route"]]` header is simply not a place to cut. The one
/// thing found across pieces rather than by TOML is a section that may appear once
/// (`[limits]`, `[metrics]`, `[nat64]`) appearing twice.
fn parse_from(
    input: impl std::io::BufRead,
    min: usize,
    two_threads: bool,
    running: &Running<'_>,
) -> Result<Config, Stop> {
    let hasher = foldhash::fast::RandomState::default();
    // Read whole, the file is one piece: TOML has seen every route and listener.
    let whole = min == usize::MAX;
    // Every other piece is checked on a second thread: the TOML parser is most of the time, and
    // pieces are independent. Each piece's tree is dropped where it was built, and each piece is
    // added to the file's sections as soon as those before it are: no piece's lists are held
    // beside the file's.
    let mut merged = Merged {
        check: Checker {
            lines: LineIndex::default(),
            first_line: 1,
            errors: Vec::new(),
            name: String::new(),
        },
        sections: Sections::sharing(&hasher),
        waiting: BTreeMap::new(),
        next: 1,
        failed: None,
        running,
    };
    std::thread::scope(|scope| {
        let (to_second, pieces) = std::sync::mpsc::sync_channel::<(usize, Piece)>(2);
        let (from_second, done) = std::sync::mpsc::channel();
        let shared = &hasher;
        let second = scope.spawn(move || {
            for (i, piece) in pieces {
                if from_second
                    .send((i, check_piece(piece, whole, shared)))
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut index = 0;
        read_pieces(input, min, |piece| {
            index += 1;
            let go_on = match piece {
                Ok(piece) if two_threads && index % 2 == 0 => {
                    to_second.send((index, piece)).is_ok()
                }
                Ok(piece) => {
                    let result = check_piece(piece, whole, &hasher);
                    let go_on = result.is_ok();
                    merged.add(index, result);
                    go_on
                }
                Err(stop) => {
                    merged.add(index, Err(stop));
                    false
                }
            };
            done.try_iter()
                .for_each(|(i, result)| merged.add(i, result));
            go_on
        });
        drop(to_second);
        done.iter().for_each(|(i, result)| merged.add(i, result));
        if let Err(panic) = second.join() {
            std::panic::resume_unwind(panic);
        }
    });
    let Merged {
        mut check,
        sections,
        failed,
        ..
    } = merged;
    // Up to the first piece that failed (later ones do not count).
    if let Some(stop) = failed {
        return Err(stop);
    }
    let config = check.finish(sections);
    let mut errors = check.errors;
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(Stop {
            errors,
            toml: false,
        })
    }
}

/// The pieces checked so far, added to the file's sections in the file's order.
struct Merged<'r, 'a> {
    check: Checker,
    sections: Sections,
    /// Pieces checked before one that comes earlier in the file, by their number.
    waiting: BTreeMap<usize, Result<(Sections, Vec<ConfigError>), Stop>>,
    /// The number of the next piece to add.
    next: usize,
    /// The first piece that failed: no later piece counts.
    failed: Option<Stop>,
    /// Routes a piece's equal ones become.
    running: &'r Running<'a>,
}

impl Merged<'_, '_> {
    /// Piece number `index`, checked: added with every waiting piece that follows it.
    fn add(&mut self, index: usize, result: Result<(Sections, Vec<ConfigError>), Stop>) {
        self.waiting.insert(index, result);
        while self.failed.is_none() {
            let Some(result) = self.waiting.remove(&self.next) else {
                return;
            };
            self.next += 1;
            match result {
                Ok((mut piece, errors)) => {
                    self.check.errors.extend(errors);
                    self.running.keep(&mut piece.routes);
                    self.check.absorb(&mut self.sections, piece);
                }
                Err(stop) => self.failed = Some(stop),
            }
        }
        self.waiting.clear();
    }
}

/// One piece of the file, as read: its text, the line it starts on, and how many `[[route]]`
/// and `[[listen]]` headers it has.
struct Piece {
    text: String,
    first_line: usize,
    headers: (usize, usize),
}

/// Parses and checks one piece alone: its sections and its errors.
fn check_piece(
    piece: Piece,
    whole: bool,
    hasher: &foldhash::fast::RandomState,
) -> Result<(Sections, Vec<ConfigError>), Stop> {
    let Parsed {
        first_line,
        lines,
        raw,
    } = parse_piece(&piece.text, piece.first_line)?;
    // A route or listener that is no `[[route]]`/`[[listen]]` table of this piece (an inline
    // `route = [...]`) may clash with one in another piece, which TOML alone would see: such a
    // file is read whole.
    if !whole && piece.headers != (raw.route.len(), raw.listen.len()) {
        return Err(Stop {
            errors: Vec::new(),
            toml: true,
        });
    }
    let mut check = Checker {
        lines,
        first_line,
        errors: Vec::new(),
        name: String::new(),
    };
    let mut sections = Sections::sharing(hasher);
    check.sections(raw, &mut sections);
    Ok((sections, check.errors))
}

/// One piece of the file, parsed: the line it starts on, where its lines start, its TOML.
struct Parsed {
    first_line: usize,
    lines: LineIndex,
    raw: RawConfig,
}

/// Reads `input` a line at a time, cuts it into pieces and hands each on parsed, until the end,
/// the first error (handed on too), or `each` returning false.
fn read_pieces(
    mut input: impl std::io::BufRead,
    min: usize,
    mut each: impl FnMut(Result<Piece, Stop>) -> bool,
) {
    // The piece so far, then the line just read; the piece's first line and its number of lines;
    // the quote of a multi-line string open at the start of the next line.
    let mut piece = Vec::new();
    let (mut first_line, mut lines) = (1, 0);
    let mut open = None;
    let mut headers = (0, 0);
    loop {
        let start = piece.len();
        let read = match input.read_until(b'\n', &mut piece) {
            Ok(read) => read,
            Err(e) => {
                each(Err(Stop {
                    errors: vec![ConfigError {
                        line: first_line + lines,
                        message: format!("cannot read the file: {e}"),
                    }],
                    toml: false,
                }));
                return;
            }
        };
        let line = &piece[start..];
        let header = read > 0 && open.is_none() && is_header(line, b"route");
        if read == 0 || (header && start >= min) {
            let rest = piece.split_off(start);
            let text = core::mem::replace(&mut piece, rest);
            let parsed = match String::from_utf8(text) {
                Ok(text) => Ok(Piece {
                    text,
                    first_line,
                    headers,
                }),
                Err(e) => {
                    let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    Err(Stop {
                        errors: vec![ConfigError {
                            line: first_line + before.iter().filter(|&&b| b == b'\n').count(),
                            message: "the file is not UTF-8 text".into(),
                        }],
                        toml: false,
                    })
                }
            };
            let failed = parsed.is_err();
            if !each(parsed) || failed || read == 0 {
                return;
            }
            (first_line, lines, headers) = (first_line + lines, 0, (0, 0));
        }
        if read > 0 && open.is_none() {
            let line = &piece[piece.len() - read..];
            headers.0 += usize::from(header);
            headers.1 += usize::from(!header && is_header(line, b"listen"));
        }
        scan_line(&piece[piece.len() - read..], &mut open);
        lines += 1;
    }
}

/// Parses one piece of the file, which starts on `first_line`. A TOML error (syntax, an unknown
/// key, a misspelt value) ends the check with it alone.
fn parse_piece(text: &str, first_line: usize) -> Result<Parsed, Stop> {
    let Some(lines) = LineIndex::new(text) else {
        return Err(Stop {
            errors: vec![ConfigError {
                line: first_line,
                message: "more than 4 GiB without a [[route]] header".into(),
            }],
            toml: false,
        });
    };
    match toml::from_str::<RawConfig>(text) {
        Ok(raw) => Ok(Parsed {
            first_line,
            lines,
            raw,
        }),
        Err(e) => Err(Stop {
            errors: vec![ConfigError {
                line: e.span().map_or(0, |s| first_line - 1 + lines.line(s.start)),
                message: e.message().to_string(),
            }],
            toml: true,
        }),
    }
}

/// Bytes of TOML parsed at a time: some hundred routes, a tree that stays in the caches.
const PIECE: usize = 16 * 1024;

/// Whether a line starts with `[[name]]`, blanks allowed around and inside the brackets.
fn is_header(line: &[u8], name: &[u8]) -> bool {
    let blanks = |s: &[u8]| s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let mut rest = &line[blanks(line)..];
    for token in [&b"[["[..], name, b"]]"] {
        match rest.strip_prefix(token) {
            Some(after) => rest = &after[blanks(after)..],
            None => return false,
        }
    }
    matches!(rest.first(), None | Some(b'\n' | b'\r' | b'#'))
}

/// Follows one line's strings and comments. `open` is the quote of a multi-line string open at
/// the line's start, and becomes that of one open at its end. Single-line strings and comments
/// end with their line, so only `"""` and `'''` strings can hide a line start.
fn scan_line(line: &[u8], open: &mut Option<u8>) {
    let mut at = 0;
    if let Some(quote) = *open {
        match close_multi(line, 0, quote) {
            Some(end) => (at, *open) = (end, None),
            None => return,
        }
    }
    while let Some(&b) = line.get(at) {
        at += 1;
        match b {
            b'#' => return,
            b'"' | b'\'' if line[at..].starts_with(&[b, b]) => match close_multi(line, at + 2, b) {
                Some(end) => at = end,
                None => return *open = Some(b),
            },
            // A single-line string: to its closing quote, or to the line's end (TOML's error).
            b'"' | b'\'' => {
                while let Some(&c) = line.get(at) {
                    at += 1;
                    if c == b'\\' && b == b'"' {
                        at += 1;
                    } else if c == b {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Where the multi-line string closed by three `quote`s ends in `line`, searching from `at`;
/// `None` when it goes on past the line. Basic strings have escapes, literal ones none.
fn close_multi(line: &[u8], mut at: usize, quote: u8) -> Option<usize> {
    while let Some(&c) = line.get(at) {
        if c == b'\\' && quote == b'"' {
            at += 2;
            continue;
        }
        at += 1;
        if c == quote && line[at..].starts_with(&[quote, quote]) {
            return Some(at + 2);
        }
    }
    None
}

/// A host pattern as found: its hash, where it is kept, and the line it is on. 16 bytes, one per
/// name of the file: patterns with equal hashes are compared, so 32 bits of hash are enough.
struct SeenHost {
    hash: u32,
    route: u32,
    /// Its index in the route's hosts.
    host: u32,
    line: u32,
}

/// What a piece holds, or what the pieces add up to.
#[derive(Default)]
struct Sections {
    listeners: Vec<Listener>,
    /// Every listener address with its line, in order (a piece's: as found; the file's: each
    /// once).
    addresses: Vec<(SocketAddr, usize)>,
    seen_addresses: HashMap<SocketAddr, usize>,
    routes: Vec<Arc<Route>>,
    /// The line each route starts on.
    route_lines: Vec<usize>,
    /// Each listener name with its line, in order.
    listener_names: Vec<(String, usize)>,
    seen_names: HashMap<String, usize>,
    /// The listener names routes are bound to, each with its line: checked once all are in.
    bindings: Vec<(String, usize)>,
    /// The routes with `forwarded` on (their index) and its line: their listeners' modes are
    /// checked once all are in.
    forwarded: Vec<(u32, usize)>,
    /// Every host pattern, to find the ones routed twice once all are in.
    hosts: Vec<SeenHost>,
    hasher: foldhash::fast::RandomState,
    /// Each with the line it is on.
    limits: Option<(Limits, usize)>,
    metrics: Option<(Option<SocketAddr>, usize)>,
    nat64: Option<(Nat64, usize)>,
}

impl Sections {
    /// Empty, hashing names with `hasher`: the pieces of one file share it.
    fn sharing(hasher: &foldhash::fast::RandomState) -> Self {
        Sections {
            hasher: hasher.clone(),
            ..Sections::default()
        }
    }
}

/// Where every line of a text starts, so that a byte offset becomes a line number by binary
/// search: one pass over the text, however many names and errors ask.
#[derive(Default)]
struct LineIndex {
    /// The offset just after each newline: the start of line 2, 3, and so on.
    starts: Vec<u32>,
}

impl LineIndex {
    /// `None` for a text whose offsets do not fit in 32 bits.
    fn new(text: &str) -> Option<Self> {
        u32::try_from(text.len()).ok()?;
        let starts = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(at, _)| at as u32 + 1)
            .collect();
        Some(LineIndex { starts })
    }

    /// The 1-based line holding `offset`; past the end, the last line.
    fn line(&self, offset: usize) -> usize {
        1 + self
            .starts
            .partition_point(|&start| start as usize <= offset)
    }
}

struct Checker {
    /// The lines of the piece being checked, whose spans count from its start.
    lines: LineIndex,
    /// The file's line number of the piece's first line.
    first_line: usize,
    errors: Vec<ConfigError>,
    /// Where a route's name is written.
    name: String,
}

impl Checker {
    /// The file's line number of an offset in the piece being checked.
    fn line(&self, offset: usize) -> usize {
        self.first_line - 1 + self.lines.line(offset)
    }

    fn error<T>(&mut self, span: core::ops::Range<usize>, message: impl Into<String>) -> Option<T> {
        let line = self.line(span.start);
        self.errors.push(ConfigError {
            line,
            message: message.into(),
        });
        None
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match parse_duration(v.get_ref()) {
            Some(d) if !d.is_zero() => d,
            Some(_) => self
                .error(
                    v.span(),
                    format!(
                        "{:?}: a zero duration is refused, it would expire at once (at least \"1ms\")",
                        v.get_ref()
                    ),
                )
                .unwrap_or(default),
            None => self
                .error(
                    v.span(),
                    format!(
                        "{:?} is not a duration such as \"500ms\", \"5s\", \"2m\", \"1h\" or \"2h4m\" (at most a day)",
                        v.get_ref()
                    ),
                )
                .unwrap_or(default),
        }
    }

    /// One piece's sections, checked; a section that must be unique is refused the second time.
    fn sections(&mut self, raw: RawConfig, sections: &mut Sections) {
        for l in raw.listen {
            let listener = self.listener(l, sections);
            sections.listeners.push(listener);
        }
        sections.routes.reserve(raw.route.len());
        for r in raw.route {
            sections.route_lines.push(self.line(r.span().start));
            let route = self.route(r, sections);
            sections.routes.push(Arc::new(route));
        }
        if let Some(l) = raw.limits {
            let here = self.line(l.span().start);
            let limits = self.limits(l);
            sections.limits = Some((limits, here));
        }
        if let Some(m) = raw.metrics {
            let here = self.line(m.span().start);
            let address = m.into_inner().address;
            let metrics = match address.get_ref().parse() {
                Ok(a) => Some(a),
                Err(_) => self.error(
                    address.span(),
                    format!("metrics address {:?} is not IP:PORT", address.get_ref()),
                ),
            };
            sections.metrics = Some((metrics, here));
        }
        if let Some(n) = raw.nat64 {
            let here = self.line(n.span().start);
            let nat64 = self.nat64(n);
            sections.nat64 = Some((nat64, here));
        }
    }

    /// Adds a piece's sections (`piece`, checked alone) to those of the pieces before it (`all`),
    /// with the checks that span pieces: an address or a listener name used twice, and a section
    /// that may appear once appearing again. Route indices are renumbered to the whole file's.
    fn absorb(&mut self, all: &mut Sections, piece: Sections) {
        let Sections {
            listeners,
            addresses,
            routes,
            route_lines,
            listener_names,
            bindings,
            forwarded,
            hosts,
            limits,
            metrics,
            nat64,
            ..
        } = piece;
        for (addr, line) in addresses {
            match all.seen_addresses.insert(addr, line) {
                Some(first) => self.errors.push(ConfigError {
                    line,
                    message: format!("{addr} is already a listener address (line {first})"),
                }),
                None => all.addresses.push((addr, line)),
            }
        }
        for (name, line) in listener_names {
            if let Some(&first) = all.seen_names.get(&name) {
                self.errors.push(ConfigError {
                    line,
                    message: format!(
                        "a second listener named {name:?} (the first is on line {first})"
                    ),
                });
            } else {
                all.seen_names.insert(name.clone(), line);
                all.listener_names.push((name, line));
            }
        }
        let offset = all.routes.len() as u32;
        all.hosts.extend(hosts.into_iter().map(|h| SeenHost {
            route: h.route + offset,
            ..h
        }));
        all.forwarded.extend(
            forwarded
                .into_iter()
                .map(|(route, line)| (route + offset, line)),
        );
        all.listeners.extend(listeners);
        all.routes.extend(routes);
        all.route_lines.extend(route_lines);
        all.bindings.extend(bindings);
        self.once("limits", &mut all.limits, limits);
        self.once("metrics", &mut all.metrics, metrics);
        self.once("nat64", &mut all.nat64, nat64);
    }

    /// Keeps the first of a section that may appear once, and reports any later one.
    fn once<T>(&mut self, name: &str, slot: &mut Option<(T, usize)>, value: Option<(T, usize)>) {
        let Some(value) = value else { return };
        match slot {
            None => *slot = Some(value),
            Some((_, first)) => self.errors.push(ConfigError {
                line: value.1,
                message: format!("a second [{name}] section (the first is on line {first})"),
            }),
        }
    }

    /// The whole file's checks, once every piece is in.
    fn finish(&mut self, sections: Sections) -> Config {
        let Sections {
            listeners,
            mut routes,
            route_lines,
            seen_names,
            bindings,
            forwarded,
            hosts,
            limits,
            metrics,
            nat64,
            ..
        } = sections;
        for (name, line) in bindings {
            if !seen_names.contains_key(&name) {
                self.errors.push(ConfigError {
                    line,
                    message: format!("no [[listen]] section has name = {name:?}"),
                });
            }
        }
        self.routed_twice(&routes, hosts);
        self.named_twice(&routes, &route_lines);
        // A file may run the proxy, the NAT64 gateway, or both; the proxy needs both halves.
        if nat64.is_none() && listeners.is_empty() && routes.is_empty() {
            self.error::<()>(
                0..0,
                "nothing to run: no [[listen]] and [[route]] sections, and no [nat64] section",
            );
        } else if listeners.is_empty() && !routes.is_empty() {
            self.error::<()>(
                0..0,
                "no [[listen]] section: nothing to accept connections on",
            );
        } else if routes.is_empty() && !listeners.is_empty() {
            self.error::<()>(0..0, "no [[route]] section: nowhere to send connections");
        }
        self.no_loops(&listeners, &routes, &route_lines);
        self.forwarded_over_http(&listeners, &routes, forwarded);
        // Routes named by their line must differ: those of an inline array share one line.
        let mut same_line = 1;
        for i in 1..routes.len() {
            same_line = if route_lines[i] == route_lines[i - 1] {
                same_line + 1
            } else {
                1
            };
            if same_line > 1 && routes[i].name.contains('@') {
                let route = Arc::make_mut(&mut routes[i]);
                route.name = format!("{}#{same_line}", route.name);
            }
        }
        Config {
            listeners,
            routes,
            limits: limits.map_or_else(Limits::default, |(l, _)| l),
            metrics: metrics.and_then(|(m, _)| m),
            nat64: nat64.map(|(n, _)| n),
        }
    }

    fn limits(&mut self, l: Spanned<RawLimits>) -> Limits {
        let span = l.span();
        let l = l.into_inner();
        let defaults = sixgate::proxy::Limits::default();
        let max_connections = match l.max_connections {
            Some(0) => self
                .error(span.clone(), "max_connections must be at least 1")
                .unwrap_or(1),
            Some(n) => n,
            None => defaults.max_connections,
        };
        Limits {
            engine: sixgate::proxy::Limits {
                max_connections,
                relay: l.relay.map_or(defaults.relay, |Named(r)| r),
                idle_timeout: self.duration(&l.idle_timeout, defaults.idle_timeout),
                drain_timeout: self.duration(&l.drain_timeout, defaults.drain_timeout),
            },
            threads: match l.threads {
                Some(n) if n > MAX_THREADS => self
                    .error(span, format!("threads must be at most {MAX_THREADS}"))
                    .unwrap_or(0),
                Some(n) => n,
                None => 0,
            },
        }
    }

    /// Two routes given one name (names made from a line are unique by themselves).
    fn named_twice(&mut self, routes: &[Arc<Route>], lines: &[usize]) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (route, &line) in routes.iter().zip(lines) {
            if route.name.contains('@') {
                continue;
            }
            if let Some(&earlier) = first.get(route.name.as_str()) {
                self.errors.push(ConfigError {
                    line,
                    message: format!(
                        "a second route named {:?} (the first is on line {earlier})",
                        route.name
                    ),
                });
            } else {
                first.insert(&route.name, line);
            }
        }
    }

    /// A host pattern in two routes serving a listener in common (or twice in one): the later
    /// could never be reached for it there.
    /// Found by sorting every pattern's hash, not by a table of the patterns: that would hold a
    /// second copy of every name.
    fn routed_twice(&mut self, routes: &[Arc<Route>], mut hosts: Vec<SeenHost>) {
        let pattern = |h: &SeenHost| &routes[h.route as usize].hosts[h.host as usize];
        // Routes bound to listeners with none in common may share a pattern.
        let overlap = |a: &SeenHost, b: &SeenHost| {
            let (a, b) = (&routes[a.route as usize], &routes[b.route as usize]);
            a.listeners.is_empty()
                || b.listeners.is_empty()
                || a.listeners.iter().any(|l| b.listeners.contains(l))
        };
        hosts.sort_unstable_by_key(|h| (h.hash, h.route, h.host));
        let mut found = Vec::new();
        for same_hash in hosts.chunk_by(|a, b| a.hash == b.hash) {
            for (i, later) in same_hash.iter().enumerate().skip(1) {
                let this = pattern(later);
                let Some(earlier) = same_hash[..i]
                    .iter()
                    .rev()
                    .find(|e| pattern(e) == this && overlap(e, later))
                else {
                    continue;
                };
                let what = if *this == HostPattern::Any {
                    "a second default route"
                } else {
                    "overlapping hosts"
                };
                let message = format!(
                    "{what}: {this} is already routed on line {}; this route could never be reached for it",
                    earlier.line
                );
                found.push(((later.route, later.host), later.line as usize, message));
            }
        }
        // In the file's order, whatever the hashes were.
        found.sort_unstable_by_key(|&(at, ..)| at);
        for (_, line, message) in found {
            self.errors.push(ConfigError { line, message });
        }
    }

    /// A backend that is one of this proxy's own listeners would send connections round in a
    /// circle until the descriptors run out.
    fn no_loops(&mut self, listeners: &[Listener], routes: &[Arc<Route>], lines: &[usize]) {
        let own: Vec<SocketAddr> = listeners
            .iter()
            .flat_map(|l| l.addresses.iter().copied())
            .collect();
        for (route, &line) in routes.iter().zip(lines) {
            for b in &route.backends {
                let ports: Vec<u16> = match b.port {
                    Some(p) => vec![p],
                    None => own.iter().map(SocketAddr::port).collect(),
                };
                let hit = own.iter().find(|l| {
                    ports.contains(&l.port())
                        && (l.ip() == b.ip
                            || (l.ip().is_unspecified()
                                && (b.ip.is_loopback() || b.ip.is_unspecified())))
                });
                if let Some(listener) = hit {
                    self.errors.push(ConfigError {
                        line,
                        message: format!("backend {} is this proxy's own listener {listener}: connections would loop", b.ip),
                    });
                }
            }
        }
    }

    /// A route with `forwarded` whose listeners are all `tls` would never insert its field:
    /// TLS is relayed untouched. Bound by name, its listeners; unbound, every listener.
    fn forwarded_over_http(
        &mut self,
        listeners: &[Listener],
        routes: &[Arc<Route>],
        forwarded: Vec<(u32, usize)>,
    ) {
        for (route, line) in forwarded {
            let bound = &routes[route as usize].listeners;
            let serves = || {
                listeners.iter().filter(|l| {
                    bound.is_empty() || l.name.as_ref().is_some_and(|name| bound.contains(name))
                })
            };
            // None served: its unknown names are reported already.
            if serves().next().is_some() && serves().all(|l| l.mode == Mode::Tls) {
                self.errors.push(ConfigError {
                    line,
                    message: "forwarded needs an http or auto listener: this route serves only \
                              tls listeners, whose connections are relayed untouched (use \
                              proxy_protocol for them)"
                        .into(),
                });
            }
        }
    }

    /// Networks or single addresses, each bad one reported on its line.
    fn cidrs(&mut self, list: &[Spanned<String>]) -> Vec<Cidr> {
        list.iter()
            .filter_map(|c| match c.get_ref().parse::<Cidr>() {
                Ok(cidr) => Some(cidr),
                Err(_) => self.error(
                    c.span(),
                    format!(
                        "{:?} is not an address or network (\"192.0.2.0/24\")",
                        c.get_ref()
                    ),
                ),
            })
            .collect()
    }

    fn listener(&mut self, raw: Spanned<RawListen>, sections: &mut Sections) -> Listener {
        let span = raw.span();
        let raw = raw.into_inner();
        if let Some(name) = &raw.name {
            let line = self.line(name.span().start);
            sections.listener_names.push((name.get_ref().clone(), line));
        }
        if raw.addresses.is_empty() {
            self.error::<()>(span.clone(), "a listener needs at least one address");
        }
        let mut addresses = Vec::new();
        for a in &raw.addresses {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) => {
                    sections.addresses.push((addr, self.line(a.span().start)));
                    addresses.push(addr);
                }
                Err(_) => {
                    self.error::<()>(
                        a.span(),
                        format!(
                            "{:?} is not IP:PORT (IPv6 in brackets: \"[::]:443\")",
                            a.get_ref()
                        ),
                    );
                }
            }
        }
        let accept_proxy_from = self.cidrs(&raw.accept_proxy_from);
        Listener {
            name: raw.name.map(Spanned::into_inner),
            addresses,
            mode: raw.mode.0,
            peek_timeout: self.duration(&raw.peek_timeout, Duration::from_secs(5)),
            accept_proxy_from,
            accept_proxy_lenient: raw.accept_proxy_lenient,
        }
    }

    /// A route's own name: what logs show instead of its first host and line, unchanged when
    /// lines move (so a reload keeps the route when nothing else of it changed). Without `@`,
    /// which made names have.
    fn route_name(&mut self, name: Spanned<String>) -> String {
        let (span, name) = (name.span(), name.into_inner());
        let fine = !name.is_empty()
            && name.len() <= 200
            && !name.contains('@')
            && name.chars().all(|c| c.is_ascii_graphic());
        if !fine {
            self.error::<()>(
                span,
                format!(
                    "route name {name:?}: 1 to 200 printable ASCII characters, no spaces and no '@' (names made from a route's first host and line have one)"
                ),
            );
        }
        name
    }

    fn route(&mut self, raw: Spanned<RawRoute>, sections: &mut Sections) -> Route {
        let span = raw.span();
        let line = self.line(span.start);
        let raw = raw.into_inner();
        if raw.hosts.is_empty() {
            self.error::<()>(
                span.clone(),
                "a route needs at least one host (\"*\" for the default route)",
            );
        }
        // Held per customer: sized as given, with no spare capacity (a pushed-to Vec of two
        // has room for four).
        let mut hosts = Vec::with_capacity(raw.hosts.len());
        for h in &raw.hosts {
            let pattern = match HostPattern::parse(h.get_ref()) {
                Ok(pattern) => pattern,
                Err(e) => {
                    self.error::<()>(
                        h.span(),
                        format!(
                            "{:?} is not a host name, \"*.domain\" or \"*\" ({e})",
                            h.get_ref()
                        ),
                    );
                    continue;
                }
            };
            sections.hosts.push(SeenHost {
                hash: core::hash::BuildHasher::hash_one(&sections.hasher, &pattern) as u32,
                route: sections.routes.len() as u32,
                host: hosts.len() as u32,
                line: self.line(h.span().start) as u32,
            });
            hosts.push(pattern);
        }
        let mut backends = Vec::with_capacity(raw.backends.len());
        for spec in &raw.backends {
            match backend_address(spec.address.get_ref()) {
                Some((ip, port))
                    if backends
                        .iter()
                        .any(|b: &BackendSpec| (b.ip, b.port) == (ip, port)) =>
                {
                    let message = format!(
                        "backend {:?} is listed twice in this route",
                        spec.address.get_ref()
                    );
                    self.error::<()>(spec.address.span(), message);
                }
                Some((ip, port)) => backends.push(BackendSpec {
                    ip,
                    port,
                    weight: spec.weight,
                    backup: spec.backup,
                }),
                None => {
                    self.error::<()>(spec.address.span(), format!(
                        "backend {:?} is not an IP address with an optional port (\"2001:db8::10\", \"[2001:db8::11]:8443\")",
                        spec.address.get_ref()
                    ));
                }
            }
        }
        if raw.backends.is_empty() {
            self.error::<()>(span.clone(), "a route needs at least one backend");
        } else if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
            self.error::<()>(
                span.clone(),
                "every backend of this route has weight 0: it can never be served",
            );
        }
        let connect_attempts = match &raw.connect_attempts {
            Some(n) if *n.get_ref() == 0 => self
                .error(n.span(), "connect_attempts must be at least 1")
                .unwrap_or(1),
            Some(n) => *n.get_ref(),
            None => 3,
        };
        let health = raw.health.map(|h| {
            let span = h.span();
            let h = h.into_inner();
            let rise = h.rise.unwrap_or(2);
            let fall = h.fall.unwrap_or(3);
            if rise == 0 || fall == 0 {
                self.error::<()>(span, "health rise and fall must be at least 1");
            }
            let tls = h.tls.filter(|t| *t.get_ref());
            if let (Some(tls), true) = (&tls, h.send.is_some() || h.expect.is_some()) {
                self.error::<()>(
                    tls.span(),
                    "tls = true checks a TLS handshake; send and expect are for a plain TCP \
                     check: use one or the other",
                );
            }
            if let (None, Some(sni)) = (&tls, &h.sni) {
                self.error::<()>(
                    sni.span(),
                    "sni is the name a TLS check sends: it needs tls = true",
                );
            }
            let limit = sixgate::backend_pool::TcpExchange::READ_LIMIT;
            if let Some(expect) = h.expect.as_ref().filter(|e| e.get_ref().len() > limit) {
                let message = format!(
                    "expect is {} bytes: a check reads at most {limit} bytes of the answer, \
                     so it could never be found",
                    expect.get_ref().len()
                );
                self.error::<()>(expect.span(), message);
            }
            let server_name = h.sni.and_then(|sni| {
                let name = sixgate::sni_peek::HostName::new(sni.get_ref());
                match name {
                    Ok(name) => Some(name.as_str().to_owned()),
                    Err(e) => self.error(
                        sni.span(),
                        format!("sni {:?} is not a host name ({e})", sni.get_ref()),
                    ),
                }
            });
            let bytes = |s: Option<Spanned<String>>| {
                s.map(|s| s.into_inner().into_bytes().into_boxed_slice())
                    .unwrap_or_default()
            };
            let check = match (tls, h.send, h.expect) {
                (Some(_), ..) => sixgate::proxy::Check::Tls { server_name },
                (None, None, None) => sixgate::proxy::Check::Connect,
                (None, send, expect) => sixgate::proxy::Check::Exchange {
                    send: bytes(send),
                    expect: bytes(expect),
                },
            };
            Box::new(Health {
                interval: self.duration(&h.interval, Duration::from_secs(2)),
                timeout: self.duration(&h.timeout, Duration::from_secs(1)),
                rise: rise.max(1),
                fall: fall.max(1),
                check,
            })
        });
        let mut listeners = Vec::new();
        if let Some(bound) = raw.listeners {
            if bound.get_ref().is_empty() {
                self.error::<()>(
                    bound.span(),
                    "listeners = [] serves no listener: leave it out to serve all of them",
                );
            }
            for name in bound.into_inner() {
                let line = self.line(name.span().start);
                sections.bindings.push((name.get_ref().clone(), line));
                listeners.push(name.into_inner());
            }
        }
        let forwarded =
            self.forwarding(raw.forwarded, raw.forwarded_proto, raw.trust_forwarded_from);
        if let Some((_, line)) = &forwarded {
            sections
                .forwarded
                .push((sections.routes.len() as u32, *line));
        }
        let name = match raw.name {
            Some(name) => self.route_name(name),
            None => {
                // Written where it is made, then copied at its length.
                self.name.clear();
                if let Some(first) = hosts.first() {
                    let _ = write!(self.name, "{first}");
                }
                let _ = write!(self.name, "@{line}");
                self.name.as_str().to_owned()
            }
        };
        hosts.shrink_to_fit();
        backends.shrink_to_fit();
        Route {
            name,
            hosts,
            listeners,
            balance: raw.balance.0,
            proxy_protocol: raw.proxy_protocol.0,
            connect_timeout: self.duration(&raw.connect_timeout, Duration::from_secs(3)),
            connect_attempts,
            backends,
            health,
            forwarded: forwarded.map(|(f, _)| f),
        }
    }

    /// A route's `forwarded`, `forwarded_proto` and `trust_forwarded_from`, with the line of
    /// `forwarded`; `None` when it is `"none"` or left out, and then the other two are mistakes.
    fn forwarding(
        &mut self,
        field: Option<Spanned<ForwardedName>>,
        proto: Option<Spanned<bool>>,
        trust: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Option<(Box<Forwarding>, usize)> {
        let (line, field) = match field {
            Some(f) => (self.line(f.span().start), f.into_inner().0),
            None => (0, None),
        };
        let Some(field) = field else {
            if let Some(proto) = &proto {
                self.error::<()>(
                    proto.span(),
                    "forwarded_proto adds X-Forwarded-Proto beside the forwarded field: it needs \
                     forwarded = \"x-forwarded-for\" or \"forwarded\"",
                );
            }
            if let Some(trust) = &trust {
                self.error::<()>(
                    trust.span(),
                    "trust_forwarded_from keeps these sources' forwarded fields: it needs \
                     forwarded = \"x-forwarded-for\" or \"forwarded\"",
                );
            }
            return None;
        };
        let mut trust_from = trust.map_or_else(Vec::new, |t| self.cidrs(t.get_ref()));
        // Held per customer: no spare capacity.
        trust_from.shrink_to_fit();
        let forwarding = Forwarding {
            field,
            proto: proto.is_none_or(|p| *p.get_ref()),
            trust_from,
        };
        Some((Box::new(forwarding), line))
    }
}

/// More worker threads than any machine this runs on has cores: a typo, not a wish.
const MAX_THREADS: usize = 1024;
/// The longest duration accepted: a day. Longer ones are surely typos, and deadlines computed
/// from them must not overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// `500ms`, `5s`, `2m`, `1h` (whole numbers), or a sum of them from the largest unit down, each
/// unit once: `2h4m`, `1m30s`. Up to a day.
pub fn parse_duration(s: &str) -> Option<Duration> {
    // Units from the largest down: each part must use a smaller unit than the one before.
    const UNITS: [(&str, Duration); 4] = [
        ("h", Duration::from_secs(3600)),
        ("m", Duration::from_secs(60)),
        ("s", Duration::from_secs(1)),
        ("ms", Duration::from_millis(1)),
    ];
    let mut rest = s;
    let mut total = Duration::ZERO;
    let mut allowed = &UNITS[..];
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u32 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let at = allowed.iter().position(|(u, _)| *u == &rest[..unit])?;
        total = total.checked_add(allowed[at].1.checked_mul(n)?)?;
        allowed = &allowed[at + 1..];
        rest = &rest[unit..];
    }
    (!s.is_empty() && total <= MAX_DURATION).then_some(total)
}

/// A duration as [`parse_duration`] reads it: `2h4m`, `90s` as `1m30s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let (mut out, mut ms) = (String::new(), d.as_millis());
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            out += &format!("{}{unit}", ms / size);
            ms %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// `2001:db8::10`, `[2001:db8::11]:8443`, `192.0.2.10`, `192.0.2.10:8080`.
fn backend_address(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    s.parse::<SocketAddr>()
        .ok()
        .map(|a| (a.ip(), Some(a.port())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_counting_newlines() {
        for text in ["", "a", "\n", "a\nb", "a\n\nbc\n", "\n\nx\r\ny\n"] {
            let index = LineIndex::new(text).unwrap();
            for offset in 0..text.len() + 3 {
                let counted = 1 + text.as_bytes()[..offset.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                assert_eq!(index.line(offset), counted, "{text:?} at {offset}");
            }
        }
        let index = LineIndex::new("one\ntwo\nthree").unwrap();
        assert_eq!(
            [0, 3, 4, 7, 8, 13].map(|at| index.line(at)),
            [1, 1, 2, 2, 3, 3]
        );
    }

    #[test]
    fn route_headers_outside_multi_line_strings() {
        let text = "[[listen]]\n[[route]]\n  [[ route ]] # x\nx = \"\"\"\n[[route]]\n\"\"\"\n\
                    y = '''\n[[route]]'''\n[[route]]\nz = \"[[route]]\\\"\"\n[[route]]x\n[[\"route\"]]\n\
                    [[routes]]\n[[route.b]]\n#[[route]]\nw = \"\"\"a\\\n\\\"\"\"\n[[route]]\n\"\"\"\n[[route]]";
        let mut open = None;
        let mut headers = Vec::new();
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if open.is_none() && is_header(line.as_bytes(), b"route") {
                headers.push(i + 1);
            }
            scan_line(line.as_bytes(), &mut open);
        }
        assert_eq!(headers, [2, 3, 9, 20], "{text}");
        assert_eq!(open, None);
    }

    // Cut at every `[[route]]` or not at all, a file means the same, errors and lines included.
    #[test]
    fn pieces_mean_what_the_whole_file_means() {
        let mut texts = vec![GOOD.to_string(), include_str!("sixgate.toml").to_string()];
        let mut big =
            String::from("[[listen]]\naddresses = [\"127.0.0.1:8443\"]\n[limits]\nthreads = 2\n");
        for i in 0..300 {
            big += &format!(
                "[[route]]\nhosts = [\"c{i}.test\", \"*.c{i}.test\"]\nbackends = [{{ address = \"::{i:x}\" }}]\n"
            );
            if i % 100 == 7 {
                big += "[route.health]\ninterval = \"1s\"\n[[listen]]\naddresses = [\"127.0.0.1:";
                big += &format!("{}\"]\n", 9000 + i);
            }
        }
        texts.push(big.clone());
        // Errors in late pieces, and sections that may appear once, twice.
        texts.push(big.replace("c299.test\"", "c1.test\""));
        texts.push(format!("{big}[limits]\nthreads = 3\n"));
        texts.push(format!("{big}[metrics]\naddress = \"nowhere\"\n"));
        texts.push(format!(
            "{big}[[route]]\nhosts = [\"x.test\"]\nbackends = []\nbogus = 1\n"
        ));
        texts.push(format!("{big}[[route]]\nhosts = [\"x.test\"\n"));
        for (i, text) in texts.iter().enumerate() {
            let running = Running::default();
            let pieces =
                |min| parse_from(text.as_bytes(), min, true, &running).map_err(|stop| stop.errors);
            let whole = pieces(usize::MAX);
            for min in [0, 1000] {
                let cut = pieces(min);
                if i == 4 {
                    // TOML's own message for a table defined twice, or ours across pieces.
                    let (whole, cut) = (whole.clone().unwrap_err(), cut.unwrap_err());
                    assert_eq!((whole.len(), cut.len()), (1, 1), "{whole:?} {cut:?}");
                    assert!(
                        cut[0]
                            .message
                            .contains("a second [limits] section (the first is on line 3)"),
                        "{cut:?}"
                    );
                } else {
                    assert_eq!(cut, whole, "text {i}, pieces of {min}");
                }
            }
        }
        assert!(parse(&texts[2]).is_ok());
    }

    // A sub-table away from its section, past a cut, is good TOML that a piece alone is not:
    // the file is then read whole.
    #[test]
    fn a_piece_toml_refuses_sends_the_file_to_toml_whole() {
        let text = format!(
            "{}{}[[nat64.eam]]\nv4 = \"192.0.2.10/32\"\nv6 = \"2001:db8:6::10/128\"\n",
            NAT64.replace(
                "eam = [ { v4 = \"192.0.2.10/32\", v6 = \"2001:db8:6::10/128\" } ]\n",
                ""
            ),
            "[[listen]]\naddresses = [\"127.0.0.1:8443\"]\n[[route]]\nhosts = [\"*\"]\nbackends = [{ address = \"::1\" }]\n",
        );
        let cut = parse_from(text.as_bytes(), 0, true, &Running::default()).unwrap_err();
        assert!(cut.toml, "{cut:?}");
        let config = parse_with(&text, 0).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(config.nat64.unwrap().settings.eam.len(), 1);
        assert_eq!(config.routes.len(), 1);
        // A file that is bad TOML is TOML's to report, read whole.
        let bad = format!("{text}[[route]]\nhosts = [\"x.test\"\n");
        assert_eq!(parse_with(&bad, 0), parse_with(&bad, usize::MAX));
    }

    // Inline arrays in one piece and tables of the same name in another are a duplicate key to
    // TOML, which sees only the whole file: such a file is read whole, and refused as TOML does.
    #[test]
    fn an_inline_array_and_tables_of_the_same_name_across_a_cut_are_refused() {
        let route = "[[route]]\nhosts = [\"b.test\"]\nbackends = [{ address = \"::2\" }]\n";
        let inline_routes = format!(
            "route = [{{ hosts = [\"a.test\"], backends = [{{ address = \"::1\" }}] }}]\n\
             [[listen]]\naddresses = [\"127.0.0.1:8443\"]\n{route}"
        );
        let inline_listen = format!(
            "listen = [{{ addresses = [\"127.0.0.1:8443\"] }}]\n{route}[[listen]]\n\
             addresses = [\"127.0.0.1:8444\"]\n"
        );
        for text in [inline_routes, inline_listen] {
            let whole = parse_with(&text, usize::MAX).unwrap_err();
            assert_eq!(parse_with(&text, 0), Err(whole.clone()), "{text}");
            assert!(whole[0].message.contains("duplicate"), "{whole:?}");
        }
    }

    // Routes on one line (an inline array) get names of their own, which the engine requires:
    // here one name on two listeners, each route bound to one.
    #[test]
    fn routes_of_one_line_are_named_apart_and_the_engine_takes_them() {
        let text = "route = [{ hosts = [\"a.test\"], listeners = [\"tls\"], backends = [{ address = \"::1\" }] }, \
                    { hosts = [\"a.test\"], listeners = [\"http\"], backends = [{ address = \"::2\" }] }]\n\
                    [[listen]]\nname = \"tls\"\naddresses = [\"127.0.0.1:8443\"]\nmode = \"tls\"\n\
                    [[listen]]\nname = \"http\"\naddresses = [\"127.0.0.1:8080\"]\nmode = \"http\"\n";
        let config = parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a.test@1", "a.test@1#2"]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut engine = config.engine();
        for l in &mut engine.listeners {
            l.addresses[0].set_port(0);
        }
        let started = runtime.block_on(async {
            sixgate::proxy::Server::start(engine, std::sync::Arc::new(())).map(drop)
        });
        started.unwrap();
    }

    // Every name is on its own line, however long the file: errors found late in a big file
    // are on the right line.
    #[test]
    fn errors_on_their_lines_in_a_long_file() {
        let mut text = String::from("[[listen]]\naddresses = [\"127.0.0.1:8443\"]\n");
        for i in 0..2000 {
            text += &format!(
                "[[route]]\nhosts = [\"c{i}.test\"]\nbackends = [{{ address = \"::1\" }}]\n"
            );
        }
        text += "[[route]]\nhosts = [\"c1999.test\", \"bad name\"]\nbackends = [{ address = \"::1\" }]\n";
        let errors = parse(&text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2 + 3 * 2000 + 2, 2 + 3 * 2000 + 2], "{errors:?}");
        assert!(
            errors.iter().any(|e| e
                .message
                .contains("c1999.test is already routed on line 6001")),
            "{errors:?}"
        );
    }

    const GOOD: &str = r#"
[[listen]]
addresses = ["127.0.0.1:8443", "[::1]:8443"]
mode = "tls"
peek_timeout = "5s"
accept_proxy_from = ["192.0.2.0/24"]

[[route]]
hosts = ["www.example.com", "*.example.org"]
balance = "round-robin"
proxy_protocol = "v2"
connect_timeout = "3s"
backends = [
  { address = "2001:db8::10", weight = 3 },
  { address = "[2001:db8::11]:8443", weight = 1 },
  { address = "[2001:db8::12]:443", backup = true },
]
health = { interval = "2s", timeout = "1s", rise = 2, fall = 3 }

[[route]]
hosts = ["*"]
backends = [{ address = "::2" }]

[limits]
max_connections = 100
idle_timeout = "5m"
"#;

    #[test]
    fn a_reload_keeps_the_running_route_where_the_file_did_not_change_it() {
        let first = parse(GOOD).unwrap();
        let running = Running::of(&first.routes);
        let moved = GOOD.replace("{ address = \"::2\" }", "{ address = \"::3\" }");
        // Pieces of one route each: routes are matched as each piece is added.
        let again = parse_from(moved.as_bytes(), 0, false, &running).unwrap();
        assert_eq!(again.routes.len(), 2);
        assert!(Arc::ptr_eq(&again.routes[0], &first.routes[0]));
        assert!(!Arc::ptr_eq(&again.routes[1], &first.routes[1]));
        let backend = &again.routes[1].backends[0];
        assert_eq!(backend.ip, "::3".parse::<IpAddr>().unwrap());
        // Read without a running configuration, every route is new.
        let fresh = parse(GOOD).unwrap();
        assert!(
            fresh
                .routes
                .iter()
                .zip(&first.routes)
                .all(|(a, b)| !Arc::ptr_eq(a, b))
        );
    }

    #[test]
    fn a_named_route_keeps_its_name_and_the_running_route_when_lines_move() {
        let named = GOOD.replace("hosts = [\"*\"]", "name = \"fallback\"\nhosts = [\"*\"]");
        let first = parse(&named).unwrap();
        assert_eq!(first.routes[1].name, "fallback");
        assert!(first.routes[0].name.starts_with("www.example.com@"));
        // Two lines more above both routes: the unnamed one is a new route, the named one is
        // the running one.
        let moved = named.replace("[[listen]]", "# a comment\n\n[[listen]]");
        let running = Running::of(&first.routes);
        let again = parse_from(moved.as_bytes(), 0, false, &running).unwrap();
        assert!(!Arc::ptr_eq(&again.routes[0], &first.routes[0]));
        assert!(Arc::ptr_eq(&again.routes[1], &first.routes[1]));
        // Names are checked, and given once.
        let errors = |text: &str| parse(text).unwrap_err();
        let bad = named.replace("name = \"fallback\"", "name = \"fall@back\"");
        assert!(
            errors(&bad)[0].message.contains("no '@'"),
            "{:?}",
            errors(&bad)
        );
        let twice = format!(
            "{named}\n[[route]]\nname = \"fallback\"\nhosts = [\"b.test\"]\nbackends = [{{ address = \"::4\" }}]\n"
        );
        let e = errors(&twice);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].message
                .starts_with("a second route named \"fallback\" (the first is on line "),
            "{e:?}"
        );
    }

    #[test]
    fn a_good_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.listeners[0].addresses.len(), 2);
        assert_eq!(c.listeners[0].mode, Mode::Tls);
        assert_eq!(
            c.routes[0].hosts,
            [
                HostPattern::Exact("www.example.com".into()),
                HostPattern::Suffix(".example.org".into())
            ]
        );
        assert_eq!(c.routes[0].backends[0].port, None);
        assert_eq!(c.routes[0].backends[1].port, Some(8443));
        assert!(c.routes[0].backends[2].backup);
        assert_eq!(c.routes[1].hosts, [HostPattern::Any]);
        assert_eq!(c.routes[1].proxy_protocol, ProxyOut::None);
        assert_eq!(c.limits.engine.max_connections, 100);
        assert_eq!(c.limits.engine.idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn every_relay_is_named_and_splice_stays_the_default() {
        assert_eq!(
            parse(GOOD).unwrap().limits.engine.relay,
            RelayMethod::Splice
        );
        let with = |relay: &str| parse(&format!("{GOOD}relay = \"{relay}\"\n"));
        for (name, relay) in [
            ("splice", RelayMethod::Splice),
            ("copy", RelayMethod::Copy),
            ("uring", RelayMethod::Uring),
        ] {
            assert_eq!(with(name).unwrap().limits.engine.relay, relay);
        }
        let errors = with("io_uring").unwrap_err();
        let expected = r#""io_uring" is not one of "copy", "splice", "uring""#;
        assert!(errors[0].message.contains(expected), "{errors:?}");
    }

    #[test]
    fn threads_default_to_one_per_cpu_and_a_typo_sized_count_is_refused() {
        assert_eq!(parse(GOOD).unwrap().limits.threads, 0);
        let with = |threads: &str| format!("{GOOD}threads = {threads}\n");
        assert_eq!(parse(&with("4")).unwrap().limits.threads, 4);
        let errors = parse(&with("100000")).unwrap_err();
        assert!(errors[0].message.contains("at most 1024"), "{errors:?}");
    }

    #[test]
    fn every_error_with_its_line() {
        let bad = r#"
[[listen]]
addresses = ["127.0.0.1:99999", "127.0.0.1:80"]
peek_timeout = "soon"
accept_proxy_from = ["192.0.2.0/33"]

[[listen]]
addresses = ["127.0.0.1:80"]

[[route]]
hosts = ["www.example.com", "bad name"]
backends = [{ address = "backend.example:80" }]

[[route]]
hosts = ["WWW.example.com.", "*"]
backends = [{ address = "::1", weight = 0 }]

[[route]]
hosts = ["*"]
backends = [{ address = "::2" }, { address = "::2" }]
"#;
        let errors = parse(bad).unwrap_err();
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 8, 11, 12, 14, 15, 19, 20], "{errors:#?}");
        assert!(errors[9].message.contains("listed twice"), "{}", errors[9]);
        assert!(
            errors[6].message.contains("can never be served"),
            "{}",
            errors[6]
        );
        assert!(
            errors[7]
                .message
                .contains("overlapping hosts: www.example.com"),
            "{}",
            errors[7]
        );
        assert!(
            errors[8].message.contains("second default route"),
            "{}",
            errors[8]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_values() {
        let e = parse("[[listen]]\naddresses = [\"127.0.0.1:1\"]\nmode = \"tcp\"\n").unwrap_err();
        assert_eq!(e[0].line, 3, "{e:?}");
        let e =
            parse("[[listen]]\naddresses = [\"127.0.0.1:1\"]\nlisten_backlog = 5\n").unwrap_err();
        assert_eq!(e[0].line, 3, "{e:?}");
        assert!(e[0].message.contains("listen_backlog"), "{e:?}");
    }

    #[test]
    fn a_backend_that_is_our_own_listener_would_loop() {
        for (listen, backend) in [
            ("[::1]:8443", "::1"),
            ("[::1]:8443", "[::1]:8443"),
            ("[::]:8443", "::1"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
        ] {
            let text = format!(
                "[[listen]]\naddresses = [\"{listen}\"]\n[[route]]\nhosts = [\"*\"]\nbackends = [{{ address = \"{backend}\" }}]\n"
            );
            let e = parse(&text).unwrap_err();
            assert!(
                e[0].message.contains("would loop"),
                "{listen} {backend}: {e:?}"
            );
            assert_eq!(e[0].line, 3);
        }
        let fine = "[[listen]]\naddresses = [\"[::1]:8443\"]\n[[route]]\nhosts = [\"*\"]\nbackends = [{ address = \"[::1]:9443\" }]\n";
        assert!(parse(fine).is_ok());
    }

    #[test]
    fn durations_and_hosts() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h4m"), Some(Duration::from_secs(7440)));
        assert_eq!(parse_duration("1m30s"), parse_duration("90s"));
        assert_eq!(parse_duration("1s500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("24h"), Some(MAX_DURATION));
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            "-1s",
            "5 s",
            "5d",
            "25h",
            "18446744073709551615s",
            "1h1h",
            "4m2h",
            "2h4",
            "h4m",
            "2h 4m",
            "1ms5s",
            "23h60m1s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for secs in [0, 1, 59, 60, 90, 3600, 7440, 86399] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)).unwrap_or_default(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(7440)), "2h4m");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(
            HostPattern::parse("Example.COM."),
            Ok(HostPattern::Exact("example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.Example.org"),
            Ok(HostPattern::Suffix(".example.org".into()))
        );
        for bad in ["", "a..b", "*.", "**.a", "a.*.b", "-a.b", "a b", "é.com"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        // The peeker's rules, and its reasons.
        assert_eq!(
            HostPattern::parse("*.a..b"),
            Err(sni_peek::Error::InvalidName {
                reason: "empty label"
            })
        );
    }

    const NAT64: &str = r#"
[nat64]
tun = "nat64"
pool6 = "64:ff9b::/96"
own_v4 = "192.0.2.1"
own_v6 = "2001:db8:64::1"
eam = [ { v4 = "192.0.2.10/32", v6 = "2001:db8:6::10/128" } ]
"#;

    // A file with only [nat64] runs just the gateway; the defaults are the RFC's.
    #[test]
    fn nat64_alone() {
        let c = parse(NAT64).unwrap();
        assert!(c.listeners.is_empty() && c.routes.is_empty());
        let n = c.nat64.unwrap();
        assert_eq!((n.tun.as_str(), n.queues), ("nat64", 0));
        assert_eq!((n.settings.mtu, n.settings.lowest_ipv6_mtu), (1500, 1280));
        assert_eq!(
            n.settings.udp_zero_checksum,
            sixgate::nat64_xlat::UdpZeroChecksum::Drop
        );
        assert_eq!(n.settings.eam.len(), 1);
        assert_eq!(
            n.settings.non_global,
            sixgate::nat64_xlat::DEFAULT_NON_GLOBAL
        );
        let with = parse(&format!(
            "{NAT64}non_global = [\"10.0.0.0/8\"]\nudp_zero_checksum = \"icmp\"\nqueues = 3\n"
        ))
        .unwrap()
        .nat64
        .unwrap();
        assert_eq!(with.settings.non_global.len(), 1);
        assert_eq!(with.queues, 3);
        assert_eq!(
            with.settings.udp_zero_checksum,
            sixgate::nat64_xlat::UdpZeroChecksum::Icmp
        );
        // The documented example file holds every [nat64] key, and checks.
        let doc = include_str!("sixgate.toml");
        assert!(parse(doc).unwrap().nat64.is_some());
    }

    #[test]
    fn nat64_errors_with_their_lines() {
        let bad = r#"
[nat64]
tun = "a/very/long/device/name"
pool6 = "64:ff9b::/95"
own_v4 = "192.0.2.300"
eam = [ { v4 = "192.0.2.0/24", v6 = "2001:db8:6::/124" },
        { v4 = "192.0.2.10/32", v6 = "2001:db8:6::10/128" },
        { v4 = "192.0.2.10/32", v6 = "2001:db8:6::11/128" } ]
mtu = 1000
lowest_ipv6_mtu = 9000
queues = 5000
"#;
        let errors = parse(bad).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 8, 9, 10, 11], "{errors:?}");
        assert!(errors[0].message.contains("15 bytes"), "{errors:?}");
        assert!(errors[1].message.contains("pool6"), "{errors:?}");
        assert!(errors[4].message.contains("listed twice"), "{errors:?}");
        assert!(
            errors[6].message.contains("above the device's mtu"),
            "{errors:?}"
        );
        let e = parse(&NAT64.replace("192.0.2.1\"", "192.0.2.10\"")).unwrap_err();
        assert!(e[0].message.contains("lies in the EAM range"), "{e:?}");
        let e = parse("[nat64]\ntun = \"x\"\n").unwrap_err();
        assert!(e[0].message.contains("pool6, eam, or both"), "{e:?}");
        let e =
            parse("[nat64]\ntun = \"x\"\npool6 = \"64:ff9b::/96\"\nudp_zero_checksum = \"fix\"\n")
                .unwrap_err();
        assert_eq!(e[0].line, 4, "{e:?}");
        let e = parse("").unwrap_err();
        assert!(e[0].message.contains("nothing to run"), "{e:?}");
    }

    const STATEFUL: &str = r#"
[nat64]
tun = "nat64"
mode = "stateful"
pool6 = "64:ff9b::/96"
pool4 = ["203.0.113.16/29"]
customers = ["2001:db8:6::/56"]
"#;

    fn stateful(text: &str) -> sixgate::nat64_xlat::stateful::StatefulConfig {
        match parse(text) {
            Ok(c) => c.nat64.unwrap().settings.stateful.unwrap(),
            Err(e) => panic!("{e:#?}"),
        }
    }

    // Only pool4 and customers are needed; the rest are RFC 6146's and the library's defaults.
    #[test]
    fn nat64_stateful_defaults() {
        use sixgate::nat64_xlat::stateful::{Filtering, Limits, StatefulConfig, Timeouts};
        let cfg = stateful(STATEFUL);
        let layout = &cfg.layout;
        assert_eq!(layout.pool4(), ["203.0.113.16/29".parse().unwrap()]);
        assert_eq!(layout.customers(), ["2001:db8:6::/56".parse().unwrap()]);
        assert_eq!(layout.ports(), 1024..=65535);
        assert_eq!(
            (layout.block_prefix_len(), layout.ports_per_block()),
            (64, 2016)
        );
        assert_eq!(layout.blocks(), 256);
        assert_eq!(cfg.timeouts, Timeouts::RFC6146);
        assert_eq!(cfg.filtering, Filtering::EndpointIndependent);
        assert_eq!(cfg.limits, Limits::default());
        assert_eq!(cfg.capacity, StatefulConfig::new(layout.clone()).capacity);
        assert!(!cfg.log_mappings);
        // Stateless stays the default.
        assert!(
            parse(NAT64)
                .unwrap()
                .nat64
                .unwrap()
                .settings
                .stateful
                .is_none()
        );
        let explicit = parse(&format!("{NAT64}mode = \"stateless\"\n")).unwrap();
        assert!(explicit.nat64.unwrap().settings.stateful.is_none());
    }

    #[test]
    fn nat64_stateful_every_key() {
        use sixgate::nat64_xlat::stateful::Filtering;
        let cfg = stateful(&format!(
            "{STATEFUL}ports = \"2000-3999\"\nblock_prefix_len = 60\nports_per_block = 500\n\
             max_sessions_per_block = 100\nnew_sessions_per_second = 10\nrefuse_ports = [25, 465]\n\
             filtering = \"address-dependent\"\nlog_mappings = true\nudp_timeout = \"10m\"\n\
             tcp_established_timeout = \"3h\"\ntcp_transitory_timeout = \"5m\"\n\
             icmp_timeout = \"90s\"\nsession_capacity = 5000\n"
        ));
        assert_eq!(cfg.layout.ports(), 2000..=3999);
        assert_eq!(cfg.layout.blocks_per_address(), 4);
        assert_eq!(cfg.layout.blocks(), 16);
        let owner = cfg
            .layout
            .owner("203.0.113.17".parse().unwrap(), 2600)
            .unwrap();
        assert_eq!(owner.prefix.to_string(), "2001:db8:6:50::/60");
        assert_eq!(cfg.limits.max_sessions_per_block, 100);
        assert_eq!(cfg.limits.new_sessions_per_second, 10);
        assert_eq!(cfg.limits.refuse_ports, [25, 465]);
        assert_eq!(cfg.filtering, Filtering::AddressDependent);
        assert!(cfg.log_mappings);
        assert_eq!(cfg.timeouts.udp, Duration::from_secs(600));
        assert_eq!(cfg.timeouts.tcp_established, Duration::from_secs(3 * 3600));
        assert_eq!(cfg.timeouts.tcp_transitory, Duration::from_secs(300));
        assert_eq!(cfg.timeouts.icmp, Duration::from_secs(90));
        assert_eq!(cfg.capacity, 5000);
    }

    #[test]
    fn nat64_stateful_errors_with_their_lines() {
        let bad = r#"
[nat64]
tun = "nat64"
mode = "stateful"
pool6 = "64:ff9b::/96"
pool4 = ["203.0.113.16/29", "198.51.100.300/32"]
customers = ["2001:db8:6::/56"]
ports = "1024-70000"
block_prefix_len = 129
ports_per_block = 70000
max_sessions_per_block = 0
refuse_ports = [25, 0, 25]
session_capacity = 0
"#;
        let errors = parse(bad).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [6, 8, 9, 10, 11, 12, 12, 13], "{errors:#?}");
        assert!(errors[0].message.contains("pool4"), "{errors:?}");
        assert!(errors[1].message.contains("1024-65535"), "{errors:?}");
        assert!(errors[5].message.contains("not a port"), "{errors:?}");
        assert!(errors[6].message.contains("listed twice"), "{errors:?}");
        // The layout is checked as a whole, its error on the line of the key it is about.
        let e = parse(&STATEFUL.replace("/56", "/55")).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 7, "{e:?}");
        assert!(
            e[0].message
                .contains("hold 512 sub-prefixes but the pool has blocks for only 256"),
            "{e:?}"
        );
        let e = parse(&format!("{STATEFUL}ports = \"1024-2000\"\n")).unwrap_err();
        assert_eq!(
            e[0].line, 8,
            "the default ports_per_block, on the ports line: {e:?}"
        );
        assert!(e[0].message.contains("ports_per_block = 2016"), "{e:?}");
        let e = parse(&STATEFUL.replace("203.0.113.16/29", "127.0.0.0/29")).unwrap_err();
        assert_eq!(e[0].line, 6, "{e:?}");
        // Required keys, and what stateful mode cannot have.
        let e = parse("\n[nat64]\ntun = \"x\"\nmode = \"stateful\"\n").unwrap_err();
        let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].0 == 2 && got[0].1.contains("needs pool4"), "{got:?}");
        assert!(
            got[1].0 == 2 && got[1].1.contains("needs customers"),
            "{got:?}"
        );
        assert!(got[2].0 == 4 && got[2].1.contains("needs pool6"), "{got:?}");
        let e = parse(&format!(
            "{STATEFUL}eam = [ {{ v4 = \"192.0.2.10/32\", v6 = \"2001:db8:7::10/128\" }} ]\n"
        ))
        .unwrap_err();
        assert_eq!(e[0].line, 8, "{e:?}");
        assert!(e[0].message.contains("eam cannot be combined"), "{e:?}");
        let e = parse(&format!("{STATEFUL}own_v4 = \"203.0.113.17\"\n")).unwrap_err();
        assert!(
            e[0].message.contains("lies in pool4 203.0.113.16/29"),
            "{e:?}"
        );
        let e = parse(&STATEFUL.replace("mode = \"stateful\"", "mode = \"nat\"")).unwrap_err();
        assert_eq!(e[0].line, 4, "{e:?}");
    }

    // Stateful keys in a stateless section are mistakes, each reported on its line.
    #[test]
    fn nat64_stateful_keys_need_stateful_mode() {
        let text = format!(
            "{NAT64}pool4 = [\"203.0.113.16/29\"]\nfiltering = \"address-dependent\"\nallow_short_timeouts = true\n"
        );
        let e = parse(&text).unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [8, 9, 10], "{e:?}");
        assert!(
            e[0].message
                .starts_with("pool4 is a stateful NAT64 key: it needs mode = \"stateful\""),
            "{e:?}"
        );
        assert!(e[2].message.contains("allow_short_timeouts"), "{e:?}");
    }

    #[test]
    fn timeouts_below_rfc6146_need_allow_short_timeouts() {
        let short = format!(
            "{STATEFUL}udp_timeout = \"1m\"\ntcp_established_timeout = \"2h\"\ntcp_transitory_timeout = \"4m\"\nicmp_timeout = \"500ms\"\n"
        );
        let e = parse(&short).unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [8, 9, 11], "every short one on its line: {e:?}");
        assert_eq!(
            e[0].message,
            "udp_timeout 1m is below RFC 6146's minimum of 2m; allow_short_timeouts = true permits it on a test rig (it breaks RFC 6146 §4)"
        );
        assert!(e[1].message.contains("minimum of 2h4m"), "{e:?}");
        assert!(e[2].message.contains("500ms"), "{e:?}");
        let cfg = stateful(&format!("{short}allow_short_timeouts = true\n"));
        assert_eq!(cfg.timeouts.udp, Duration::from_secs(60));
        assert_eq!(cfg.timeouts.icmp, Duration::from_millis(500));
        assert!(cfg.timeouts.check().is_err());
        let e = parse(&format!("{STATEFUL}udp_timeout = \"soon\"\n")).unwrap_err();
        assert_eq!(e[0].line, 8, "{e:?}");
    }

    // The documented file's stateful keys, uncommented, make a valid stateful section with the
    // defaults it claims.
    #[test]
    fn the_documented_stateful_keys_check() {
        let doc = include_str!("sixgate.toml");
        let keys = [
            "pool4",
            "customers",
            "ports",
            "block_prefix_len",
            "ports_per_block",
            "max_sessions_per_block",
            "new_sessions_per_second",
            "refuse_ports",
            "filtering",
            "log_mappings",
            "udp_timeout",
            "tcp_established_timeout",
            "tcp_transitory_timeout",
            "icmp_timeout",
            "allow_short_timeouts",
            "session_capacity",
        ];
        for key in keys {
            assert!(
                doc.lines().any(|l| l.starts_with(&format!("#{key} = "))),
                "{key} is not documented"
            );
        }
        let text: String = doc
            .lines()
            .filter(|l| !l.starts_with("eam = "))
            .map(|l| match l.strip_prefix('#') {
                Some(key) if key.starts_with(|c: char| c.is_ascii_lowercase()) => key,
                _ if l == "mode = \"stateless\"" => "mode = \"stateful\"",
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = stateful(&text);
        let defaults = stateful(STATEFUL);
        assert_eq!(cfg.layout, defaults.layout);
        assert_eq!(cfg.timeouts, defaults.timeouts);
        assert_eq!(cfg.capacity, defaults.capacity, "the documented default");
        assert_eq!(cfg.limits.refuse_ports, [25]);
    }

    /// The health check of a one-route file whose route ends with `health`.
    fn health_of(health: &str) -> Result<Health, Vec<ConfigError>> {
        let text = format!(
            "[[listen]]\naddresses = [\"[::1]:8443\"]\n[[route]]\nhosts = [\"*\"]\n\
             backends = [{{ address = \"2001:db8::10\" }}]\n{health}\n"
        );
        parse(&text).map(|c| *c.routes[0].health.clone().unwrap())
    }

    #[test]
    fn health_checks_connect_exchange_or_handshake() {
        use sixgate::proxy::Check;
        let plain = health_of("health = { interval = \"1s\" }").unwrap();
        assert_eq!(plain.check, Check::Connect);
        // TOML's escapes make the line ends a protocol needs.
        let redis = health_of(r#"health = { send = "PING\r\n", expect = "+PONG" }"#).unwrap();
        assert_eq!(
            redis.check,
            Check::Exchange {
                send: b"PING\r\n"[..].into(),
                expect: b"+PONG"[..].into()
            }
        );
        assert_eq!((redis.rise, redis.fall), (2, 3), "the defaults stay");
        let smtp = health_of("[route.health]\nexpect = \"220 \"").unwrap();
        assert_eq!(
            smtp.check,
            Check::Exchange {
                send: Box::default(),
                expect: b"220 "[..].into()
            }
        );
        let tls = health_of("health = { tls = true, sni = \"Check.Example.\" }").unwrap();
        assert_eq!(
            tls.check,
            Check::Tls {
                server_name: Some("check.example".into())
            }
        );
        let tls = health_of("health = { tls = true }").unwrap();
        assert_eq!(tls.check, Check::Tls { server_name: None });
        let off = health_of("health = { tls = false, send = \"x\" }").unwrap();
        assert!(matches!(off.check, Check::Exchange { .. }), "{off:?}");
    }

    #[test]
    fn health_check_mistakes_on_their_lines() {
        let e = health_of("[route.health]\nexpect = \"OK\"\ntls = true").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 8, "{e:?}");
        assert_eq!(
            e[0].message,
            "tls = true checks a TLS handshake; send and expect are for a plain TCP check: use \
             one or the other"
        );
        let e = health_of("[route.health]\ninterval = \"1s\"\nsni = \"a.example\"").unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, 8), "{e:?}");
        assert_eq!(
            e[0].message,
            "sni is the name a TLS check sends: it needs tls = true"
        );
        let e = health_of("health = { tls = false, sni = \"a.example\" }").unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, 6), "{e:?}");
        let e = health_of("[route.health]\ntls = true\nsni = \"a..b\"").unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, 8), "{e:?}");
        assert!(
            e[0].message.starts_with("sni \"a..b\" is not a host name"),
            "{e:?}"
        );
        let long = "x".repeat(16 * 1024 + 1);
        let e = health_of(&format!(
            "[route.health]\nsend = \"a\"\nexpect = \"{long}\""
        ))
        .unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, 8), "{e:?}");
        assert_eq!(
            e[0].message,
            "expect is 16385 bytes: a check reads at most 16384 bytes of the answer, so it could \
             never be found"
        );
        let most = "x".repeat(16 * 1024);
        assert!(health_of(&format!("health = {{ expect = \"{most}\" }}")).is_ok());
    }

    // The commented health examples of the documented file check, and ask what they say.
    #[test]
    fn the_documented_health_checks_check() {
        use sixgate::proxy::Check;
        let doc = include_str!("sixgate.toml");
        let examples: Vec<Health> = doc
            .lines()
            .filter_map(|l| l.trim_start_matches(['#', ' ']).strip_prefix("health = {"))
            .map(|rest| health_of(&format!("health = {{{rest}")).unwrap())
            .collect();
        let checks: Vec<Check> = examples.into_iter().map(|h| h.check).collect();
        assert_eq!(
            checks,
            [
                Check::Exchange {
                    send: b"GET /health HTTP/1.0\r\n\r\n"[..].into(),
                    expect: b" 200 "[..].into()
                },
                Check::Tls {
                    server_name: Some("www.example.com".into())
                },
                Check::Connect,
            ]
        );
    }

    /// Two listeners, "http" and "https" (tls), and a route for "*" ending with `keys` on
    /// line 12; cut into pieces or read whole, the same verdict.
    fn with_forwarding(keys: &str) -> Result<Config, Vec<ConfigError>> {
        let text = format!(
            "[[listen]]\nname = \"http\"\naddresses = [\"127.0.0.1:8080\"]\nmode = \"http\"\n\
             [[listen]]\nname = \"https\"\naddresses = [\"127.0.0.1:8443\"]\nmode = \"tls\"\n\
             [[route]]\nhosts = [\"*\"]\nbackends = [{{ address = \"2001:db8::10\" }}]\n{keys}\n"
        );
        let whole = parse_with(&text, usize::MAX);
        assert_eq!(parse_with(&text, 0), whole, "{text}");
        whole
    }

    fn forwarding_of(keys: &str) -> Option<Forwarding> {
        match with_forwarding(keys) {
            Ok(c) => c.routes[0].forwarded.as_deref().cloned(),
            Err(e) => panic!("{keys}: {e:#?}"),
        }
    }

    #[test]
    fn forwarded_fields_with_their_defaults() {
        assert_eq!(forwarding_of(""), None);
        assert_eq!(forwarding_of("forwarded = \"none\""), None);
        assert_eq!(
            forwarding_of("forwarded = \"x-forwarded-for\""),
            Some(Forwarding::new(ForwardedField::XForwardedFor)),
            "X-Forwarded-Proto on, nobody trusted"
        );
        let every = forwarding_of(
            "forwarded = \"forwarded\"\nforwarded_proto = false\n\
             trust_forwarded_from = [\"10.0.0.0/8\", \"2001:db8:1::/48\", \"192.0.2.7\"]",
        )
        .unwrap();
        assert_eq!(every.field, ForwardedField::Forwarded);
        assert!(!every.proto);
        let trusted: Vec<Cidr> = ["10.0.0.0/8", "2001:db8:1::/48", "192.0.2.7"]
            .map(|c| c.parse().unwrap())
            .into();
        assert_eq!(every.trust_from, trusted);
        assert_eq!(
            every.trust_from.capacity(),
            3,
            "held per customer: no spare room"
        );
        let on = forwarding_of(
            "forwarded = \"x-forwarded-for\"\nforwarded_proto = true\ntrust_forwarded_from = []",
        );
        assert_eq!(on, Some(Forwarding::new(ForwardedField::XForwardedFor)));
        // Combined with PROXY, and on the listeners that read HTTP.
        let both = with_forwarding(
            "proxy_protocol = \"v2\"\nforwarded = \"x-forwarded-for\"\nlisteners = [\"http\"]",
        )
        .unwrap();
        assert_eq!(both.routes[0].proxy_protocol, ProxyOut::V2);
        assert!(both.routes[0].forwarded.is_some());
    }

    #[test]
    fn a_misspelt_forwarded_lists_the_names() {
        let e = with_forwarding("forwarded = \"xff\"").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 12, "{e:?}");
        assert!(
            e[0].message
                .contains(r#""xff" is not one of "x-forwarded-for", "forwarded", or "none""#),
            "{e:?}"
        );
    }

    #[test]
    fn forwarded_keys_need_forwarded() {
        for off in ["", "forwarded = \"none\"\n"] {
            let e = with_forwarding(&format!(
                "{off}forwarded_proto = false\ntrust_forwarded_from = [\"10.0.0.0/8\"]"
            ))
            .unwrap_err();
            let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.message.as_str())).collect();
            let at = 12 + off.lines().count();
            assert_eq!(
                got,
                [
                    (
                        at,
                        "forwarded_proto adds X-Forwarded-Proto beside the forwarded field: it \
                         needs forwarded = \"x-forwarded-for\" or \"forwarded\""
                    ),
                    (
                        at + 1,
                        "trust_forwarded_from keeps these sources' forwarded fields: it needs \
                         forwarded = \"x-forwarded-for\" or \"forwarded\""
                    ),
                ],
                "{off:?}"
            );
        }
        let e = with_forwarding("trust_forwarded_from = []").unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, 12), "{e:?}");
    }

    #[test]
    fn a_bad_trusted_network_on_its_line() {
        let e = with_forwarding(
            "forwarded = \"x-forwarded-for\"\ntrust_forwarded_from = [\"10.0.0.0/8\",\n  \"10.0.0.0/33\", \"proxy.example\"]",
        )
        .unwrap_err();
        let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    14,
                    "\"10.0.0.0/33\" is not an address or network (\"192.0.2.0/24\")"
                ),
                (
                    14,
                    "\"proxy.example\" is not an address or network (\"192.0.2.0/24\")"
                ),
            ]
        );
    }

    // TLS is relayed untouched: a route whose listeners all read TLS would never add a field.
    #[test]
    fn forwarded_needs_an_http_or_auto_listener() {
        let only_tls = "forwarded = \"x-forwarded-for\"\nlisteners = [\"https\"]";
        let e = with_forwarding(only_tls).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 12, "on the line of forwarded: {e:?}");
        assert!(
            e[0].message
                .starts_with("forwarded needs an http or auto listener"),
            "{e:?}"
        );
        for fine in [
            "forwarded = \"x-forwarded-for\"\nlisteners = [\"http\"]",
            "forwarded = \"x-forwarded-for\"\nlisteners = [\"https\", \"http\"]",
            // Every listener, one of them http.
            "forwarded = \"x-forwarded-for\"",
            // Off: nothing to insert, whatever the listeners.
            "forwarded = \"none\"\nlisteners = [\"https\"]",
        ] {
            assert!(with_forwarding(fine).is_ok(), "{fine}");
        }
        // An unknown name is reported once, as such.
        let e = with_forwarding("forwarded = \"forwarded\"\nlisteners = [\"nope\"]").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].message.contains("name = \"nope\""), "{e:?}");
        // Unbound, in a file whose listeners are all tls; auto reads HTTP/1 too.
        let route = "[[route]]\nhosts = [\"*\"]\nforwarded = \"forwarded\"\nbackends = [{ address = \"::1\" }]\n";
        let tls = "[[listen]]\naddresses = [\"127.0.0.1:8443\"]\nmode = \"tls\"\n";
        let e = parse(&format!("{tls}{route}")).unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, 6), "{e:?}");
        assert!(parse(&format!("{tls}{route}").replace("\"tls\"", "\"auto\"")).is_ok());
        // The route in a later piece than its listeners: found once all are in.
        let mut text = tls.to_string();
        for i in 0..300 {
            text += &format!(
                "[[route]]\nhosts = [\"c{i}.test\"]\nbackends = [{{ address = \"::{i:x}\" }}]\n"
            );
        }
        text += route;
        let (cut, whole) = (parse_with(&text, 1000), parse_with(&text, usize::MAX));
        assert_eq!(cut, whole);
        assert!(cut.unwrap_err()[0].message.starts_with("forwarded needs"));
    }

    // The documented file's forwarding route checks and says what it claims.
    #[test]
    fn the_documented_forwarding_route_checks() {
        let config = parse(include_str!("sixgate.toml")).unwrap();
        let on: Vec<&Forwarding> = config
            .routes
            .iter()
            .filter_map(|r| r.forwarded.as_deref())
            .collect();
        assert_eq!(
            on,
            [&Forwarding {
                field: ForwardedField::XForwardedFor,
                proto: true,
                trust_from: vec!["10.0.0.0/8".parse().unwrap()],
            }]
        );
    }
}
