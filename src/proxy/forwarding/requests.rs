//! The client's side of an HTTP/1 connection, framed request by request: each head is checked
//! and rewritten ([`super::head`]), each body passed on by its framing, untouched.
//!
//! Sans-IO: it is given the client's bytes and appends what the backend is to get. It never
//! guesses: the first byte it cannot frame ends the connection's requests, and nothing from that
//! byte on is passed on.

use core::net::IpAddr;
use std::collections::VecDeque;

use sni_peek::http1::{self, BodyReader};
use sni_peek::{Error, Limits, Status};

use super::super::Forwarding;
use super::head;

/// A request passed on whose final response has not been seen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// A HEAD: its response has no body.
    pub(crate) head: bool,
    /// A CONNECT: a 2xx opens a tunnel.
    pub(crate) connect: bool,
    /// It carried Upgrade: a 101 opens a tunnel.
    pub(crate) upgrade: bool,
}

/// What the caller is to do after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read more from the client.
    More,
    /// A request that may switch protocols was passed on: read nothing more from the client
    /// until its answer is in ([`Requests::answered`]).
    Hold,
    /// The last request of the connection was passed on: close towards the backend, take no
    /// more from the client.
    End,
    /// The connection switched protocols: everything goes on as it comes.
    Tunnel,
}

/// A request that cannot be passed on, and the status the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 431 or 501.
    pub status: u16,
    /// What is wrong with the request.
    pub error: Error,
    /// Found in a body whose head was passed on: the backend has that request, cut short.
    pub in_body: bool,
}

impl Refusal {
    pub(crate) fn of(error: Error) -> Refusal {
        let status = match error {
            Error::HeadersTooLarge { .. } => 431,
            Error::UnsupportedCoding => 501,
            _ => 400,
        };
        Refusal {
            status,
            error,
            in_body: false,
        }
    }

    /// The whole response, closing the connection.
    pub(crate) fn response(&self) -> String {
        let reason = match self.status {
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            _ => "Bad Request",
        };
        let body = format!("{}\n", self.error);
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.status,
            body.len()
        )
    }
}

#[derive(Debug)]
enum State {
    Head,
    Body(BodyReader, After),
    /// Waiting for the answer to a request that may switch protocols; then requests go on if
    /// that one kept the connection alive.
    Held {
        keep_alive: bool,
    },
    Tunnel,
    Ended,
    Refused(Refusal),
}

/// What follows a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Next,
    Hold { keep_alive: bool },
    End,
}

impl After {
    fn state(self) -> State {
        match self {
            After::Next => State::Head,
            After::Hold { keep_alive } => State::Held { keep_alive },
            After::End => State::Ended,
        }
    }
}

/// `bytes` up to and including its last LF.
fn whole_lines(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    &bytes[..end]
}

/// Whether the request offers to switch to HTTP/2 (`Upgrade: h2c`, RFC 7540 §3.2, removed in RFC
/// 9113): that offer is taken out, because after a 101 every request would be an HTTP/2 frame
/// this proxy does not read, and a client could send its own X-Forwarded-For in them. An offer
/// of h2c beside other protocols is refused rather than rewritten.
fn offers_h2c(request: &http1::HttpRequest<'_>) -> Result<bool, Error> {
    if !request.has_upgrade() {
        return Ok(false);
    }
    let mut h2c = false;
    let mut others = false;
    for field in request
        .fields()
        .filter(|f| f.name.eq_ignore_ascii_case("upgrade"))
    {
        for protocol in field.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if protocol.eq_ignore_ascii_case(b"h2c") {
                h2c = true;
            } else if !protocol.is_empty() {
                others = true;
            }
        }
    }
    if h2c && others {
        return Err(Error::InvalidHeader {
            reason: "h2c offered beside other protocols",
        });
    }
    Ok(h2c)
}

/// The requests of one client connection.
#[derive(Debug)]
pub struct Requests {
    state: State,
    /// Bytes taken but not passed on: a head not yet whole, or what came after a request whose
    /// answer is awaited. Empty (and holding no memory) otherwise.
    pending: Vec<u8>,
    client: IpAddr,
    trusted: bool,
    limits: Limits,
}

impl Requests {
    /// For a client at `client` (the real one: from a trusted PROXY header when it sent one).
    pub fn new(client: IpAddr, forwarding: &Forwarding) -> Requests {
        let client = client.to_canonical();
        let trusted = forwarding.trust_from.iter().any(|c| c.contains(client));
        Requests {
            state: State::Head,
            pending: Vec::new(),
            client,
            trusted,
            limits: Limits::default(),
        }
    }

