//! macvlan / macvtap options (IFLA_MACVLAN_*; macvtap uses the same attributes). The lower
//! device travels as IFLA_LINK, set by the executor.

use netlink_packet_route::link::{InfoData, InfoKind, InfoMacVlan, InfoMacVtap, LinkInfo, MacVlanMacAddressMode, MacVlanMode};

use crate::model::kind::{MacvlanMode as Mode, MacvlanSpec};

fn mode(m: Mode) -> MacVlanMode {
    match m {
        Mode::Vepa => MacVlanMode::Vepa,
        Mode::Bridge => MacVlanMode::Bridge,
        Mode::Private => MacVlanMode::Private,
        Mode::Passthru => MacVlanMode::Passthrough,
        Mode::Source => MacVlanMode::Source,
    }
}

fn unmode(m: &MacVlanMode) -> Option<Mode> {
    Some(match m {
        MacVlanMode::Vepa => Mode::Vepa,
        MacVlanMode::Bridge => Mode::Bridge,
        MacVlanMode::Private => Mode::Private,
        MacVlanMode::Passthrough => Mode::Passthru,
        MacVlanMode::Source => Mode::Source,
        _ => return None,
    })
}

pub(super) fn info(s: &MacvlanSpec, tap: bool) -> Vec<LinkInfo> {
    let macs = s.mac_list();
    if tap {
        let mut d = vec![InfoMacVtap::Mode(mode(s.mode()))];
        if s.mode() == Mode::Source && !macs.is_empty() {
            d.push(InfoMacVtap::MacAddrMode(MacVlanMacAddressMode::Set));
            d.push(InfoMacVtap::MacAddrData(macs.into_iter().map(InfoMacVtap::MacAddr).collect()));
        }
        vec![LinkInfo::Kind(InfoKind::MacVtap), LinkInfo::Data(InfoData::MacVtap(d))]
    } else {
        let mut d = vec![InfoMacVlan::Mode(mode(s.mode()))];
        if s.mode() == Mode::Source && !macs.is_empty() {
            d.push(InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set));
            d.push(InfoMacVlan::MacAddrData(macs.into_iter().map(InfoMacVlan::MacAddr).collect()));
        }
        vec![LinkInfo::Kind(InfoKind::MacVlan), LinkInfo::Data(InfoData::MacVlan(d))]
    }
}

fn fmt(m: &[u8; 6]) -> String {
    crate::model::lab::format_mac(m)
}

pub(super) fn decode(d: &[InfoMacVlan]) -> MacvlanSpec {
    let mut s = MacvlanSpec::default();
    for a in d {
        match a {
            InfoMacVlan::Mode(m) => s.mode = unmode(m),
            InfoMacVlan::MacAddrData(list) => {
                for x in list {
                    if let InfoMacVlan::MacAddr(m) = x {
                        s.macs.push(fmt(m));
                    }
                }
            }
            _ => {}
        }
    }
    s
}

pub(super) fn decode_tap(d: &[InfoMacVtap]) -> MacvlanSpec {
    let mut s = MacvlanSpec::default();
    for a in d {
        match a {
            InfoMacVtap::Mode(m) => s.mode = unmode(m),
            InfoMacVtap::MacAddrData(list) => {
                for x in list {
                    if let InfoMacVtap::MacAddr(m) = x {
                        s.macs.push(fmt(m));
                    }
                }
            }
            _ => {}
        }
    }
    s
}
