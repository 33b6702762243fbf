//! Netlink encoding and decoding of each device kind's options (IFLA_LINKINFO), one file per
//! kind. The model's `KindSpec` is the single description; this module translates it.

use netlink_packet_route::link::{InfoData, InfoKind, InfoPortData, InfoPortKind, LinkInfo};

use crate::model::kind::KindSpec;

mod bond;
mod bridge;
mod ipvlan;
mod macvlan;
mod tun;
mod veth;
mod vlan;
mod vxlan;

pub use bond::primary_info as bond_primary_info;
pub use veth::veth_info;

/// IFLA_LINKINFO for creating a device of this kind, or for changing its options in place.
/// veth is built by `veth_info`, since its peer needs the target namespace.
pub fn link_info(spec: &KindSpec) -> Option<Vec<LinkInfo>> {
    link_info_with(spec, None)
}

/// IFLA_LINKINFO for creating a device whose options name another device by index (a
/// VXLAN's underlay `dev`). Other lower devices travel as IFLA_LINK beside it.
pub fn link_info_with(spec: &KindSpec, lower: Option<u32>) -> Option<Vec<LinkInfo>> {
    match spec {
        KindSpec::Loopback(_) => None,
        KindSpec::Veth(_) => Some(vec![LinkInfo::Kind(InfoKind::Veth)]),
        KindSpec::Bridge(b) => Some(bridge::info(b)),
        KindSpec::Macvlan(m) => Some(macvlan::info(m, false)),
        KindSpec::Macvtap(m) => Some(macvlan::info(m, true)),
        KindSpec::Ipvlan(i) => Some(ipvlan::info(i)),
        KindSpec::Vlan(v) => Some(vlan::info(v)),
        KindSpec::Vxlan(v) => Some(vxlan::info(v, lower)),
        KindSpec::Bond(b) => Some(bond::info(b, true)),
        KindSpec::Team(_) => Some(vec![LinkInfo::Kind(InfoKind::Team)]),
        KindSpec::Dummy(_) => Some(vec![LinkInfo::Kind(InfoKind::Dummy)]),
        KindSpec::Ifb(_) => Some(vec![LinkInfo::Kind(InfoKind::Ifb)]),
        KindSpec::Tun(_) | KindSpec::Tap(_) | KindSpec::OvsBridge(_) | KindSpec::OvsInternal(_) => None,
    }
}

/// IFLA_LINKINFO changing a running device's options in place (`Drift::Update`).
pub fn change_info(spec: &KindSpec) -> Option<Vec<LinkInfo>> {
    match spec {
        KindSpec::Bond(b) => Some(bond::info(b, false)),
        other => link_info(other),
    }
}

/// What a dump says about a device's kind, decoded into the model's terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub kind: Option<String>,
    pub spec: Option<KindSpec>,
    pub port_kind: Option<String>,
    pub hairpin: Option<bool>,
    /// Bridge port state is `forwarding`.
    pub forwarding: Option<bool>,
    /// Kind-specific facts for `status` (VXLAN underlay, bond active port as ifindexes).
    pub details: std::collections::BTreeMap<String, String>,
}

/// Decodes IFLA_LINKINFO of a dumped device.
pub fn decode(infos: &[LinkInfo]) -> Decoded {
    let mut d = Decoded::default();
    let mut data: Option<&InfoData> = None;
    for i in infos {
        match i {
            LinkInfo::Kind(k) => d.kind = Some(kind_name(k)),
            LinkInfo::Data(x) => data = Some(x),
            LinkInfo::PortKind(k) => {
                d.port_kind = Some(match k {
                    InfoPortKind::Bond => "bond".into(),
                    InfoPortKind::Bridge => "bridge".into(),
                    InfoPortKind::Vrf => "vrf".into(),
                    InfoPortKind::Team => "team".into(),
                    InfoPortKind::Other(s) => s.clone(),
                    _ => "other".into(),
                })
            }
            LinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                d.hairpin = bridge::hairpin(p);
                d.forwarding = bridge::forwarding(p);
            }
            _ => {}
        }
    }
    d.spec = match (d.kind.as_deref(), data) {
        (Some("veth"), _) => Some(KindSpec::Veth(Default::default())),
        (Some("bridge"), Some(InfoData::Bridge(b))) => Some(KindSpec::Bridge(bridge::decode(b))),
        (Some("macvlan"), Some(InfoData::MacVlan(m))) => Some(KindSpec::Macvlan(macvlan::decode(m))),
        (Some("macvtap"), Some(InfoData::MacVtap(m))) => Some(KindSpec::Macvtap(macvlan::decode_tap(m))),
        (Some("ipvlan"), Some(InfoData::IpVlan(i))) => Some(KindSpec::Ipvlan(ipvlan::decode(i))),
        (Some("vlan"), Some(InfoData::Vlan(v))) => Some(KindSpec::Vlan(vlan::decode(v))),
        (Some("vxlan"), Some(InfoData::Vxlan(v))) => {
            let (spec, link) = vxlan::decode(v);
            if let Some(l) = link {
                d.details.insert("underlay_ifindex".into(), l.to_string());
            }
            Some(KindSpec::Vxlan(spec))
        }
        (Some("bond"), Some(InfoData::Bond(b))) => {
            let (spec, active) = bond::decode(b);
            if let Some(a) = active {
                d.details.insert("active_port_ifindex".into(), a.to_string());
            }
            Some(KindSpec::Bond(spec))
        }
        (Some("team"), _) => Some(KindSpec::Team(Default::default())),
        (Some("tun"), Some(InfoData::Tun(t))) => Some(tun::decode(t)),
        (Some("tun"), None) => Some(KindSpec::Tun(Default::default())),
        (Some("dummy"), _) => Some(KindSpec::Dummy(Default::default())),
        (Some("ifb"), _) => Some(KindSpec::Ifb(Default::default())),
        _ => None,
    };
    d
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Other(s) => s.clone(),
        other => other.to_string(),
    }
}

pub use bridge::port_forwarding_info as bridge_port_forwarding_info;
pub use bridge::port_info as bridge_port_info;
