//! TCP and UDP port probes, from a socket opened inside the source node, and the listeners a
//! check starts inside the destination node when nothing listens there yet (a TCP listener
//! completes handshakes in the kernel; the UDP one answers each datagram).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ns;
use crate::model::expect::Proto;

/// What a port probe saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "seen", rename_all = "kebab-case")]
pub enum PortOutcome {
    /// TCP handshake completed / UDP answer received.
    Open,
    /// TCP reset or ICMP port unreachable.
    Refused,
    /// ICMP host/net unreachable, or no route at the source (`why`).
    Unreachable {
        why: String,
    },
    /// Nothing came back in time (dropped on the way).
    Timeout,
    /// UDP without a listener of ours: no answer but no refusal either.
    NoAnswer,
    Error {
        why: String,
    },
}

impl PortOutcome {
    pub fn text(&self) -> String {
        match self {
            PortOutcome::Open => "open".into(),
            PortOutcome::Refused => "refused".into(),
            PortOutcome::Unreachable { why } => format!("unreachable ({why})"),
            PortOutcome::Timeout => "timeout".into(),
            PortOutcome::NoAnswer => "no answer (open or filtered)".into(),
            PortOutcome::Error { why } => format!("error: {why}"),
        }
    }
}

/// What an error the probe's own call returned means (connect's route lookup, the first send):
/// the packet never left the node.
fn errno_outcome(errno: i32) -> PortOutcome {
    match errno {
        libc::ECONNREFUSED => PortOutcome::Refused,
        libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EACCES | libc::EPERM => PortOutcome::Unreachable { why: super::echo::local_error_text(errno) },
        libc::ETIMEDOUT => PortOutcome::Timeout,
        e => PortOutcome::Error { why: io::Error::from_raw_os_error(e).to_string() },
    }
}

/// What an error that came back later means (TCP's SO_ERROR, a UDP receive or a later send):
/// the packet left, and an ICMP error answered it, or the next hop never answered ARP/NDP
/// (the kernel then reports "host unreachable" to itself). Not a missing route: that fails
/// the call itself.
fn later_outcome(errno: i32) -> PortOutcome {
    match errno {
        libc::EHOSTUNREACH | libc::ENETUNREACH => PortOutcome::Unreachable { why: later_error_text(errno) },
        e => errno_outcome(e),
    }
}

/// Words for an unreachable error that came back after the packet left.
pub fn later_error_text(errno: i32) -> String {
    match errno {
        libc::EHOSTUNREACH => "host unreachable: an ICMP error on the way (a router, or a firewall's reject), or no ARP/NDP answer for the next hop".into(),
        libc::ENETUNREACH => "network unreachable: an ICMP error from a router on the way".into(),
        e => super::echo::local_error_text(e),
    }
}

fn socket(addr: &IpAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let dom = if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    let fd = unsafe { libc::socket(dom, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(sa: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    match sa {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn poll1(fd: &OwnedFd, events: i16, timeout: Duration) -> io::Result<i16> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(if rc == 0 { 0 } else { p.revents });
    }
}

fn so_error(fd: &OwnedFd) -> i32 {
    let mut v: libc::c_int = 0;
    let mut l = size_of::<libc::c_int>() as libc::socklen_t;
    unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR, &mut v as *mut _ as *mut libc::c_void, &mut l) };
    v
}

/// Probes `dst` from the calling thread's namespace.
pub fn probe_here(proto: Proto, dst: SocketAddr, timeout: Duration) -> PortOutcome {
    let r = match proto {
        Proto::Tcp => tcp(dst, timeout),
        Proto::Udp => udp(dst, timeout),
    };
    r.unwrap_or_else(|e| PortOutcome::Error { why: e.to_string() })
}

fn tcp(dst: SocketAddr, timeout: Duration) -> io::Result<PortOutcome> {
    let fd = socket(&dst.ip(), libc::SOCK_STREAM)?;
    let (sa, len) = sockaddr(&dst);
    let rc = unsafe { libc::connect(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len) };
    if rc == 0 {
        return Ok(PortOutcome::Open);
    }
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    if e != libc::EINPROGRESS {
        return Ok(errno_outcome(e));
    }
    let rev = poll1(&fd, libc::POLLOUT, timeout)?;
    if rev == 0 {
        return Ok(PortOutcome::Timeout);
    }
    Ok(match so_error(&fd) {
        0 => PortOutcome::Open,
        e => later_outcome(e),
    })
}

/// The datagram a UDP probe sends; our listener answers it.
pub const UDP_PROBE: &[u8] = b"vnet-check udp probe";

fn udp(dst: SocketAddr, timeout: Duration) -> io::Result<PortOutcome> {
    let fd = socket(&dst.ip(), libc::SOCK_DGRAM)?;
    let (sa, len) = sockaddr(&dst);
    if unsafe { libc::connect(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len) } != 0 {
        return Ok(errno_outcome(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)));
    }
    // A few tries within the timeout: one datagram may wait for neighbour resolution.
    let tries = 3u32;
    for k in 0..tries {
        let rc = unsafe { libc::send(fd.as_raw_fd(), UDP_PROBE.as_ptr() as *const libc::c_void, UDP_PROBE.len(), 0) };
        if rc < 0 {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
            // A later send also reports an ICMP error an earlier datagram drew.
            return Ok(if k == 0 { errno_outcome(e) } else { later_outcome(e) });
        }
        let rev = poll1(&fd, libc::POLLIN, timeout / tries)?;
        if rev == 0 {
            continue;
        }
        let mut buf = [0u8; 512];
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n >= 0 {
            return Ok(PortOutcome::Open);
        }
        return Ok(later_outcome(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)));
    }
    Ok(PortOutcome::Timeout)
}

