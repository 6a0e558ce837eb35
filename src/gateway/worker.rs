//! One worker thread per queue: read packets, run [`Step::process`], write the results back.
//!
//! The system calls are the cost of a userspace datapath, so the worker drives its queue through
//! io_uring: every buffer always has a read or a write in flight, and one `io_uring_enter` per
//! loop turn submits the writes of everything that completed and collects the next reads, however
//! many there are. Where the kernel refuses io_uring (old kernel, seccomp, `io_uring_disabled`),
//! the worker says so once and falls back to poll, then read and write per packet.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use arc_swap::ArcSwap;
use io_uring::{IoUring, opcode, squeue, types};
use nat64_xlat::Packets;

use super::packet::{self, HEADROOM, Local, MAX_READ, Sessions, Step, Verdict};
use super::settings::Settings;
use super::stats::QueueStats;
use super::vnet;
use super::{Io, Observer, Warning};

/// Read buffers per queue. Each armed read is a separate waiter on the device, and a packet wakes
/// them all, so more than a few costs CPU without adding throughput (measured: 8 carried what 64
/// did at two thirds of the CPU for TCP); the kernel queues packets meanwhile.
const SLOTS: usize = 8;
const SLOT_LEN: usize = HEADROOM + MAX_READ;
/// How long a worker waits for packets before it looks at the stop flag and the settings.
const TICK: Duration = Duration::from_millis(200);
/// At most one warning of a kind per queue in this time; the rest are counted into the next.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the workers share with the [`Gateway`](super::Gateway) handle.
pub(crate) struct Shared {
    pub settings: ArcSwap<Settings>,
    pub stats: Box<[QueueStats]>,
    pub stop: AtomicBool,
    pub observer: Arc<dyn Observer>,
    pub id_key: u64,
    /// The session table, in stateful mode.
    pub sessions: Option<Sessions>,
}

impl core::fmt::Debug for Shared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Runs queue `queue` until the stop flag is set. `ready` learns which I/O it settled on.
pub(crate) fn run(
    queue: usize,
    fd: OwnedFd,
    shared: Arc<Shared>,
    force_poll: bool,
    ready: mpsc::Sender<(usize, Io)>,
) {
    let mut w = Worker {
        queue,
        fd: fd.as_raw_fd(),
        shared: &shared,
        local: Local::default(),
        out: vec![0u8; packet::out_len()].into_boxed_slice(),
        warned: Warned::default(),
    };
    let ring = if force_poll { None } else { Some(ring()) };
    match ring {
        Some(Ok(ring)) => {
            let _ = ready.send((queue, Io::Uring));
            drop(ready);
            w.uring_loop(ring);
        }
        refused => {
            let uring_error = refused.and_then(Result::err);
            let io = Io::Poll {
                uring_error: uring_error.as_ref().map(ToString::to_string),
            };
            if let Some(error) = uring_error {
                shared
                    .observer
                    .warning(&Warning::IoUringRefused { queue, error });
            }
            let _ = ready.send((queue, io));
            drop(ready);
            w.poll_loop();
        }
    }
    // The descriptor closes here, after the buffers its requests used.
    drop(fd);
}

/// A ring for one thread: completions run only when this thread asks (`DEFER_TASKRUN`, Linux
/// 6.1), else cooperatively (5.19), else plain.
fn ring() -> io::Result<IoUring> {
    let entries = (2 * SLOTS) as u32;
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
        .or_else(|_| IoUring::new(entries))?;
    // The loop waits with a timeout (Linux 5.11) so it notices a stop or new settings.
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel's io_uring cannot wait with a timeout (IORING_FEAT_EXT_ARG, Linux 5.11)",
        ));
    }
    Ok(ring)
}

#[derive(Debug, Default)]
struct Warned {
    read: Limited,
    write: Limited,
}

/// One kind of warning: said at most once per `WARN_EVERY`, the ones held back counted.
#[derive(Debug, Default)]
struct Limited {
    last: Option<Instant>,
    suppressed: u64,
}

impl Limited {
    /// `Some(held back since the last)` when the warning may be said now.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(core::mem::take(&mut self.suppressed))
    }
}

struct Worker<'a> {
    queue: usize,
    fd: RawFd,
    shared: &'a Shared,
    local: Local,
    out: Box<[u8]>,
    warned: Warned,
}

const READ: u64 = 0;
const WRITE: u64 = 1;
const CANCEL: u64 = u64::MAX;

/// Errors after which the queue is gone for good (device deleted, descriptor detached): the
/// worker stops instead of retrying them in a busy loop.
fn fatal(errno: i32) -> bool {
    matches!(
        errno,
        libc::EBADFD | libc::EBADF | libc::ENODEV | libc::ENXIO
    )
}