    /// Frames `input`, the client's next bytes, appending to `out` what goes to the backend.
    /// On a refusal, `out` still has the bytes of the requests before the refused one.
    pub fn feed(
        &mut self,
        input: &[u8],
        forwarding: &Forwarding,
        sent: &mut VecDeque<Sent>,
        out: &mut Vec<u8>,
    ) -> Result<Flow, Refusal> {
        // Heads are read up to their last whole line (see `State::Head` below): a piece without
        // a LF changes nothing to parse, and is kept without parsing the rest again.
        let waiting_head = matches!(self.state, State::Head) && !self.pending.is_empty();
        if waiting_head && !input.is_empty() && !input.contains(&b'\n') {
            if self.pending.len() + input.len() >= self.limits.max_header_len {
                let limit = self.limits.max_header_len;
                return Err(self.refuse(Error::HeadersTooLarge { limit }));
            }
            self.pending.extend_from_slice(input);
            return Ok(Flow::More);
        }
        let mut joined = Vec::new();
        let was_pending = !self.pending.is_empty();
        let data = super::after_pending(&mut self.pending, input, &mut joined);
        let mut at = 0;
        let flow = loop {
            let rest = &data[at..];
            match &mut self.state {
                // Only whole lines are parsed, so a line's fault is found when its LF comes,
                // however the bytes were cut: the same answer for every split, and a head that
                // comes a byte at a time is not parsed again for each.
                State::Head => match http1::parse(whole_lines(rest), &self.limits) {
                    Ok(Status::Complete(request)) => {
                        let h2c = match offers_h2c(&request) {
                            Ok(h2c) => h2c,
                            Err(e) => return Err(self.refuse(e)),
                        };
                        let (trusted, client) = (self.trusted, self.client);
                        head::rewrite(rest, &request, client, forwarding, (trusted, h2c), out);
                        let connect = request.is_connect();
                        let upgrade = request.has_upgrade() && !h2c;
                        sent.push_back(Sent {
                            head: request.method() == "HEAD",
                            connect,
                            upgrade,
                        });
                        let keep_alive = request.keep_alive();
                        let after = match (connect || upgrade, keep_alive) {
                            (true, _) => After::Hold { keep_alive },
                            (false, true) => After::Next,
                            (false, false) => After::End,
                        };
                        let body = BodyReader::new(request.body(), self.limits.max_header_len);
                        at += request.consumed();
                        self.state = State::Body(body, after);
                    }
                    Ok(Status::Partial(_)) if rest.len() >= self.limits.max_header_len => {
                        let limit = self.limits.max_header_len;
                        return Err(self.refuse(Error::HeadersTooLarge { limit }));
                    }
                    Ok(Status::Partial(_)) => break Flow::More,
                    Err(e) => return Err(self.refuse(e)),
                },
                State::Body(body, after) => {
                    let progress = match body.advance(rest) {
                        Ok(p) => p,
                        Err(e) => {
                            let refusal = Refusal {
                                in_body: true,
                                ..Refusal::of(e)
                            };
                            self.state = State::Refused(refusal);
                            return Err(refusal);
                        }
                    };
                    out.extend_from_slice(&rest[..progress.consumed]);
                    at += progress.consumed;
                    if !progress.done {
                        return Ok(Flow::More);
                    }
                    self.state = after.state();
                }
                State::Held { .. } => break Flow::Hold,
                State::Tunnel => {
                    out.extend_from_slice(rest);
                    return Ok(Flow::Tunnel);
                }
                // Whatever follows the last request is not the backend's.
                State::Ended => return Ok(Flow::End),
                State::Refused(refusal) => return Err(*refusal),
            }
            if at == data.len() && matches!(self.state, State::Head) {
                return Ok(Flow::More);
            }
        };
        // A head not yet whole, or what waits for a held request's answer: kept, moved rather
        // than copied when it is all that was joined.
        self.pending = if at == 0 && was_pending {
            joined
        } else {
            data[at..].to_vec()
        };
        Ok(flow)
    }

    fn refuse(&mut self, error: Error) -> Refusal {
        let refusal = Refusal::of(error);
        self.state = State::Refused(refusal);
        self.pending = Vec::new();
        refusal
    }

    /// How many of the client's next bytes are known to be data of the current body: the
    /// caller may pass that many on as they are, through [`Self::pass_body`].
    pub fn body_run(&self) -> u64 {
        match &self.state {
            State::Body(body, _) if self.pending.is_empty() => body.data_remaining().unwrap_or(0),
            _ => 0,
        }
    }

