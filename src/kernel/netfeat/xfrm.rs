//! xfrm states and policies over NETLINK_XFRM, with the message types of the
//! `netlink-packet-xfrm` crate (byte-tested against `ip xfrm`, see `xfrm_fixtures.txt`).
//! Callers run on a thread inside the node's namespace.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core_xfrm::{NetlinkDeserializable, NetlinkHeader};
use netlink_packet_utils::Emitable;
use netlink_packet_xfrm::{
    policy::{DelGetMessage as PolDelGet, ModifyMessage as PolModify},
    state::{DelGetMessage as SaDelGet, GetDumpMessage, ModifyMessage as SaModify},
    Address, Alg, AlgAead, AlgAuth, Id, Selector, UserPolicyId, UserPolicyInfo, UserSaId, UserSaInfo, UserTemplate, XfrmAttrs, XfrmMessage,
};

use crate::kernel::nl::KernelError;
use crate::observed::netfeat::{XfrmAlg, XfrmPolicy, XfrmState, XfrmTmpl};

use super::rawnl::{RawNl, NLM_F_CREATE, NLM_F_EXCL};

/// NETLINK_XFRM.
pub const NETLINK_XFRM: isize = 6;

fn family(a: &IpAddr) -> u16 {
    if a.is_ipv4() {
        libc::AF_INET as u16
    } else {
        libc::AF_INET6 as u16
    }
}

fn name<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [0u8; N];
    let n = s.len().min(N - 1);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    b
}

fn unname(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&[])).to_string()
}

fn selector(src: &IpNet, dst: &IpNet) -> Selector {
    Selector {
        daddr: Address::from_ip(&dst.addr()),
        saddr: Address::from_ip(&src.addr()),
        family: family(&src.addr()),
        prefixlen_d: dst.prefix_len(),
        prefixlen_s: src.prefix_len(),
        ..Default::default()
    }
}

fn payload(m: &XfrmMessage) -> Vec<u8> {
    let mut b = vec![0u8; m.buffer_len()];
    m.emit(&mut b);
    b
}

/// XFRM_MSG_NEWSA for a state.
pub fn add_state_msg(s: &XfrmState) -> XfrmMessage {
    let info = UserSaInfo {
        id: Id { daddr: Address::from_ip(&s.dst), spi: s.spi, proto: s.proto },
        saddr: Address::from_ip(&s.src),
        selector: Selector::default(),
        reqid: s.reqid,
        family: family(&s.src),
        mode: s.mode,
        ..Default::default()
    };
    let mut nlas = Vec::new();
    if let Some(a) = &s.aead {
        nlas.push(XfrmAttrs::EncryptionAlgAead(AlgAead {
            alg_name: name(&a.name),
            alg_key_len: (a.key.len() * 8) as u32,
            alg_icv_len: a.bits,
            alg_key: a.key.clone(),
        }));
    }
    if let Some(a) = &s.enc {
        nlas.push(XfrmAttrs::EncryptionAlg(Alg { alg_name: name(&a.name), alg_key_len: (a.key.len() * 8) as u32, alg_key: a.key.clone() }));
    }
    if let Some(a) = &s.auth {
        nlas.push(XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
            alg_name: name(&a.name),
            alg_key_len: (a.key.len() * 8) as u32,
            alg_trunc_len: a.bits,
            alg_key: a.key.clone(),
        }));
    }
    XfrmMessage::AddSa(SaModify { user_sa_info: info, nlas })
}

/// XFRM_MSG_DELSA for a state (by destination, SPI, protocol, and source).
pub fn del_state_msg(s: &XfrmState) -> XfrmMessage {
    XfrmMessage::DeleteSa(SaDelGet {
        user_sa_id: UserSaId { daddr: Address::from_ip(&s.dst), spi: s.spi, family: family(&s.dst), proto: s.proto },
        nlas: vec![XfrmAttrs::SrcAddr(Address::from_ip(&s.src))],
    })
}

/// XFRM_MSG_NEWPOLICY for a policy.
pub fn add_policy_msg(p: &XfrmPolicy) -> XfrmMessage {
    let info = UserPolicyInfo { selector: selector(&p.src, &p.dst), direction: p.dir, ..Default::default() };
    let mut nlas = Vec::new();
    if let Some(t) = &p.tmpl {
        nlas.push(XfrmAttrs::Template(vec![UserTemplate {
            id: Id { daddr: Address::from_ip(&t.dst), spi: 0, proto: t.proto },
            family: family(&t.src),
            saddr: Address::from_ip(&t.src),
            reqid: t.reqid,
            mode: t.mode,
            share: 0,
            optional: 0,
            aalgos: u32::MAX,
            ealgos: u32::MAX,
            calgos: u32::MAX,
        }]));
    }
    XfrmMessage::AddPolicy(PolModify { user_policy_info: info, nlas })
}

