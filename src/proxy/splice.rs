//! Linux `splice(2)`: bytes move socket → pipe → socket inside the kernel, never copied into
//! this process. Each direction owns one pipe; readiness comes from tokio.
// Pipes and splice are system calls std does not wrap: each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes asked of one splice call; the pipe is sized to hold them.
const CHUNK: usize = 64 * 1024;

/// A pipe that is closed when dropped.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure only leaves the default size.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(Pipe { read, write })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors and null offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            core::ptr::null_mut(),
            to,
            core::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Moves bytes from `from` to `to` while the transfer is bulk: answers `true` when `from` ended
/// (the FIN passed on), `false` when a read brought less than `slow` bytes, so the caller goes
/// back to copying and the pipe is closed (an idle keep-alive connection holds no pipe).
/// `touched` is called after each chunk (the idle timer).
pub(crate) async fn copy(
    from: &TcpStream,
    to: &TcpStream,
    slow: usize,
    carried: &core::sync::atomic::AtomicU64,
    touched: impl Fn(),
    ended: &core::sync::atomic::AtomicBool,
) -> io::Result<bool> {
    let pipe = Pipe::new()?;
    loop {
        super::relay::readable(from).await?;
        let n = match from.try_io(Interest::READABLE, || {
            splice(from.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK)
        }) {
            Ok(0) => return super::relay::pass_fin(to, ended).map(|()| true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            super::relay::writable(to).await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), to.as_raw_fd(), left)
            }) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "peer stopped reading",
                    ));
                }
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        carried.fetch_add(n as u64, core::sync::atomic::Ordering::Relaxed);
        touched();
        if n < slow {
            return Ok(false);
        }
    }
}
