//! The TUN device: one file descriptor per queue (`IFF_MULTI_QUEUE`), each packet behind a
//! `virtio_net_hdr` (`IFF_VNET_HDR`) so the kernel can hand over TCP super-packets and partial
//! checksums, the offloads negotiated, the MTU set and the link brought up.
//!
//! The system calls are here and nowhere else in the gateway, each `unsafe` block on a buffer
//! this module owns.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::GatewayError;

const TUN_PATH: &str = "/dev/net/tun";
const IFF_TUN: libc::c_short = 0x0001;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
// _IOW('T', 202, int), _IOW('T', 208, unsigned int) from uapi linux/if_tun.h.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

/// Offloads we accept on read, most first: the kernel refuses (EINVAL) a bit it does not know.
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;

/// Which offloads the device agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offloads {
    /// Partial checksums and TCP super-packets both ways (TSO4, TSO6, ECN).
    TcpSegmentation,
    /// Partial checksums only.
    Checksum,
    /// None: every packet arrives whole and checksummed.
    None,
}

/// The device's name, checked as the kernel will (at most 15 bytes, no '/', no whitespace).
pub(crate) fn check_name(name: &str) -> Result<(), GatewayError> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            // '%' asks the kernel to number the name ("nat%d"): the device would not be the one
            // named here.
            .any(|b| !b.is_ascii_graphic() || matches!(b, b'/' | b':' | b'%'));
    if bad {
        return Err(GatewayError::Device(format!(
            "{name:?} is not a network device name (1 to 15 bytes, printable ASCII without '/', ':', '%' or spaces)"
        )));
    }
    Ok(())
}

/// An existing interface of that name must be a multi-queue TUN: anything else would make the
/// kernel refuse with an errno that names no cause.
fn check_existing(name: &str) -> Result<(), GatewayError> {
    let dir = Path::new("/sys/class/net").join(name);
    if !dir.exists() {
        return Ok(());
    }
    let Ok(flags) = std::fs::read_to_string(dir.join("tun_flags")) else {
        return Err(GatewayError::Device(format!(
            "{name} exists and is not a TUN device: pick another name or delete it"
        )));
    };
    let flags = i64::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
    if flags & i64::from(IFF_TUN) == 0 {
        return Err(GatewayError::Device(format!(
            "{name} is a TAP device, not TUN: pick another name or delete it"
        )));
    }
    if flags & i64::from(IFF_MULTI_QUEUE) == 0 {
        return Err(GatewayError::Device(format!(
            "{name} is a single-queue TUN device: delete it, or create it with `ip tuntap add dev {name} mode tun multi_queue`"
        )));
    }
    Ok(())
}

/// Opens `queues` queues of the TUN device `name`, creating it if missing, and negotiates the
/// offloads. Every queue is a blocking descriptor.
pub(crate) fn open(name: &str, queues: usize) -> Result<(Vec<OwnedFd>, Offloads), GatewayError> {
    check_name(name)?;
    check_existing(name)?;
    let mut fds = Vec::with_capacity(queues);
    for _ in 0..queues {
        fds.push(attach(name)?);
    }
    let offloads = negotiate(&fds[0])?;
    Ok((fds, offloads))
}

fn attach(name: &str) -> Result<OwnedFd, GatewayError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => GatewayError::Device(format!(
                "{TUN_PATH} is missing: load the tun module (modprobe tun) or give the container the device"
            )),
            io::ErrorKind::PermissionDenied => GatewayError::Device(format!(
                "no permission to open {TUN_PATH}: run as root or with CAP_NET_ADMIN"
            )),
            _ => GatewayError::Device(format!("cannot open {TUN_PATH}: {e}")),
        })?;
    let fd = OwnedFd::from(file);
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(GatewayError::Device(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => format!(
                "no permission to create or attach to TUN device {name}: run as root or with CAP_NET_ADMIN"
            ),
            Some(libc::EBUSY) => format!("TUN device {name} is in use by another program"),
            Some(libc::EINVAL) => format!(
                "TUN device {name} exists with other settings (not multi-queue?): delete it or let the gateway create it"
            ),
            _ => format!("cannot attach to TUN device {name}: {e}"),
        }));
    }
    Ok(fd)
}

fn negotiate(fd: &OwnedFd) -> Result<Offloads, GatewayError> {
    let tries = [
        (
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
            Offloads::TcpSegmentation,
        ),
        (
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
            Offloads::TcpSegmentation,
        ),
        (TUN_F_CSUM, Offloads::Checksum),
        (0, Offloads::None),
    ];
    for (bits, what) in tries {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, bits as libc::c_ulong) };
        if r == 0 {
            return Ok(what);
        }
    }
    Err(GatewayError::Device(format!(
        "the TUN device refused every offload setting, even none: {}",
        io::Error::last_os_error()
    )))
}

/// Sets the MTU and brings the link up (both idempotent).
pub(crate) fn configure(name: &str, mtu: u16) -> Result<(), GatewayError> {
    let fail = |what: &str, e: io::Error| {
        GatewayError::Device(format!("cannot {what} of TUN device {name}: {e}"))
    };
    // SAFETY: a plain socket, owned at once.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(fail("open a control socket", io::Error::last_os_error()));
    }
    // SAFETY: `sock` is a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    // SAFETY: SIOCSIFMTU reads one `struct ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU as _, &mut req) } < 0 {
        return Err(fail("set the MTU", io::Error::last_os_error()));
    }
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFFLAGS fills one `struct ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(fail("read the flags", io::Error::last_os_error()));
    }
    // SAFETY: the kernel just wrote the flags member.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads one `struct ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) } < 0 {
        return Err(fail("bring up", io::Error::last_os_error()));
    }
    Ok(())
}

/// A `struct ifreq` naming `name` (checked: at most 15 bytes, so the NUL fits).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    req
}

/// The number of CPUs this process may run on: one queue, one worker each.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
