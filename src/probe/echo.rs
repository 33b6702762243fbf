//! ICMP / ICMPv6 echo probes run in-process: one raw socket per node and family (opened inside
//! the node), many requests in flight at once, one epoll per worker thread across all its
//! sockets. Replies and the ICMP errors that quote a request are matched back by identifier and
//! sequence number; local failures (no route, message too big, full neighbour table) come back
//! from `sendto` itself because the sockets set IP_RECVERR.

use std::collections::VecDeque;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ns;
use super::packet::{self, Answer, ErrorKind};

const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
const ICMP6_FILTER: libc::c_int = 1;
const SO_EE_ORIGIN_LOCAL: u8 = 1;
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// One echo request to send.
#[derive(Clone, Debug)]
pub struct EchoProbe {
    /// Index of the source in the `sources` given to `run`.
    pub src: usize,
    pub dst: IpAddr,
    /// Whole IP packet size in bytes (headers included); `None`: a small probe.
    pub size: Option<usize>,
    /// Forbid fragmentation (DF for IPv4, no fragmentation for IPv6) and ignore the cached path
    /// MTU, so the probe tests the path as it is.
    pub df: bool,
    /// Probes of a lower phase all finish before any of a higher phase is sent.
    pub phase: u8,
}

/// What came back for one probe.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "seen", rename_all = "kebab-case")]
pub enum EchoOutcome {
    /// An echo reply.
    Reply { from: IpAddr },
    /// An ICMP error quoting the request (unreachable, fragmentation needed, TTL...).
    Error {
        kind: ErrorKind,
        from: IpAddr,
        #[serde(skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
    },
    /// The kernel refused to send it (errno): no route, message too big for the device,
    /// no buffer space (a full neighbour table), prohibited by a firewall.
    Local {
        errno: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
    },
    /// Nothing came back in time.
    Timeout,
}

impl EchoOutcome {
    pub fn is_reply(&self) -> bool {
        matches!(self, EchoOutcome::Reply { .. })
    }
}

/// The outcome of one probe with its round-trip time when something came back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EchoResult {
    #[serde(flatten)]
    pub outcome: EchoOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
}

/// Tuning of a run.
#[derive(Clone, Debug)]
pub struct EchoOptions {
    /// How long to wait for an answer after sending.
    pub timeout: Duration,
    /// Worker threads sending and receiving (sources are dealt round-robin).
    pub threads: usize,
    /// Most requests in flight per thread.
    pub window: usize,
    /// Counts probes as they finish (answered, refused or timed out), for a progress display.
    pub finished: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl Default for EchoOptions {
    fn default() -> Self {
        EchoOptions { timeout: Duration::from_millis(1500), threads: crate::kernel::handle::workers(), window: 256, finished: None }
    }
}

/// A raw socket of one node, with the requests it carries.
struct Sock {
    fd: OwnedFd,
    v6: bool,
    /// Identifier base; request k carries id = nonce + k / 65536, seq = k % 65536.
    nonce: u16,
    /// Global probe index of request k.
    probes: Vec<usize>,
}

/// Which socket of a source a probe uses: (family v6, df).
fn sock_key(p: &EchoProbe) -> usize {
    usize::from(p.dst.is_ipv6()) * 2 + usize::from(p.df)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    let rc = unsafe { libc::setsockopt(fd, level, name, v as *const T as *const libc::c_void, size_of::<T>() as libc::socklen_t) };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens a raw ICMP (or ICMPv6) socket in the calling thread's namespace.
fn open_raw(v6: bool, df: bool) -> io::Result<OwnedFd> {
    let (dom, proto) = if v6 { (libc::AF_INET6, libc::IPPROTO_ICMPV6) } else { (libc::AF_INET, libc::IPPROTO_ICMP) };
    let fd = unsafe { libc::socket(dom, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    let one: libc::c_int = 1;
    let buf: libc::c_int = 4 << 20;
    if setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).is_err() {
        let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf);
    }
    if setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &buf).is_err() {
        let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, &buf);
    }
    if v6 {
        setsockopt(raw, libc::SOL_IPV6, libc::IPV6_RECVERR, &one)?;
        // Only echo replies and errors: not the requests other nodes send us.
        let mut filter = [u32::MAX; 8];
        for t in [1u8, 2, 3, 4, 129] {
            filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
        }
        setsockopt(raw, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
        if df {
            let probe: libc::c_int = libc::IPV6_PMTUDISC_PROBE;
            setsockopt(raw, libc::SOL_IPV6, libc::IPV6_MTU_DISCOVER, &probe)?;
            setsockopt(raw, libc::SOL_IPV6, libc::IPV6_DONTFRAG, &one)?;
        }
    } else {
        setsockopt(raw, libc::SOL_IP, libc::IP_RECVERR, &one)?;
        let pass: u32 = (1 << 0) | (1 << 3) | (1 << 11) | (1 << 12);
        setsockopt(raw, SOL_RAW, ICMP_FILTER, &!pass)?;
        if df {
            let probe: libc::c_int = libc::IP_PMTUDISC_PROBE;
            setsockopt(raw, libc::SOL_IP, libc::IP_MTU_DISCOVER, &probe)?;
        }
    }
    Ok(fd)
}

fn nonce16() -> u16 {
    let mut b = [0u8; 2];
    if unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 2, 0) } != 2 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return (t.subsec_nanos() ^ std::process::id()) as u16;
    }
    u16::from_ne_bytes(b)
}

