//! The two socket calls the proxy needs that `std` does not offer (Linux): abort a TCP connection
//! with a reset (RST) whoever else holds its descriptor, and stop or restart listening on a bound
//! socket while keeping its port.
//!
//! Must not do anything else: no options, no I/O. Both work by `connect(AF_UNSPEC)` (the kernel's
//! `tcp_disconnect`) and `listen`, declared here as `node_env` declares `prctl`: the C library is
//! linked by `std` already, so no crate is added for three declarations.

use std::io;
use std::os::fd::AsRawFd;

/// `struct sockaddr` with `sa_family = AF_UNSPEC` (0): what `connect` takes to disconnect.
#[repr(C)]
struct SockAddr {
    family: u16,
    data: [u8; 14],
}

unsafe extern "C" {
    fn connect(fd: i32, addr: *const SockAddr, len: u32) -> i32;
    fn listen(fd: i32, backlog: i32) -> i32;
}

/// Disconnect the socket: an established connection is reset (the peer reads ECONNRESET, threads
/// blocked on it here wake with an error); a listening socket stops listening (new connects are
/// refused, queued ones reset) but keeps its port when it was bound to an explicit one.
pub(super) fn disconnect(sock: &impl AsRawFd) -> io::Result<()> {
    let addr = SockAddr {
        family: 0,
        data: [0; 14],
    };
    let len = std::mem::size_of::<SockAddr>() as u32;
    // SAFETY: `addr` is a valid, initialised sockaddr of `len` bytes that outlives the call; the
    // descriptor belongs to a live socket owned by the caller.
    let rc = unsafe { connect(sock.as_raw_fd(), &addr, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Listen again on a socket that [`disconnect`] stopped (same port).
pub(super) fn relisten(sock: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor the caller owns; no pointers.
    let rc = unsafe { listen(sock.as_raw_fd(), 128) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
