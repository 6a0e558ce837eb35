//! Listening sockets. IPv6 addresses are bound IPv6-only, so `0.0.0.0:443` and `[::]:443` can
//! both be listed (as an operator expects), and IPv4 clients never appear v4-mapped.

use core::net::SocketAddr;
use std::io;
use std::net::TcpListener;

use socket2::{Domain, Socket, Type};

/// How many connections the kernel may queue before they are accepted.
const BACKLOG: i32 = 1024;

fn bind(address: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(reuse_port)?;
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `count` sockets on `address` sharing its port through `SO_REUSEPORT` (the kernel spreads
/// new connections over them), or one socket when `count` is 1. Port 0 takes one free port
/// for all of them.
pub(crate) fn bind_group(address: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    if count <= 1 {
        return Ok(vec![bind(address, false)?]);
    }
    if address.port() != 0 {
        // A port another process listens on is an error, not a port silently shared with it:
        // a plain socket cannot join a SO_REUSEPORT group, so this bind fails where it must.
        drop(bind(address, false)?);
    }
    let first = bind(address, true)?;
    let address = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind(address, true)?);
    }
    Ok(group)
}
