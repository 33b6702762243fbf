//! A plain netlink socket for messages the route crate cannot carry faithfully: qdiscs whose
//! options are a C struct followed by attributes (netem), tc filters with BPF programs, XDP,
//! and the xfrm family. Requests are byte buffers built by the callers (and byte-tested).

use std::io;

use netlink_sys::{Socket, SocketAddr};

use crate::kernel::nl::KernelError;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// One received message: type and payload (after the 16-byte header).
pub type Msg = (u16, Vec<u8>);

/// A netlink socket of one protocol, bound to the namespace of the thread that opened it.
pub struct RawNl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl RawNl {
    pub fn open(protocol: isize) -> io::Result<RawNl> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let _ = sock.set_ext_ack(true);
        Ok(RawNl { sock, seq: 1, buf: vec![0u8; 1 << 20] })
    }

    /// Sends one request (NLM_F_REQUEST | NLM_F_ACK | `flags`) and returns the messages it
    /// produced before the acknowledgement, or the kernel's error.
    pub fn request(&mut self, ty: u16, flags: u16, payload: &[u8]) -> Result<Vec<Msg>, KernelError> {
        self.exchange(ty, NLM_F_REQUEST | NLM_F_ACK | flags, payload, false)
    }

    /// A dump request: every message until NLMSG_DONE.
    pub fn dump(&mut self, ty: u16, payload: &[u8]) -> Result<Vec<Msg>, KernelError> {
        self.exchange(ty, NLM_F_REQUEST | NLM_F_DUMP, payload, true)
    }

    fn exchange(&mut self, ty: u16, flags: u16, payload: &[u8], dump: bool) -> Result<Vec<Msg>, KernelError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let wire = message(ty, flags, seq, payload);
        self.sock.send(&wire, 0).map_err(|e| KernelError::from_io(&e))?;
        let mut out = Vec::new();
        loop {
            let n = loop {
                let mut slice = &mut self.buf[..];
                match self.sock.recv(&mut slice, 0) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(KernelError::from_io(&e)),
                }
            };
            let mut off = 0;
            while off + 16 <= n {
                let b = &self.buf[off..n];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let mty = u16::from_ne_bytes([b[4], b[5]]);
                let mflags = u16::from_ne_bytes([b[6], b[7]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < 16 || off + len > n {
                    return Err(KernelError { errno: libc::EPROTO, text: Some("truncated netlink message".into()) });
                }
                let frame = &self.buf[off..off + len];
                off += align(len);
                if mseq != seq {
                    continue;
                }
                match mty {
                    NLMSG_DONE if dump => return Ok(out),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes([frame[16], frame[17], frame[18], frame[19]]);
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(KernelError { errno: -code, text: ext_ack(frame, mflags) });
                    }
                    _ => out.push((mty, frame[16..].to_vec())),
                }
            }
        }
    }
}

/// A whole netlink message (header + payload), as sent.
pub fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut w = Vec::with_capacity(align(len));
    w.extend_from_slice(&(len as u32).to_ne_bytes());
    w.extend_from_slice(&ty.to_ne_bytes());
    w.extend_from_slice(&flags.to_ne_bytes());
    w.extend_from_slice(&seq.to_ne_bytes());
    w.extend_from_slice(&0u32.to_ne_bytes());
    w.extend_from_slice(payload);
    w.resize(align(len), 0);
    w
}

fn ext_ack(frame: &[u8], flags: u16) -> Option<String> {
    // NLM_F_ACK_TLVS: attributes follow the echoed request.
    if flags & 0x200 == 0 || frame.len() < 36 {
        return None;
    }
    let capped = flags & 0x100 != 0;
    let orig = if capped { 16 } else { u32::from_ne_bytes([frame[20], frame[21], frame[22], frame[23]]) as usize };
    for (ty, v) in attrs(frame.get(20 + align(orig)..)?) {
        if ty == 1 {
            let s = v.split(|c| *c == 0).next().unwrap_or(&[]);
            return Some(String::from_utf8_lossy(s).to_string());
        }
    }
    None
}

pub fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends an attribute (type, value), padded to 4 bytes.
pub fn put_attr(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + (align(len) - len), 0);
}

pub fn put_u32(buf: &mut Vec<u8>, ty: u16, v: u32) {
    put_attr(buf, ty, &v.to_ne_bytes());
}

/// A NUL-terminated string attribute.
pub fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    put_attr(buf, ty, &v);
}

/// The attributes of a buffer: (type without flag bits, value).
pub fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[align(len).min(b.len())..];
    }
    out
}

pub fn get_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

pub fn get_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?))
}

pub fn get_str(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|c| *c == 0).next().unwrap_or(&[])).to_string()
}
