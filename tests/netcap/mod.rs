//! A small packet capture for tests: an AF_PACKET socket opened inside a node (so it sees that
//! node's devices), read for a while, IPv4 headers decoded.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// One captured IPv4 packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol (1 ICMP, 6 TCP, 17 UDP, 50 ESP).
    pub proto: u8,
    /// Bytes after the IP header.
    pub payload: Vec<u8>,
}

/// An open capture. Create it with `lab.node(N).run(Capture::open)`.
pub struct Capture {
    fd: OwnedFd,
}

impl Capture {
    /// Opens a raw socket for every protocol on every device of the calling thread's namespace.
    pub fn open() -> Capture {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as u32);
        }
        Capture { fd: unsafe { OwnedFd::from_raw_fd(fd) } }
    }

    /// Reads for `dur` and returns the IPv4 packets seen (incoming and outgoing).
    pub fn collect(&self, dur: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + dur;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            if let Some(p) = parse(&buf[..n as usize]) {
                out.push(p);
            }
        }
        out
    }
}

fn parse(f: &[u8]) -> Option<Packet> {
    if f.len() < 34 || f[12] != 0x08 || f[13] != 0x00 {
        return None;
    }
    let ip = &f[14..];
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || ip.len() < ihl {
        return None;
    }
    Some(Packet {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        proto: ip[9],
        payload: ip[ihl..].to_vec(),
    })
}
