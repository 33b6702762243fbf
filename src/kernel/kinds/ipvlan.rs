//! ipvlan options (IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS).

use netlink_packet_route::link::{InfoData, InfoIpVlan, InfoKind, IpVlanFlags, IpVlanMode, LinkInfo};

use crate::model::kind::{IpvlanFlag, IpvlanMode, IpvlanSpec};

pub(super) fn info(s: &IpvlanSpec) -> Vec<LinkInfo> {
    let mode = match s.mode.unwrap_or_default() {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    };
    let flags = match s.flag.unwrap_or_default() {
        IpvlanFlag::Bridge => IpVlanFlags::empty(),
        IpvlanFlag::Private => IpVlanFlags::Private,
        IpvlanFlag::Vepa => IpVlanFlags::Vepa,
    };
    vec![LinkInfo::Kind(InfoKind::IpVlan), LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(mode), InfoIpVlan::Flags(flags)]))]
}

pub(super) fn decode(d: &[InfoIpVlan]) -> IpvlanSpec {
    let mut s = IpvlanSpec::default();
    for a in d {
        match a {
            InfoIpVlan::Mode(m) => {
                s.mode = match m {
                    IpVlanMode::L2 => Some(IpvlanMode::L2),
                    IpVlanMode::L3 => Some(IpvlanMode::L3),
                    IpVlanMode::L3S => Some(IpvlanMode::L3s),
                    _ => None,
                }
            }
            InfoIpVlan::Flags(f) => {
                s.flag = Some(if f.contains(IpVlanFlags::Private) {
                    IpvlanFlag::Private
                } else if f.contains(IpVlanFlags::Vepa) {
                    IpvlanFlag::Vepa
                } else {
                    IpvlanFlag::Bridge
                })
            }
            _ => {}
        }
    }
    s
}
