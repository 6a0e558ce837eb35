//! [`RelayMethod::Uring`](super::RelayMethod::Uring): the relay's reads and writes go through an
//! io_uring per thread, so that one `io_uring_enter` carries the operations of every connection
//! that moved in a loop turn, instead of a `read` and a `write` system call per message each.
//!
//! ```text
//!   connection tasks                    driver task (one per ring)             kernel
//!   recv/send futures ── queue ──▶  flush the queue: one io_uring_enter ──▶  SQ
//!        ▲                          reap completions, wake their owners  ◀──  CQ
//!        └────────── wake ──────────  woken by the ring fd (AsyncFd, epoll)
//! ```
//!
//! - **One ring per runtime thread**, made on the first uring relay there and shared by its
//!   connections. A connection keeps the ring it started on: on a multi-threaded runtime its
//!   task may move, so the ring's state is behind a mutex (uncontended on the engine's per-core
//!   workers, where every connection of a ring runs on the ring's thread).
//! - **Submission at the end of a turn, without a runtime hook.** An operation is only queued
//!   here; the first one queued in a turn wakes the ring's driver task, which the scheduler runs
//!   after the tasks already woken (a current-thread runtime's queue is FIFO), so the driver's
//!   one `io_uring_enter` carries what they all queued. This works on the caller's runtime as on
//!   the engine's workers, where an `on_thread_park` hook would need a runtime we build.
//!   A submit the kernel refuses (EBUSY while completions overflow, EINTR) never spins with the
//!   ring locked: completions are reaped, and what is left goes at the driver's next turn,
//!   which it gives itself.
//! - **Reaping on readiness.** The driver registers the ring's descriptor with tokio (AsyncFd):
//!   a completion makes it readable, the driver reaps every completion and wakes their owners.
//! - **Buffers belong to the ring.** Reads select a provided buffer (`IOSQE_BUFFER_SELECT`) when
//!   bytes arrive, so a waiting read holds none and an idle connection holds no buffer, as with
//!   splice and copy. A buffer goes back to the kernel (`PROVIDE_BUFFERS`) only after the write
//!   that used it completed: at once when it sent every byte, even if its direction is not
//!   polled again until its next read, so an idle connection holds no buffer either way. The
//!   group starts with 16 buffers and grows by 16 when a read found it empty and none are on
//!   their way; a buffer done with while the group holds 64 is freed, so a busy moment leaves
//!   no memory behind (the copy relay's threads keep 64 free buffers each).
//!   There is no cap on the whole but the 16-bit buffer ids: a cap would let a few hundred
//!   stalled connections starve every other connection of the thread. An operation whose future is dropped (idle timeout, drain, abort)
//!   is cancelled (`ASYNC_CANCEL`) and its slot and buffer are kept until its completion comes.
//!   An entry not yet handed to the kernel is never handed over once its owner is gone: the
//!   descriptor number it names may already belong to another connection.
//! - **Single-shot reads, not multishot.** A multishot receive keeps taking buffers as bytes
//!   arrive, whether or not the other side reads: memory would grow with a slow reader. Here a
//!   direction has at most one read and one write in flight (at most two buffers: the next read
//!   is armed while the write of the last one runs), and reads nothing more until the write is
//!   done, so a slow reader closes the sender's TCP window as with the other relays. The re-arm
//!   costs a submission entry, not a system call.
//! - **A write that went whole wakes nobody; a short one wakes its direction.** While the next
//!   read waits, the direction watches its last write: a completion that reports every byte
//!   (most come inside the `io_uring_enter` that submitted them) gives the buffer back and wakes
//!   no task, while a short or failed one wakes the direction, which sends the rest at once
//!   instead of when the source sends again. Bytes are counted as sends complete.
//! - **Bulk goes to splice(2).** A read that fills its buffer hands the direction to
//!   [`super::splice::copy`] (tokio readiness, a pipe of its own) until reads come short again,
//!   as the splice relay does: `IORING_OP_SPLICE` runs on io_uring's blocking worker threads
//!   (the kernel cannot poll a splice), and copying through the ring moves every byte twice.
//! - **Refusal.** Where the kernel refuses a ring (no io_uring, seccomp, `io_uring_disabled`,
//!   or a kernel without fast poll, buffer selection or timed waits), the relay says so once and
//!   splices; a connection never fails because of it.
//!
//! Measured on loopback (Linux 6.18, 2 vCPUs shared with other work, full-proxy with one
//! worker, wrk keep-alive 1 KiB through to nginx; system calls by `perf stat -e
//! raw_syscalls:sys_enter`, CPU from `/proc/PID/stat` in runs without it): 0.23–0.25 system
//! calls per request with 50 connections and 0.11 with 400, against 6.0–6.5 for splice and copy.
//! User time per request is the same as splice's (1.2–2.2 µs), but kernel time is higher:
//! 7.7–8.2 µs against 5.6–6.2 with 50 connections, 11.9–12.9 against 8.4–9.9 with 400. The
//! kernel's work per operation (a poll armed and disarmed per read, each completion run as task
//! work) costs more here than the system calls it saves. 1 MiB responses splice either way.
//! `DEFER_TASKRUN` with a registered eventfd was tried and stalled (2.5k requests/s: deferred
//! completions are not signalled to an epoll loop promptly), so it is not used. Multishot reads
//! would keep the poll armed, but one keeps reading while the write waits: up to 32 buffers per
//! wakeup before a cancel lands, so a slow reader could hold about 1 MiB per direction here.
//! End to end, with the fixes for short sends and idle buffers (`benches/full-proxy-vs-haproxy.sh`
//! relays scenario, 2 workers): 1.5–1.65× HAProxy's CPU per request where splice is 0.99–1.1×,
//! for keep-alive 1 KiB over HTTP and TLS and for a new connection per request; 1 MiB the same
//! as splice (it splices); 3.4 KiB per idle TLS connection against splice's 2.0 KiB.
// io_uring entries point into memory the kernel writes later: each unsafe block says why it is sound.
#![allow(unsafe_code)]

