//! Linux bridge options (times are in the kernel's clock_t, 1/100 s) and bridge port options.

use netlink_packet_route::link::{BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, LinkInfo};

use crate::model::kind::BridgeSpec;

const USER_HZ: u32 = 100;

pub(super) fn info(b: &BridgeSpec) -> Vec<LinkInfo> {
    let mut data = Vec::new();
    if let Some(stp) = b.stp {
        data.push(InfoBridge::StpState(if stp { BridgeStpState::KernelStp } else { BridgeStpState::Disabled }));
    }
    if let Some(t) = b.ageing_time {
        data.push(InfoBridge::AgeingTime(t.saturating_mul(USER_HZ)));
    }
    if let Some(t) = b.forward_delay {
        data.push(InfoBridge::ForwardDelay(t.saturating_mul(USER_HZ)));
    }
    if let Some(m) = b.multicast_snooping {
        data.push(InfoBridge::MulticastSnooping(m));
    }
    if let Some(v) = b.vlan_filtering {
        data.push(InfoBridge::VlanFiltering(v));
    }
    let mut out = vec![LinkInfo::Kind(InfoKind::Bridge)];
    if !data.is_empty() {
        out.push(LinkInfo::Data(InfoData::Bridge(data)));
    }
    out
}

pub(super) fn decode(attrs: &[InfoBridge]) -> BridgeSpec {
    let mut b = BridgeSpec::default();
    for a in attrs {
        match a {
            InfoBridge::StpState(s) => b.stp = Some(!matches!(s, BridgeStpState::Disabled)),
            InfoBridge::AgeingTime(t) => b.ageing_time = Some(t / USER_HZ),
            InfoBridge::ForwardDelay(t) => b.forward_delay = Some(t / USER_HZ),
            InfoBridge::MulticastSnooping(m) => b.multicast_snooping = Some(*m),
            InfoBridge::VlanFiltering(v) => b.vlan_filtering = Some(*v),
            _ => {}
        }
    }
    b
}

pub(super) fn hairpin(p: &[InfoBridgePort]) -> Option<bool> {
    p.iter().find_map(|a| match a {
        InfoBridgePort::HairpinMode(h) => Some(*h),
        _ => None,
    })
}

/// Whether a bridge port forwards (IFLA_BRPORT_STATE).
pub(super) fn forwarding(p: &[InfoBridgePort]) -> Option<bool> {
    p.iter().find_map(|a| match a {
        InfoBridgePort::State(s) => Some(matches!(s, netlink_packet_route::link::BridgePortState::Forwarding)),
        _ => None,
    })
}

/// IFLA_LINKINFO that sets bridge port options on an enslaved device.
pub fn port_info(hairpin: bool) -> Vec<LinkInfo> {
    vec![LinkInfo::PortKind(InfoPortKind::Bridge), LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(hairpin)]))]
}

/// IFLA_LINKINFO that puts a bridge port to forwarding (IFLA_BRPORT_STATE). The kernel takes it
/// only while the bridge runs no kernel STP (EBUSY) and the port is up with carrier (ENETDOWN).
pub fn port_forwarding_info() -> Vec<LinkInfo> {
    let state = InfoBridgePort::State(netlink_packet_route::link::BridgePortState::Forwarding);
    vec![LinkInfo::PortKind(InfoPortKind::Bridge), LinkInfo::PortData(InfoPortData::BridgePort(vec![state]))]
}