/// The ring and the buffers its requests point into, kept together so they go together: on drop
/// (a stop, or a panic unwinding) every read is cancelled and waited for before a buffer is freed,
/// and buffers still in the kernel's hands after five seconds are leaked, never freed.
struct Ring {
    ring: IoUring,
    slots: Vec<Box<[u8]>>,
    in_flight: usize,
    fd: RawFd,
}

impl Ring {
    fn new(ring: IoUring, fd: RawFd) -> Ring {
        let mut r = Ring {
            ring,
            slots: (0..SLOTS)
                .map(|_| vec![0u8; SLOT_LEN].into_boxed_slice())
                .collect(),
            in_flight: 0,
            fd,
        };
        for slot in 0..SLOTS {
            r.read(slot);
        }
        r
    }

    fn read(&mut self, slot: usize) {
        let target = &mut self.slots[slot][HEADROOM..HEADROOM + MAX_READ];
        let read = opcode::Read::new(types::Fd(self.fd), target.as_mut_ptr(), MAX_READ as u32)
            .offset(u64::MAX)
            .build()
            .user_data((slot as u64) << 1 | READ);
        self.push(&read);
    }

    fn write(&mut self, slot: usize, range: core::ops::Range<usize>) {
        let bytes = &self.slots[slot][range];
        let write = opcode::Write::new(types::Fd(self.fd), bytes.as_ptr(), bytes.len() as u32)
            .offset(u64::MAX)
            .build()
            .user_data((slot as u64) << 1 | WRITE);
        self.push(&write);
    }

    fn push(&mut self, entry: &squeue::Entry) {
        // SAFETY: every entry points into a slot buffer that outlives the kernel's use of it (see
        // `Drop`), and each slot has one request at a time. The queue holds twice the slots, and
        // it is submitted every turn, so it has room; if it had not, submit first.
        unsafe {
            if self.ring.submission().push(entry).is_err() {
                let _ = self.ring.submit();
                let _ = self.ring.submission().push(entry);
            }
        }
        self.in_flight += 1;
    }

    /// Submits what is queued and waits up to `TICK` for one completion.
    fn wait(&mut self) -> io::Result<()> {
        let ts = types::Timespec::from(TICK);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn completions(&mut self, into: &mut Vec<(u64, i32)>) {
        let before = into.len();
        into.extend(
            self.ring
                .completion()
                .filter(|c| c.user_data() != CANCEL)
                .map(|c| (c.user_data(), c.result())),
        );
        self.in_flight -= into.len() - before;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for slot in 0..SLOTS {
            let cancel = opcode::AsyncCancel::new((slot as u64) << 1 | READ)
                .build()
                .user_data(CANCEL);
            // SAFETY: a cancel request carries no buffer.
            let _ = unsafe { self.ring.submission().push(&cancel) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut done = Vec::new();
        while self.in_flight > 0 && Instant::now() < deadline {
            let _ = self.wait();
            self.completions(&mut done);
            done.clear();
        }
        if self.in_flight > 0 {
            // Still in the kernel's hands: leak the buffers rather than free memory it may write.
            core::mem::forget(core::mem::take(&mut self.slots));
        }
    }
}

impl Worker<'_> {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn uring_loop(&mut self, ring: IoUring) {
        let mut ring = Ring::new(ring, self.fd);
        let mut done: Vec<(u64, i32)> = Vec::with_capacity(2 * SLOTS);
        'settings: while !self.stopping() {
            let settings = self.shared.settings.load_full();
            let step = Step::new(&settings, self.shared.id_key, self.shared.sessions.as_ref());
            loop {
                if let Err(e) = ring.wait() {
                    if e.raw_os_error().is_some_and(fatal) {
                        return self.gone(e);
                    }
                    self.warn_read(e);
                    std::thread::sleep(Duration::from_millis(10));
                }
                ring.completions(&mut done);
                step.tick();
                let mut failed = 0;
                for (data, res) in done.drain(..) {
                    let slot = (data >> 1) as usize;
                    if res < 0 && fatal(-res) {
                        return self.gone(io::Error::from_raw_os_error(-res));
                    }
                    if data & 1 == WRITE {
                        if res < 0 {
                            self.warn_write(io::Error::from_raw_os_error(-res));
                        }
                    } else if res < 0 {
                        if !matches!(-res, libc::EAGAIN | libc::EINTR | libc::ECANCELED) {
                            failed += 1;
                            self.warn_read(io::Error::from_raw_os_error(-res));
                        }
                    } else {
                        let verdict = step.process(
                            &mut ring.slots[slot],
                            HEADROOM,
                            res as usize,
                            &mut self.out,
                            &mut self.local,
                        );
                        match verdict {
                            Verdict::InPlace(range) => {
                                ring.write(slot, range);
                                continue;
                            }
                            Verdict::Copied(n) => {
                                // Packets read before this one go out before it: the queued
                                // writes run (in order, TUN writes never wait) at submit.
                                let _ = ring.ring.submit();
                                self.write_copied(n);
                            }
                            Verdict::Dropped => {}
                        }
                    }
                    ring.read(slot);
                }
                self.shared.stats[self.queue].publish(&mut self.local.counts);
                if failed > 0 {
                    // A read error that repeats must not become a busy loop.
                    std::thread::sleep(Duration::from_millis(10));
                }
                if self.stopping() {
                    break 'settings;
                }
                if !Arc::ptr_eq(&self.shared.settings.load(), &settings) {
                    continue 'settings;
                }
            }
        }
    }

