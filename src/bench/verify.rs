//! One ICMP echo per node, all in flight at once: a raw socket is opened inside each node's
//! namespace on worker threads, then one thread sends every request and polls every socket.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::kernel::handle::par_map;
use crate::kernel::netns;

/// Sends one echo (retried once) from each namespace to its address; returns how many answered.
pub fn probe_all(probes: &[(String, Ipv4Addr)]) -> usize {
    let socks: Vec<Option<OwnedFd>> = par_map(probes, |(ns, _)| {
        let fd = netns::open(ns).ok()?;
        netns::enter(&fd).ok()?;
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP) };
        if s < 0 {
            return None;
        }
        Some(unsafe { OwnedFd::from_raw_fd(s) })
    });
    let id = (std::process::id() & 0xffff) as u16;
    let mut answered = vec![false; probes.len()];
    for attempt in 0..3u16 {
        for (i, (s, (_, dst))) in socks.iter().zip(probes).enumerate() {
            if let (Some(s), false) = (s, answered[i]) {
                send_echo(s, *dst, id, attempt);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(1000);
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        let mut idx: Vec<usize> = Vec::new();
        for (i, s) in socks.iter().enumerate() {
            if let (Some(s), false) = (s, answered[i]) {
                pfds.push(libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 });
                idx.push(i);
            }
        }
        while !pfds.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, left.as_millis() as i32) };
            if n <= 0 {
                break;
            }
            let mut k = 0;
            while k < pfds.len() {
                if pfds[k].revents & libc::POLLIN != 0 && got_reply(pfds[k].fd, probes[idx[k]].1, id) {
                    answered[idx[k]] = true;
                    pfds.swap_remove(k);
                    idx.swap_remove(k);
                    continue;
                }
                pfds[k].revents = 0;
                k += 1;
            }
        }
        if answered.iter().all(|a| *a) {
            break;
        }
    }
    answered.iter().filter(|a| **a).count()
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn send_echo(s: &OwnedFd, dst: Ipv4Addr, id: u16, seq: u16) {
    let mut pkt = [0u8; 16];
    pkt[0] = 8; // echo request
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(b"vnetprob");
    let c = checksum(&pkt);
    pkt[2..4].copy_from_slice(&c.to_be_bytes());
    let addr = libc::sockaddr_in { sin_family: libc::AF_INET as u16, sin_port: 0, sin_addr: libc::in_addr { s_addr: u32::from(dst).to_be() }, sin_zero: [0; 8] };
    unsafe {
        libc::sendto(s.as_raw_fd(), pkt.as_ptr().cast(), pkt.len(), 0, (&addr as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as u32);
    }
}

/// Drains the socket; true when an echo reply from `dst` with our id arrived.
fn got_reply(fd: i32, dst: Ipv4Addr, id: u16) -> bool {
    let mut buf = [0u8; 1500];
    let mut found = false;
    loop {
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return found;
        }
        let n = n as usize;
        if n < 20 {
            continue;
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        if n >= ihl + 8 && buf[ihl] == 0 && u16::from_be_bytes([buf[ihl + 4], buf[ihl + 5]]) == id && src == dst {
            found = true;
        }
    }
}
