//! Where a frame sent out of a device ends up: the link layer of a trace. Each device kind
//! has its own step (veth: the peer; bridge: the port its FDB names, or the port a flood
//! reaches; macvlan / ipvlan: a sibling or the lower device, by mode; vxlan: the underlay to the
//! remote tunnel end). A kind without a step here ends the walk as "leaves the lab", so new
//! kinds plug in by adding a match arm in `Walker::egress`.

use std::net::IpAddr;

use super::hop::Hop;
use crate::inspect::view::{KindDetails, LabView};
use crate::model::lab::format_mac;

/// How a walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The frame reached a node holding the next hop, on this device (node, ifindex).
    Arrived(String, u32),
    Dropped,
    LeftLab,
}

/// Route lookups for underlays (vxlan): (node, destination) -> (output ifindex, gateway).
pub type Underlay<'a> = &'a dyn Fn(&str, IpAddr) -> Option<(u32, Option<IpAddr>)>;

/// Follows one frame towards the holder of `next_hop`.
pub struct Walker<'a> {
    pub view: &'a LabView,
    pub next_hop: IpAddr,
    /// The MAC the frame is addressed to (the next hop's device), when the lab has it.
    pub mac: Option<[u8; 6]>,
    /// Record hops (false while looking ahead for a flood).
    pub record: bool,
    pub hops: Vec<Hop>,
    depth: u32,
    pub underlay: Underlay<'a>,
}