    /// The device went away under the queue: say so once, publish what was counted, and end.
    fn gone(&mut self, error: io::Error) {
        self.shared.stats[self.queue].publish(&mut self.local.counts);
        self.shared.observer.warning(&Warning::QueueStopped {
            queue: self.queue,
            error,
        });
    }

    /// The rare results that are not one packet in place (fragments, ICMP errors, hairpinned
    /// packets): written at once, each behind a plain offload header.
    fn write_copied(&mut self, len: usize) {
        let header = [0u8; vnet::LEN];
        let mut errors = Vec::new();
        for p in Packets::new(&self.out[..len]) {
            let iov = [
                libc::iovec {
                    iov_base: header.as_ptr() as *mut _,
                    iov_len: header.len(),
                },
                libc::iovec {
                    iov_base: p.as_ptr() as *mut _,
                    iov_len: p.len(),
                },
            ];
            // SAFETY: both iovecs point into live buffers of the stated lengths.
            let r = unsafe { libc::writev(self.fd, iov.as_ptr(), 2) };
            if r < 0 {
                errors.push(io::Error::last_os_error());
            }
        }
        for e in errors {
            self.warn_write(e);
        }
    }

    /// The fallback: wait in poll(2), then read and write one packet per system call until the
    /// queue is empty.
    fn poll_loop(&mut self) {
        // SAFETY: F_SETFL on our own descriptor.
        unsafe {
            let flags = libc::fcntl(self.fd, libc::F_GETFL);
            libc::fcntl(self.fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let mut buf = vec![0u8; SLOT_LEN].into_boxed_slice();
        'settings: while !self.stopping() {
            let settings = self.shared.settings.load_full();
            let step = Step::new(&settings, self.shared.id_key, self.shared.sessions.as_ref());
            loop {
                let mut pfd = libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd, owned here.
                unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as libc::c_int) };
                step.tick();
                for _ in 0..SLOTS {
                    let target = &mut buf[HEADROOM..HEADROOM + MAX_READ];
                    // SAFETY: reads at most MAX_READ bytes into `target`.
                    let n = unsafe { libc::read(self.fd, target.as_mut_ptr().cast(), MAX_READ) };
                    if n < 0 {
                        let e = io::Error::last_os_error();
                        match e.raw_os_error() {
                            Some(libc::EAGAIN | libc::EINTR) => {}
                            Some(errno) if fatal(errno) => return self.gone(e),
                            _ => {
                                self.warn_read(e);
                                // A read error that repeats must not become a busy loop.
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                        break;
                    }
                    match step.process(
                        &mut buf,
                        HEADROOM,
                        n as usize,
                        &mut self.out,
                        &mut self.local,
                    ) {
                        Verdict::InPlace(r) => {
                            let bytes = &buf[r];
                            // SAFETY: writes `bytes`, a live slice.
                            let w =
                                unsafe { libc::write(self.fd, bytes.as_ptr().cast(), bytes.len()) };
                            if w < 0 {
                                self.warn_write(io::Error::last_os_error());
                            }
                        }
                        Verdict::Copied(n) => self.write_copied(n),
                        Verdict::Dropped => {}
                    }
                }
                self.shared.stats[self.queue].publish(&mut self.local.counts);
                if self.stopping() {
                    break 'settings;
                }
                if !Arc::ptr_eq(&self.shared.settings.load(), &settings) {
                    continue 'settings;
                }
            }
        }
    }

    fn warn_write(&mut self, error: io::Error) {
        self.local.counts.write_errors += 1;
        if let Some(suppressed) = self.warned.write.due() {
            let queue = self.queue;
            let w = Warning::WriteFailed {
                queue,
                error,
                suppressed,
            };
            self.shared.observer.warning(&w);
        }
    }

    fn warn_read(&mut self, error: io::Error) {
        self.local.counts.read_errors += 1;
        if let Some(suppressed) = self.warned.read.due() {
            let queue = self.queue;
            let w = Warning::ReadFailed {
                queue,
                error,
                suppressed,
            };
            self.shared.observer.warning(&w);
        }
    }
}
