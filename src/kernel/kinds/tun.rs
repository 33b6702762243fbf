//! tun/tap as the kernel reports them (IFLA_TUN_* inside IFLA_INFO_DATA, kind `tun`). The
//! devices themselves are made with ioctls (`kernel::tun`).

use netlink_packet_core::Nla;
use netlink_packet_route::link::InfoTun;

use crate::model::kind::{KindSpec, TunSpec};

const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_VNET_HDR: u16 = 5;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;
/// IFF_TAP in IFLA_TUN_TYPE.
const IFF_TAP: u8 = 2;

/// Decodes to `Tun` or `Tap` with the options the kernel reports.
pub(super) fn decode(d: &[InfoTun]) -> KindSpec {
    let mut s = TunSpec::default();
    let mut tap = false;
    for a in d {
        let InfoTun::Other(nla) = a else { continue };
        let mut v = vec![0u8; nla.value_len()];
        nla.emit_value(&mut v);
        let u8v = v.first().copied().unwrap_or(0);
        let u32v = if v.len() >= 4 { Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]])) } else { None };
        match nla.kind() {
            // (uid_t)-1 / (gid_t)-1: nobody set.
            IFLA_TUN_OWNER => s.owner = u32v.filter(|u| *u != u32::MAX),
            IFLA_TUN_GROUP => s.group = u32v.filter(|u| *u != u32::MAX),
            IFLA_TUN_TYPE => tap = u8v == IFF_TAP,
            IFLA_TUN_VNET_HDR => s.vnet_hdr = Some(u8v != 0).filter(|b| *b),
            IFLA_TUN_PERSIST => s.persistent = Some(u8v != 0).filter(|b| !*b),
            IFLA_TUN_MULTI_QUEUE => s.multi_queue = Some(u8v != 0).filter(|b| *b),
            _ => {}
        }
    }
    if tap {
        KindSpec::Tap(s)
    } else {
        KindSpec::Tun(s)
    }
}
