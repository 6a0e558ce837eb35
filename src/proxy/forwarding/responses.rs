//! The backend's side, followed but never changed: where each response ends, so that the answer
//! to a request that may switch protocols is known for its own, and a refusal can wait for the
//! answers before it.
//!
//! Why relaying responses as bytes is safe: request framing never depends on them, so a backend
//! that frames its responses oddly can only confuse this follower, and a confused follower
//! stops the connection's requests after the current one (the answer to a held request could
//! not be told apart); it never lets a request through unchecked.

use std::collections::VecDeque;

use sni_peek::http1::{BodyReader, parse_response};
use sni_peek::{Limits, Status};

use super::requests::Sent;

/// The answer to a request that may switch protocols, once seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 101 to an Upgrade, 2xx to a CONNECT: the rest is a tunnel.
    Switched,
    /// A final response that is not a switch: requests go on.
    Refused,
}

/// What one call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    /// The held request's answer came.
    pub(crate) answer: Option<Answer>,
    /// The responses could not be followed from here on.
    pub(crate) lost: bool,
}

#[derive(Debug)]
enum State {
    Head,
    Body(BodyReader),
    /// A tunnel, a body until close, or lost: nothing more to follow.
    Raw,
}

/// The responses of one backend connection.
#[derive(Debug)]
pub(crate) struct Responses {
    state: State,
    /// A response head not yet whole; empty otherwise.
    pending: Vec<u8>,
    limits: Limits,
}

impl Default for Responses {
    fn default() -> Self {
        Responses {
            state: State::Head,
            pending: Vec::new(),
            // Responses carry cookies and long policies: more room than requests get.
            limits: Limits {
                max_header_len: 64 * 1024,
                ..Limits::default()
            },
        }
    }
}

impl Responses {
    /// Follows `input`, the backend's next bytes, against the requests `sent` and not yet
    /// answered; each final response takes its request off.
    pub(crate) fn observe(&mut self, input: &[u8], sent: &mut VecDeque<Sent>) -> Seen {
        let mut seen = Seen::default();
        let mut joined = Vec::new();
        let data = super::after_pending(&mut self.pending, input, &mut joined);
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            match &mut self.state {
                State::Raw => break,
                State::Body(body) => match body.advance(rest) {
                    Ok(p) => {
                        at += p.consumed;
                        if p.done {
                            self.state = State::Head;
                        }
                    }
                    Err(_) => self.lose(&mut seen),
                },
                State::Head => match parse_response(rest, &self.limits) {
                    Ok(Status::Complete(response)) => {
                        at += response.consumed();
                        let Some(&request) = sent.front() else {
                            // An answer to nothing: no telling what it belongs to.
                            self.lose(&mut seen);
                            continue;
                        };
                        let status = response.status();
                        if response.is_interim() {
                            continue;
                        }
                        sent.pop_front();
                        let switched = (status == 101 && request.upgrade)
                            || (request.connect && (200..300).contains(&status));
                        if status == 101 && !request.upgrade {
                            self.lose(&mut seen);
                            continue;
                        }
                        if request.upgrade || request.connect {
                            seen.answer = Some(if switched {
                                Answer::Switched
                            } else {
                                Answer::Refused
                            });
                        }
                        let method = if request.head { "HEAD" } else { "GET" };
                        let body =
                            BodyReader::new(response.body(method), self.limits.max_header_len);
                        self.state = if switched {
                            State::Raw
                        } else if body.is_done() {
                            State::Head
                        } else {
                            State::Body(body)
                        };
                    }
                    Ok(Status::Partial(_)) => {
                        self.pending = rest.to_vec();
                        break;
                    }
                    Err(_) => self.lose(&mut seen),
                },
            }
        }
        seen
    }

    fn lose(&mut self, seen: &mut Seen) {
        self.state = State::Raw;
        self.pending = Vec::new();
        seen.lost = true;
    }

    /// Between responses, with nothing of the next one seen.
    pub(crate) fn between_responses(&self) -> bool {
        matches!(self.state, State::Head) && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(list: &[Sent]) -> VecDeque<Sent> {
        list.iter().copied().collect()
    }

    const GET: Sent = Sent {
        head: false,
        connect: false,
        upgrade: false,
    };
    const UPGRADE: Sent = Sent {
        upgrade: true,
        ..GET
    };

    #[test]
    fn pipelined_answers_are_counted_whatever_their_framing() {
        let mut queue = sent(&[GET, Sent { head: true, ..GET }, GET, UPGRADE]);
        let mut r = Responses::default();
        let stream = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\
HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw bytes";
        // Split anywhere, the same answer.
        for cut in 0..stream.len() {
            let (mut q, mut r2) = (queue.clone(), Responses::default());
            let a = r2.observe(&stream[..cut], &mut q);
            let b = r2.observe(&stream[cut..], &mut q);
            assert_eq!(
                a.answer.or(b.answer),
                Some(Answer::Switched),
                "cut at {cut}"
            );
            assert!(!a.lost && !b.lost && q.is_empty());
        }
        let seen = r.observe(stream, &mut queue);
        assert_eq!(seen.answer, Some(Answer::Switched));
    }

    #[test]
    fn a_refused_upgrade_leaves_the_connection_in_http() {
        let mut queue = sent(&[UPGRADE]);
        let mut r = Responses::default();
        let seen = r.observe(
            b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n",
            &mut queue,
        );
        assert_eq!(seen.answer, Some(Answer::Refused));
        assert!(r.between_responses());
    }

    #[test]
    fn an_unexpected_answer_is_lost_not_guessed() {
        let mut r = Responses::default();
        assert!(
            r.observe(b"HTTP/1.1 200 OK\r\n\r\n", &mut VecDeque::new())
                .lost
        );
        let mut r = Responses::default();
        assert!(
            r.observe(b"HTTP/1.1 101 Switching\r\n\r\n", &mut sent(&[GET]))
                .lost
        );
        let mut r = Responses::default();
        assert!(r.observe(b"garbage\r\n\r\n", &mut sent(&[GET])).lost);
    }
}
