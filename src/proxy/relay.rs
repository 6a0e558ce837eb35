//! Both directions at once, with half-close: a FIN from one side is passed on and the other
//! direction keeps flowing until it ends too. An idle timeout over both.
//!
//! A direction waits for its socket to be readable holding nothing, then borrows a buffer for
//! the read and the write ([`super::buffers`]): an idle connection costs no buffer. On Linux,
//! with [`RelayMethod::Splice`], a direction whose read fills the buffer — a bulk transfer —
//! moves to `splice(2)` through a pipe of its own, so short exchanges never pay for pipes and
//! long ones never copy. With [`RelayMethod::Uring`], the reads and writes go through a ring per
//! thread instead ([`super::uring`]); bulk transfers splice the same way.

use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::Poll;
use core::time::Duration;
use std::io;
use std::time::Instant;

use tokio::net::TcpStream;

use super::buffers;
use super::{Limits, RelayMethod};

#[derive(Debug)]
pub(crate) enum End {
    /// Both sides closed their sending direction.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A side failed (reset, unreachable); the other was closed.
    Error(io::Error),
}

/// Relays until both directions end, one fails, or nothing moves for `idle`.
///
/// The two directions and the idle timer are polled side by side from this one frame, not
/// through `join!`/`select!` (which would hold a moved copy of each): an idle connection's
/// task is mostly this frame. For the same reason this and the functions below return blocks
/// rather than being `async fn`s, which keep each argument twice (as given and as moved in).
/// Bytes are added to `up` (client to backend) and `down` as they go.
pub(crate) fn relay<'a>(
    client: &'a TcpStream,
    backend: &'a TcpStream,
    limits: Limits,
    up: &'a AtomicU64,
    down: &'a AtomicU64,
) -> impl Future<Output = End> + 'a {
    let (idle, method) = (limits.idle_timeout, limits.relay);
    async move {
        // Where the kernel refused a ring, `direction` splices instead. Boxed: a connection on
        // splice or copy carries none of the ring relay's state (it doubled an idle connection).
        #[cfg(target_os = "linux")]
        if method == RelayMethod::Uring
            && let Some(ring) = super::uring::ring()
        {
            return Box::pin(relay_on_ring(ring, client, backend, idle, up, down)).await;
        }
        let activity = Activity::new();
        let touch = || activity.touch();
        let ended = AtomicBool::new(false);
        let mut upward = pin!(direction(client, backend, method, up, &touch, &ended));
        let mut downward = pin!(direction(backend, client, method, down, &touch, &ended));
        both(upward.as_mut(), downward.as_mut(), idle, &activity).await
    }
}

/// [`relay`] with both directions through `ring`.
#[cfg(target_os = "linux")]
fn relay_on_ring<'a>(
    ring: std::sync::Arc<super::uring::Ring>,
    client: &'a TcpStream,
    backend: &'a TcpStream,
    idle: Duration,
    up: &'a AtomicU64,
    down: &'a AtomicU64,
) -> impl Future<Output = End> + 'a {
    use super::uring::direction;
    async move {
        let activity = Activity::new();
        let touch = || activity.touch();
        let ended = AtomicBool::new(false);
        let mut upward = pin!(direction(&ring, client, backend, up, &touch, &ended));
        let mut downward = pin!(direction(&ring, backend, client, down, &touch, &ended));
        both(upward.as_mut(), downward.as_mut(), idle, &activity).await
    }
}

