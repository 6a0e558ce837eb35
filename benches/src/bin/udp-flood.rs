//! UDP load for the namespace benches: sends fixed-size datagrams to one destination as fast as
//! `sendmmsg(2)` takes them, for a fixed time, and prints how many went out.
//!
//!     udp-flood DEST:PORT PAYLOAD_BYTES SECONDS [BATCH]
//!
//! With `UDP_FLOOD_RATE=PPS` in the environment it paces itself to that many datagrams a second
//! (the "equal load" rows, where translators are compared at the same offered rate). With
//! `UDP_FLOOD_FROM=ADDR:PORT` it sends from that address and port (to open a stateful NAT64's
//! mapping for a known port).
//!
//! Prints `sent=N seconds=S pps=P failed_calls=E`. A call the kernel refused (ENOBUFS when a queue
//! on the path is full; ECONNREFUSED, EHOSTUNREACH or ENETUNREACH reporting an ICMP error that came
//! back to the connected socket) counts as a failed call and sends nothing; the sender goes on.
//! std has no `sendmmsg`, hence libc.

#[cfg(target_os = "linux")]
fn main() {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 || args.len() > 5 {
        eprintln!("usage: udp-flood DEST:PORT PAYLOAD_BYTES SECONDS [BATCH]");
        std::process::exit(2);
    }
    let dest: SocketAddr = args[1].parse().expect("DEST:PORT");
    let payload: usize = args[2].parse().expect("PAYLOAD_BYTES");
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let batch: usize = args.get(4).map_or(64, |b| b.parse().expect("BATCH"));
    assert!(
        payload <= 65507 && (1..=1024).contains(&batch),
        "payload or batch out of range"
    );

    let local: SocketAddr = match std::env::var("UDP_FLOOD_FROM") {
        Ok(from) => from.parse().expect("UDP_FLOOD_FROM: ADDR:PORT"),
        Err(_) if dest.is_ipv4() => "0.0.0.0:0".parse().unwrap(),
        Err(_) => "[::]:0".parse().unwrap(),
    };
    let socket = UdpSocket::bind(local).expect("bind");
    socket.connect(dest).expect("connect");
    let fd = socket.as_raw_fd();
    let sndbuf: libc::c_int = 4 << 20;
    // SAFETY: fd is a live socket; the option value is a c_int of the stated size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const sndbuf).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }

    // Every message of a batch points at the same payload: the content does not matter.
    let mut data = vec![0u8; payload];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: payload,
    };
    let mut msgs: Vec<libc::mmsghdr> = (0..batch)
        .map(|_| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no control).
            let mut m: libc::mmsghdr = unsafe { core::mem::zeroed() };
            m.msg_hdr.msg_iov = &raw mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();

    let rate: Option<f64> = std::env::var("UDP_FLOOD_RATE")
        .ok()
        .map(|r| r.parse().expect("UDP_FLOOD_RATE: packets per second"));
    let run = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    while start.elapsed() < run {
        // SAFETY: msgs holds `batch` initialised headers whose iovec points at `data`, alive here.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), batch as libc::c_uint, 0) };
        if n >= 0 {
            sent += n as u64;
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64(sent as f64 / rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(
                libc::ENOBUFS
                | libc::EAGAIN
                | libc::EINTR
                | libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH,
            ) => failed += 1,
            _ => panic!("sendmmsg: {err}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent={sent} seconds={secs:.3} pps={:.0} failed_calls={failed}",
        sent as f64 / secs
    );
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("udp-flood needs Linux (sendmmsg)");
    std::process::exit(1);
}