/// Sends every probe and collects what came back, in the order of `probes`. `sources[i]` is the
/// namespace of source `i` (`None`: the caller's namespace).
pub fn run(sources: &[Option<BorrowedFd<'_>>], probes: &[EchoProbe], opts: &EchoOptions) -> io::Result<Vec<EchoResult>> {
    crate::kernel::handle::raise_fd_limit();
    // Which sockets each source needs.
    let mut need = vec![[false; 4]; sources.len()];
    for p in probes {
        need[p.src][sock_key(p)] = true;
    }
    let opened: Vec<io::Result<[Option<OwnedFd>; 4]>> = ns::in_each(sources, |i| {
        let mut out: [Option<OwnedFd>; 4] = [None, None, None, None];
        for (k, slot) in out.iter_mut().enumerate() {
            if need[i][k] {
                *slot = Some(open_raw(k >= 2, k % 2 == 1)?);
            }
        }
        Ok(out)
    })?;
    // Flatten into sockets; remember each probe's socket and request number.
    let mut socks: Vec<Sock> = Vec::new();
    let mut sock_of: Vec<[usize; 4]> = vec![[usize::MAX; 4]; sources.len()];
    for (i, r) in opened.into_iter().enumerate() {
        for (k, fd) in r?.into_iter().enumerate() {
            if let Some(fd) = fd {
                sock_of[i][k] = socks.len();
                socks.push(Sock { fd, v6: k >= 2, nonce: nonce16(), probes: Vec::new() });
            }
        }
    }
    let mut req_of = vec![(0usize, 0usize); probes.len()];
    for (g, p) in probes.iter().enumerate() {
        let s = sock_of[p.src][sock_key(p)];
        req_of[g] = (s, socks[s].probes.len());
        socks[s].probes.push(g);
    }
    let token_base = u64::from(nonce16()) << 48;
    let mut results: Vec<Option<EchoResult>> = vec![None; probes.len()];
    let threads = opts.threads.max(1);
    let mut phases: Vec<u8> = probes.iter().map(|p| p.phase).collect();
    phases.sort_unstable();
    phases.dedup();
    for phase in phases {
        // Deal sources round-robin to threads; within a thread, interleave sources so that
        // every node has requests in flight at once.
        let mut per_thread: Vec<Vec<Vec<usize>>> = vec![Vec::new(); threads];
        let mut by_src: Vec<Vec<usize>> = vec![Vec::new(); sources.len()];
        for (g, p) in probes.iter().enumerate() {
            if p.phase == phase {
                by_src[p.src].push(g);
            }
        }
        for (i, list) in by_src.into_iter().enumerate() {
            if !list.is_empty() {
                per_thread[i % threads].push(list);
            }
        }
        let queues: Vec<Vec<usize>> = per_thread.into_iter().map(interleave).filter(|q| !q.is_empty()).collect();
        let socks = &socks;
        let req_of = &req_of;
        let outs: Vec<io::Result<Vec<(usize, EchoResult)>>> = std::thread::scope(|s| {
            let joins: Vec<_> = queues.iter().map(|q| s.spawn(move || worker(socks, req_of, probes, q, token_base, opts))).collect();
            joins.into_iter().map(|j| j.join().unwrap_or_else(|_| Err(io::Error::other("probe worker panicked")))).collect()
        });
        for o in outs {
            for (g, r) in o? {
                results[g] = Some(r);
            }
        }
    }
    Ok(results.into_iter().map(|r| r.unwrap_or(EchoResult { outcome: EchoOutcome::Timeout, rtt_us: None })).collect())
}

/// Round-robin merge: a0 b0 c0 a1 b1 c1 ...
fn interleave(lists: Vec<Vec<usize>>) -> Vec<usize> {
    let max = lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(lists.iter().map(Vec::len).sum());
    for i in 0..max {
        for l in &lists {
            if let Some(&g) = l.get(i) {
                out.push(g);
            }
        }
    }
    out
}

struct Flight {
    sent: Instant,
    done: bool,
}

/// Records a finished probe (and counts it where someone watches).
fn finish(out: &mut Vec<(usize, EchoResult)>, opts: &EchoOptions, g: usize, r: EchoResult) {
    out.push((g, r));
    if let Some(c) = &opts.finished {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn worker(
    socks: &[Sock],
    req_of: &[(usize, usize)],
    probes: &[EchoProbe],
    queue: &[usize],
    token_base: u64,
    opts: &EchoOptions,
) -> io::Result<Vec<(usize, EchoResult)>> {
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut mine: Vec<usize> = queue.iter().map(|g| req_of[*g].0).collect();
    mine.sort_unstable();
    mine.dedup();
    for &s in &mine {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLERR) as u32, u64: s as u64 };
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, socks[s].fd.as_raw_fd(), &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut flights: std::collections::HashMap<usize, Flight> = std::collections::HashMap::with_capacity(queue.len());
    let mut out: Vec<(usize, EchoResult)> = Vec::with_capacity(queue.len());
    let mut deadlines: VecDeque<(Instant, usize)> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut next = 0usize;
    let mut buf = vec![0u8; 70_000];
    let mut events: Vec<libc::epoll_event> = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut packets: std::collections::HashMap<(bool, usize), Vec<u8>> = std::collections::HashMap::new();

    loop {
        // Fill the window.
        while in_flight < opts.window.max(1) && next < queue.len() {
            let g = queue[next];
            let p = &probes[g];
            let (s, k) = req_of[g];
            let sock = &socks[s];
            let id = sock.nonce.wrapping_add((k >> 16) as u16);
            let seq = (k & 0xffff) as u16;
            let hdr = if p.dst.is_ipv6() { 40 } else { 20 };
            let icmp_len = p.size.map(|s| s.saturating_sub(hdr)).unwrap_or(24);
            let pkt = packets.entry((sock.v6, icmp_len)).or_insert_with(|| packet::echo_request(sock.v6, 0, 0, 0, icmp_len));
            fill_request(pkt, sock.v6, id, seq, token_base | g as u64);
            match send(sock, p.dst, pkt) {
                Ok(()) => {
                    let now = Instant::now();
                    flights.insert(g, Flight { sent: now, done: false });
                    deadlines.push_back((now + opts.timeout, g));
                    in_flight += 1;
                    next += 1;
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break, // socket buffer full: receive first
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    let mtu = if errno == libc::EMSGSIZE { local_mtu(sock) } else { None };
                    flights.insert(g, Flight { sent: Instant::now(), done: true });
                    finish(&mut out, opts, g, EchoResult { outcome: EchoOutcome::Local { errno, mtu }, rtt_us: None });
                    next += 1;
                }
            }
        }
        if in_flight == 0 && next >= queue.len() {
            break;
        }
        let now = Instant::now();
        let wait_ms = if in_flight < opts.window.max(1) && next < queue.len() {
            0
        } else {
            deadlines.front().map(|(d, _)| d.saturating_duration_since(now).as_millis() as i32 + 1).unwrap_or(1)
        };
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, wait_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let s = ev.u64 as usize;
            let sock = &socks[s];
            let mut answers: Vec<(u16, u16, EchoOutcome, Option<u64>)> = Vec::new();
            if ev.events & libc::EPOLLERR as u32 != 0 {
                drain_errqueue(sock, &mut buf, &mut answers);
            }
            drain(sock, &mut buf, &mut answers);
            for (id, seq, outcome, token) in answers {
                let k = (usize::from(id.wrapping_sub(sock.nonce)) << 16) | usize::from(seq);
                let Some(&g) = sock.probes.get(k) else { continue };
                if let Some(t) = token {
                    if t != token_base | g as u64 {
                        continue;
                    }
                }
                if let Some(f) = flights.get_mut(&g) {
                    if !f.done {
                        f.done = true;
                        in_flight -= 1;
                        let rtt = f.sent.elapsed().as_micros() as u64;
                        finish(&mut out, opts, g, EchoResult { outcome, rtt_us: Some(rtt) });
                    }
                }
            }
        }
        let now = Instant::now();
        while let Some(&(d, g)) = deadlines.front() {
            if d > now {
                break;
            }
            deadlines.pop_front();
            if let Some(f) = flights.get_mut(&g) {
                if !f.done {
                    f.done = true;
                    in_flight -= 1;
                    finish(&mut out, opts, g, EchoResult { outcome: EchoOutcome::Timeout, rtt_us: None });
                }
            }
        }
    }
    Ok(out)
}

fn fill_request(pkt: &mut [u8], v6: bool, id: u16, seq: u16, token: u64) {
    pkt[2] = 0;
    pkt[3] = 0;
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[16..24].copy_from_slice(&token.to_be_bytes());
    if !v6 {
        let c = packet::checksum(pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

fn sockaddr(dst: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    match dst {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.octets() },
                sin6_scope_id: 0,
            };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// Sends one request. An ICMP error about an earlier request leaves an error on the socket
/// that the kernel returns from the next call (and clears); a failed send is therefore tried
/// once more, so the error returned is about this request.
fn send(sock: &Sock, dst: IpAddr, pkt: &[u8]) -> io::Result<()> {
    let (sa, len) = sockaddr(dst);
    let mut last = io::Error::from_raw_os_error(libc::EIO);
    for _ in 0..3 {
        let rc = unsafe { libc::sendto(sock.fd.as_raw_fd(), pkt.as_ptr() as *const libc::c_void, pkt.len(), 0, &sa as *const _ as *const libc::sockaddr, len) };
        if rc >= 0 {
            return Ok(());
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() == Some(libc::EAGAIN) {
            return Err(last);
        }
    }
    Err(last)
}

/// The MTU the kernel reported with a local EMSGSIZE (IP_MTU of the socket is only defined for
/// connected sockets, so the error queue is read instead).
fn local_mtu(sock: &Sock) -> Option<u32> {
    let mut buf = vec![0u8; 2048];
    let mut answers = Vec::new();
    let mut mtu = None;
    drain_errqueue_with(sock, &mut buf, &mut answers, &mut mtu);
    mtu
}

fn drain(sock: &Sock, buf: &mut [u8], answers: &mut Vec<(u16, u16, EchoOutcome, Option<u64>)>) {
    loop {
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let mut sl = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let n = unsafe {
            libc::recvfrom(
                sock.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut ss as *mut _ as *mut libc::sockaddr,
                &mut sl,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return,
                Some(libc::EINTR) => continue,
                // A pending asynchronous error is reported once; the queue still holds data.
                _ => continue,
            }
        }
        let pkt = &buf[..n as usize];
        let Some(from) = from_sockaddr(&ss) else { continue };
        let ans = if sock.v6 { packet::parse_v6(pkt) } else { packet::parse_v4(pkt) };
        match ans {
            Some(Answer::Reply { id, seq, token }) => answers.push((id, seq, EchoOutcome::Reply { from }, token)),
            Some(Answer::Error { id, seq, kind, mtu, .. }) => answers.push((id, seq, EchoOutcome::Error { kind, from, mtu }, None)),
            None => {}
        }
    }
}

fn drain_errqueue(sock: &Sock, buf: &mut [u8], answers: &mut Vec<(u16, u16, EchoOutcome, Option<u64>)>) {
    let mut mtu = None;
    drain_errqueue_with(sock, buf, answers, &mut mtu);
}

/// Reads the socket's error queue: ICMP errors (with the offender and our quoted request) and
/// local errors (EMSGSIZE carries the MTU).
fn drain_errqueue_with(sock: &Sock, buf: &mut [u8], answers: &mut Vec<(u16, u16, EchoOutcome, Option<u64>)>, local_mtu: &mut Option<u32>) {
    let (level, ty) = if sock.v6 { (libc::SOL_IPV6, libc::IPV6_RECVERR) } else { (libc::SOL_IP, libc::IP_RECVERR) };
    loop {
        let mut ctrl = [0u64; 64];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = &mut ss as *mut _ as *mut libc::c_void;
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&ctrl);
        let n = unsafe { libc::recvmsg(sock.fd.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            return;
        }
        let data = &buf[..n as usize];
        let mut cm = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cm.is_null() {
            let c = unsafe { &*cm };
            if c.cmsg_level == level && c.cmsg_type == ty {
                let ee = unsafe { &*(libc::CMSG_DATA(cm) as *const libc::sock_extended_err) };
                let offender = unsafe { &*(libc::CMSG_DATA(cm).add(size_of::<libc::sock_extended_err>()) as *const libc::sockaddr_storage) };
                if ee.ee_origin == SO_EE_ORIGIN_LOCAL && ee.ee_errno as i32 == libc::EMSGSIZE {
                    *local_mtu = Some(ee.ee_info);
                }
                if let Some((id, seq)) = packet::quoted_request(data, sock.v6) {
                    let outcome = match ee.ee_origin {
                        SO_EE_ORIGIN_ICMP | SO_EE_ORIGIN_ICMP6 => {
                            let kind =
                                if ee.ee_origin == SO_EE_ORIGIN_ICMP { ErrorKind::v4(ee.ee_type, ee.ee_code) } else { ErrorKind::v6(ee.ee_type, ee.ee_code) };
                            let from = from_sockaddr(offender).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                            let mtu = (kind == ErrorKind::FragNeeded).then_some(ee.ee_info);
                            Some(EchoOutcome::Error { kind, from, mtu })
                        }
                        SO_EE_ORIGIN_LOCAL => {
                            Some(EchoOutcome::Local { errno: ee.ee_errno as i32, mtu: (ee.ee_errno as i32 == libc::EMSGSIZE).then_some(ee.ee_info) })
                        }
                        _ => None,
                    };
                    if let Some(o) = outcome {
                        answers.push((id, seq, o, None));
                    }
                }
            }
            cm = unsafe { libc::CMSG_NXTHDR(&msg, cm) };
        }
    }
}

/// A readable text for an errno a send returned.
pub fn local_error_text(errno: i32) -> String {
    match errno {
        libc::ENETUNREACH => "no route (network unreachable)".into(),
        libc::EHOSTUNREACH => "no route (host unreachable)".into(),
        libc::EACCES => "prohibited (prohibit route)".into(),
        libc::EPERM => "blocked by the node's firewall".into(),
        libc::EINVAL => "dropped (blackhole route)".into(),
        libc::EMSGSIZE => "message too long for the outgoing device's MTU".into(),
        libc::ENOBUFS => "no buffer space (neighbour table full?)".into(),
        e => io::Error::from_raw_os_error(e).to_string(),
    }
}

/// Where a reply came from, for tests and messages.
pub fn addr_text(a: &SocketAddr) -> String {
    a.ip().to_string()
}