impl<'a> Walker<'a> {
    pub fn new(view: &'a LabView, next_hop: IpAddr, underlay: Underlay<'a>) -> Walker<'a> {
        let mac = view.holders(next_hop).into_iter().find_map(|(n, i)| view.link(n, i).and_then(|l| l.mac));
        Walker { view, next_hop, mac, record: true, hops: Vec::new(), depth: 0, underlay }
    }

    fn push(&mut self, h: Hop) {
        if self.record {
            self.hops.push(h);
        }
    }

    fn drop_at(&mut self, node: &str, dev: Option<u32>, cause: &str, why: String) -> End {
        let dev = dev.map(|i| self.devname(node, i));
        self.push(Hop::Drop { node: node.into(), dev, cause: cause.into(), why });
        End::Dropped
    }

    fn devname(&self, node: &str, i: u32) -> String {
        self.view.link(node, i).map(|l| l.name.clone()).unwrap_or_else(|| format!("#{i}"))
    }

    fn full(&self, node: &str, i: u32) -> String {
        self.view.name(node, i)
    }

    /// A frame leaves `node` through device `ifindex`.
    /// Whether a frame sent out of `ifindex` in `node` arrives: a look ahead that records
    /// nothing, to find which port of a flood leads on.
    fn leads_there(&self, node: &str, ifindex: u32) -> bool {
        let mut look = Walker { record: false, hops: Vec::new(), depth: self.depth + 8, ..*self };
        matches!(look.egress(node, ifindex), End::Arrived(..))
    }

    pub fn egress(&mut self, node: &str, ifindex: u32) -> End {
        self.depth += 1;
        if self.depth > 64 {
            return self.drop_at(node, Some(ifindex), "loop", "the link layer loops (more than 64 steps)".into());
        }
        let Some(l) = self.view.link(node, ifindex).cloned() else {
            return self.drop_at(node, Some(ifindex), "missing-device", "device not found".into());
        };
        if !l.up {
            return self.drop_at(node, Some(ifindex), "device-down", format!("{} is down", l.name));
        }
        match l.kind.as_deref() {
            Some("veth") => self.veth(node, &l),
            Some("bridge") => self.bridge(node, ifindex, None),
            Some("macvlan") | Some("macvtap") => self.macvlan(node, &l),
            Some("ipvlan") | Some("ipvtap") => self.ipvlan(node, &l),
            Some("vxlan") => self.vxlan(node, &l),
            None if l.name == "lo" => self.arrive(node, ifindex),
            other => {
                let what = other.unwrap_or("physical or unknown device");
                self.push(Hop::Leave { node: node.into(), dev: l.name.clone(), why: format!("a {what} leads out of the lab") });
                End::LeftLab
            }
        }
    }

    fn veth(&mut self, node: &str, l: &crate::observed::ObservedLink) -> End {
        if !l.carrier {
            return self.drop_at(node, Some(l.ifindex), "no-carrier", format!("{} has no carrier (its peer is down)", l.name));
        }
        let Some((pn, pi)) = self.view.linked(node, l) else {
            self.push(Hop::Leave { node: node.into(), dev: l.name.clone(), why: "its veth peer is not in any node of the lab".into() });
            return End::LeftLab;
        };
        let (pn, to) = (pn.to_string(), self.full(pn, pi));
        self.push(Hop::Link { from: self.full(node, l.ifindex), to, via: "veth".into() });
        self.ingress(&pn, pi)
    }

    /// A frame comes in on a device: a bridge port goes to its bridge; a lower device hands
    /// frames for a macvlan/ipvlan's address to it; otherwise the node receives it.
    fn ingress(&mut self, node: &str, ifindex: u32) -> End {
        let Some(l) = self.view.link(node, ifindex).cloned() else {
            return self.drop_at(node, Some(ifindex), "missing-device", "device not found".into());
        };
        if !l.up {
            return self.drop_at(node, Some(ifindex), "device-down", format!("{} is down", l.name));
        }
        if let Some(br) = l.master {
            if self.view.link(node, br).and_then(|b| b.kind.clone()).as_deref() == Some("bridge") {
                return self.bridge(node, br, Some(ifindex));
            }
        }
        if let Some((br, ports)) = self.view.ovs_bridge_of(node, &l.name) {
            let (br, ports) = (br.to_string(), ports.to_vec());
            return self.ovs(node, &br, &ports, &l.name);
        }
        // A macvlan / ipvlan on this lower device that holds the frame's address takes it.
        for (un, u) in self.view.uppers(node, ifindex) {
            let takes = match u.kind.as_deref() {
                Some("macvlan") | Some("macvtap") => self.mac.is_some() && u.mac == self.mac,
                Some("ipvlan") | Some("ipvtap") => self.view.holders(self.next_hop).contains(&(un, u.ifindex)),
                _ => false,
            };
            if takes {
                let (un, ui, uk) = (un.to_string(), u.ifindex, u.kind.clone().unwrap_or_default());
                self.push(Hop::Link { from: self.full(node, ifindex), to: self.full(&un, ui), via: format!("{uk} on its lower device") });
                return self.arrive(&un, ui);
            }
        }
        self.arrive(node, ifindex)
    }

    fn arrive(&mut self, node: &str, ifindex: u32) -> End {
        if self.view.holders(self.next_hop).iter().any(|(n, _)| *n == node) {
            self.push(Hop::Arrive { node: node.into(), dev: self.devname(node, ifindex), next_hop: self.next_hop });
            End::Arrived(node.to_string(), ifindex)
        } else {
            let why = format!("no device of {node} holds {}: neighbour resolution (ARP/NDP) gets no answer on this segment", self.next_hop);
            self.drop_at(node, Some(ifindex), "no-neighbour", why)
        }
    }

    /// A bridge forwards a frame that came in on `in_port` (None: sent by the bridge device).
    fn bridge(&mut self, node: &str, br: u32, in_port: Option<u32>) -> End {
        let bname = self.devname(node, br);
        // Addressed to the bridge itself (it holds the address): up into the node.
        if in_port.is_some() && self.view.holders(self.next_hop).contains(&(node, br)) {
            return self.arrive(node, br);
        }
        let Some(b) = self.view.link(node, br).cloned() else { return self.drop_at(node, Some(br), "missing-device", "bridge not found".into()) };
        if !b.up {
            return self.drop_at(node, Some(br), "device-down", format!("bridge {bname} is down"));
        }
        let ports: Vec<u32> = self.view.ports(node, br).iter().map(|p| p.ifindex).collect();
        let fdb_port =
            self.mac.and_then(|m| self.view.nodes.get(node)?.fdb.iter().find(|e| e.mac == m && ports.contains(&e.ifindex) && !e.local).map(|e| e.ifindex));
        let (port, how) = match fdb_port {
            Some(p) => (p, "forwarding database".to_string()),
            None => {
                // Unknown destination: flooded to every other port; follow the one that leads to
                // it. Ports whose far end is a holder are tried first (a star's bridge would
                // otherwise walk every port for every pair).
                let view = self.view;
                let likely: Vec<u32> = view
                    .holders(self.next_hop)
                    .into_iter()
                    .filter_map(|(hn, hi)| view.linked(hn, view.link(hn, hi)?))
                    .filter(|(pn, pi)| *pn == node && ports.contains(pi))
                    .map(|(_, pi)| pi)
                    .collect();
                let others = ports.iter().copied().filter(|p| !likely.contains(p));
                let mut found = None;
                for p in likely.iter().copied().chain(others) {
                    if Some(p) == in_port {
                        continue;
                    }
                    if self.leads_there(node, p) {
                        found = Some(p);
                        break;
                    }
                }
                // Back out of the port it came in on? Only a hairpin port sends it there.
                if found.is_none() {
                    if let Some(ip) = in_port {
                        if self.leads_there(node, ip) {
                            found = Some(ip);
                        }
                    }
                }
                match found {
                    Some(p) => (p, "not in the forwarding database: flooded, this port leads to it".to_string()),
                    None => {
                        // A port whose far end holds the address but is down or without carrier.
                        let holders = self.view.holders(self.next_hop);
                        for &p in &ports {
                            let Some(pl) = self.view.link(node, p).cloned() else { continue };
                            let Some((pn, pi)) = self.view.linked(node, &pl) else { continue };
                            if holders.iter().any(|(n, _)| *n == pn) {
                                let far = self.view.link(pn, pi).map(|l| (l.up, l.name.clone())).unwrap_or((false, "?".into()));
                                let (cause, why) = if !pl.up {
                                    ("device-down", format!("{} leads to {pn}, which holds {}, but it is down", pl.name, self.next_hop))
                                } else if !far.0 {
                                    ("no-carrier", format!("{} leads to {pn}, which holds {}, but its peer {pn}:{} is down", pl.name, self.next_hop, far.1))
                                } else {
                                    continue;
                                };
                                return self.drop_at(node, Some(p), cause, why);
                            }
                        }
                        return self.drop_at(
                            node,
                            Some(br),
                            "no-neighbour",
                            format!("no port of bridge {bname} leads to {} (flooded without an answer)", self.next_hop),
                        );
                    }
                }
            }
        };
        if Some(port) == in_port {
            let hairpin = self.view.link(node, port).and_then(|p| p.hairpin).unwrap_or(false);
            if !hairpin {
                let pname = self.devname(node, port);
                return self.drop_at(
                    node,
                    Some(port),
                    "hairpin-off",
                    format!("bridge {bname} does not send a frame back out of the port it came in on ({pname} has hairpin off)"),
                );
            }
        }
        self.push(Hop::Bridge { node: node.into(), bridge: bname, port: self.devname(node, port), how, mac: self.mac.map(|m| format_mac(&m)) });
        self.egress(node, port)
    }

    /// An Open vSwitch bridge, followed as a learning switch: out of the port that leads to the
    /// next hop. Its OpenFlow rules are not followed (a flow that drops shows in `check`).
    fn ovs(&mut self, node: &str, bridge: &str, ports: &[String], in_port: &str) -> End {
        let out = ports
            .iter()
            .filter(|p| p.as_str() != in_port)
            .find_map(|p| self.view.link_named(node, p).map(|l| l.ifindex).filter(|i| self.leads_there(node, *i)));
        let Some(port) = out else {
            return self.drop_at(node, None, "no-neighbour", format!("no port of Open vSwitch bridge {bridge} leads to {}", self.next_hop));
        };
        let how = "Open vSwitch as a learning switch; its flows are not followed".to_string();
        self.push(Hop::Bridge { node: node.into(), bridge: bridge.into(), port: self.devname(node, port), how, mac: self.mac.map(|m| format_mac(&m)) });
        self.egress(node, port)
    }

    fn macvlan(&mut self, node: &str, l: &crate::observed::ObservedLink) -> End {
        let mode = match self.view.details(node, l.ifindex) {
            KindDetails::Macvlan { mode } => mode.clone(),
            _ => "vepa".into(),
        };
        let Some((ln, li)) = self.view.linked(node, l) else {
            return self.drop_at(node, Some(l.ifindex), "missing-device", "its lower device is not in the lab".into());
        };
        let ln = ln.to_string();
        if let Some(end) = self.lower_unusable(node, l, &ln, li, "macvlan") {
            return end;
        }
        // Siblings on the same lower device: bridge mode switches between them inside the kernel.
        if mode == "bridge" {
            let sib = self
                .view
                .uppers(&ln, li)
                .into_iter()
                .find(|(n, u)| !(*n == node && u.ifindex == l.ifindex) && self.mac.is_some() && u.mac == self.mac)
                .map(|(n, u)| (n.to_string(), u.ifindex));
            if let Some((sn, si)) = sib {
                self.push(Hop::Link {
                    from: self.full(node, l.ifindex),
                    to: self.full(&sn, si),
                    via: "macvlan bridge mode, sibling on the same lower device".into(),
                });
                return self.arrive(&sn, si);
            }
        }
        if mode == "private" || mode == "vepa" {
            // Leaves through the lower; a sibling is reached only if the switch outside sends the
            // frame back (hairpin), and never in private mode.
            let to_sibling =
                self.view.uppers(&ln, li).into_iter().any(|(n, u)| !(n == node && u.ifindex == l.ifindex) && self.mac.is_some() && u.mac == self.mac);
            if to_sibling && mode == "private" {
                return self.drop_at(
                    node,
                    Some(l.ifindex),
                    "macvlan-private",
                    format!("macvlan private mode: {} never reaches a sibling on the same lower device", l.name),
                );
            }
        }
        self.push(Hop::Link { from: self.full(node, l.ifindex), to: self.full(&ln, li), via: format!("macvlan {mode} mode, out through the lower device") });
        self.lower_egress(&ln, li)
    }

    /// A macvlan / ipvlan whose lower device is down or without carrier carries nothing (not
    /// even to a sibling on the same lower device): the drop is at the lower device.
    fn lower_unusable(&mut self, node: &str, l: &crate::observed::ObservedLink, ln: &str, li: u32, kind: &str) -> Option<End> {
        let low = self.view.link(ln, li)?.clone();
        let upper = self.full(node, l.ifindex);
        if !low.up {
            return Some(self.drop_at(ln, Some(li), "device-down", format!("{} is down: the {kind} {upper} on it carries nothing", low.name)));
        }
        if !low.carrier || !l.carrier {
            return Some(self.drop_at(
                ln,
                Some(li),
                "no-carrier",
                format!("{} has no carrier (what it is connected to is down): the {kind} {upper} on it carries nothing", low.name),
            ));
        }
        None
    }

    /// A frame a macvlan / ipvlan sends leaves through the lower device's own link (not its uppers).
    fn lower_egress(&mut self, node: &str, li: u32) -> End {
        self.egress(node, li)
    }

    fn ipvlan(&mut self, node: &str, l: &crate::observed::ObservedLink) -> End {
        let (mode, flags) = match self.view.details(node, l.ifindex) {
            KindDetails::Ipvlan { mode, flags } => (mode.clone(), flags.clone()),
            _ => ("l3".into(), Vec::new()),
        };
        let Some((ln, li)) = self.view.linked(node, l) else {
            return self.drop_at(node, Some(l.ifindex), "missing-device", "its lower device is not in the lab".into());
        };
        let ln = ln.to_string();
        if let Some(end) = self.lower_unusable(node, l, &ln, li, "ipvlan") {
            return end;
        }
        let holders = self.view.holders(self.next_hop);
        let sib = self
            .view
            .uppers(&ln, li)
            .into_iter()
            .find(|(n, u)| !(*n == node && u.ifindex == l.ifindex) && holders.contains(&(n, u.ifindex)))
            .map(|(n, u)| (n.to_string(), u.ifindex));
        if let Some((sn, si)) = sib {
            if flags.iter().any(|f| f == "private") {
                return self.drop_at(
                    node,
                    Some(l.ifindex),
                    "ipvlan-private",
                    "ipvlan private flag: slaves of one lower device do not talk to each other".into(),
                );
            }
            if !flags.iter().any(|f| f == "vepa") {
                self.push(Hop::Link {
                    from: self.full(node, l.ifindex),
                    to: self.full(&sn, si),
                    via: format!("ipvlan {mode}, slave on the same lower device"),
                });
                return self.arrive(&sn, si);
            }
        }
        self.push(Hop::Link { from: self.full(node, l.ifindex), to: self.full(&ln, li), via: format!("ipvlan {mode}, out through the lower device") });
        self.lower_egress(&ln, li)
    }

    fn vxlan(&mut self, node: &str, l: &crate::observed::ObservedLink) -> End {
        let KindDetails::Vxlan { vni, remote, port, .. } = self.view.details(node, l.ifindex).clone() else {
            return self.drop_at(node, Some(l.ifindex), "vxlan", "vxlan options unreadable".into());
        };
        let candidates = vxlan_remotes(self.view, node, l.ifindex, self.mac, remote);
        let Some(first) = candidates.first().cloned() else {
            return self.drop_at(
                node,
                Some(l.ifindex),
                "vxlan",
                format!("vxlan {} has no remote for this destination (no FDB entry, no remote or group)", l.name),
            );
        };
        // Several default entries: the kernel sends a copy to each (head-end replication); the
        // trace follows the copy that reaches the destination, or else the first.
        let chosen = if candidates.len() > 1 {
            candidates
                .iter()
                .find(|(r, _)| {
                    let mut look = Walker { record: false, hops: Vec::new(), depth: self.depth + 8, ..*self };
                    matches!(look.tunnel(node, l, vni, port, *r, None), End::Arrived(..))
                })
                .cloned()
                .unwrap_or(first)
        } else {
            first
        };
        self.tunnel(node, l, vni, port, chosen.0, chosen.1)
    }

    /// Encapsulates to `remote` and follows the underlay to the tunnel's far end.
    fn tunnel(&mut self, node: &str, l: &crate::observed::ObservedLink, vni: u32, port: u16, remote: IpAddr, how: Option<String>) -> End {
        // Underlay: the node's own route to the remote, then the link layer to it.
        let Some((oif, gw)) = (self.underlay)(node, remote) else {
            return self.drop_at(node, Some(l.ifindex), "vxlan", format!("no underlay route to the vxlan remote {remote}"));
        };
        let mut under = Walker::new(self.view, gw.unwrap_or(remote), self.underlay);
        under.record = self.record;
        under.depth = self.depth + 1;
        let end = under.egress(node, oif);
        let under_hops = std::mem::take(&mut under.hops);
        match end {
            End::Arrived(rn, _) => {
                // The remote end: a vxlan device with the same VNI and port in the node holding `remote`.
                let holder = self.view.holders(remote).into_iter().map(|(n, _)| n.to_string()).next();
                let Some(hn) = holder else {
                    self.hops.extend(under_hops);
                    return self.drop_at(
                        &rn,
                        None,
                        "vxlan",
                        format!("the underlay reached {rn}, which does not hold the vxlan remote {remote} (routing the underlay on is not traced)"),
                    );
                };
                let peer = self.view.nodes.get(&hn).and_then(|v| {
                    v.ns.links
                        .iter()
                        .find(|x| matches!(v.details.get(&x.ifindex), Some(KindDetails::Vxlan { vni: pv, port: pp, .. }) if *pv == vni && *pp == port))
                        .map(|x| x.ifindex)
                });
                let Some(pi) = peer else {
                    self.hops.extend(under_hops);
                    return self.drop_at(&hn, None, "vxlan", format!("no vxlan device with vni {vni} (port {port}) at the remote end {remote}"));
                };
                let (from, to) = (self.full(node, l.ifindex), self.full(&hn, pi));
                self.push(Hop::Tunnel { from, vni, remote, to, how });
                if self.record {
                    self.hops.extend(under_hops.into_iter().map(|h| match h {
                        Hop::Link { from, to, via } => Hop::Link { from, to, via: format!("underlay: {via}") },
                        other => other,
                    }));
                }
                self.ingress(&hn, pi)
            }
            other => {
                self.hops.extend(under_hops);
                other
            }
        }
    }
}