    /// Takes `data`, no longer than [`Self::body_run`], as passed on by the caller: a bulk
    /// body is written from the read buffer, not copied.
    pub fn pass_body(&mut self, data: &[u8]) {
        debug_assert!(data.len() as u64 <= self.body_run());
        if let State::Body(body, after) = &mut self.state {
            // Data bytes are counted, not read: this cannot fail.
            if body.advance(data).is_ok_and(|p| p.done) {
                self.state = after.state();
            }
        }
    }

    /// The answer to the held request came: a tunnel, or more requests (the backend refused to
    /// switch, and what follows is HTTP again, to be checked like the rest). It may come before
    /// the request's body ended: a switch then makes the rest a tunnel at once.
    pub fn answered(&mut self, switched: bool) {
        match &mut self.state {
            State::Held { .. } | State::Body(_, After::Hold { .. }) if switched => {
                self.state = State::Tunnel;
            }
            State::Held { keep_alive } => {
                self.state = if *keep_alive {
                    State::Head
                } else {
                    State::Ended
                };
            }
            State::Body(_, after @ After::Hold { .. }) => {
                let After::Hold { keep_alive } = *after else {
                    return;
                };
                *after = if keep_alive { After::Next } else { After::End };
            }
            _ => {}
        }
    }

    /// The responses can no longer be followed: no request after the current one is passed on
    /// (its answer could not be matched to it).
    pub(crate) fn stop_after_current(&mut self) {
        match &mut self.state {
            State::Head | State::Held { .. } => {
                self.state = State::Ended;
                self.pending = Vec::new();
            }
            State::Body(_, after) => *after = After::End,
            State::Tunnel | State::Ended | State::Refused(_) => {}
        }
    }