/// XFRM_MSG_DELPOLICY by selector and direction.
pub fn del_policy_msg(p: &XfrmPolicy) -> XfrmMessage {
    XfrmMessage::DeletePolicy(PolDelGet { user_policy_id: UserPolicyId { selector: selector(&p.src, &p.dst), index: 0, direction: p.dir }, nlas: vec![] })
}

fn send(nl: &mut RawNl, m: &XfrmMessage, flags: u16) -> Result<(), KernelError> {
    nl.request(m.message_type(), flags, &payload(m)).map(drop)
}

pub fn add_state(nl: &mut RawNl, s: &XfrmState) -> Result<(), KernelError> {
    send(nl, &add_state_msg(s), NLM_F_CREATE | NLM_F_EXCL)
}

pub fn del_state(nl: &mut RawNl, s: &XfrmState) -> Result<(), KernelError> {
    match send(nl, &del_state_msg(s), 0) {
        Err(e) if e.errno == libc::ESRCH || e.errno == libc::ENOENT => Ok(()),
        r => r,
    }
}

pub fn add_policy(nl: &mut RawNl, p: &XfrmPolicy) -> Result<(), KernelError> {
    send(nl, &add_policy_msg(p), NLM_F_CREATE | NLM_F_EXCL)
}

pub fn del_policy(nl: &mut RawNl, p: &XfrmPolicy) -> Result<(), KernelError> {
    match send(nl, &del_policy_msg(p), 0) {
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::ESRCH => Ok(()),
        r => r,
    }
}

fn decode(ty: u16, payload: &[u8]) -> Option<XfrmMessage> {
    let mut h = NetlinkHeader::default();
    h.message_type = ty;
    XfrmMessage::deserialize(&h, payload).ok()
}

fn ip(a: &Address, fam: u16) -> IpAddr {
    if fam == libc::AF_INET6 as u16 {
        IpAddr::V6(a.to_ipv6())
    } else {
        IpAddr::V4(a.to_ipv4())
    }
}

