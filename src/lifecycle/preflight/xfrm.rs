//! The ESP probe: adds one IPv4 ESP state (cbc(aes) + hmac(sha256), tunnel mode, documentation
//! addresses) over NETLINK_XFRM in the caller's scratch namespace. The kernel looks up the
//! algorithms, then the xfrm type for ESP (loading esp4 on demand): EPROTONOSUPPORT ("Requested
//! type not found") means no ESP; ENOSYS means the algorithms are missing, which leaves ESP just
//! as unusable. No crate encodes xfrm messages for netlink-packet-core 0.9, and the probe needs
//! only this one message: it is encoded by hand and tested byte for byte against iproute2's.

use std::io;

use netlink_sys::{protocols::NETLINK_XFRM, Socket, SocketAddr};

const XFRM_MSG_NEWSA: u16 = 0x10;
const XFRMA_ALG_AUTH: u16 = 1;
const XFRMA_ALG_CRYPT: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IPPROTO_ESP: u8 = 50;
const XFRM_MODE_TUNNEL: u8 = 1;
const XFRM_INF: u64 = u64::MAX;
/// sizeof(struct xfrm_usersa_info) on 64-bit Linux.
const USERSA_INFO_LEN: usize = 224;

/// Whether the kernel of the calling thread's namespace can build an ESP state.
pub fn has_esp() -> io::Result<bool> {
    let mut sock = match Socket::new(NETLINK_XFRM) {
        Ok(s) => s,
        // No xfrm netlink at all (CONFIG_XFRM_USER): no way to set up ESP either.
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => return Ok(false),
        Err(e) => return Err(e),
    };
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let seq = 1;
    sock.send(&message(seq), 0)?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = {
            let mut slice = &mut buf[..];
            sock.recv(&mut slice, 0)?
        };
        let mut off = 0;
        while off + 20 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
            let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap());
            if ty == NLMSG_ERROR && mseq == seq {
                let err = -i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                return match err {
                    0 => Ok(true),
                    libc::EPROTONOSUPPORT | libc::ENOSYS => Ok(false),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
            if len < 16 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

/// The whole netlink message: header, then the payload.
fn message(seq: u32) -> Vec<u8> {
    let body = payload();
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&XFRM_MSG_NEWSA.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&body);
    m
}

/// struct xfrm_usersa_info + XFRMA_ALG_CRYPT + XFRMA_ALG_AUTH, as
/// `ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode tunnel
///  enc 'cbc(aes)' 0x00..(16 bytes) auth 'hmac(sha256)' 0x00..(32 bytes)` sends it.
fn payload() -> Vec<u8> {
    let mut p = vec![0u8; USERSA_INFO_LEN];
    // sel (0..56) stays empty. id: daddr (56..72), spi (72..76, network order), proto (76).
    p[56..60].copy_from_slice(&[192, 0, 2, 2]);
    p[72..76].copy_from_slice(&0x100u32.to_be_bytes());
    p[76] = IPPROTO_ESP;
    p[80..84].copy_from_slice(&[192, 0, 2, 1]); // saddr (80..96)
                                                // lft (96..160): byte and packet limits infinite, expiry times 0.
    for k in 0..4 {
        p[96 + 8 * k..104 + 8 * k].copy_from_slice(&XFRM_INF.to_ne_bytes());
    }
    // curlft (160..192), stats (192..204), seq, reqid stay 0.
    p[212..214].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes()); // family
    p[214] = XFRM_MODE_TUNNEL;
    algo(&mut p, XFRMA_ALG_CRYPT, "cbc(aes)", 16);
    algo(&mut p, XFRMA_ALG_AUTH, "hmac(sha256)", 32);
    p
}

/// An attribute holding struct xfrm_algo { char alg_name[64]; u32 alg_key_len (bits); key }.
fn algo(out: &mut Vec<u8>, ty: u16, name: &str, key_bytes: usize) {
    let len = 4 + 64 + 4 + key_bytes;
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    let mut n = [0u8; 64];
    n[..name.len()].copy_from_slice(name.as_bytes());
    out.extend_from_slice(&n);
    out.extend_from_slice(&((key_bytes * 8) as u32).to_ne_bytes());
    out.extend(std::iter::repeat_n(0u8, key_bytes));
    out.resize((out.len() + 3) & !3, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What iproute2 6.1 sent for the command in `payload`'s doc (strace -xx of sendmsg, after
    /// the 16-byte netlink header).
    const IPROUTE2: &str = concat!(
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000c00002020000000000000000000000000000010032000000c0000201000000000000000000000000",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000002000100000000000000000058000200636263286165732900000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000800000000000000000000000000000000000000068000100686d616328736861323536290000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000010000",
        "0000000000000000000000000000000000000000000000000000000000000000",
    );

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn esp_probe_matches_iproute2_bytes() {
        let p = payload();
        assert_eq!(p.len(), USERSA_INFO_LEN + 88 + 104);
        assert_eq!(hex(&p), IPROUTE2);
    }

    #[test]
    fn header_frames_the_payload() {
        let m = message(7);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), XFRM_MSG_NEWSA);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
    }
}
