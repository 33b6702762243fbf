//! Bridge ports in the wrong VLAN: with VLAN filtering, untagged frames enter a port's PVID; two
//! hosts on one subnet behind ports with different PVIDs never meet.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{Ctx, Severity};

/// A bridge port with the untagged VLAN it puts frames in and the subnets behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSide {
    pub port: String,
    pub pvid: Option<u16>,
    pub subnets: Vec<IpNet>,
}

/// Pairs of ports whose hosts share a subnet but whose untagged VLANs differ. Pure.
pub fn conflicts(ports: &[PortSide]) -> Vec<(usize, usize, IpNet)> {
    let mut out = Vec::new();
    for (i, a) in ports.iter().enumerate() {
        for (j, b) in ports.iter().enumerate().skip(i + 1) {
            if a.pvid == b.pvid {
                continue;
            }
            if let Some(n) = a.subnets.iter().find(|n| b.subnets.contains(n)) {
                out.push((i, j, *n));
            }
        }
    }
    out
}

pub(super) fn check(ctx: &mut Ctx) {
    let view = ctx.view;
    for (n, v) in &view.nodes {
        if v.vlans.is_empty() {
            continue;
        }
        for b in v.ns.links.iter().filter(|l| l.kind.as_deref() == Some("bridge")) {
            let mut sides = Vec::new();
            for p in view.ports(n, b.ifindex) {
                let pvid = v.vlans.get(&p.ifindex).and_then(|vs| vs.iter().find(|x| x.pvid).map(|x| x.vid));
                let mut subnets: Vec<IpNet> = Vec::new();
                if let Some((pn, pi)) = view.linked(n, p) {
                    if let Some(pv) = view.nodes.get(pn) {
                        subnets.extend(pv.ns.addrs_of(pi).map(|a| a.addr.trunc()));
                    }
                }
                sides.push(PortSide { port: p.name.clone(), pvid, subnets });
            }
            let mut by_pair: BTreeMap<(String, String), IpNet> = BTreeMap::new();
            for (i, j, net) in conflicts(&sides) {
                by_pair.insert((sides[i].port.clone(), sides[j].port.clone()), net);
            }
            for ((a, bport), net) in by_pair {
                let pv = |name: &str| sides.iter().find(|s| s.port == name).and_then(|s| s.pvid).map(|x| x.to_string()).unwrap_or_else(|| "none".into());
                let path = ctx.iface_path(n, &bport);
                let f = ctx.finding(
                    "vlan-mismatch",
                    Severity::Error,
                    n,
                    Some(&bport),
                    format!(
                        "ports {a} (untagged VLAN {}) and {bport} (untagged VLAN {}) of bridge {} lead to hosts on one subnet {net}: they never reach each other",
                        pv(&a),
                        pv(&bport),
                        b.name
                    ),
                    format!("put both ports in the same VLAN (`bridge vlan add dev {bport} vid {} pvid untagged`)", pv(&a)),
                    path.as_deref(),
                );
                ctx.add(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_on_one_subnet_in_different_vlans_conflict() {
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        let other: IpNet = "10.9.0.0/24".parse().unwrap();
        let ports = vec![
            PortSide { port: "p1".into(), pvid: Some(10), subnets: vec![net] },
            PortSide { port: "p2".into(), pvid: Some(20), subnets: vec![net] },
            PortSide { port: "p3".into(), pvid: Some(10), subnets: vec![net] },
            PortSide { port: "p4".into(), pvid: Some(30), subnets: vec![other] },
        ];
        assert_eq!(conflicts(&ports), vec![(0, 1, net), (1, 2, net)]);
        // Same VLAN or different subnets: fine.
        assert!(conflicts(&[ports[0].clone(), ports[2].clone(), ports[3].clone()]).is_empty());
        // A port without any VLAN (pvid none) next to one with a PVID.
        let bare = PortSide { port: "p5".into(), pvid: None, subnets: vec![net] };
        assert_eq!(conflicts(&[ports[0].clone(), bare]).len(), 1);
    }
}
