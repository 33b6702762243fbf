//! Netlink encoding and decoding of each device kind's options (IFLA_LINKINFO), one file per
//! kind. The model's `KindSpec` is the single description; this module translates it.

use netlink_packet_route::link::{InfoData, InfoKind, InfoPortData, InfoPortKind, LinkInfo};

use crate::model::kind::KindSpec;

mod bridge;
mod veth;

pub use veth::veth_info;

/// IFLA_LINKINFO for creating a device of this kind, or for changing its options in place.
/// veth is built by `veth_info`, since its peer needs the target namespace.
pub fn link_info(spec: &KindSpec) -> Option<Vec<LinkInfo>> {
    match spec {
        KindSpec::Loopback(_) => None,
        KindSpec::Veth(_) => Some(vec![LinkInfo::Kind(InfoKind::Veth)]),
        KindSpec::Bridge(b) => Some(bridge::info(b)),
    }
}

/// What a dump says about a device's kind, decoded into the model's terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub kind: Option<String>,
    pub spec: Option<KindSpec>,
    pub port_kind: Option<String>,
    pub hairpin: Option<bool>,
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
            LinkInfo::PortData(InfoPortData::BridgePort(p)) => d.hairpin = bridge::hairpin(p),
            _ => {}
        }
    }
    d.spec = match (d.kind.as_deref(), data) {
        (Some("veth"), _) => Some(KindSpec::Veth(Default::default())),
        (Some("bridge"), Some(InfoData::Bridge(b))) => Some(KindSpec::Bridge(bridge::decode(b))),
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

pub use bridge::port_info as bridge_port_info;
