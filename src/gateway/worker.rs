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
use nat64_xlat::{Emitted, Translator};

use super::packet::{HEADROOM, MAX_READ, Step, Verdict};
use super::settings::Settings;
use super::stats::{Counts, QueueStats};
use super::vnet;
use super::{Io, Observer, Warning};

/// Read buffers per queue: enough to keep reads queued through a burst (64 × 64 KiB = 4 MiB).
const SLOTS: usize = 64;
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
        counts: Counts::default(),
        out: vec![0u8; Translator::out_len(MAX_READ)].into_boxed_slice(),
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
    read: Option<Instant>,
    write: Option<Instant>,
    suppressed_reads: u64,
    suppressed_writes: u64,
}

struct Worker<'a> {
    queue: usize,
    fd: RawFd,
    shared: &'a Shared,
    counts: Counts,
    out: Box<[u8]>,
    warned: Warned,
}

const READ: u64 = 0;
const WRITE: u64 = 1;
const CANCEL: u64 = u64::MAX;

impl Worker<'_> {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn uring_loop(&mut self, mut ring: IoUring) {
        let mut slots: Vec<Box<[u8]>> = (0..SLOTS)
            .map(|_| vec![0u8; SLOT_LEN].into_boxed_slice())
            .collect();
        let mut in_flight = 0usize;
        for (i, slot) in slots.iter_mut().enumerate() {
            self.push_read(&mut ring, slot, i);
            in_flight += 1;
        }
        let ts = types::Timespec::from(TICK);
        let args = types::SubmitArgs::new().timespec(&ts);
        let mut done: Vec<(u64, i32)> = Vec::with_capacity(2 * SLOTS);
        'settings: while !self.stopping() {
            let settings = self.shared.settings.load_full();
            let step = Step::new(&settings, self.shared.id_key);
            loop {
                match ring.submitter().submit_with_args(1, &args) {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                    Err(e) => {
                        self.warn_read(e);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
                for (data, res) in done.drain(..) {
                    let slot = (data >> 1) as usize;
                    in_flight -= 1;
                    if data & 1 == WRITE {
                        if res < 0 {
                            self.warn_write(io::Error::from_raw_os_error(-res));
                        }
                    } else if res < 0 {
                        if !matches!(-res, libc::EAGAIN | libc::EINTR) {
                            self.warn_read(io::Error::from_raw_os_error(-res));
                        }
                    } else {
                        let buf = &mut slots[slot];
                        let verdict = step.process(
                            buf,
                            HEADROOM,
                            res as usize,
                            &mut self.out,
                            &mut self.counts,
                        );
                        match verdict {
                            Verdict::InPlace(range) => {
                                self.push_write(&mut ring, buf, slot, range);
                                in_flight += 1;
                                continue;
                            }
                            Verdict::Copied(e) => self.write_copied(e),
                            Verdict::Dropped => {}
                        }
                    }
                    self.push_read(&mut ring, &mut slots[slot], slot);
                    in_flight += 1;
                }
                self.shared.stats[self.queue].publish(&mut self.counts);
                if self.stopping() {
                    break 'settings;
                }
                if !Arc::ptr_eq(&self.shared.settings.load(), &settings) {
                    continue 'settings;
                }
            }
        }
        // The kernel writes into the buffers until their reads end: cancel them and wait before
        // the buffers go.
        for slot in 0..SLOTS {
            let cancel = opcode::AsyncCancel::new((slot as u64) << 1 | READ)
                .build()
                .user_data(CANCEL);
            // SAFETY: a cancel request carries no buffer.
            let _ = unsafe { ring.submission().push(&cancel) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while in_flight > 0 && Instant::now() < deadline {
            let _ = ring.submitter().submit_with_args(1, &args);
            let ended = ring
                .completion()
                .filter(|c| c.user_data() != CANCEL)
                .count();
            in_flight = in_flight.saturating_sub(ended);
        }
        if in_flight > 0 {
            // Still in the kernel's hands: leak the buffers rather than free memory it may write.
            core::mem::forget(slots);
        }
    }

    fn push_read(&self, ring: &mut IoUring, buf: &mut [u8], slot: usize) {
        let target = &mut buf[HEADROOM..HEADROOM + MAX_READ];
        let read = opcode::Read::new(types::Fd(self.fd), target.as_mut_ptr(), MAX_READ as u32)
            .offset(u64::MAX)
            .build()
            .user_data((slot as u64) << 1 | READ);
        push(ring, &read);
    }

    fn push_write(
        &self,
        ring: &mut IoUring,
        buf: &[u8],
        slot: usize,
        range: core::ops::Range<usize>,
    ) {
        let bytes = &buf[range];
        let write = opcode::Write::new(types::Fd(self.fd), bytes.as_ptr(), bytes.len() as u32)
            .offset(u64::MAX)
            .build()
            .user_data((slot as u64) << 1 | WRITE);
        push(ring, &write);
    }

    /// The rare results that are not one packet in place (fragments, ICMP errors, hairpinned
    /// packets): written at once, each behind a plain offload header.
    fn write_copied(&mut self, e: Emitted) {
        let header = [0u8; vnet::LEN];
        let mut errors = Vec::new();
        for p in e.packets(&self.out) {
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
            let step = Step::new(&settings, self.shared.id_key);
            loop {
                let mut pfd = libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd, owned here.
                unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as libc::c_int) };
                for _ in 0..SLOTS {
                    let target = &mut buf[HEADROOM..HEADROOM + MAX_READ];
                    // SAFETY: reads at most MAX_READ bytes into `target`.
                    let n = unsafe { libc::read(self.fd, target.as_mut_ptr().cast(), MAX_READ) };
                    if n < 0 {
                        let e = io::Error::last_os_error();
                        if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                            self.warn_read(e);
                        }
                        break;
                    }
                    match step.process(
                        &mut buf,
                        HEADROOM,
                        n as usize,
                        &mut self.out,
                        &mut self.counts,
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
                        Verdict::Copied(e) => self.write_copied(e),
                        Verdict::Dropped => {}
                    }
                }
                self.shared.stats[self.queue].publish(&mut self.counts);
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
        self.counts.write_errors += 1;
        if due(&mut self.warned.write) {
            let suppressed = core::mem::take(&mut self.warned.suppressed_writes);
            let w = Warning::WriteFailed {
                queue: self.queue,
                error,
                suppressed,
            };
            self.shared.observer.warning(&w);
        } else {
            self.warned.suppressed_writes += 1;
        }
    }

    fn warn_read(&mut self, error: io::Error) {
        self.counts.read_errors += 1;
        if due(&mut self.warned.read) {
            let suppressed = core::mem::take(&mut self.warned.suppressed_reads);
            let w = Warning::ReadFailed {
                queue: self.queue,
                error,
                suppressed,
            };
            self.shared.observer.warning(&w);
        } else {
            self.warned.suppressed_reads += 1;
        }
    }
}

/// Whether a warning of this kind may be said now, and if so, remember when.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

fn push(ring: &mut IoUring, entry: &squeue::Entry) {
    // SAFETY: every entry points into a slot buffer that outlives the ring's use of it (the
    // buffers are freed only after every request has completed or been cancelled), and each slot
    // has one request at a time. The queue has room: it holds twice the slots.
    let pushed = unsafe { ring.submission().push(entry) };
    debug_assert!(pushed.is_ok(), "submission queue sized for every slot");
}
