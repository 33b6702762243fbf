//! An rtnetlink socket bound to one namespace, with batched requests: many messages go out in
//! one `sendmsg`, acknowledgements are matched back by sequence number, and the kernel's
//! extended-ack text is kept so errors say what the kernel said.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Largest batch put into one sendmsg (the socket's send buffer bounds it).
const CHUNK: usize = 96 * 1024;
/// Most requests in one sendmsg: bounds the work the kernel does after a failure in a write.
const CHUNK_MSGS: usize = 128;

/// An error the kernel returned for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    /// Positive errno.
    pub errno: i32,
    /// The kernel's extended-ack message, when it gave one.
    pub text: Option<String>,
}

impl KernelError {
    pub fn from_io(e: &io::Error) -> Self {
        KernelError { errno: e.raw_os_error().unwrap_or(libc::EIO), text: None }
    }
    /// `strerror` text for the errno.
    pub fn errno_text(&self) -> String {
        io::Error::from_raw_os_error(self.errno).to_string()
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = io::Error::from_raw_os_error(self.errno);
        let base = base.to_string();
        let base = base.split(" (os error").next().unwrap_or(&base);
        match &self.text {
            Some(t) if !t.is_empty() => write!(f, "{t} ({base})"),
            _ => write!(f, "{base}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// One request of a batch.
#[derive(Clone, Debug)]
pub struct Request {
    pub msg: RouteNetlinkMessage,
    /// Flags beside NLM_F_REQUEST | NLM_F_ACK (e.g. NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO).
    pub flags: u16,
    /// Goes out in the same write as the request before it, so that a kill cannot fall
    /// between them (a device and the message marking it as the lab's).
    pub glued: bool,
    /// When the kernel refuses this request, later writes of the batch are not sent (they
    /// would fail in cascade, each failed creation costing the kernel ~17 ms to undo); their
    /// replies are ECANCELED.
    pub stop_on_error: bool,
}

impl Request {
    pub fn new(msg: RouteNetlinkMessage, flags: u16) -> Self {
        Request { msg, flags, glued: false, stop_on_error: false }
    }

    /// Stops the batch after this request if it fails.
    pub fn stop_on_error(mut self) -> Self {
        self.stop_on_error = true;
        self
    }

    /// Keeps this request in the same write as the one before it.
    pub fn glued(mut self) -> Self {
        self.glued = true;
        self
    }
}

/// Replies to one request: the messages it produced (echo, GET answers) or the kernel's error.
pub type Reply = Result<Vec<RouteNetlinkMessage>, KernelError>;

/// A route netlink socket. Bound to the namespace of the thread that opened it, for its life.
/// Receive buffers are per thread, not per socket: a lab of a thousand namespaces holds a
/// thousand sockets.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

thread_local! {
    static RECV_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Best effort: older kernels lack some of these.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_netlink_get_strict_chk(true);
        let size: libc::c_int = 8 * 1024 * 1024;
        // SO_RCVBUFFORCE (root) lets a batch of thousands of acks queue without ENOBUFS.
        unsafe {
            let fd = sock.as_raw_fd();
            let p = &size as *const libc::c_int as *const libc::c_void;
            let l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, l) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, l);
            }
            let snd: libc::c_int = 1024 * 1024;
            let p = &snd as *const libc::c_int as *const libc::c_void;
            if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, p, l) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, p, l);
            }
        }
        Ok(Netlink { sock, seq: 1 })
    }

    /// Sends one request and waits for its replies.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Reply {
        self.batch(vec![Request::new(msg, flags)]).into_iter().next().expect("one reply")
    }

    /// Sends a dump request and collects every message of the dump.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Reply {
        let mut out = Vec::with_capacity(1024);
        self.dump_each(msg, |m| out.push(m))?;
        Ok(out)
    }

    /// Sends a dump request and hands each message over as it is decoded: a decoded link
    /// message weighs ~13 KB, so a namespace of a thousand links is better reduced on the way.
    pub fn dump_each(&mut self, msg: RouteNetlinkMessage, each: impl FnMut(RouteNetlinkMessage)) -> Result<(), KernelError> {
        RECV_BUF.with(|b| self.dump_with(msg, &mut b.borrow_mut(), each))
    }

    fn dump_with(&mut self, msg: RouteNetlinkMessage, buf: &mut [u8], mut each: impl FnMut(RouteNetlinkMessage)) -> Result<(), KernelError> {
        let seq = self.next_seq();
        let mut wire = Vec::new();
        encode(&mut wire, msg, NLM_F_REQUEST | NLM_F_DUMP, seq);
        self.send(&wire).map_err(|e| KernelError::from_io(&e))?;
        loop {
            let n = self.recv(buf).map_err(|e| KernelError::from_io(&e))?;
            let mut off = 0;
            while off + 16 <= n {
                let (len, ty, _flags, mseq) = header(&buf[off..n]);
                if len < 16 || off + len > n {
                    return Err(KernelError { errno: libc::EPROTO, text: Some("truncated netlink message".into()) });
                }
                let frame = &buf[off..off + len];
                off += align(len);
                if mseq != seq {
                    continue; // stale reply of an earlier request
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        if let Some(err) = parse_error(frame) {
                            return Err(err);
                        }
                        return Ok(());
                    }
                    _ => {
                        if let Some(m) = decode(frame) {
                            each(m);
                        }
                    }
                }
            }
        }
    }

    /// Sends all requests, pipelined, and returns one reply per request, in order. The kernel
    /// processes a socket's messages in order, so later requests may depend on earlier ones.
    pub fn batch(&mut self, reqs: Vec<Request>) -> Vec<Reply> {
        RECV_BUF.with(|b| self.batch_with(reqs, &mut b.borrow_mut()))
    }

    fn batch_with(&mut self, reqs: Vec<Request>, buf: &mut [u8]) -> Vec<Reply> {
        let n = reqs.len();
        let mut replies: Vec<Option<Reply>> = (0..n).map(|_| None).collect();
        let mut pending: Vec<Vec<RouteNetlinkMessage>> = (0..n).map(|_| Vec::new()).collect();
        let first_seq = self.seq;
        let mut wire = Vec::with_capacity(CHUNK + 4096);
        let mut chunk_start = 0usize;
        let stops: Vec<bool> = reqs.iter().map(|r| r.stop_on_error).collect();
        let mut iter = reqs.into_iter().enumerate().peekable();
        while iter.peek().is_some() {
            wire.clear();
            let mut last = chunk_start;
            while let Some((i, r)) = iter.peek() {
                let full = wire.len() + r.msg_len_hint() > CHUNK || *i >= chunk_start + CHUNK_MSGS;
                if !wire.is_empty() && !r.glued && full {
                    break;
                }
                let seq = first_seq.wrapping_add(*i as u32);
                let flags = r.flags;
                let (i, r) = iter.next().unwrap();
                encode(&mut wire, r.msg, NLM_F_REQUEST | NLM_F_ACK | flags, seq);
                last = i;
            }
            if let Err(e) = self.send(&wire) {
                let err = KernelError::from_io(&e);
                for slot in replies.iter_mut().take(last + 1).skip(chunk_start) {
                    *slot = Some(Err(err.clone()));
                }
                chunk_start = last + 1;
                continue;
            }
            // Collect acks for this chunk.
            let mut outstanding = last + 1 - chunk_start;
            while outstanding > 0 {
                let got = match self.recv(buf) {
                    Ok(g) => g,
                    Err(e) => {
                        let err = KernelError::from_io(&e);
                        for slot in replies.iter_mut().take(last + 1).skip(chunk_start) {
                            if slot.is_none() {
                                *slot = Some(Err(err.clone()));
                            }
                        }
                        break;
                    }
                };
                let mut off = 0;
                while off + 16 <= got {
                    let (len, ty, _flags, mseq) = header(&buf[off..got]);
                    if len < 16 || off + len > got {
                        break;
                    }
                    let frame_range = off..off + len;
                    off += align(len);
                    let idx = mseq.wrapping_sub(first_seq) as usize;
                    if idx < chunk_start || idx > last {
                        continue;
                    }
                    let frame = &buf[frame_range];
                    if ty == NLMSG_ERROR {
                        if replies[idx].is_none() {
                            replies[idx] = Some(match parse_error(frame) {
                                Some(e) => Err(e),
                                None => Ok(std::mem::take(&mut pending[idx])),
                            });
                            outstanding -= 1;
                        }
                    } else if ty == NLMSG_DONE {
                        // A dump inside a batch is not used; treat as completion.
                    } else if let Some(m) = decode(frame) {
                        pending[idx].push(m);
                    }
                }
            }
            let failed = (chunk_start..=last).any(|i| stops[i] && matches!(replies[i], Some(Err(_))));
            chunk_start = last + 1;
            if failed {
                for slot in replies.iter_mut().skip(chunk_start) {
                    *slot = Some(Err(KernelError { errno: libc::ECANCELED, text: Some("not sent: an earlier request of the batch failed".into()) }));
                }
                break;
            }
        }
        self.seq = first_seq.wrapping_add(n as u32 + 1);
        replies.into_iter().map(|r| r.unwrap_or(Err(KernelError { errno: libc::EIO, text: Some("no acknowledgement".into()) }))).collect()
    }

    /// Joins a multicast group (RTNLGRP_*) to receive the kernel's notifications.
    pub fn subscribe(&self, group: u32) -> io::Result<()> {
        self.sock.add_membership(group)
    }

    /// Notifications received within `timeout` (returns as soon as some arrived).
    pub fn notifications(&mut self, timeout: std::time::Duration) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut pfd = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return Ok(Vec::new());
        }
        RECV_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let got = self.recv(&mut buf)?;
            let mut out = Vec::new();
            let mut off = 0;
            while off + 16 <= got {
                let (len, ty, _, _) = header(&buf[off..got]);
                if len < 16 || off + len > got {
                    break;
                }
                if ty != NLMSG_ERROR && ty != NLMSG_DONE {
                    if let Some(m) = decode(&buf[off..off + len]) {
                        out.push(m);
                    }
                }
                off += align(len);
            }
            Ok(out)
        })
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn send(&self, wire: &[u8]) -> io::Result<()> {
        let mut off = 0;
        while off < wire.len() {
            let n = self.sock.send(&wire[off..], 0)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "netlink send wrote nothing"));
            }
            off += n;
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut slice = &mut buf[..];
            match self.sock.recv(&mut slice, 0) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Request {
    fn msg_len_hint(&self) -> usize {
        use netlink_packet_core::Emitable;
        match &self.msg {
            RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::SetLink(m) | RouteNetlinkMessage::DelLink(m) => m.buffer_len() + 16,
            RouteNetlinkMessage::NewAddress(m) | RouteNetlinkMessage::DelAddress(m) => m.buffer_len() + 16,
            RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m) => m.buffer_len() + 16,
            _ => 512,
        }
    }
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn header(b: &[u8]) -> (usize, u16, u16, u32) {
    let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let ty = u16::from_ne_bytes([b[4], b[5]]);
    let flags = u16::from_ne_bytes([b[6], b[7]]);
    let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    (len, ty, flags, seq)
}