use core::cell::RefCell;
use core::cell::UnsafeCell;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use io_uring::{IoUring, Probe, cqueue, opcode, squeue, types};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

use super::buffers::SIZE;
use super::relay::{pass_fin, splice_while_bulk};

/// Submission entries; the queue is flushed whenever it fills, so this bounds nothing.
const ENTRIES: u32 = 256;
/// Completions the ring holds before the kernel keeps the rest aside (FEAT_NODROP).
const COMPLETIONS: u32 = 4096;
/// Buffers a ring gets at a time: when it starts, and when reads found none.
const GROW: usize = 16;
/// Idle buffers the group keeps (1 MiB); one given back past that is freed, so a busy moment
/// leaves no memory behind. The copy relay's threads keep as many.
const KEPT: usize = 64;
/// Buffer ids are 16 bits: past that many buffers in use, a read waits for one to come back.
const MOST: usize = 1 << 16;
/// The ring's one buffer group.
const GROUP: u16 = 0;
/// `user_data` of cancels, which nobody waits for.
const UNOWNED: u64 = u64::MAX;
/// `user_data` of a buffer given to the group: this bit and its id. Operations have their
/// index, far below it.
const PROVIDED: u64 = 1 << 62;

/// A thread's ring, its operations and its buffers.
pub(crate) struct Ring {
    state: Mutex<State>,
    /// Cleared when the driver task is dropped (its runtime shut down): a new relay on this
    /// thread then makes a new ring.
    driven: AtomicBool,
}

struct State {
    ring: IoUring,
    /// Operations by index (their `user_data`); `free` lists the unused indices.
    ops: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// What goes to the kernel at the next flush, in order.
    queue: Vec<Queued>,
    /// Operations handed to the kernel whose completion has not come.
    in_kernel: usize,
    /// Buffers out of the group: read into, and not given back yet.
    out: usize,
    /// Buffer memory by id, `SIZE` bytes each (`None`: the id is spare), never moved, and freed
    /// only while neither the group nor an operation has it. `UnsafeCell`: the kernel writes it
    /// behind our back.
    buffers: Vec<Option<Box<[UnsafeCell<u8>]>>>,
    spare: Vec<u16>,
    /// Buffers given to the group and not picked by a read yet.
    in_group: usize,
    /// Directions waiting for a buffer to come back (every id is in use).
    short: Vec<Waker>,
    /// The driver's waker, and whether it was woken since it last flushed.
    driver: Option<Waker>,
    woken: bool,
}

enum Queued {
    Op(usize),
    /// A cancel or a buffer given back.
    Unowned(squeue::Entry),
}

struct Slot {
    entry: squeue::Entry,
    /// The buffer a send writes from: given back only after its completion.
    holds: Option<u16>,
    /// A send's length: a completion that says all of it went wakes only a task that waits for
    /// it, and gives its buffer back at once. A short or failed one always wakes the owner.
    length: Option<i32>,
    phase: Phase,
    /// The task that polled it last.
    waker: Option<Waker>,
    /// Whether that task waits for the completion, or only watches for a short or failed one.
    waits: bool,
}

enum Phase {
    Queued,
    InKernel,
    Done(i32, u32),
    /// Its future is gone: the slot waits for the completion, then frees itself.
    Abandoned,
}

thread_local! {
    /// This thread's ring; `Err` once the kernel refused one here.
    static THREAD_RING: RefCell<Option<Result<Weak<Ring>, ()>>> = const { RefCell::new(None) };
}

/// Said once per process when the kernel refuses io_uring.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Bytes the rings' sends delivered, in this process.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes relayed through an io_uring (not spliced) in this process so far: tests tell by it
/// that the ring relayed, not a silent fallback to splice.
#[doc(hidden)]
pub fn ring_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// This thread's ring, made (with its driver task on the current runtime) on first use. `None`
/// when the kernel refused io_uring here: the caller splices instead.
pub(crate) fn ring() -> Option<Arc<Ring>> {
    THREAD_RING.with(|cell| {
        let mut cell = cell.borrow_mut();
        match &*cell {
            Some(Err(())) => return None,
            Some(Ok(weak)) => {
                if let Some(ring) = weak.upgrade().filter(|r| r.driven.load(Ordering::Relaxed)) {
                    return Some(ring);
                }
            }
            None => {}
        }
        match Ring::new().and_then(|ring| ring.drive().map(|()| ring)) {
            Ok(ring) => {
                *cell = Some(Ok(Arc::downgrade(&ring)));
                Some(ring)
            }
            Err(error) => {
                *cell = Some(Err(()));
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!("io_uring refused ({error}): relaying with splice instead");
                }
                None
            }
        }
    })
}

#[cfg(test)]
thread_local! {
    /// An error the kernel is made to give this thread instead of a ring, and the rings asked
    /// for here.
    static REFUSE: core::cell::Cell<Option<i32>> = const { core::cell::Cell::new(None) };
    static OPENED: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    /// How many of this thread's next submits the kernel is made to refuse (EBUSY).
    static REFUSE_SUBMITS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// A ring with the features the relay needs, or the kernel's refusal.
pub(crate) fn open() -> io::Result<IoUring> {
    #[cfg(test)]
    {
        OPENED.set(OPENED.get() + 1);
        if let Some(errno) = REFUSE.get() {
            return Err(io::Error::from_raw_os_error(errno));
        }
    }
    let ring = IoUring::builder()
        .setup_cqsize(COMPLETIONS)
        .setup_submit_all()
        .build(ENTRIES)
        .or_else(|_| IoUring::builder().setup_cqsize(COMPLETIONS).build(ENTRIES))?;
    let params = ring.params();
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let needed = [
        opcode::Recv::CODE,
        opcode::Send::CODE,
        opcode::AsyncCancel::CODE,
        opcode::ProvideBuffers::CODE,
    ];
    // Without fast poll, a read that waits would hold one of io_uring's threads (Linux 5.7);
    // the drop waits with a timeout (5.11).
    if !params.is_feature_fast_poll()
        || !params.is_feature_nodrop()
        || !params.is_feature_ext_arg()
        || !needed.iter().all(|&code| probe.is_supported(code))
    {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel's io_uring lacks fast poll, buffer selection or timed waits (Linux 5.11)",
        ));
    }
    Ok(ring)
}