/// A listener a check started; closed on drop.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _fd: Option<Arc<OwnedFd>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The result of trying to listen.
pub enum Listen {
    /// Started by us.
    Started(Listener),
    /// Something already listens there: the probe tests it.
    InUse,
}

/// Starts a listener on `addr` inside namespace `netns`.
pub fn listen(netns: Option<&OwnedFd>, proto: Proto, addr: SocketAddr) -> io::Result<Listen> {
    let fd = ns::in_one(netns, move || -> io::Result<OwnedFd> {
        let ty = if proto == Proto::Tcp { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
        let fd = socket(&addr.ip(), ty)?;
        let one: libc::c_int = 1;
        unsafe {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &one as *const _ as *const libc::c_void, size_of::<libc::c_int>() as u32);
            if addr.is_ipv6() {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    &one as *const _ as *const libc::c_void,
                    size_of::<libc::c_int>() as u32,
                );
            }
        }
        let (sa, len) = sockaddr(&addr);
        if unsafe { libc::bind(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if proto == Proto::Tcp && unsafe { libc::listen(fd.as_raw_fd(), 128) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    })?;
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => return Ok(Listen::InUse),
        Err(e) => return Err(e),
    };
    let fd = Arc::new(fd);
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, f2) = (stop.clone(), fd.clone());
    // TCP: accept and close what arrives (the kernel already completed the handshake).
    // UDP: answer every datagram.
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s2.load(Ordering::Relaxed) {
            if poll1(&f2, libc::POLLIN, Duration::from_millis(50)).unwrap_or(0) == 0 {
                continue;
            }
            if proto == Proto::Tcp {
                let c = unsafe { libc::accept4(f2.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
                if c >= 0 {
                    drop(unsafe { OwnedFd::from_raw_fd(c) });
                }
            } else {
                let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
                let mut sl = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                let n = unsafe {
                    libc::recvfrom(
                        f2.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        libc::MSG_DONTWAIT,
                        &mut ss as *mut _ as *mut libc::sockaddr,
                        &mut sl,
                    )
                };
                if n >= 0 {
                    unsafe {
                        libc::sendto(
                            f2.as_raw_fd(),
                            buf.as_ptr() as *const libc::c_void,
                            n as usize,
                            libc::MSG_DONTWAIT,
                            &ss as *const _ as *const libc::sockaddr,
                            sl,
                        )
                    };
                }
            }
        }
    });
    Ok(Listen::Started(Listener { stop, thread: Some(thread), _fd: Some(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_that_came_back_is_not_called_a_missing_route() {
        // The call itself failed: the route lookup in the node.
        assert_eq!(errno_outcome(libc::ENETUNREACH).text(), "unreachable (no route (network unreachable))");
        assert_eq!(errno_outcome(libc::EHOSTUNREACH).text(), "unreachable (no route (host unreachable))");
        // It came back later: an ICMP error (a reject, a router) or a next hop that never answered.
        let host = later_outcome(libc::EHOSTUNREACH).text();
        assert!(host.starts_with("unreachable (host unreachable: an ICMP error on the way") && !host.contains("no route"), "{host}");
        assert_eq!(later_outcome(libc::ENETUNREACH).text(), "unreachable (network unreachable: an ICMP error from a router on the way)");
        assert_eq!(later_outcome(libc::ECONNREFUSED), PortOutcome::Refused);
        assert_eq!(later_outcome(libc::ETIMEDOUT), PortOutcome::Timeout);
    }
}
