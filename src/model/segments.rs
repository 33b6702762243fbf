//! Layer-2 segments of a lab: interfaces joined by veth pairs and bridges. Pure analysis used
//! to estimate how many neighbour (ARP/NDP) entries the lab can need — the kernel's neighbour
//! table is one for all namespaces, with machine-wide limits.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::kind::KindSpec;
use super::lab::{Endpoint, Lab, Node};

/// Groups of interfaces that share one broadcast domain.
pub fn segments(lab: &Lab) -> Vec<Vec<Endpoint>> {
    segments_of(&lab.nodes)
}

/// Segments of checked nodes (validation runs this before the `Lab` exists). Joined: veth
/// peers, ports and their master, devices stacked on a lower device (macvlan, macvtap, ipvlan
/// and vlan: a vlan is its own domain only on a trunk, so joining it errs on the side of one
/// segment), and VXLAN devices of the same VNI.
pub fn segments_of(nodes: &IndexMap<String, Node>) -> Vec<Vec<Endpoint>> {
    let mut index: HashMap<Endpoint, usize> = HashMap::new();
    let mut eps: Vec<Endpoint> = Vec::new();
    for (n, node) in nodes {
        for i in node.interfaces.values() {
            if i.name == "lo" {
                continue;
            }
            index.insert(Endpoint::new(n, &i.name), eps.len());
            eps.push(Endpoint::new(n, &i.name));
        }
    }
    let mut parent: Vec<usize> = (0..eps.len()).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            p[r] = p[p[r]];
            r = p[r];
        }
        r
    }
    let join = |a: usize, b: usize, p: &mut Vec<usize>| {
        let (ra, rb) = (find(p, a), find(p, b));
        if ra != rb {
            p[ra] = rb;
        }
    };
    let mut by_vni: HashMap<u32, usize> = HashMap::new();
    for (n, node) in nodes {
        for i in node.interfaces.values() {
            let Some(&me) = index.get(&Endpoint::new(n, &i.name)) else { continue };
            if let Some(peer) = &i.peer {
                if let Some(&o) = index.get(peer) {
                    join(me, o, &mut parent);
                }
            }
            if let Some(m) = &i.master {
                if let Some(&o) = index.get(&Endpoint::new(n, m)) {
                    join(me, o, &mut parent);
                }
            }
            match &i.kind {
                KindSpec::Vxlan(v) => {
                    let first = *by_vni.entry(v.vni).or_insert(me);
                    join(me, first, &mut parent);
                }
                k => {
                    if let Some(&o) = k.lower_endpoint(n).and_then(|l| index.get(&l)) {
                        join(me, o, &mut parent);
                    }
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<Endpoint>> = HashMap::new();
    for (k, ep) in eps.into_iter().enumerate() {
        let r = find(&mut parent, k);
        groups.entry(r).or_default().push(ep);
    }
    let mut out: Vec<Vec<Endpoint>> = groups.into_values().collect();
    out.sort();
    out
}

/// Neighbour entries the lab can need when every addressed interface of a segment talks to
/// every other one: sum over segments of k·(k−1), per address family.
pub fn potential_neighbours(lab: &Lab) -> usize {
    segments(lab)
        .iter()
        .map(|seg| {
            let count =
                |v6: bool| seg.iter().filter(|ep| lab.interface(ep).map(|i| i.addresses.iter().any(|a| a.addr().is_ipv6() == v6)).unwrap_or(false)).count();
            let (k4, k6) = (count(false), count(true));
            k4 * k4.saturating_sub(1) + k6 * k6.saturating_sub(1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_str;
    use crate::model::Format;

    #[test]
    fn a_bridge_and_its_veths_are_one_segment() {
        let l = load_str("x.yaml", include_str!("../../examples/bridge.yaml"), Format::Yaml).unwrap().lab;
        let segs = segments(&l);
        let big = segs.iter().max_by_key(|s| s.len()).unwrap();
        assert_eq!(big.len(), 5); // br1, veth1, veth2, ns1:eth0, ns2:eth0
                                  // Three addressed interfaces on one segment: 3 * 2 entries.
        assert_eq!(potential_neighbours(&l), 6);
    }
}