impl Ring {
    fn new() -> io::Result<Arc<Ring>> {
        let mut state = State {
            ring: open()?,
            ops: Vec::new(),
            free: Vec::new(),
            queue: Vec::new(),
            in_kernel: 0,
            out: 0,
            buffers: Vec::new(),
            spare: Vec::new(),
            in_group: 0,
            short: Vec::new(),
            driver: None,
            woken: false,
        };
        state.grow();
        Ok(Arc::new(Ring {
            state: Mutex::new(state),
            driven: AtomicBool::new(true),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns the driver on the current runtime.
    fn drive(self: &Arc<Self>) -> io::Result<()> {
        let fd = RingFd {
            fd: self.lock().ring.as_raw_fd(),
            ring: Arc::clone(self),
        };
        // SAFETY: the descriptor is the ring's, closed only when `State` drops, which the `Arc`
        // beside it in `RingFd` prevents while the registration lives.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        tokio::spawn(async move {
            /// Marks the ring undriven when the task goes (its runtime shut down).
            struct Driven(AsyncFd<RingFd>);
            impl Drop for Driven {
                fn drop(&mut self) {
                    self.0.get_ref().ring.driven.store(false, Ordering::Relaxed);
                }
            }
            let fd = Driven(fd);
            poll_fn(|cx| fd.0.get_ref().ring.turn(&fd.0, cx)).await
        });
        Ok(())
    }

    /// One poll of the driver: hand the queue to the kernel, reap what completed, and wait for
    /// the ring's descriptor or the next queued entry.
    fn turn(&self, fd: &AsyncFd<RingFd>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            {
                let mut state = self.lock();
                if !state
                    .driver
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.driver = Some(cx.waker().clone());
                }
                state.woken = false;
                state.flush();
                state.reap();
                if state.unfinished() {
                    // No completion or new entry may come to wake the driver: it tries again
                    // after the tasks woken meanwhile.
                    state.wake_driver();
                }
            }
            match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut ready)) => ready.clear_ready(),
                // The reactor is gone: the runtime is shutting down.
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Queues `entry`; `holds` is the buffer it reads from, kept until it completes.
    fn submit(
        self: &Arc<Self>,
        entry: squeue::Entry,
        holds: Option<u16>,
        length: Option<i32>,
    ) -> Op {
        let mut state = self.lock();
        let slot = Slot {
            entry,
            holds,
            length,
            phase: Phase::Queued,
            waker: None,
            waits: true,
        };
        let index = match state.free.pop() {
            Some(i) => {
                state.ops[i] = Some(slot);
                i
            }
            None => {
                state.ops.push(Some(slot));
                state.ops.len() - 1
            }
        };
        state.queue.push(Queued::Op(index));
        state.wake_driver();
        Op {
            ring: Arc::clone(self),
            index: Some(index),
        }
    }

