//! UDP receiver for the namespace benches: counts the datagrams and bytes that reach one socket.
//!
//!     udp-sink BIND:PORT SECONDS [--warmup S] [--wait S] [--poll-us US] [--pid PID]
//!
//! Waits up to `--wait` seconds (default 5) for the first datagram, drains for `--warmup` seconds
//! (default 1), then counts for SECONDS with `recvmmsg(2)` (std has none, hence libc).
//! By default a call blocks until a datagram is there. With `--poll-us` the socket is read without
//! blocking and the sink naps that long whenever it is empty: nobody waits on the socket, so the
//! sender's side delivers without waking the sink per packet, and the woken sink does not land on
//! (and share) the CPU of whoever delivered, a translator for example. With `--pid`
//! it also reads that process's utime+stime (all threads, /proc/PID/stat fields 14 and 15) at the
//! two ends of the counting window, so a translator's CPU time covers exactly the counted packets.
//! Prints one line: `packets=N bytes=B seconds=S pps=P rcvbuf_errors=E cpu_ticks=T clk_tck=HZ`,
//! where rcvbuf_errors is this network namespace's UDP+UDP6 RcvbufErrors over the window (datagrams
//! that arrived but found the socket buffer full) and cpu_ticks is -1 without `--pid`.

#[cfg(target_os = "linux")]
fn main() {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    const BATCH: usize = 64;
    const SLOT: usize = 2048;

    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: udp-sink BIND:PORT SECONDS [--warmup S] [--wait S] [--pid PID]");
        std::process::exit(2)
    };
    if args.len() < 3 {
        usage();
    }
    let bind: SocketAddr = args[1].parse().unwrap_or_else(|_| usage());
    let seconds: f64 = args[2].parse().unwrap_or_else(|_| usage());
    let (mut warmup, mut wait, mut pid, mut poll_us) = (1.0f64, 5.0f64, None::<u32>, 0u64);
    let mut rest = args[3..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--warmup" => warmup = value.parse().unwrap_or_else(|_| usage()),
            "--wait" => wait = value.parse().unwrap_or_else(|_| usage()),
            "--pid" => pid = Some(value.parse().unwrap_or_else(|_| usage())),
            "--poll-us" => poll_us = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }

    let socket = UdpSocket::bind(bind).expect("bind");
    let fd = socket.as_raw_fd();
    // A deep buffer so that the sink is not what drops: SO_RCVBUFFORCE (root) ignores rmem_max.
    let rcvbuf: libc::c_int = 64 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: fd is a live socket; the option value is a c_int of the stated size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&raw const rcvbuf).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
    // A short timeout so that the loop sees the clock even when nothing arrives.
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("SO_RCVTIMEO");

    let mut bufs = vec![0u8; BATCH * SLOT];
    let mut iovs: Vec<libc::iovec> = bufs
        .chunks_mut(SLOT)
        .map(|c| libc::iovec {
            iov_base: c.as_mut_ptr().cast(),
            iov_len: SLOT,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no control).
            let mut m: libc::mmsghdr = unsafe { core::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // One recvmmsg: the number of datagrams and their bytes; 0 on timeout.
    let mut receive = || -> (u64, u64) {
        // SAFETY: every header points at its own SLOT-byte iovec inside `bufs`, alive here.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                if poll_us > 0 {
                    libc::MSG_DONTWAIT
                } else {
                    libc::MSG_WAITFORONE
                },
                core::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => {
                    if poll_us > 0 {
                        std::thread::sleep(Duration::from_micros(poll_us));
                    }
                    return (0, 0);
                }
                _ => panic!("recvmmsg: {err}"),
            }
        }
        let n = n as usize;
        (
            n as u64,
            msgs[..n].iter().map(|m| u64::from(m.msg_len)).sum(),
        )
    };

    let first_deadline = Instant::now() + Duration::from_secs_f64(wait);
    while receive().0 == 0 {
        if Instant::now() >= first_deadline {
            println!("packets=0 bytes=0 seconds=0 pps=0 rcvbuf_errors=0 cpu_ticks=-1 clk_tck=0");
            eprintln!("udp-sink: nothing arrived on {bind} within {wait} s");
            std::process::exit(1);
        }
    }
    let warm_end = Instant::now() + Duration::from_secs_f64(warmup);
    while Instant::now() < warm_end {
        receive();
    }

    let cpu0 = pid.map(cpu_ticks);
    let drops0 = rcvbuf_errors();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (mut packets, mut bytes) = (0u64, 0u64);
    while Instant::now() < end {
        let (p, b) = receive();
        packets += p;
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (pid, cpu0) {
        (Some(p), Some(c0)) => cpu_ticks(p) as i64 - c0 as i64,
        _ => -1,
    };
    let drops = rcvbuf_errors() - drops0;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    println!(
        "packets={packets} bytes={bytes} seconds={secs:.3} pps={:.0} rcvbuf_errors={drops} \
         cpu_ticks={cpu} clk_tck={hz}",
        packets as f64 / secs
    );
}

/// utime + stime of a whole process (all its threads, dead ones included), in clock ticks.
#[cfg(target_os = "linux")]
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Field 2 (comm) may hold spaces: count from the last ')', after which field 3 begins.
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("tick count");
    field(14) + field(15)
}

/// This namespace's UDP and UDP6 RcvbufErrors (/proc/net is the reader's network namespace).
#[cfg(target_os = "linux")]
fn rcvbuf_errors() -> u64 {
    let mut total = 0;
    if let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") {
        let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp: ")).collect();
        if let [names, values] = udp[..] {
            let at = names.split_whitespace().position(|n| n == "RcvbufErrors");
            if let Some(v) = at.and_then(|i| values.split_whitespace().nth(i)) {
                total += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    if let Ok(snmp6) = std::fs::read_to_string("/proc/net/snmp6") {
        for line in snmp6.lines() {
            if let Some(v) = line.strip_prefix("Udp6RcvbufErrors") {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("udp-sink needs Linux (recvmmsg)");
    std::process::exit(1);
}