    /// The connection's requests have ended: nothing more from the client is passed on.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Waiting for the answer to a request that may switch protocols.
    pub fn is_held(&self) -> bool {
        matches!(self.state, State::Held { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::ForwardedField;
    use super::*;

    fn forwarding() -> Forwarding {
        Forwarding {
            proto: false,
            ..Forwarding::new(ForwardedField::XForwardedFor)
        }
    }

    /// Feeds `stream` in pieces cut at `cuts`; what the backend gets, the flows, the refusal.
    fn run(stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Flow>, Option<Refusal>) {
        let f = forwarding();
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let (mut sent, mut out, mut flows) = (VecDeque::new(), Vec::new(), Vec::new());
        let mut from = 0;
        for &to in cuts.iter().chain([&stream.len()]) {
            match r.feed(&stream[from..to], &f, &mut sent, &mut out) {
                Ok(flow) => flows.push(flow),
                Err(refusal) => return (out, flows, Some(refusal)),
            }
            from = to;
        }
        (out, flows, None)
    }

    const FIELD: &str = "X-Forwarded-For: 192.0.2.1\r\n";

    fn with_field(heads: &[&str]) -> Vec<u8> {
        heads
            .iter()
            .flat_map(|h| {
                let (head, body) = h.split_once("\r\n\r\n").unwrap();
                format!("{head}\r\n{FIELD}\r\n{body}").into_bytes()
            })
            .collect()
    }

    #[test]
    fn pipelined_requests_each_get_the_field_at_every_split() {
        let stream = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\"b\"\r\nxx\r\n0\r\nX-T: 1\r\n\r\nPOST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 31\r\n\r\nGET /smuggled HTTP/1.1\r\nHost:\r\n";
        let want = with_field(&[
            "GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\"b\"\r\nxx\r\n0\r\nX-T: 1\r\n\r\n",
            "POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 31\r\n\r\nGET /smuggled HTTP/1.1\r\nHost:\r\n",
        ]);
        for cut in 0..stream.len() {
            let (out, _, refused) = run(stream.as_bytes(), &[cut]);
            assert_eq!(refused, None, "cut at {cut}");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn nothing_of_a_refused_request_or_after_it_is_passed_on() {
        let good = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for bad in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\n\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            let stream = format!("{good}{good}{bad}{good}");
            for cut in 0..stream.len() {
                let (out, _, refused) = run(stream.as_bytes(), &[cut]);
                assert_eq!(refused.map(|r| r.status), Some(400), "{bad:?} cut at {cut}");
                assert_eq!(out, with_field(&[good, good]), "{bad:?} cut at {cut}");
            }
        }
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(17 * 1024, b'a');
        let (_, _, refused) = run(&long, &[]);
        assert_eq!(refused.map(|r| r.status), Some(431));
    }

    #[test]
    fn an_upgrade_holds_what_follows_until_its_answer() {
        let f = forwarding();
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let (mut sent, mut out) = (VecDeque::new(), Vec::new());
        let upgrade =
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let stream = format!("{upgrade}GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            r.feed(stream.as_bytes(), &f, &mut sent, &mut out),
            Ok(Flow::Hold)
        );
        assert_eq!(out, with_field(&[upgrade]));
        assert!(sent.back().is_some_and(|s| s.upgrade));
        // Refused (426): what followed is a request like any other, with its field.
        r.answered(false);
        out.clear();
        assert_eq!(r.feed(&[], &f, &mut sent, &mut out), Ok(Flow::More));
        assert_eq!(out, with_field(&["GET /after HTTP/1.1\r\nHost: a\r\n\r\n"]));
        // Switched: the bytes are passed on as they come.
        assert_eq!(
            r.feed(upgrade.as_bytes(), &f, &mut sent, &mut out),
            Ok(Flow::Hold)
        );
        r.answered(true);
        out.clear();
        assert_eq!(
            r.feed(b"\x81\x00 raw", &f, &mut sent, &mut out),
            Ok(Flow::Tunnel)
        );
        assert_eq!(out, b"\x81\x00 raw");
    }

    #[test]
    fn a_bulk_body_passed_by_the_caller_counts_like_a_framed_one() {
        let f = forwarding();
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let (mut sent, mut out) = (VecDeque::new(), Vec::new());
        let post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(
            r.feed(post.as_bytes(), &f, &mut sent, &mut out),
            Ok(Flow::More)
        );
        assert_eq!(r.body_run(), 10);
        r.pass_body(b"0123");
        assert_eq!(r.body_run(), 6);
        r.pass_body(b"456789");
        assert_eq!(r.body_run(), 0);
        out.clear();
        let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            r.feed(get.as_bytes(), &f, &mut sent, &mut out),
            Ok(Flow::More)
        );
        assert_eq!(out, with_field(&[get]));
    }

    #[test]
    fn an_answer_before_the_upgrades_body_ended_is_not_lost() {
        let f = forwarding();
        let post = "POST /up HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nContent-Length: 5\r\n\r\n";
        for (switched, then, flow) in [
            (
                false,
                "12345GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
                Flow::More,
            ),
            (true, "12345raw", Flow::Tunnel),
        ] {
            let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
            let (mut sent, mut out) = (VecDeque::new(), Vec::new());
            assert_eq!(
                r.feed(post.as_bytes(), &f, &mut sent, &mut out),
                Ok(Flow::More)
            );
            r.answered(switched);
            assert_eq!(r.feed(then.as_bytes(), &f, &mut sent, &mut out), Ok(flow));
            assert!(!r.is_held());
        }
    }

    #[test]
    fn a_refused_upgrade_that_closes_ends_the_requests() {
        let f = forwarding();
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let (mut sent, mut out) = (VecDeque::new(), Vec::new());
        let head = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: close, upgrade\r\n\r\nGET /b HTTP/1.1\r\n";
        assert_eq!(
            r.feed(head.as_bytes(), &f, &mut sent, &mut out),
            Ok(Flow::Hold)
        );
        r.answered(false);
        assert_eq!(r.feed(&[], &f, &mut sent, &mut out), Ok(Flow::End));
    }

    #[test]
    fn an_h2c_offer_is_not_held_for() {
        let f = forwarding();
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let (mut sent, mut out) = (VecDeque::new(), Vec::new());
        let head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
        assert_eq!(
            r.feed(head.as_bytes(), &f, &mut sent, &mut out),
            Ok(Flow::More)
        );
        assert!(!sent[0].upgrade);
        assert!(!String::from_utf8_lossy(&out).contains("h2c"));
        let both = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\n\r\n";
        assert!(r.feed(both.as_bytes(), &f, &mut sent, &mut out).is_err());
    }

    #[test]
    fn a_head_sent_a_byte_at_a_time_is_parsed_at_its_line_ends_only() {
        let f = forwarding();
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let (mut sent, mut out) = (VecDeque::new(), Vec::new());
        let head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for b in head.bytes() {
            assert_eq!(r.feed(&[b], &f, &mut sent, &mut out), Ok(Flow::More));
        }
        assert_eq!(out, with_field(&[head]));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(20 * 1024, b'a');
        let mut r = Requests::new("192.0.2.1".parse().unwrap(), &f);
        let refused = long
            .chunks(100)
            .find_map(|c| r.feed(c, &f, &mut sent, &mut out).err());
        assert_eq!(refused.map(|r| r.status), Some(431));
    }

    #[test]
    fn the_last_request_ends_the_connection() {
        for last in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ] {
            let stream = format!("{last}GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
            let (out, flows, refused) = run(stream.as_bytes(), &[]);
            assert_eq!(
                (out, flows, refused),
                (with_field(&[last]), vec![Flow::End], None)
            );
        }
    }
}