    /// A read of `fd` into a buffer the kernel picks when bytes arrive.
    fn recv(self: &Arc<Self>, fd: RawFd) -> Op {
        let entry = opcode::Recv::new(types::Fd(fd), core::ptr::null_mut(), SIZE as u32)
            .buf_group(GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        self.submit(entry, None, None)
    }

    /// A write to `fd` of `len` bytes of buffer `buf` from `at`.
    fn send(self: &Arc<Self>, fd: RawFd, buf: Buf, at: usize, len: usize) -> Op {
        let id = buf.take();
        let start = self.lock().address(id).wrapping_add(at);
        let entry = opcode::Send::new(types::Fd(fd), start, len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        self.submit(entry, Some(id), Some(len as i32))
    }

    /// Waits until a buffer came back, when the ring has all it may have.
    async fn buffer_back(&self) {
        let mut registered = false;
        poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            let mut state = self.lock();
            if state.can_grow() {
                return Poll::Ready(());
            }
            state.short.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// The ring's descriptor, for tokio's reactor, with the ring that keeps it open.
struct RingFd {
    fd: RawFd,
    ring: Arc<Ring>,
}

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl State {
    fn wake_driver(&mut self) {
        if !self.woken {
            self.woken = true;
            if let Some(driver) = &self.driver {
                driver.wake_by_ref();
            }
        }
    }

    fn can_grow(&self) -> bool {
        !self.spare.is_empty() || self.buffers.len() < MOST
    }

    fn address(&self, id: u16) -> *mut u8 {
        let buffer = self.buffers.get(usize::from(id)).and_then(Option::as_ref);
        debug_assert!(buffer.is_some(), "buffer {id} is not allocated");
        // A missing buffer would be a bug here; the kernel answers its null address EFAULT.
        buffer.map_or(core::ptr::null_mut(), |b| UnsafeCell::raw_get(b.as_ptr()))
    }

    /// Up to `GROW` more buffers for the group; `false` when every id is in use.
    fn grow(&mut self) -> bool {
        let mut added = 0;
        while added < GROW && self.can_grow() {
            let id = self.spare.pop().unwrap_or_else(|| {
                self.buffers.push(None);
                (self.buffers.len() - 1) as u16
            });
            let buffer = (0..SIZE).map(|_| UnsafeCell::new(0)).collect();
            self.buffers[usize::from(id)] = Some(buffer);
            self.provide(id);
            added += 1;
        }
        added > 0
    }

    /// Gives buffer `id` to the kernel's group (before any read queued after this).
    fn provide(&mut self, id: u16) {
        let entry = opcode::ProvideBuffers::new(self.address(id), SIZE as i32, 1, GROUP, id)
            .build()
            .user_data(PROVIDED | u64::from(id));
        self.queue.push(Queued::Unowned(entry));
        self.in_group += 1;
        self.wake_driver();
    }

    /// Buffer `id` is done with: back to the group, or freed when the group has `KEPT` (a
    /// steady load that needs more grows the group again when a read finds it empty).
    fn give_back(&mut self, id: u16) {
        self.out -= 1;
        if self.in_group < KEPT {
            self.provide(id);
        } else {
            self.buffers[usize::from(id)] = None;
            self.spare.push(id);
        }
        for waiting in self.short.drain(..) {
            waiting.wake();
        }
    }

    fn release(&mut self, index: usize) {
        if let Some(slot) = self.ops[index].take() {
            if let Some(id) = slot.holds {
                self.give_back(id);
            }
            self.free.push(index);
            if self.free.len() == self.ops.len() {
                // No operation left: a ring whose connections all closed keeps no slots.
                (self.ops, self.free) = (Vec::new(), Vec::new());
            }
        }
    }

    /// `io_uring_enter` for what the submission queue holds.
    fn enter(&mut self) -> io::Result<usize> {
        #[cfg(test)]
        if let refused @ 1.. = REFUSE_SUBMITS.get() {
            REFUSE_SUBMITS.set(refused - 1);
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        self.ring.submit()
    }

    /// Puts `entry` in the submission queue, handing what it holds to the kernel first when it
    /// is full. `false` when the kernel refused that twice (EBUSY while completions overflow,
    /// EINTR), with completions reaped in between: the caller keeps the entry for a later turn
    /// instead of spinning with the ring locked.
    fn push(&mut self, entry: &squeue::Entry) -> bool {
        for attempt in 0..3 {
            // SAFETY: a queued entry points only into `buffers` (a send's bytes or buffers given
            // to the group), which live until no operation is left in the kernel (`Drop`), and
            // each buffer is in one place at a time: the group, a read's result or one send.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return true;
            }
            // Full: hand over what is there first; a refusal may be for completions that
            // overflowed, which reaping makes room for.
            if attempt < 2 && self.enter().is_err() {
                self.reap();
            }
        }
        false
    }

    /// Whether the next turn has work however quiet the ring is: entries the kernel refused,
    /// or completions it kept aside.
    fn unfinished(&mut self) -> bool {
        !self.queue.is_empty()
            || !self.ring.submission().is_empty()
            || self.ring.submission().cq_overflow()
    }

    /// Hands the queue to the kernel: one `io_uring_enter`.
    fn flush(&mut self) {
        if self.queue.is_empty() {
            // Entries a refused submit (EBUSY, EINTR) left in the ring go now.
            if !self.ring.submission().is_empty() {
                let _ = self.enter();
            }
            return;
        }
        let mut queue = core::mem::take(&mut self.queue).into_iter();
        while let Some(queued) = queue.next() {
            let pushed = match &queued {
                Queued::Unowned(entry) => self.push(entry),
                &Queued::Op(index) => {
                    let Some(slot) = self.ops.get_mut(index).and_then(Option::as_mut) else {
                        continue;
                    };
                    if matches!(slot.phase, Phase::Abandoned) {
                        // Never handed over: its descriptor may have been closed and reused.
                        self.release(index);
                        continue;
                    }
                    let entry = slot.entry.clone().user_data(index as u64);
                    let pushed = self.push(&entry);
                    if pushed && let Some(slot) = self.ops[index].as_mut() {
                        slot.phase = Phase::InKernel;
                        self.in_kernel += 1;
                    }
                    pushed
                }
            };
            if !pushed {
                // Refused: this entry and the rest go first at the next turn, before what was
                // queued meanwhile (buffers given back while reaping).
                let later = core::mem::take(&mut self.queue);
                self.queue = core::iter::once(queued).chain(queue).chain(later).collect();
                return;
            }
        }
        // Errors (EBUSY while completions overflow, EINTR) leave entries in the submission
        // queue; the next turn submits them.
        let _ = self.enter();
    }

    /// Every completion there is: owners woken, abandoned slots freed with their buffers.
    fn reap(&mut self) {
        loop {
            let done: Vec<_> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags()))
                .collect();
            for (data, result, flags) in done {
                if data == UNOWNED {
                    continue;
                }
                if data & PROVIDED != 0 {
                    if result < 0 {
                        // Not in the group after all: freed, so that the count of what the
                        // group holds stays true.
                        let id = data as u16;
                        self.in_group -= 1;
                        self.buffers[usize::from(id)] = None;
                        self.spare.push(id);
                    }
                    continue;
                }
                let index = data as usize;
                self.in_kernel -= 1;
                let selected = cqueue::buffer_select(flags);
                if selected.is_some() {
                    (self.out, self.in_group) = (self.out + 1, self.in_group.saturating_sub(1));
                }
                let Some(slot) = self.ops.get_mut(index).and_then(Option::as_mut) else {
                    // Nobody to hand its buffer to (not expected): back to the group.
                    if let Some(id) = selected {
                        self.give_back(id);
                    }
                    continue;
                };
                match core::mem::replace(&mut slot.phase, Phase::Done(result, flags)) {
                    Phase::InKernel => {
                        // A send that went whole needs its buffer no more, and wakes only a
                        // task that waits for it; a short or failed one wakes its owner, who
                        // sends the rest or ends.
                        let whole = slot.length == Some(result);
                        let buffer = if whole { slot.holds.take() } else { None };
                        if (slot.waits || !whole)
                            && let Some(waker) = slot.waker.take()
                        {
                            waker.wake();
                        }
                        if let Some(id) = buffer {
                            self.give_back(id);
                        }
                    }
                    _ => {
                        if let Some(id) = cqueue::buffer_select(flags) {
                            self.give_back(id);
                        }
                        self.release(index);
                    }
                }
            }
            // Completions kept aside while the ring was full come in with the next enter.
            // A refused one leaves them for the next turn.
            if !self.ring.submission().cq_overflow() || self.enter().is_err() {
                return;
            }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.flush();
        for index in 0..self.ops.len() {
            if let Some(Slot {
                phase: Phase::InKernel | Phase::Abandoned,
                ..
            }) = self.ops[index]
            {
                let cancel = opcode::AsyncCancel::new(index as u64)
                    .build()
                    .user_data(UNOWNED);
                // A refused cancel leaves the operation to the timed wait below.
                let _ = self.push(&cancel);
                self.ops[index] = None;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let wait = types::Timespec::from(Duration::from_millis(100));
        while self.in_kernel > 0 && Instant::now() < deadline {
            let args = types::SubmitArgs::new().timespec(&wait);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            for c in self.ring.completion() {
                if c.user_data() & PROVIDED == 0 {
                    self.in_kernel -= 1;
                }
            }
        }
        if self.in_kernel > 0 {
            // Still in the kernel's hands: leak the buffers rather than free memory it may write.
            core::mem::forget(core::mem::take(&mut self.buffers));
        }
    }
}

/// An operation in flight; dropping it before its completion cancels it.
struct Op {
    ring: Arc<Ring>,
    index: Option<usize>,
}

/// What an operation ended with: its result, its flags, and the buffer it held.
struct Completion {
    result: i32,
    flags: u32,
    held: Option<Buf>,
}

impl Future for Op {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        self.get_mut().poll_completion(cx, true)
    }
}

impl Op {
    /// The completion, once it came. `waits`: woken by any completion; otherwise (a send
    /// watched while something else is awaited) only by a short or failed one.
    fn poll_completion(&mut self, cx: &mut Context<'_>, waits: bool) -> Poll<Completion> {
        let Some(index) = self.index else {
            return Poll::Pending;
        };
        let mut state = self.ring.lock();
        let Some(slot) = state.ops[index].as_mut() else {
            return Poll::Pending;
        };
        match &mut slot.phase {
            Phase::Done(result, flags) => {
                let (result, flags) = (*result, *flags);
                let held = slot.holds.take();
                state.release(index);
                drop(state);
                self.index = None;
                let ring = &self.ring;
                Poll::Ready(Completion {
                    result,
                    flags,
                    held: held.map(|id| Buf::new(ring, id)),
                })
            }
            Phase::Queued | Phase::InKernel => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                slot.waits = waits;
                Poll::Pending
            }
            Phase::Abandoned => Poll::Pending,
        }
    }

    /// The result of a completion that came and was not taken yet.
    fn result(&self) -> Option<i32> {
        let state = self.ring.lock();
        match state.ops[self.index?].as_ref()?.phase {
            Phase::Done(result, _) => Some(result),
            _ => None,
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let Some(index) = self.index else { return };
        let mut state = self.ring.lock();
        let Some(slot) = state.ops[index].as_mut() else {
            return;
        };
        match core::mem::replace(&mut slot.phase, Phase::Abandoned) {
            // `flush` frees it without handing it over.
            Phase::Queued | Phase::Abandoned => {}
            Phase::InKernel => {
                let cancel = opcode::AsyncCancel::new(index as u64)
                    .build()
                    .user_data(UNOWNED);
                state.queue.push(Queued::Unowned(cancel));
                state.wake_driver();
            }
            Phase::Done(_, flags) => {
                if let Some(id) = cqueue::buffer_select(flags) {
                    state.give_back(id);
                }
                state.release(index);
            }
        }
    }
}

/// A buffer of the ring lent to a direction; given back to the kernel when dropped.
struct Buf {
    ring: Arc<Ring>,
    id: Option<u16>,
}

impl Buf {
    fn new(ring: &Arc<Ring>, id: u16) -> Buf {
        Buf {
            ring: Arc::clone(ring),
            id: Some(id),
        }
    }

    /// The buffer's id, now owned by whoever takes it (a send's slot).
    fn take(mut self) -> u16 {
        self.id.take().unwrap_or_default()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.ring.lock().give_back(id);
        }
    }
}

/// What a read brought.
enum Read {
    Bytes(Buf, usize),
    End,
    /// The group was empty when the read was handed over.
    NoBuffer,
}

fn read(ring: &Arc<Ring>, done: Completion) -> io::Result<Read> {
    let buf = cqueue::buffer_select(done.flags).map(|id| Buf::new(ring, id));
    match (done.result, buf) {
        (n @ 1.., Some(buf)) => Ok(Read::Bytes(buf, n as usize)),
        (0, _) => Ok(Read::End),
        (e, _) if -e == libc::ENOBUFS => Ok(Read::NoBuffer),
        (e @ ..0, _) => Err(io::Error::from_raw_os_error(-e)),
        (1.., None) => Err(io::Error::other("io_uring read without a buffer")),
    }
}

/// A write on its way: a send of bytes `at..len` of its buffer. Bytes are counted in
/// `carried` as sends complete, by what they sent.
struct Writing<'a> {
    send: Op,
    at: usize,
    len: usize,
    carried: &'a AtomicU64,
}

impl<'a> Writing<'a> {
    fn start(ring: &Arc<Ring>, to: RawFd, buf: Buf, len: usize, carried: &'a AtomicU64) -> Self {
        Writing {
            send: ring.send(to, buf, 0, len),
            at: 0,
            len,
            carried,
        }
    }

    /// Ready when every byte is written, however many sends it takes: a short send is followed
    /// by the rest as soon as it completes. `waits`: woken when the last send completes;
    /// otherwise only by a short or failed one (a whole send completes unseen, and its bytes
    /// are counted at the next poll or when this is dropped).
    fn poll_written(
        &mut self,
        cx: &mut Context<'_>,
        ring: &Arc<Ring>,
        to: RawFd,
        waits: bool,
    ) -> Poll<io::Result<()>> {
        loop {
            let Poll::Ready(done) = self.send.poll_completion(cx, waits) else {
                return Poll::Pending;
            };
            match done.result {
                0 => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "peer stopped reading",
                    )));
                }
                n @ 1.. => {
                    self.at += n as usize;
                    self.count(n as u64);
                }
                e if matches!(-e, libc::EINTR | libc::EAGAIN) => {}
                e => return Poll::Ready(Err(io::Error::from_raw_os_error(-e))),
            }
            if self.at >= self.len {
                return Poll::Ready(Ok(()));
            }
            let Some(buf) = done.held else {
                return Poll::Ready(Err(io::Error::other("io_uring send lost its buffer")));
            };
            self.send = ring.send(to, buf, self.at, self.len - self.at);
        }
    }
}