/// The remotes a vxlan device sends a frame for `mac` to, as the kernel picks them: the FDB
/// entry for that MAC; otherwise the default (all-zeros) entries, one copy to each (the
/// device's own `remote` is such an entry too; read from the link when the FDB is unreadable).
/// Each with how it was found, for the trace's words.
pub fn vxlan_remotes(view: &LabView, node: &str, ifindex: u32, mac: Option<[u8; 6]>, remote: Option<IpAddr>) -> Vec<(IpAddr, Option<String>)> {
    let fdb: Vec<&crate::inspect::view::FdbEntry> =
        view.nodes.get(node).map(|v| v.fdb.iter().filter(|e| e.ifindex == ifindex && e.dst.is_some()).collect()).unwrap_or_default();
    if let Some(e) = mac.and_then(|m| fdb.iter().find(|e| e.mac == m && m != [0; 6])) {
        return vec![(e.dst.expect("filtered"), Some(format!("FDB entry for {}", format_mac(&e.mac))))];
    }
    let mut zeros: Vec<IpAddr> = Vec::new();
    for e in fdb.iter().filter(|e| e.mac == [0; 6]) {
        if let Some(d) = e.dst {
            if !zeros.contains(&d) {
                zeros.push(d);
            }
        }
    }
    if zeros.is_empty() {
        return remote.map(|r| vec![(r, None)]).unwrap_or_default();
    }
    let n = zeros.len();
    zeros
        .into_iter()
        .map(|d| {
            let how = if Some(d) == remote && n == 1 {
                None
            } else if n == 1 {
                Some("default remote: the all-zeros FDB entry".to_string())
            } else {
                Some(format!("all-zeros FDB entries: head-end replication to {n} remotes, this copy"))
            };
            (d, how)
        })
        .collect()
}
