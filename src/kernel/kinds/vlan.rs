//! 802.1Q / 802.1ad VLAN options (IFLA_VLAN_ID, IFLA_VLAN_PROTOCOL).

use netlink_packet_route::link::{InfoData, InfoKind, InfoVlan, LinkInfo, VlanProtocol as Proto};

use crate::model::kind::{VlanProtocol, VlanSpec};

pub(super) fn info(s: &VlanSpec) -> Vec<LinkInfo> {
    let proto = match s.protocol.unwrap_or_default() {
        VlanProtocol::Dot1q => Proto::Ieee8021Q,
        VlanProtocol::Dot1ad => Proto::Ieee8021Ad,
    };
    vec![LinkInfo::Kind(InfoKind::Vlan), LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(s.id), InfoVlan::Protocol(proto)]))]
}

pub(super) fn decode(d: &[InfoVlan]) -> VlanSpec {
    let mut s = VlanSpec::default();
    for a in d {
        match a {
            InfoVlan::Id(i) => s.id = *i,
            InfoVlan::Protocol(p) => {
                s.protocol = Some(match p {
                    Proto::Ieee8021Ad => VlanProtocol::Dot1ad,
                    _ => VlanProtocol::Dot1q,
                })
            }
            _ => {}
        }
    }
    s
}