impl Writing<'_> {
    fn count(&self, sent: u64) {
        self.carried.fetch_add(sent, Ordering::Relaxed);
        SENT.fetch_add(sent, Ordering::Relaxed);
    }
}

impl Drop for Writing<'_> {
    /// A send that completed unseen still counts what it sent.
    fn drop(&mut self) {
        if let Some(n @ 1..) = self.send.result() {
            self.count(n as u64);
        }
    }
}

/// Waits for the last write, if there is one.
async fn written(ring: &Arc<Ring>, to: RawFd, writing: &mut Option<Writing<'_>>) -> io::Result<()> {
    if let Some(write) = writing.as_mut() {
        poll_fn(|cx| write.poll_written(cx, ring, to, true)).await?;
    }
    *writing = None;
    Ok(())
}

/// One direction through `ring`, until `from` ends (then the FIN is passed on) or fails: as
/// [`super::relay::direction`], with reads and writes queued on the ring.
///
/// While the next read waits, the last write is watched, not waited for: a write that goes
/// whole, as most do inside the `io_uring_enter` that submitted it, wakes nobody, and the
/// direction wakes once per message, for its read. A short or failed write wakes it, and the
/// rest is sent at once (the source may have nothing more to send). A write is waited for when
/// the next bytes must follow it (or the FIN, or a splice).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn holds each argument twice"
)]
pub(crate) fn direction<'a>(
    ring: &'a Arc<Ring>,
    from: &'a TcpStream,
    to: &'a TcpStream,
    carried: &'a AtomicU64,
    touched: &'a impl Fn(),
    ended: &'a AtomicBool,
) -> impl Future<Output = io::Result<()>> + 'a {
    async move {
        let (source, sink) = (from.as_raw_fd(), to.as_raw_fd());
        let mut next = ring.recv(source);
        let mut writing: Option<Writing<'_>> = None;
        loop {
            let done = poll_fn(|cx| {
                if let Some(write) = writing.as_mut()
                    && write.poll_written(cx, ring, sink, false)?.is_ready()
                {
                    writing = None;
                }
                next.poll_completion(cx, true).map(Ok::<_, io::Error>)
            })
            .await?;
            let (buf, n) = match read(ring, done)? {
                Read::Bytes(buf, n) => (buf, n),
                Read::End => {
                    written(ring, sink, &mut writing).await?;
                    return pass_fin(to, ended);
                }
                Read::NoBuffer => {
                    // Buffers are on their way to the group (another read grew it, or one came
                    // back), or it grows now.
                    let grown = {
                        let mut state = ring.lock();
                        state.in_group > 0 || state.grow()
                    };
                    if !grown {
                        ring.buffer_back().await;
                    }
                    next = ring.recv(source);
                    continue;
                }
            };
            // These bytes go after the last ones: two buffers at most, one written and one read.
            written(ring, sink, &mut writing).await?;
            touched();
            let mut write = Writing::start(ring, sink, buf, n, carried);
            if n < SIZE {
                next = ring.recv(source);
                writing = Some(write);
                continue;
            }
            poll_fn(|cx| write.poll_written(cx, ring, sink, true)).await?;
            drop(write);
            if splice_while_bulk(from, to, carried, touched, ended).await? {
                return Ok(());
            }
            next = ring.recv(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::relay::{End, relay};
    use crate::proxy::{Limits, RelayMethod};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Both ends of a loopback connection.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (near, listener.accept().await.unwrap().0)
    }

    const LIMITS: Limits = Limits {
        max_connections: 1,
        relay: RelayMethod::Uring,
        idle_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(1),
    };

    /// Client and backend through a relay: `rounds` small requests, each answered, then a 1 MiB
    /// upload after which the backend answers once more, then both close. Answers the relay's
    /// end and its counts.
    async fn exchange(rounds: usize) -> (End, u64, u64) {
        let (mut client, near, far, mut backend) = sockets(false).await;
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let counts = (&up, &down);
        // The connection closes both sockets after the relay: the last FIN goes with the close.
        let relaying = async move {
            let end = relay(&near, &far, LIMITS, counts.0, counts.1).await;
            drop((near, far));
            end
        };
        let talk = async {
            let mut buf = vec![0u8; 1 << 20];
            for i in 0..rounds {
                let ask = format!("request {i:05}");
                client.write_all(ask.as_bytes()).await.unwrap();
                backend.read_exact(&mut buf[..ask.len()]).await.unwrap();
                assert_eq!(&buf[..ask.len()], ask.as_bytes());
                backend.write_all(b"answer").await.unwrap();
                client.read_exact(&mut buf[..6]).await.unwrap();
                assert_eq!(&buf[..6], b"answer");
            }
            let bulk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
            let (sent, got) = tokio::join!(client.write_all(&bulk), async {
                backend.read_exact(&mut buf).await.unwrap();
                buf == bulk
            });
            sent.unwrap();
            assert!(got, "the upload changed on the way");
            client.shutdown().await.unwrap();
            assert_eq!(
                backend.read(&mut buf).await.unwrap(),
                0,
                "the FIN passed on"
            );
            backend.write_all(b"after the half-close").await.unwrap();
            backend.shutdown().await.unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"after the half-close");
        };
        let (end, ()) = tokio::join!(relaying, talk);
        (end, up.into_inner(), down.into_inner())
    }

    impl State {
        /// Buffers allocated, each in the group or out of it.
        fn allocated(&self) -> usize {
            let allocated = self.buffers.iter().flatten().count();
            assert_eq!(allocated, self.in_group + self.out);
            allocated
        }
    }

    /// Slots in use, operations in the kernel and buffers out of the group, once the ring's
    /// driver had its turn.
    async fn left(ring: &Ring) -> (usize, usize, usize) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let state = ring.lock();
        let used = state.ops.iter().filter(|s| s.is_some()).count();
        (used, state.in_kernel, state.out)
    }

    /// Runs `test` on this thread, with its ring; skipped, and said, where the kernel refuses
    /// io_uring.
    fn on_ring(test: impl Future<Output = ()>) {
        if refused() {
            return;
        }
        runtime().block_on(test);
    }

    /// A client and a backend with the relay's two sockets between them: `near` towards the
    /// client, `far` towards the backend; with `narrow`, the backend's way is [`narrow`].
    async fn sockets(narrow: bool) -> (TcpStream, TcpStream, TcpStream, TcpStream) {
        let (client, near) = pair().await;
        let (far, backend) = if narrow {
            self::narrow().await
        } else {
            pair().await
        };
        (client, near, far, backend)
    }

    /// Whether the kernel refuses a ring here, said where the test output shows it.
    fn refused() -> bool {
        let refusal = open().err();
        if let Some(e) = &refusal {
            eprintln!("SKIPPED: io_uring refused by the kernel: {e}");
        }
        refusal.is_some()
    }

    #[test]
    fn messages_go_through_the_ring_and_every_slot_and_buffer_comes_back() {
        on_ring(async {
            let (end, up, down) = exchange(300).await;
            assert!(matches!(end, End::Closed), "{end:?}");
            assert_eq!(up, 300 * 13 + (1 << 20));
            assert_eq!(down, 300 * 6 + 20);
            let ring = ring().expect("a ring on this thread");
            assert_eq!(left(&ring).await, (0, 0, 0));
            assert_eq!(
                ring.lock().allocated(),
                GROW,
                "one read at a time needs no more"
            );
        });
    }

    /// `pairs` clients and backends, each pair through a relay task of its own that answers
    /// its end and its counts.
    async fn relayed(pairs: usize) -> (Vec<(TcpStream, TcpStream)>, Vec<Relayed>) {
        let mut ends = Vec::new();
        let mut relays = Vec::new();
        for _ in 0..pairs {
            let (client, near, far, backend) = sockets(false).await;
            relays.push(tokio::spawn(async move {
                let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
                let end = relay(&near, &far, LIMITS, &up, &down).await;
                (end, up.into_inner(), down.into_inner())
            }));
            ends.push((client, backend));
        }
        (ends, relays)
    }

    type Relayed = tokio::task::JoinHandle<(End, u64, u64)>;

    #[test]
    fn reads_past_the_group_grow_it_and_a_quiet_ring_keeps_only_a_few() {
        const PAIRS: usize = 100;
        on_ring(async {
            let (mut ends, relays) = relayed(PAIRS).await;
            // Every client writes before any relay runs: their first reads all find bytes, and
            // the group has far fewer buffers than that.
            for (i, (client, _)) in ends.iter_mut().enumerate() {
                client.write_all(&[i as u8; 4096]).await.unwrap();
            }
            for (i, (client, backend)) in ends.iter_mut().enumerate() {
                let mut got = [0u8; 4096];
                backend.read_exact(&mut got).await.unwrap();
                assert!(got.iter().all(|&b| b == i as u8), "pair {i}");
                client.shutdown().await.unwrap();
                backend.shutdown().await.unwrap();
            }
            for relay in relays {
                let (end, up, down) = relay.await.unwrap();
                assert!(matches!(end, End::Closed), "{end:?}");
                assert_eq!((up, down), (4096, 0));
            }
            let ring = ring().expect("a ring on this thread");
            assert_eq!(left(&ring).await, (0, 0, 0));
            let state = ring.lock();
            assert!(state.buffers.len() > GROW, "the group never grew");
            assert!(
                state.allocated() <= KEPT + GROW,
                "{} buffers kept",
                state.allocated()
            );
        });
    }

    #[test]
    fn a_dropped_relay_cancels_its_reads_and_frees_their_slots() {
        on_ring(async {
            let (mut client, near, far, mut backend) = sockets(false).await;
            let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
            let relaying = relay(&near, &far, LIMITS, &up, &down);
            // One message through, then the relay is dropped with both reads waiting, as an
            // aborted task drops it.
            let cut = tokio::time::timeout(Duration::from_millis(100), async {
                let talk = async {
                    client.write_all(b"hello").await.unwrap();
                    let mut buf = [0u8; 5];
                    backend.read_exact(&mut buf).await.unwrap();
                };
                tokio::join!(relaying, talk)
            })
            .await;
            assert!(cut.is_err(), "the relay ended by itself");
            let ring = ring().expect("a ring on this thread");
            assert_eq!(left(&ring).await, (0, 0, 0));
            // The sockets are the connection's again: closing them closes the connection.
            drop((near, far));
            let mut buf = [0u8; 1];
            assert_eq!(client.read(&mut buf).await.unwrap(), 0);
            assert_eq!(backend.read(&mut buf).await.unwrap(), 0);
            assert_eq!(up.into_inner(), 5);
        });
    }

    /// A connection towards a backend that reads nothing yet, with small queues on the way (set
    /// before the handshake, so the advertised window is small too): a send into it completes
    /// short.
    async fn narrow() -> (TcpStream, TcpStream) {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        let any: core::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(8).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener.into()).unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let far = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (far, listener.accept().await.unwrap().0)
    }

    #[test]
    fn the_rest_of_a_short_send_goes_on_without_more_input() {
        on_ring(async {
            let (mut client, near, far, mut backend) = sockets(true).await;
            let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
            let relaying = relay(&near, &far, LIMITS, &up, &down);
            let message: Vec<u8> = (0..12_000).map(|i| (i % 251) as u8).collect();
            let talk = async {
                client.write_all(&message).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                // The client now waits for an answer, and sends nothing more: the backend reads.
                let mut bytes = vec![0u8; message.len()];
                let read = backend.read_exact(&mut bytes);
                let read = tokio::time::timeout(Duration::from_secs(3), read).await;
                // The last send's completion reaped, unseen: counted when the relay ends.
                tokio::time::sleep(Duration::from_millis(50)).await;
                read.map(|_| bytes)
            };
            tokio::select! {
                _ = relaying => panic!("the relay ended"),
                got = talk => {
                    let got = got.expect("the rest of the message never reached the backend");
                    assert!(got == message, "the message changed on the way");
                }
            }
            assert_eq!(up.load(Ordering::Relaxed), 12_000);
        });
    }

    #[test]
    fn bytes_are_counted_as_sends_complete_not_as_they_are_handed_over() {
        on_ring(async {
            let (mut client, near, far, mut backend) = sockets(true).await;
            let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
            let limits = Limits {
                idle_timeout: Duration::from_millis(300),
                ..LIMITS
            };
            // More than the narrow way holds: the backend reads nothing until the relay ended.
            client.write_all(&[5u8; 16_000]).await.unwrap();
            let end = relay(&near, &far, limits, &up, &down).await;
            assert!(matches!(end, End::Idle), "{end:?}");
            // The waiting send is cancelled before the backend reads.
            assert_eq!(left(&ring().unwrap()).await, (0, 0, 0));
            drop((near, far));
            let mut got = Vec::new();
            backend.read_to_end(&mut got).await.unwrap();
            assert!(got.len() < 16_000, "the narrow way took it all");
            assert_eq!(up.into_inner(), got.len() as u64, "counted, not delivered");
        });
    }

    #[test]
    fn idle_connections_hold_no_buffer_and_a_quiet_ring_keeps_only_a_few() {
        const PAIRS: usize = 200;
        on_ring(async {
            let (mut ends, relays) = relayed(PAIRS).await;
            // One exchange each way, then every connection waits.
            for (client, backend) in &mut ends {
                client.write_all(b"request").await.unwrap();
                let mut got = [0u8; 7];
                backend.read_exact(&mut got).await.unwrap();
                backend.write_all(b"answer!").await.unwrap();
                client.read_exact(&mut got).await.unwrap();
            }
            let ring = ring().expect("a ring on this thread");
            let (_, in_kernel, out) = left(&ring).await;
            assert_eq!(out, 0, "idle connections hold buffers");
            assert_eq!(in_kernel, 2 * PAIRS, "a read waiting per direction");
            for (client, backend) in &mut ends {
                client.shutdown().await.unwrap();
                backend.shutdown().await.unwrap();
            }
            for relay in relays {
                let (end, up, down) = relay.await.unwrap();
                assert!(matches!(end, End::Closed), "{end:?}");
                assert_eq!((up, down), (7, 7));
            }
            assert_eq!(left(&ring).await, (0, 0, 0));
            let state = ring.lock();
            assert!(
                state.allocated() <= KEPT,
                "{} buffers kept",
                state.allocated()
            );
            assert_eq!(state.ops.capacity(), 0, "slots kept");
        });
    }

    /// Runs `test` on a thread of its own (the refused submits are per thread), failing if it
    /// does not end within 10 s.
    fn within_10_s(test: impl FnOnce() + Send + 'static) {
        let (done, ended) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            test();
            let _ = done.send(());
        });
        match ended.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => thread.join().unwrap(),
            // The test panicked: its message is the thread's.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => thread.join().unwrap(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("stuck"),
        }
    }

    #[test]
    fn entries_a_refused_submit_left_go_at_the_next_turn() {
        within_10_s(|| {
            on_ring(async {
                let (mut client, near, far, mut backend) = sockets(false).await;
                let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
                let relaying = relay(&near, &far, LIMITS, &up, &down);
                // The submit of the relay's first reads is refused; nothing else is queued.
                REFUSE_SUBMITS.set(1);
                let talk = async {
                    client.write_all(b"hello").await.unwrap();
                    let mut got = [0u8; 5];
                    let read = backend.read_exact(&mut got);
                    tokio::time::timeout(Duration::from_secs(3), read).await
                };
                tokio::select! {
                    _ = relaying => panic!("the relay ended"),
                    got = talk => assert!(got.is_ok(), "the first bytes never went through"),
                }
                assert_eq!(REFUSE_SUBMITS.get(), 0);
            });
        });
    }

    #[test]
    fn a_full_queue_the_kernel_refuses_waits_for_the_next_turn_without_spinning() {
        // More reads than the submission queue holds.
        const PAIRS: usize = ENTRIES as usize;
        within_10_s(|| {
            on_ring(async {
                // Every submit is refused for a while: the relays' reads wait, and nothing
                // spins holding the ring.
                REFUSE_SUBMITS.set(usize::MAX);
                let (mut ends, relays) = relayed(PAIRS).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                REFUSE_SUBMITS.set(0);
                for (client, backend) in &mut ends {
                    client.write_all(b"request").await.unwrap();
                    let mut got = [0u8; 7];
                    backend.read_exact(&mut got).await.unwrap();
                    client.shutdown().await.unwrap();
                    backend.shutdown().await.unwrap();
                }
                for relay in relays {
                    let (end, up, down) = relay.await.unwrap();
                    assert!(matches!(end, End::Closed), "{end:?}");
                    assert_eq!((up, down), (7, 0));
                }
                assert_eq!(left(&ring().unwrap()).await, (0, 0, 0));
            });
        });
    }

    #[test]
    fn a_refused_ring_is_said_once_and_the_relay_splices() {
        // A thread of its own: the refusal is remembered per thread.
        std::thread::spawn(|| {
            REFUSE.set(Some(libc::EPERM));
            runtime().block_on(async {
                assert!(ring().is_none());
                let (end, up, down) = exchange(20).await;
                assert!(matches!(end, End::Closed), "{end:?}");
                assert_eq!((up, down), (20 * 13 + (1 << 20), 20 * 6 + 20));
                assert!(ring().is_none());
            });
            // Asked once; the connections after it splice without asking again.
            assert_eq!(OPENED.get(), 1);
            assert!(WARNED.load(Ordering::Relaxed));
        })
        .join()
        .unwrap();
    }
}