/// Every state of the namespace.
pub fn dump_states(nl: &mut RawNl) -> Result<Vec<XfrmState>, KernelError> {
    let m = XfrmMessage::GetDumpSa(GetDumpMessage { nlas: vec![] });
    let mut out = Vec::new();
    for (ty, p) in nl.dump(m.message_type(), &payload(&m))? {
        if let Some(XfrmMessage::AddSa(sa)) = decode(ty, &p) {
            let i = sa.user_sa_info;
            let mut s = XfrmState {
                src: ip(&i.saddr, i.family),
                dst: ip(&i.id.daddr, i.family),
                spi: i.id.spi,
                proto: i.id.proto,
                mode: i.mode,
                reqid: i.reqid,
                aead: None,
                enc: None,
                auth: None,
            };
            for a in sa.nlas {
                match a {
                    XfrmAttrs::EncryptionAlgAead(x) => s.aead = Some(XfrmAlg { name: unname(&x.alg_name), key: x.alg_key, bits: x.alg_icv_len }),
                    XfrmAttrs::EncryptionAlg(x) => s.enc = Some(XfrmAlg { name: unname(&x.alg_name), key: x.alg_key, bits: 0 }),
                    XfrmAttrs::AuthenticationAlgTrunc(x) => s.auth = Some(XfrmAlg { name: unname(&x.alg_name), key: x.alg_key, bits: x.alg_trunc_len }),
                    _ => {}
                }
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// Every (main-type) policy of the namespace.
pub fn dump_policies(nl: &mut RawNl) -> Result<Vec<XfrmPolicy>, KernelError> {
    let m = XfrmMessage::GetPolicy(PolDelGet::default());
    let mut out = Vec::new();
    for (ty, p) in nl.dump(m.message_type(), &payload(&m))? {
        if let Some(XfrmMessage::AddPolicy(pm)) = decode(ty, &p) {
            let i = pm.user_policy_info;
            let sel = i.selector;
            let fam = sel.family;
            let (Ok(src), Ok(dst)) = (IpNet::new(ip(&sel.saddr, fam), sel.prefixlen_s), IpNet::new(ip(&sel.daddr, fam), sel.prefixlen_d)) else { continue };
            let mut pol = XfrmPolicy { src, dst, dir: i.direction, tmpl: None };
            for a in pm.nlas {
                if let XfrmAttrs::Template(list) = a {
                    if let Some(t) = list.first() {
                        pol.tmpl =
                            Some(XfrmTmpl { src: ip(&t.saddr, t.family), dst: ip(&t.id.daddr, t.family), proto: t.id.proto, mode: t.mode, reqid: t.reqid });
                    }
                }
            }
            out.push(pol);
        }
    }
    Ok(out)
}

/// Whether the running kernel accepts this state (ESP and its algorithms), tried in a scratch
/// namespace that dies with its thread. `Err` carries the kernel's words.
pub fn probe_state(s: &XfrmState) -> std::io::Result<Result<(), KernelError>> {
    let s = s.clone();
    std::thread::spawn(move || -> std::io::Result<Result<(), KernelError>> {
        crate::kernel::netns::unshare_thread()?;
        let mut nl = RawNl::open(NETLINK_XFRM)?;
        Ok(add_state(&mut nl, &s))
    })
    .join()
    .map_err(|_| std::io::Error::other("xfrm probe panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::netfeat::IPPROTO_ESP;

    fn fixture(name: &str) -> (u16, String) {
        let text = include_str!("xfrm_fixtures.txt");
        let line = text.lines().find(|l| l.starts_with(&format!("{name} |"))).unwrap_or_else(|| panic!("no fixture {name}"));
        let parts: Vec<&str> = line.split(" | ").collect();
        (parts[2].trim().parse().unwrap(), parts[3].trim().to_string())
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn key(n: usize) -> Vec<u8> {
        (0..n as u8).collect()
    }

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn check(name: &str, m: XfrmMessage) {
        let (ty, want) = fixture(name);
        assert_eq!(m.message_type(), ty, "{name}: message type");
        assert_eq!(hex(&payload(&m)), want, "{name}");
    }

    #[test]
    fn states_match_ip_xfrm_byte_for_byte() {
        let aead = XfrmState {
            src: a("10.0.0.1"),
            dst: a("10.0.0.2"),
            spi: 0x1000,
            proto: IPPROTO_ESP,
            mode: 1,
            reqid: 1,
            aead: Some(XfrmAlg { name: "rfc4106(gcm(aes))".into(), key: key(36), bits: 128 }),
            enc: None,
            auth: None,
        };
        check("sa_aead_tunnel", add_state_msg(&aead));
        check("sa_delete", del_state_msg(&aead));
        let ea = XfrmState {
            spi: 0x1001,
            mode: 0,
            reqid: 2,
            aead: None,
            enc: Some(XfrmAlg { name: "cbc(aes)".into(), key: key(32), bits: 0 }),
            auth: Some(XfrmAlg { name: "hmac(sha256)".into(), key: key(32), bits: 128 }),
            ..aead
        };
        check("sa_encauth_transport", add_state_msg(&ea));
    }

    #[test]
    fn policies_match_ip_xfrm_byte_for_byte() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let out = XfrmPolicy {
            src: n("10.1.0.0/24"),
            dst: n("10.2.0.0/24"),
            dir: 1,
            tmpl: Some(XfrmTmpl { src: a("10.0.0.1"), dst: a("10.0.0.2"), proto: IPPROTO_ESP, mode: 1, reqid: 1 }),
        };
        check("policy_out_tunnel", add_policy_msg(&out));
        check("policy_delete", del_policy_msg(&out));
        let fwd = XfrmPolicy {
            src: n("10.2.0.0/24"),
            dst: n("10.1.0.0/24"),
            dir: 2,
            tmpl: Some(XfrmTmpl { src: a("10.0.0.2"), dst: a("10.0.0.1"), proto: IPPROTO_ESP, mode: 1, reqid: 1 }),
        };
        check("policy_fwd_tunnel", add_policy_msg(&fwd));
        let tin = XfrmPolicy {
            src: n("10.0.0.2/32"),
            dst: n("10.0.0.1/32"),
            dir: 0,
            tmpl: Some(XfrmTmpl { src: a("10.0.0.2"), dst: a("10.0.0.1"), proto: IPPROTO_ESP, mode: 0, reqid: 2 }),
        };
        check("policy_in_transport", add_policy_msg(&tin));
    }
}