fn encode(wire: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    let len = m.buffer_len();
    let start = wire.len();
    wire.resize(start + align(len), 0);
    m.serialize(&mut wire[start..start + len]);
}

fn decode(frame: &[u8]) -> Option<RouteNetlinkMessage> {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(frame) {
        Ok(m) => match m.payload {
            NetlinkPayload::InnerMessage(i) => Some(i),
            _ => None,
        },
        Err(e) => {
            tracing::debug!("undecodable netlink message: {e}");
            None
        }
    }
}

/// Parses an NLMSG_ERROR frame: `None` for an ack (errno 0), else the error with its ext-ack text.
fn parse_error(frame: &[u8]) -> Option<KernelError> {
    if frame.len() < 20 {
        return Some(KernelError { errno: libc::EPROTO, text: Some("short error message".into()) });
    }
    let (_, _, flags, _) = header(frame);
    let code = i32::from_ne_bytes([frame[16], frame[17], frame[18], frame[19]]);
    if code == 0 {
        return None;
    }
    let mut text = None;
    if flags & NLM_F_ACK_TLVS != 0 && frame.len() >= 36 {
        // With NETLINK_CAP_ACK (flag 0x100 set) only the request's header (16 bytes) is echoed;
        // otherwise the whole request, whose length is in that header.
        let capped = flags & 0x100 != 0;
        let orig_len = if capped { 16 } else { u32::from_ne_bytes([frame[20], frame[21], frame[22], frame[23]]) as usize };
        let mut off = 20 + align(orig_len);
        while off + 4 <= frame.len() {
            let alen = u16::from_ne_bytes([frame[off], frame[off + 1]]) as usize;
            let aty = u16::from_ne_bytes([frame[off + 2], frame[off + 3]]) & 0x3fff;
            if alen < 4 || off + alen > frame.len() {
                break;
            }
            if aty == NLMSGERR_ATTR_MSG {
                let s = &frame[off + 4..off + alen];
                let s = s.split(|c| *c == 0).next().unwrap_or(&[]);
                text = Some(String::from_utf8_lossy(s).to_string());
            }
            off += align(alen);
        }
    }
    Some(KernelError { errno: -code, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ext_ack_text() {
        // nlmsghdr(ERROR, flags=CAPPED|ACK_TLVS) + errno -22 + orig hdr + MSG attr "bad thing"
        let mut f = Vec::new();
        let msg = b"bad thing\0";
        let attr_len = 4 + msg.len();
        let total = 16 + 4 + 16 + align(attr_len);
        f.extend_from_slice(&(total as u32).to_ne_bytes());
        f.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        f.extend_from_slice(&(0x100u16 | 0x200).to_ne_bytes());
        f.extend_from_slice(&7u32.to_ne_bytes());
        f.extend_from_slice(&0u32.to_ne_bytes());
        f.extend_from_slice(&(-22i32).to_ne_bytes());
        f.extend_from_slice(&[0u8; 16]);
        f.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        f.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        f.extend_from_slice(msg);
        f.resize(total, 0);
        let e = parse_error(&f).unwrap();
        assert_eq!(e.errno, 22);
        assert_eq!(e.text.as_deref(), Some("bad thing"));
        assert_eq!(e.to_string(), "bad thing (Invalid argument)");
    }

    #[test]
    fn ack_is_not_an_error() {
        let mut f = vec![0u8; 36];
        f[0..4].copy_from_slice(&36u32.to_ne_bytes());
        f[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse_error(&f).is_none());
    }
}
