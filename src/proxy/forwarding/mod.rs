//! Plain HTTP/1 with the client's address in every request ([`Forwarding`]): the client's side
//! framed request by request, the backend's side followed, both relayed from one task.
//!
//! ```text
//!  client ──bytes──▶ Requests: check each head (sni-peek), rewrite it, pass its body by its framing ──▶ backend
//!  client ◀──bytes── Responses: follow each answer (never changed)                                  ◀── backend
//! ```
//!
//! After a request that may switch protocols (Upgrade, CONNECT) and its body, the client's
//! further bytes wait until its answer: a switch makes both ways a plain relay, anything else
//! goes on checking requests, so the "frames" after a refused upgrade are checked as requests.
//! A request that cannot be framed one way only is never passed on: the connection takes no
//! more from the client, closes its sending side towards the backend, relays the answers to the
//! requests before it, then answers 400 (431, 501) itself and closes. A body that breaks its
//! framing midway is cut there: the backend sees a request that never ends, never a second one.

mod head;
mod requests;
mod responses;

use core::future::poll_fn;
use core::net::IpAddr;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;
use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::net::TcpStream;

use super::buffers;
use super::relay::{Activity, End, both, direction, pass_fin, readable, write_all};
use super::{Forwarding, Limits};
pub(crate) use requests::Refusal;
use requests::{Flow, Requests, Sent};

/// The request framer, for the fuzz targets; not public API.
#[doc(hidden)]
pub mod internal {
    pub use super::requests::{Flow, Refusal, Requests, Sent};
}
use responses::{Answer, Responses};

/// `input` after what `pending` kept of earlier calls: joined (and `pending` emptied) only when
/// it kept something.
fn after_pending<'a>(pending: &mut Vec<u8>, input: &'a [u8], joined: &'a mut Vec<u8>) -> &'a [u8] {
    if pending.is_empty() {
        return input;
    }
    *joined = core::mem::take(pending);
    joined.extend_from_slice(input);
    joined
}

/// What both directions share, locked between awaits (never contended: they run in one task;
/// a lock only because the task may move between threads).
struct Exchange {
    requests: Requests,
    responses: Responses,
    sent: VecDeque<Sent>,
    refusal: Option<Refusal>,
    /// Our answer to the refusal was sent (not when the backend's answers before it were cut).
    refusal_answered: bool,
    /// The backend's direction has ended: nothing more will be answered.
    down_done: bool,
    /// The client's direction, waiting for a held request's answer, for room among the
    /// requests outstanding, or for the end of the backend's direction.
    up_waiting: Option<Waker>,
    /// The backend's direction, waiting for bytes (or for its turn to answer a refusal).
    down_waiting: Option<Waker>,
}

impl Exchange {
    fn wake(slot: &mut Option<Waker>) {
        if let Some(w) = slot.take() {
            w.wake();
        }
    }

    /// The refused request's turn: every answer before it has been relayed. A request cut in
    /// its body went to the backend: its own answer, or ours at the backend's close.
    fn refusal_due(&self) -> bool {
        self.refusal.is_some_and(|r| !r.in_body)
            && self.sent.is_empty()
            && self.responses.between_responses()
    }

    /// The backend closed: our answer is due if its answers before the refused request all
    /// came whole, and it did not answer a request cut in its body itself (ours then stands in
    /// for that one answer, never for a second).
    fn refusal_due_at_close(&self) -> bool {
        let Some(refusal) = self.refusal else {
            return false;
        };
        self.responses.between_responses() && self.sent.len() == usize::from(refusal.in_body)
    }
}

/// The client's connection, from its first bytes (`first`, already read) to its end; `prefix`
/// (a PROXY header) goes to the backend before anything else. Returns how it ended, with the
/// refusal when a request was refused, and whether the client was told.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    limits: Limits,
    (up, down): (&AtomicU64, &AtomicU64),
    forwarding: &Forwarding,
    client_ip: IpAddr,
    prefix: Vec<u8>,
    first: Vec<u8>,
) -> (End, Option<(Refusal, bool)>) {
    let exchange = Mutex::new(Exchange {
        requests: Requests::new(client_ip, forwarding),
        responses: Responses::default(),
        sent: VecDeque::new(),
        refusal: None,
        refusal_answered: false,
        down_done: false,
        up_waiting: None,
        down_waiting: None,
    });
    let idle = limits.idle_timeout;
    let activity = Activity::new();
    let touch = || activity.touch();
    let ended = AtomicBool::new(false);
    let sides = Sides {
        exchange: &exchange,
        client,
        backend,
        limits,
        touch: &touch,
        ended: &ended,
    };
    let mut upward = pin!(sides.upward(forwarding, prefix, first, up));
    let mut downward = pin!(sides.downward(down));
    let end = both(upward.as_mut(), downward.as_mut(), idle, &activity).await;
    let e = exchange.lock().unwrap_or_else(PoisonError::into_inner);
    (end, e.refusal.map(|r| (r, e.refusal_answered)))
}

