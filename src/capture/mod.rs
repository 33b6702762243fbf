//! `capture`: packets of one device of a node, read from an AF_PACKET socket opened inside the
//! node, written as pcap (for tcpdump and Wireshark) or summarised one line per packet. The
//! filter language is described in `filter`.

pub mod decode;
pub mod filter;
pub mod pcap;

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use decode::Decoded;
pub use filter::Filter;

use crate::error::{Error, Result};
use crate::inspect::RunningLab;
use crate::probe::ns;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// An open capture on one device.
pub struct Capture {
    fd: OwnedFd,
    /// pcap link type of the device (Ethernet, or raw IP for devices without a link layer).
    pub linktype: u32,
    pub node: String,
    pub iface: String,
    buf: Vec<u8>,
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Time since the Unix epoch (the kernel's receive timestamp).
    pub ts: Duration,
    pub data: Vec<u8>,
    /// Length on the wire (data may be shorter).
    pub len: usize,
    /// Sent by the device (rather than received).
    pub outgoing: bool,
}

/// When to stop and what to keep.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// Stop after this many matching packets.
    pub count: Option<usize>,
    pub filter: Option<Filter>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// What a capture saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureStats {
    pub seen: usize,
    pub matched: usize,
}

fn open_here(iface: &str) -> io::Result<(OwnedFd, u32)> {
    let name = CString::new(iface).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no device {iface}")));
    }
    // Protocol 0: nothing is queued until the socket is bound to the one device.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = index as i32;
    if unsafe { libc::bind(fd.as_raw_fd(), &sll as *const _ as *const libc::sockaddr, size_of::<libc::sockaddr_ll>() as u32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let one: libc::c_int = 1;
    unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one as *const _ as *const libc::c_void, size_of::<libc::c_int>() as u32)
    };
    let buf: libc::c_int = 4 << 20;
    unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf as *const _ as *const libc::c_void, size_of::<libc::c_int>() as u32)
    };
    // The device's hardware type decides the link layer of the capture.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (i, b) in iface.bytes().take(15).enumerate() {
        ifr.ifr_name[i] = b as libc::c_char;
    }
    let hatype =
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) } == 0 { unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family } } else { ARPHRD_ETHER };
    let linktype = match hatype {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => pcap::LINKTYPE_ETHERNET,
        _ => pcap::LINKTYPE_RAW,
    };
    Ok((fd, linktype))
}

impl Capture {
    /// Opens a capture on `iface` of `node` (the socket is created inside the node).
    pub fn open(rl: &RunningLab, node: &str, iface: &str) -> Result<Capture> {
        let fd = rl.fd(node)?;
        let name = iface.to_string();
        let (fd, linktype) = ns::in_one(Some(fd), move || open_here(&name)).and_then(|r| r).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::io(format!("capture on {node}:{iface}"), io::Error::new(e.kind(), format!("node {node} has no device {iface}")))
            } else {
                Error::io(format!("capture on {node}:{iface}"), e)
            }
        })?;
        Ok(Capture { fd, linktype, node: node.into(), iface: iface.into(), buf: vec![0u8; 262_144] })
    }

    /// The next packet, or `None` when nothing came within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Packet>> {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let rc = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(e) };
        }
        if rc == 0 {
            return Ok(None);
        }
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        let mut ctrl = [0u64; 16];
        let mut iov = libc::iovec { iov_base: self.buf.as_mut_ptr() as *mut libc::c_void, iov_len: self.buf.len() };
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = &mut sll as *mut _ as *mut libc::c_void;
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&ctrl);
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC | libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) { Ok(None) } else { Err(e) };
        }
        let len = n as usize;
        let got = len.min(self.buf.len());
        let mut ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut cm = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cm.is_null() {
            let c = unsafe { &*cm };
            if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
                let t = unsafe { &*(libc::CMSG_DATA(cm) as *const libc::timespec) };
                ts = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
            }
            cm = unsafe { libc::CMSG_NXTHDR(&msg, cm) };
        }
        Ok(Some(Packet { ts, data: self.buf[..got].to_vec(), len, outgoing: sll.sll_pkttype == PACKET_OUTGOING }))
    }

    /// Reads packets until the count or the duration is reached, calling `on` for each match.
    pub fn run(&mut self, opts: &CaptureOptions, mut on: impl FnMut(&Packet, &Decoded) -> io::Result<()>) -> io::Result<CaptureStats> {
        let started = Instant::now();
        let mut st = CaptureStats::default();
        loop {
            if opts.count.is_some_and(|c| st.matched >= c) {
                break;
            }
            let left = match opts.duration {
                Some(d) => match d.checked_sub(started.elapsed()) {
                    Some(l) => l.min(Duration::from_millis(200)),
                    None => break,
                },
                None => Duration::from_millis(200),
            };
            let Some(p) = self.next(left)? else { continue };
            st.seen += 1;
            let d = decode::decode(self.linktype, &p.data);
            if opts.filter.as_ref().is_none_or(|f| f.matches(&d)) {
                st.matched += 1;
                on(&p, &d)?;
            }
        }
        Ok(st)
    }
}

/// One line per packet, tcpdump-like: `12:00:01.000123 eth0 Out IP 10.0.0.1 > 10.0.0.2: ICMP ...`.
pub fn summary(iface: &str, p: &Packet, d: &Decoded) -> String {
    let secs = p.ts.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let dir = if p.outgoing { "Out" } else { "In " };
    format!("{h:02}:{m:02}:{s:02}.{:06} {iface} {dir} {}", p.ts.subsec_micros(), d.info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let f = decode::tests::icmp_frame([10, 0, 0, 1], [10, 0, 0, 2]);
        let p = Packet { ts: Duration::new(3600 * 5 + 61, 1_000), len: f.len(), data: f, outgoing: true };
        let d = decode::decode(1, &p.data);
        assert_eq!(summary("eth0", &p, &d), "05:01:01.000001 eth0 Out IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 10");
    }
}