/// When bytes last moved on a connection, for its idle timeout: one clock read and one relaxed
/// store per message, and no timer reset (the idle watch sleeps until the timeout could be due).
pub(crate) struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Bytes moved just now.
    pub(crate) fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long nothing has moved.
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Polls two directions side by side until both end, one fails, or nothing moved (as
/// `activity` says) for `idle`.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn holds each argument twice"
)]
pub(crate) fn both<'a>(
    mut upward: Pin<&'a mut impl Future<Output = io::Result<()>>>,
    mut downward: Pin<&'a mut impl Future<Output = io::Result<()>>>,
    idle: Duration,
    activity: &'a Activity,
) -> impl Future<Output = End> + 'a {
    async move {
        let mut idle_watch = pin!(async {
            loop {
                let quiet_for = activity.quiet_for();
                if quiet_for >= idle {
                    return;
                }
                tokio::time::sleep(idle - quiet_for).await;
            }
        });
        let (mut up_done, mut down_done) = (false, false);
        poll_fn(|cx| {
            // Two futures of different types: polled one after the other, not from an array.
            let polls = [
                (!up_done).then(|| upward.as_mut().poll(cx)),
                (!down_done).then(|| downward.as_mut().poll(cx)),
            ];
            for (done, poll) in [&mut up_done, &mut down_done].into_iter().zip(polls) {
                match poll {
                    Some(Poll::Ready(Ok(()))) => *done = true,
                    Some(Poll::Ready(Err(e))) => return Poll::Ready(End::Error(e)),
                    _ => {}
                }
            }
            if up_done && down_done {
                return Poll::Ready(End::Closed);
            }
            idle_watch.as_mut().poll(cx).map(|()| End::Idle)
        })
        .await
    }
}

/// One direction, until `from` ends (then the FIN is passed on) or fails.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn holds each argument twice"
)]
pub(crate) fn direction<'a>(
    from: &'a TcpStream,
    to: &'a TcpStream,
    method: RelayMethod,
    carried: &'a AtomicU64,
    touched: &'a impl Fn(),
    ended: &'a AtomicBool,
) -> impl Future<Output = io::Result<()>> + 'a {
    async move {
        loop {
            readable(from).await?;
            let mut buf = buffers::lend();
            let n = match from.try_read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return pass_fin(to, ended);
            }
            write_all(to, &buf[..n]).await?;
            drop(buf);
            carried.fetch_add(n as u64, Ordering::Relaxed);
            touched();
            #[cfg(target_os = "linux")]
            if method != RelayMethod::Copy
                && n == buffers::SIZE
                && splice_while_bulk(from, to, carried, touched, ended).await?
            {
                return Ok(());
            }
            #[cfg(not(target_os = "linux"))]
            let _ = method;
        }
    }
}

/// A read filled the buffer: a bulk transfer, which the kernel moves while it lasts (boxed: a
/// connection that never splices carries none of its state). `true` when `from` ended and its
/// FIN was passed on; `false` when reads came short again, or no pipe was to be had (copy on).
#[cfg(target_os = "linux")]
pub(crate) async fn splice_while_bulk(
    from: &TcpStream,
    to: &TcpStream,
    carried: &AtomicU64,
    touched: &impl Fn(),
    ended: &AtomicBool,
) -> io::Result<bool> {
    let spliced = super::splice::copy(from, to, buffers::SIZE, carried, touched, ended);
    match Box::pin(spliced).await {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => Ok(false),
        other => other,
    }
}

/// All of `bytes` to `to` (a block, not an `async fn`: it is in every direction's frame).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn holds each argument twice"
)]
pub(crate) fn write_all<'a>(
    to: &'a TcpStream,
    mut bytes: &'a [u8],
) -> impl Future<Output = io::Result<()>> + 'a {
    async move {
        while !bytes.is_empty() {
            writable(to).await?;
            match to.try_write(bytes) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "peer stopped reading",
                    ));
                }
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Waits until `socket` may be read. Unlike `TcpStream::readable`, this holds no waiter of its
/// own (a hundred-odd bytes per idle direction): the socket keeps one reader's waker, and each
/// socket has one reader here, the direction that reads it.
pub(crate) async fn readable(socket: &TcpStream) -> io::Result<()> {
    poll_fn(|cx| socket.poll_read_ready(cx)).await
}

/// Waits until `socket` may be written; each socket has one writer here, the direction that
/// writes to it.
pub(crate) async fn writable(socket: &TcpStream) -> io::Result<()> {
    poll_fn(|cx| socket.poll_write_ready(cx)).await
}

/// `from` ended: its FIN goes on to `to`, unless the other direction ended first. Then both
/// sockets are closed right after, and the close sends the FIN: one system call fewer.
pub(crate) fn pass_fin(to: &TcpStream, ended: &AtomicBool) -> io::Result<()> {
    if ended.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    // tokio's `shutdown` needs the stream exclusively; both directions share it.
    match socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write) {
        // The peer is already gone: nothing left to tell it.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}
