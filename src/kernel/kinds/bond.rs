//! Bond options (IFLA_BOND_MODE, IFLA_BOND_MIIMON); the primary port is set once the port is
//! enslaved (IFLA_BOND_PRIMARY names an ifindex), and the active port is read for `status`.

use netlink_packet_route::link::{BondMode as Mode, InfoBond, InfoData, InfoKind, LinkInfo};

use crate::model::kind::{BondMode, BondSpec};

fn mode(m: BondMode) -> Mode {
    match m {
        BondMode::BalanceRr => Mode::BalanceRr,
        BondMode::ActiveBackup => Mode::ActiveBackup,
        BondMode::BalanceXor => Mode::BalanceXor,
        BondMode::Broadcast => Mode::Broadcast,
        BondMode::Lacp => Mode::Ieee8023Ad,
        BondMode::BalanceTlb => Mode::BalanceTlb,
        BondMode::BalanceAlb => Mode::BalanceAlb,
    }
}

/// Creation options. `with_mode` is false for in-place changes: the kernel refuses a mode
/// change while the bond has ports.
pub(super) fn info(s: &BondSpec, with_mode: bool) -> Vec<LinkInfo> {
    let mut d = Vec::new();
    if with_mode {
        d.push(InfoBond::Mode(mode(s.mode())));
    }
    d.push(InfoBond::MiiMon(s.miimon()));
    vec![LinkInfo::Kind(InfoKind::Bond), LinkInfo::Data(InfoData::Bond(d))]
}

/// IFLA_LINKINFO naming the primary port (by its ifindex).
pub fn primary_info(port: u32) -> Vec<LinkInfo> {
    vec![LinkInfo::Kind(InfoKind::Bond), LinkInfo::Data(InfoData::Bond(vec![InfoBond::Primary(port)]))]
}

/// Decoded options plus the active port's ifindex.
pub(super) fn decode(d: &[InfoBond]) -> (BondSpec, Option<u32>) {
    let mut s = BondSpec::default();
    let mut active = None;
    for a in d {
        match a {
            InfoBond::Mode(m) => {
                s.mode = Some(match m {
                    Mode::ActiveBackup => BondMode::ActiveBackup,
                    Mode::BalanceXor => BondMode::BalanceXor,
                    Mode::Broadcast => BondMode::Broadcast,
                    Mode::Ieee8023Ad => BondMode::Lacp,
                    Mode::BalanceTlb => BondMode::BalanceTlb,
                    Mode::BalanceAlb => BondMode::BalanceAlb,
                    _ => BondMode::BalanceRr,
                })
            }
            InfoBond::MiiMon(m) => s.miimon = Some(*m),
            InfoBond::ActivePort(p) if *p != 0 => active = Some(*p),
            _ => {}
        }
    }
    (s, active)
}