/// What each direction needs of the connection.
struct Sides<'a, F: Fn()> {
    exchange: &'a Mutex<Exchange>,
    client: &'a TcpStream,
    backend: &'a TcpStream,
    limits: Limits,
    touch: &'a F,
    ended: &'a AtomicBool,
}

/// Requests passed on and not yet answered, at most: a client that pipelines more waits (its
/// socket is not read) until answers come.
const MAX_OUTSTANDING: usize = 64;

impl<F: Fn()> Sides<'_, F> {
    fn lock(&self) -> MutexGuard<'_, Exchange> {
        self.exchange.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `ready` holds or the backend's direction ends; tells which.
    async fn until(&self, ready: impl Fn(&Exchange) -> bool) -> bool {
        poll_fn(|cx| {
            let mut e = self.lock();
            if ready(&e) {
                Poll::Ready(true)
            } else if e.down_done {
                Poll::Ready(false)
            } else {
                e.up_waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Client to backend: requests framed, until the last one, a refusal, a tunnel or the
    /// client's FIN.
    async fn upward(
        &self,
        forwarding: &Forwarding,
        prefix: Vec<u8>,
        first: Vec<u8>,
        carried: &AtomicU64,
    ) -> io::Result<()> {
        let mut out = prefix;
        let mut flow = self.feed(&first, forwarding, &mut out);
        drop(first);
        loop {
            if !out.is_empty() {
                write_all(self.backend, &out).await?;
                carried.fetch_add(out.len() as u64, Ordering::Relaxed);
                (self.touch)();
                // An idle connection holds no buffer.
                out = Vec::new();
            }
            match flow {
                Some(Flow::More) => {}
                Some(Flow::Hold) => {
                    if !self.until(|e| !e.requests.is_held()).await {
                        // The backend closed without answering: nothing more to pass on.
                        return self.close_client().await;
                    }
                    flow = self.feed(&[], forwarding, &mut out);
                    continue;
                }
                Some(Flow::End) => return self.after_the_last_request().await,
                // The backend's direction answers in turn, and closes.
                None => return pass_fin(self.backend, self.ended),
                Some(Flow::Tunnel) => {
                    let (client, backend, method) = (self.client, self.backend, self.limits.relay);
                    return direction(client, backend, method, carried, self.touch, self.ended)
                        .await;
                }
            }
            let room = |e: &Exchange| e.sent.len() < MAX_OUTSTANDING || e.requests.is_ended();
            if !self.until(room).await {
                return self.close_client().await;
            }
            if self.lock().requests.is_ended() {
                // The answers could no longer be followed: no more requests.
                flow = Some(Flow::End);
                continue;
            }
            readable(self.client).await?;
            let mut buf = buffers::lend();
            let n = match self.client.try_read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return pass_fin(self.backend, self.ended);
            }
            (self.touch)();
            // A bulk body goes out from the read buffer; anything else is framed.
            let bulk = {
                let mut e = self.lock();
                let bulk = n as u64 <= e.requests.body_run();
                if bulk {
                    e.requests.pass_body(&buf[..n]);
                }
                bulk
            };
            if bulk {
                write_all(self.backend, &buf[..n]).await?;
                carried.fetch_add(n as u64, Ordering::Relaxed);
                flow = self.feed(&[], forwarding, &mut out);
                continue;
            }
            out = Vec::with_capacity(n + 128);
            flow = self.feed(&buf[..n], forwarding, &mut out);
        }
    }

    /// Frames `input`; `None` for a refusal, which is noted for the backend's direction to
    /// answer in turn.
    fn feed(&self, input: &[u8], forwarding: &Forwarding, out: &mut Vec<u8>) -> Option<Flow> {
        let mut e = self.lock();
        let e = &mut *e;
        match e.requests.feed(input, forwarding, &mut e.sent, out) {
            Ok(flow) => Some(flow),
            Err(refusal) => {
                e.refusal = Some(refusal);
                Exchange::wake(&mut e.down_waiting);
                None
            }
        }
    }

    /// The connection's last request was passed on: the backend is told (a FIN) while its
    /// answers come, and what the client still sends is read and dropped — left unread, it
    /// would make the close a reset that destroys the answer on its way. Once the backend's
    /// direction ended, the client has a moment to close first.
    async fn after_the_last_request(&self) -> io::Result<()> {
        // Not `pass_fin`: the backend's direction still passes its own FIN on to the client.
        match socket2::SockRef::from(self.backend).shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => return Err(e),
            _ => {}
        }
        let mut drained = pin!(self.drain_client());
        let mut down_ended = pin!(self.until(|_| false));
        let client_closed = poll_fn(|cx| {
            if drained.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            down_ended.as_mut().poll(cx).map(|_| false)
        })
        .await;
        if !client_closed {
            let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        }
        Ok(())
    }

    /// Backend to client: responses relayed as they come and followed, until the backend's
    /// FIN, a tunnel, or a refusal's turn.
    async fn downward(&self, carried: &AtomicU64) -> io::Result<()> {
        let result = self.responses(carried).await;
        let mut e = self.lock();
        e.down_done = true;
        Exchange::wake(&mut e.up_waiting);
        result
    }

    async fn responses(&self, carried: &AtomicU64) -> io::Result<()> {
        loop {
            let refusal_due = poll_fn(|cx| {
                let mut e = self.lock();
                if e.refusal_due() {
                    return Poll::Ready(Ok(true));
                }
                if !e
                    .down_waiting
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    e.down_waiting = Some(cx.waker().clone());
                }
                drop(e);
                self.backend.poll_read_ready(cx).map_ok(|()| false)
            })
            .await?;
            if refusal_due {
                return self.answer_refusal(carried).await;
            }
            let mut buf = buffers::lend();
            let n = match self.backend.try_read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                // Our answer only after the backend's whole answers: one cut short (a body
                // until close, a length not reached) must not run into it.
                if self.lock().refusal_due_at_close() {
                    return self.answer_refusal(carried).await;
                }
                if self.lock().refusal.is_some() {
                    // Unanswered: the client's direction stopped reading, so this one closes.
                    return self.close_client().await;
                }
                return pass_fin(self.client, self.ended);
            }
            let switched = {
                let mut e = self.lock();
                let e = &mut *e;
                let outstanding = e.sent.len();
                let seen = e.responses.observe(&buf[..n], &mut e.sent);
                if let Some(answer) = seen.answer {
                    e.requests.answered(answer == Answer::Switched);
                }
                if seen.lost {
                    e.requests.stop_after_current();
                }
                if seen.answer.is_some() || seen.lost || e.sent.len() < outstanding {
                    Exchange::wake(&mut e.up_waiting);
                }
                seen.answer == Some(Answer::Switched)
            };
            write_all(self.client, &buf[..n]).await?;
            drop(buf);
            carried.fetch_add(n as u64, Ordering::Relaxed);
            (self.touch)();
            if switched {
                let (client, backend, method) = (self.client, self.backend, self.limits.relay);
                return direction(backend, client, method, carried, self.touch, self.ended).await;
            }
        }
    }

    /// Every answer before the refused request was relayed: ours, then close, reading what the
    /// client still sends for a moment so that the close does not reset our answer away.
    async fn answer_refusal(&self, carried: &AtomicU64) -> io::Result<()> {
        let Some(refusal) = self.lock().refusal else {
            return Ok(());
        };
        let response = refusal.response();
        write_all(self.client, response.as_bytes()).await?;
        carried.fetch_add(response.len() as u64, Ordering::Relaxed);
        self.lock().refusal_answered = true;
        self.close_client().await
    }

    /// Ends the connection towards a client nobody reads any more: a FIN, then what it still
    /// sends is read for a moment, so that the close is no reset that drops answers on their way.
    async fn close_client(&self) -> io::Result<()> {
        self.ended.store(true, Ordering::Relaxed);
        let _ = socket2::SockRef::from(self.client).shutdown(std::net::Shutdown::Write);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.drain_client()).await;
        Ok(())
    }

    /// Reads and drops what the client sends, until it closes or fails.
    async fn drain_client(&self) {
        let mut sink = [0u8; 512];
        while readable(self.client).await.is_ok() {
            match self.client.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}
