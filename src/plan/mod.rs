//! The planner: a pure function from (validated lab, observed kernel state, lab record) to an
//! ordered list of operations. Running it against a lab that is up as declared yields nothing.
//! Objects that are not the lab's are never planned for change; a name clash is reported.

mod devices;
mod netfeat;
mod netfeat_ops;
mod ops;
pub mod ovs;
mod resets;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use ipnet::IpNet;
use serde::Serialize;

pub use devices::{DeviceOp, PortVlan};
pub use netfeat::{missing_keys, qdisc_drift, same_qdisc, table_name as netfeat_table_name, xfrm_desired, QdiscDrift};
pub use netfeat_ops::FeatureOp;
pub use ops::{stage, CreateLink, LinkChange, Op, PeerEnd, Plan, RouteOp, Step};

use crate::model::kind::{Drift, KindSpec, VethSpec};
use crate::model::lab::{Endpoint, Interface, Lab, Node, Route};
use crate::model::validate::sysctl_components;
use crate::observed::{NsState, Observed, ObservedAddr, ObservedLink, ObservedNs, ADDR_GEN_MODE_NONE, RTPROT_VNET};
use crate::state::LabState;

/// Something in the kernel that has a name the lab wants but is not the lab's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Clash {
    pub node: String,
    pub what: String,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}: {}", self.node, self.what)
    }
}

/// Who owns a device: the lab (by alias mark or interface group) or someone else.
pub fn owned_by(link: &ObservedLink, mark: &str, group: u32) -> bool {
    link.alias.as_deref() == Some(mark) || (group != 0 && link.group == group)
}

/// Plans `up`.
pub fn plan(lab: &Lab, observed: &Observed, state: Option<&LabState>) -> Result<Plan, Vec<Clash>> {
    let mut p = Planner {
        lab,
        observed,
        mark: lab.mark(),
        group: state.map(|s| s.group).filter(|g| *g != 0).unwrap_or_else(|| crate::state::group_for(&lab.name)),
        root_recorded: state.map(|s| s.root_devices.iter().cloned().collect()).unwrap_or_default(),
        steps: Vec::new(),
        replaced: HashSet::new(),
        clashes: Vec::new(),
        prior: resets::Prior::new(state),
        levels: devices::levels(lab),
    };
    p.namespaces(state);
    p.links();
    p.device_extras();
    p.ovs(state);
    for node in lab.nodes.values() {
        p.addresses(node);
        p.link_local(node);
        p.routes(node);
        p.sysctls(node, state);
    }
    p.removed_devices();
    p.removed_namespaces(state);
    let features = netfeat::plan(lab, observed, state, &p.replaced);
    p.steps.extend(features);
    if !p.clashes.is_empty() {
        return Err(p.clashes);
    }
    // Stable order: by stage, then plan order.
    p.steps.sort_by_key(|s| s.stage);
    Ok(Plan { lab: lab.name.clone(), steps: p.steps })
}

/// Whether applying `plan` to the kernel `observed` can make the kernel change other state as
/// a side effect, which a plan made from `observed` cannot foresee: removing an address flushes
/// the routes whose gateway or source it covered, deleting or re-creating a device takes its
/// routes, a port leaving or joining a bridge (or changing its MTU) makes the bridge recompute
/// its MTU, an IPv6 sysctl can drop addresses (`disable_ipv6`)... Only changes to what existed
/// before count: a fresh build disturbs nothing. Ports joining a bridge whose MTU the file sets
/// count only when the bridge existed before: the kernel sets a bridge's MTU to its smallest
/// port's when one joins, unless the MTU was changed after the bridge's creation, which the
/// executor does for every bridge it creates with an MTU (a bridge built by an older vnet may
/// not be marked so). `up` observes again after such a plan and applies what is left.
pub fn disturbs(lab: &Lab, plan: &Plan, observed: &Observed) -> bool {
    use ovs::OvsOp;
    let existing = |node: &str| matches!(observed.nodes.get(node), Some(NsState::Owned(_) | NsState::Root(_)));
    let has_link = |node: &str, ifname: &str| observed.nodes.get(node).and_then(|s| s.ns()).is_some_and(|ns| ns.link(ifname).is_some());
    let sized_bridge = |node: &str, master: Option<&String>| {
        master
            .and_then(|m| lab.nodes.get(node)?.interfaces.get(m))
            .is_some_and(|b| matches!(b.kind, KindSpec::Bridge(_)) && b.mtu.is_some() && has_link(node, &b.name))
    };
    plan.ops().any(|op| match op {
        Op::DelAddress { .. } | Op::DeleteLink { .. } | Op::SetKindOptions { .. } => true,
        Op::CreateLink(c) => sized_bridge(&c.node, c.master.as_ref()),
        Op::ChangeLink { node, ifname, change } => {
            (has_link(node, ifname) && (change.mtu.is_some() || change.mac.is_some() || change.master.is_some() || change.up == Some(false)))
                || sized_bridge(node, change.master.as_ref().and_then(|m| m.as_ref()))
        }
        // IPv6 settings drop addresses and routes (`disable_ipv6`, `mtu`, ...); IPv4 ones
        // (forwarding, rp_filter, ...) remove nothing the observer sees.
        Op::SetSysctl { node, key, .. } | Op::RestoreSysctl { node, key, .. } => key.starts_with("net.ipv6.") && existing(node),
        Op::Ovs { ovs_op, .. } => {
            matches!(ovs_op, OvsOp::SetBridge { .. } | OvsOp::SetPort { .. } | OvsOp::DelPort { .. } | OvsOp::DelBridge { .. } | OvsOp::Stop)
        }
        _ => false,
    })
}

struct Planner<'a> {
    lab: &'a Lab,
    observed: &'a Observed,
    mark: String,
    group: u32,
    /// Root-namespace devices the record names: there the group alone proves nothing (anyone
    /// can put a device in any group), only the mark or the group and the record together.
    root_recorded: HashSet<String>,
    steps: Vec<Step>,
    /// (node, device) deleted to be re-created, for lookups per device (a big lab plans
    /// thousands of steps).
    replaced: Replaced,
    clashes: Vec<Clash>,
    /// What the lab declared at its last `up`, for the settings the file dropped since.
    prior: resets::Prior<'a>,
    /// Creation level of every device (`devices::levels`).
    levels: devices::Levels<'a>,
}

/// Devices, as (node, name), that a plan deletes and re-creates.
pub(crate) type Replaced = HashSet<(String, String)>;

impl<'a> Planner<'a> {
    /// Creation level of a device of the lab (0 for one it does not declare).
    fn level(&self, node: &str, ifname: &str) -> u16 {
        self.levels.get(&(node, ifname)).copied().unwrap_or(0)
    }

    fn push(&mut self, stage: u16, op: Op) {
        if let (stage::REPLACE, Op::DeleteLink { node, ifname }) = (stage, &op) {
            self.replaced.insert((node.clone(), ifname.clone()));
        }
        self.steps.push(Step { stage, op });
    }

    fn clash(&mut self, node: &str, what: String) {
        self.clashes.push(Clash { node: node.to_string(), what });
    }

    /// Observed state of a node's namespace (empty when it is still to be created).
    fn ns(&self, node: &str) -> &'a ObservedNs {
        match self.observed.nodes.get(node) {
            Some(NsState::Owned(o)) | Some(NsState::Root(o)) => o,
            _ => {
                static EMPTY: std::sync::OnceLock<ObservedNs> = std::sync::OnceLock::new();
                EMPTY.get_or_init(ObservedNs::default)
            }
        }
    }

    fn is_root(&self, node: &str) -> bool {
        self.lab.netns_name(node).is_none()
    }

    /// Whether an observed device is the lab's. In owned namespaces `lo` is too.
    fn ours(&self, node: &str, link: &ObservedLink) -> bool {
        if link.name == "lo" {
            return !self.is_root(node);
        }
        if self.is_root(node) {
            return link.alias.as_deref() == Some(self.mark.as_str()) || (link.group == self.group && self.root_recorded.contains(&link.name));
        }
        owned_by(link, &self.mark, self.group)
    }

    fn namespaces(&mut self, _state: Option<&LabState>) {
        let lab = self.lab;
        for (name, node) in &lab.nodes {
            let Some(netns) = lab.netns_name(name) else { continue };
            match self.observed.nodes.get(name) {
                None | Some(NsState::Absent) => {
                    let lo_up = node.interfaces.get("lo").map(|i| i.up).unwrap_or(true);
                    self.push(stage::NETNS, Op::CreateNetns { node: name.clone(), netns, lo_up });
                }
                Some(NsState::Foreign) => self.clash(
                    name,
                    format!("namespace `{netns}` already exists and does not belong to lab `{}`; remove it or set another `netns_prefix`", lab.name),
                ),
                Some(NsState::Owned(_)) | Some(NsState::Root(_)) => {}
            }
        }
    }

    fn links(&mut self) {
        let lab = self.lab;
        // Veth pairs are planned once, from the end chosen as creator.
        let mut pairs_done: BTreeSet<Endpoint> = BTreeSet::new();

        for (nname, node) in &lab.nodes {
            for iface in node.interfaces.values() {
                let me = Endpoint::new(nname, &iface.name);
                match &iface.kind {
                    KindSpec::Loopback(_) => self.loopback(nname, iface),
                    KindSpec::Veth(_) => {
                        if pairs_done.contains(&me) {
                            continue;
                        }
                        let peer_ep = iface.peer.clone().expect("validated veth has a peer");
                        pairs_done.insert(me.clone());
                        pairs_done.insert(peer_ep.clone());
                        let peer = lab.interface(&peer_ep).expect("validated peer exists");
                        self.veth_pair(&me, iface, &peer_ep, peer);
                    }
                    // Made and configured by Open vSwitch (`plan::ovs`).
                    kind if kind.is_ovs() => {}
                    _ => self.device(nname, node, iface),
                }
            }
            self.anchors(nname, node);
        }
    }

    /// A busy bridge's anchor (`model::anchor`) is made with the bridge, before its ports; one
    /// made later would be the bridge's newest port and save nothing. An existing one is kept
    /// as declared.
    fn anchors(&mut self, nname: &str, node: &Node) {
        let ns = self.ns(nname);
        for a in node.anchors.values() {
            let bridge_new = a.master.as_deref().is_some_and(|b| ns.link(b).is_none());
            if ns.link(&a.name).is_some() || (bridge_new && self.observed.vxlan) {
                self.device(nname, node, a);
            }
        }
    }

    fn loopback(&mut self, node: &str, lo: &Interface) {
        if self.is_root(node) {
            return; // the root namespace's lo is not the lab's (validation refuses settings on it)
        }
        let ns = self.ns(node);
        let Some(have) = ns.link("lo") else {
            // New namespace: CreateNetns brings lo up as declared; only mtu remains.
            if let Some(mtu) = lo.mtu {
                let change = LinkChange { mtu: Some(mtu), ..Default::default() };
                self.push(stage::CHANGE, Op::ChangeLink { node: node.into(), ifname: "lo".into(), change });
            }
            return;
        };
        let mut change = LinkChange::default();
        if let Some(m) = lo.mtu.or_else(|| self.mtu_reset(node, lo)) {
            if m != have.mtu {
                change.mtu = Some(m);
            }
        }
        if lo.up != have.up {
            change.up = Some(lo.up);
        }
        if !change.is_empty() {
            self.push(stage::CHANGE, Op::ChangeLink { node: node.into(), ifname: "lo".into(), change });
        }
    }

    /// A device with no peer: create it, or bring the existing one in line.
    fn device(&mut self, nname: &str, node: &Node, iface: &Interface) {
        let ns = self.ns(nname);
        let level = self.level(nname, &iface.name);
        // A device OVS made for the lab goes with its OVS row (`plan::ovs`).
        if let Some(have) = ns.link(&iface.name).filter(|l| !self.ovs_device(nname, l)) {
            if !self.ours(nname, have) {
                self.clash(nname, format!("interface `{}` already exists and does not belong to lab `{}`", iface.name, self.lab.name));
                return;
            }
            let kind_matches = have.kind.as_deref() == iface.kind.observed_kind();
            // Options the file dropped since the last `up` go back to the kernel's defaults.
            let reset = self.kind_reset(nname, iface);
            let want = reset.as_ref().unwrap_or(&iface.kind);
            match (kind_matches, want.drift(have.spec.as_ref())) {
                (false, _) | (true, Drift::Recreate) => {
                    self.push(stage::REPLACE, Op::DeleteLink { node: nname.into(), ifname: iface.name.clone() });
                    self.create(nname, iface, None, level);
                }
                (true, drift) => {
                    if drift == Drift::Update {
                        self.push(stage::KIND_OPTIONS, Op::SetKindOptions { node: nname.into(), ifname: iface.name.clone(), kind: want.clone() });
                    }
                    self.reconcile(nname, node, iface, have);
                }
            }
        } else {
            self.create(nname, iface, None, level);
        }
    }

    fn create(&mut self, nname: &str, iface: &Interface, peer: Option<(&Endpoint, &Interface)>, level: u16) {
        let is_master = iface.kind.is_master();
        // Bond and team ports must be down when they join; they come up afterwards.
        let joins_down = self.joins_down(nname, iface.master.as_ref());
        // A VLAN cannot come up before its lower device (ENETDOWN); lowers (bridges included)
        // are up by MASTER_UP.
        let after_lower = iface.kind.up_after_lower();
        // teamd must see a port as a device before it joins the team: join in a later message.
        let late_master = self.joins_team(nname, iface.master.as_ref());
        // Made from another namespace's socket (its lower's, or the underlay's for a tunnel
        // end) and registered in its node by the kernel: the messages that keep IPv6
        // link-local off must come from the node's socket, so it comes up there.
        let from_elsewhere = iface.kind.lower_endpoint(nname).is_some_and(|ep| ep.node != nname)
            || (self.lab.tunnel(nname, &iface.name).is_some() && self.lab.underlay_node() != nname);
        let born_elsewhere = !self.lab.ipv6_link_local && from_elsewhere;
        let c = CreateLink {
            node: nname.into(),
            ifname: iface.name.clone(),
            kind: iface.kind.clone(),
            mtu: iface.mtu,
            mac: iface.mac,
            master: if late_master { None } else { self.kernel_master(nname, iface.master.as_ref()) },
            // Masters come up once their ports are in (stage MASTER_UP).
            up: iface.up && !is_master && !joins_down && !after_lower && !born_elsewhere,
            peer: peer.map(|(ep, pi)| PeerEnd {
                node: ep.node.clone(),
                ifname: ep.ifname.clone(),
                mtu: pi.mtu,
                mac: pi.mac,
                queues: pi.kind.queues().unwrap_or(1),
                no_ipv6: self.port_without_ipv6(&ep.node, &ep.ifname, pi.master.as_ref()),
            }),
            no_ipv6: self.port_without_ipv6(nname, &iface.name, iface.master.as_ref()),
        };
        self.push(stage::CREATE + level, Op::CreateLink(c));
        if late_master {
            let change = LinkChange { master: Some(iface.master.clone()), ..Default::default() };
            self.push(stage::CHANGE, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change });
        }
        if born_elsewhere && !iface.up {
            // Its generation goes off as it comes up (executor); staying down, it goes off here.
            self.push(stage::SYSCTL_DEVICE, Op::LinkLocal { node: nname.into(), ifname: iface.name.clone(), on: false, revive: false });
        }
        if (joins_down || after_lower || born_elsewhere) && iface.up {
            let change = LinkChange { up: Some(true), ..Default::default() };
            let st = if after_lower {
                stage::UPPER_UP + level.min(3)
            } else if late_master {
                stage::PORT
            } else {
                stage::CHANGE
            };
            self.push(st, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change });
        }
        if is_master && iface.up {
            let change = LinkChange { up: Some(true), ..Default::default() };
            self.push(stage::MASTER_UP, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change });
        }
        if let Some(h) = iface.hairpin {
            if h {
                self.push(stage::PORT, Op::SetPort { node: nname.into(), ifname: iface.name.clone(), hairpin: h });
            }
        }
        if let Some((ep, pi)) = peer {
            // The peer cannot come up (nor join a master) in the create message.
            let peer_joins_down = self.joins_down(&ep.node, pi.master.as_ref());
            if !self.lab.ipv6_link_local && !pi.up && !self.is_root(&ep.node) {
                // Born in its namespace's default; the executor turns link-local generation off
                // as a new peer comes up (or is marked, in the root namespace): one that stays
                // down gets it off here.
                self.push(stage::SYSCTL_DEVICE, Op::LinkLocal { node: ep.node.clone(), ifname: ep.ifname.clone(), on: false, revive: false });
            }
            if peer_joins_down && pi.up {
                let change = LinkChange { up: Some(true), ..Default::default() };
                self.push(stage::PORT, Op::ChangeLink { node: ep.node.clone(), ifname: ep.ifname.clone(), change });
            }
            let change = LinkChange {
                up: if pi.up && !peer_joins_down { Some(true) } else { None },
                master: self.kernel_master(&ep.node, pi.master.as_ref()).map(Some),
                mark: self.is_root(&ep.node),
                ..Default::default()
            };
            if !change.is_empty() {
                self.push(stage::CHANGE, Op::ChangeLink { node: ep.node.clone(), ifname: ep.ifname.clone(), change });
            }
            if pi.hairpin == Some(true) {
                self.push(stage::PORT, Op::SetPort { node: ep.node.clone(), ifname: ep.ifname.clone(), hairpin: true });
            }
        }
    }

    fn veth_pair(&mut self, a: &Endpoint, ai: &Interface, b: &Endpoint, bi: &Interface) {
        let ha = self.ns(&a.node).link(&a.ifname);
        let hb = self.ns(&b.node).link(&b.ifname);
        for (ep, have) in [(a, ha), (b, hb)] {
            if let Some(h) = have {
                if !self.ours(&ep.node, h) {
                    self.clash(&ep.node, format!("interface `{}` already exists and does not belong to lab `{}`", ep.ifname, self.lab.name));
                    return;
                }
            }
        }
        let intact = match (ha, hb) {
            (Some(x), Some(y)) => {
                x.kind.as_deref() == Some("veth")
                    && y.kind.as_deref() == Some("veth")
                    && x.link == Some(y.ifindex)
                    && y.link == Some(x.ifindex)
                    && queues_as_declared(ai, x)
                    && queues_as_declared(bi, y)
            }
            _ => false,
        };
        if intact {
            let (na, nb) = (self.lab.node(&a.node).unwrap(), self.lab.node(&b.node).unwrap());
            self.reconcile(&a.node, na, ai, ha.unwrap());
            self.reconcile(&b.node, nb, bi, hb.unwrap());
            return;
        }
        for (ep, have) in [(a, ha), (b, hb)] {
            if have.is_some() {
                self.push(stage::REPLACE, Op::DeleteLink { node: ep.node.clone(), ifname: ep.ifname.clone() });
            }
        }
        // Creator: the end in the real root namespace (marked in the same batch), else the end
        // with a master (attached in the create message), else the first.
        let score = |ep: &Endpoint, i: &Interface| (self.is_root(&ep.node), i.master.is_some());
        let (c, ci, p, pi) = if score(b, bi) > score(a, ai) { (b, bi, a, ai) } else { (a, ai, b, bi) };
        let level = self.level(&c.node, &c.ifname);
        self.create(&c.node, ci, Some((p, pi)), level);
    }

    /// Brings an existing device's common settings in line.
    fn reconcile(&mut self, nname: &str, node: &Node, iface: &Interface, have: &ObservedLink) {
        let ns = self.ns(nname);
        let mut change = LinkChange::default();
        if let Some(m) = iface.mtu.or_else(|| self.mtu_reset(nname, iface)) {
            if m != have.mtu {
                change.mtu = Some(m);
            }
        }
        if let Some(m) = iface.mac {
            if Some(m) != have.mac {
                change.mac = Some(m);
            }
        }
        let have_master = have.master.and_then(|i| ns.name_of(i)).map(str::to_string);
        // Ports of an OVS bridge have no kernel master (or OVS's datapath device).
        let want_master = self.kernel_master(nname, iface.master.as_ref());
        let ovs_port = iface.master.is_some() && want_master.is_none();
        if want_master != have_master && !(ovs_port && have.port_kind.as_deref().is_none_or(|k| k == "openvswitch")) {
            change.master = Some(want_master);
        }
        let is_master = iface.kind.is_master();
        if iface.up != have.up {
            if is_master && iface.up {
                let c = LinkChange { up: Some(true), ..Default::default() };
                self.push(stage::MASTER_UP, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change: c });
            } else {
                change.up = Some(iface.up);
            }
        }
        if self.is_root(nname) && have.alias.as_deref() != Some(self.mark.as_str()) {
            change.mark = true;
        }
        // Joining a bond or team: down in the same message (flags go before the master), up later.
        if matches!(&change.master, Some(Some(_))) && self.joins_down(nname, iface.master.as_ref()) {
            change.up = Some(false);
            if iface.up {
                let c = LinkChange { up: Some(true), ..Default::default() };
                self.push(stage::PORT, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change: c });
            }
        }
        if !change.is_empty() {
            self.push(stage::CHANGE, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change });
        }
        // Hairpin only where the file declares it, or declared it at the last `up` (back to off).
        if let Some(want) = iface.hairpin.or_else(|| self.hairpin_reset(nname, iface)) {
            let master_is_bridge = iface.master.as_ref().and_then(|m| node.interfaces.get(m)).map(|m| matches!(m.kind, KindSpec::Bridge(_))).unwrap_or(false);
            if master_is_bridge && have.hairpin.unwrap_or(false) != want {
                self.push(stage::PORT, Op::SetPort { node: nname.into(), ifname: iface.name.clone(), hairpin: want });
            }
        }
        if self.port_waits(nname, node, iface, have) {
            self.push(stage::PORT, Op::ForwardPort { node: nname.into(), ifname: iface.name.clone() });
        }
    }

    /// Whether an existing port, up with carrier, of an existing bridge that is up and runs no
    /// STP once this plan is applied, is not forwarding: left listening or learning when STP
    /// went off (now, or at an earlier `up`), it would wait for the kernel's forward-delay
    /// timers (up to twice the forward delay; the kernel sends a port straight to forwarding
    /// without STP only when it starts from blocking). A port joining a bridge now starts so.
    fn port_waits(&self, nname: &str, node: &Node, iface: &Interface, have: &ObservedLink) -> bool {
        if !(iface.up && have.up && have.carrier && have.forwarding == Some(false)) {
            return false;
        }
        let Some(bridge) = iface.master.as_ref().and_then(|m| node.interfaces.get(m)) else { return false };
        let ns = self.ns(nname);
        let Some(br) = ns.link(&bridge.name) else { return false };
        if !(bridge.up && br.up) || have.master != Some(br.ifindex) || self.will_recreate(nname, &bridge.name) {
            return false;
        }
        let reset = self.kind_reset(nname, bridge);
        let stp = match reset.as_ref().unwrap_or(&bridge.kind) {
            KindSpec::Bridge(b) => b.stp,
            _ => return false,
        };
        // Undeclared, STP is as the kernel has it (`resets`).
        let observed_stp = matches!(&br.spec, Some(KindSpec::Bridge(b)) if b.stp == Some(true));
        !stp.unwrap_or(observed_stp)
    }

    fn addresses(&mut self, node: &Node) {
        let nname = node.name.as_str();
        let ns = self.ns(nname);
        for iface in node.interfaces.values() {
            if self.is_root(nname) && iface.name == "lo" {
                continue;
            }
            let have: Vec<&ObservedAddr> = match ns.link(&iface.name) {
                Some(l) if (self.ours(nname, l) || self.ovs_device(nname, l)) && !self.will_recreate(nname, &iface.name) => {
                    ns.addrs_of(l.ifindex).filter(|a| !a.automatic).collect()
                }
                _ => Vec::new(),
            };
            let (delete, readd) = address_deletions(&have, &iface.addresses);
            for a in delete {
                self.push(stage::ADDR_DEL, Op::DelAddress { node: nname.into(), ifname: iface.name.clone(), addr: a });
            }
            for a in &iface.addresses {
                if !have.iter().any(|h| h.addr == *a) || readd.contains(a) {
                    self.push(stage::ADDR_ADD, Op::AddAddress { node: nname.into(), ifname: iface.name.clone(), addr: *a });
                }
            }
        }
    }

    /// IPv6 link-local addresses of existing devices as the lab's `ipv6` says (new devices are
    /// made so): on, a device whose generation is off (`addr_gen_mode` none, as a lab without
    /// IPv6 made it) or whose address was deleted by hand gets it back; off, a device that generates one, or still holds the one it
    /// made, loses both. Devices without IPv6 (`disable_ipv6`), OVS's own, and devices whose
    /// `addr_gen_mode` the file sets as a sysctl are left alone, but for bridge ports whose IPv6
    /// vnet turned off: they get it back when link-local addresses come on or when they leave
    /// their bridge (`port_ipv6_follows_lab`).
    fn link_local(&mut self, node: &Node) {
        let nname = node.name.as_str();
        let ns = self.ns(nname);
        let on = self.lab.ipv6_link_local;
        for iface in node.interfaces.values() {
            let Some(have) = ns.link(&iface.name) else { continue };
            let Some(mode) = have.addr_gen_mode else { continue };
            // A bridge port whose IPv6 vnet turned off (`CreateLink::no_ipv6`) gets it back when
            // the lab's link-local addresses come on, or when it leaves its bridge.
            let revived = have.ipv6_disabled && {
                let port = self.port_ipv6_follows_lab(nname, &iface.name, iface.master.as_ref());
                let was_port = have.master.and_then(|m| ns.links.iter().find(|l| l.ifindex == m)).is_some_and(|m| m.kind.as_deref() == Some("bridge"));
                (on && port) || (was_port && !port && self.ipv6_follows_lab(nname, &iface.name))
            };
            if iface.name == "lo"
                || iface.kind.is_ovs()
                || (have.ipv6_disabled && !revived)
                || !self.ours(nname, have)
                || self.will_recreate(nname, &iface.name)
            {
                continue;
            }
            let parts = ["net", "ipv6", "conf", iface.name.as_str(), "addr_gen_mode"].map(str::to_string);
            if node.sysctls.contains_key(&crate::model::validate::sysctl_key(&parts)) {
                continue;
            }
            let made: Vec<IpNet> = ns
                .addrs_of(have.ifindex)
                .filter(|a| a.automatic && matches!(a.addr, IpNet::V6(v) if v.addr().is_unicast_link_local()) && !iface.addresses.contains(&a.addr))
                .map(|a| a.addr)
                .collect();
            if on && (revived || mode == ADDR_GEN_MODE_NONE || link_local_deleted(ns, have)) {
                self.push(stage::SYSCTL_DEVICE, Op::LinkLocal { node: nname.into(), ifname: iface.name.clone(), on: true, revive: revived });
            } else if !on && (revived || mode != ADDR_GEN_MODE_NONE || !made.is_empty()) {
                if revived || mode != ADDR_GEN_MODE_NONE {
                    self.push(stage::SYSCTL_DEVICE, Op::LinkLocal { node: nname.into(), ifname: iface.name.clone(), on: false, revive: revived });
                }
                for addr in made {
                    self.push(stage::ADDR_DEL, Op::DelAddress { node: nname.into(), ifname: iface.name.clone(), addr });
                }
            }
        }
    }

    /// Whether the plan already deletes and re-creates this device (so its state is moot).
    fn will_recreate(&self, node: &str, ifname: &str) -> bool {
        self.replaced.contains(&(node.to_string(), ifname.to_string()))
    }

    /// The routes of a node's namespace that are vnet's to change, and whether each is one to
    /// delete when the file does not declare it. In the lab's own namespaces (which the lab
    /// owns entirely) every route but the kernel's own (`ObservedRoute::kernels_own`), whatever
    /// its protocol: vnet's (RTPROT_VNET), an older vnet's (`static`), one added by hand
    /// (`boot`) or by a daemon. In the real root namespace only routes through the lab's
    /// devices, and of those only vnet's are deleted; one of another protocol that a declared
    /// route matches counts as present (an older vnet's, or one the kernel would refuse to add
    /// again beside), and one holding a declared route's destination is replaced.
    fn route_candidates(&self, nname: &str) -> Vec<(RouteOp, bool)> {
        let ns = self.ns(nname);
        let root = self.is_root(nname);
        ns.routes
            .iter()
            .filter(|r| !r.kernels_own())
            .filter(|r| !root || r.oif.and_then(|i| ns.link_by_index(i)).map(|l| self.ours(nname, l) || self.ovs_device(nname, l)).unwrap_or(false))
            .map(|r| {
                let op = RouteOp {
                    dst: r.dst,
                    via: r.via,
                    dev: r.oif.and_then(|i| ns.name_of(i)).map(str::to_string),
                    metric: r.metric,
                    table: r.table,
                    src: r.src,
                    proto: Some(r.protocol).filter(|p| *p != RTPROT_VNET),
                };
                (op, !root || r.protocol == RTPROT_VNET)
            })
            .collect()
    }

    fn routes(&mut self, node: &Node) {
        let nname = node.name.as_str();
        let candidates = self.route_candidates(nname);
        let ours: Vec<RouteOp> = candidates.iter().map(|(r, _)| r.clone()).collect();
        let want: Vec<RouteOp> = node.routes.iter().map(route_op).collect();
        // Devices re-created by this plan lose their routes with them.
        let recreated: BTreeSet<String> = node.interfaces.keys().filter(|d| self.will_recreate(nname, d)).cloned().collect();
        let gone = |r: &RouteOp| r.dev.as_ref().map(|d| recreated.contains(d)).unwrap_or(false);
        let mut to_add = Vec::new();
        for w in &want {
            let present = ours.iter().any(|h| route_matches(w, h) && !gone(h));
            if !present {
                // Same destination/table/metric but different next hop: delete the old one first.
                for h in ours.iter().filter(|h| same_key(w, h) && !route_matches(w, h) && !gone(h)) {
                    self.push(stage::ROUTE_DEL, Op::DelRoute { node: nname.into(), route: h.clone() });
                }
                to_add.push(w.clone());
            }
        }
        for (h, deletable) in &candidates {
            if gone(h) || !deletable {
                continue;
            }
            let wanted = want.iter().any(|w| route_matches(w, h) || same_key(w, h));
            if !wanted {
                self.push(stage::ROUTE_DEL, Op::DelRoute { node: nname.into(), route: h.clone() });
            }
        }
        // Device routes first: a gateway may be reached through one declared after its route.
        to_add.sort_by_key(|w| w.via.is_some());
        for w in to_add {
            self.push(stage::ROUTE_ADD, Op::AddRoute { node: nname.into(), route: w });
        }
    }

    fn sysctls(&mut self, node: &Node, state: Option<&LabState>) {
        let nname = node.name.as_str();
        let ns = self.ns(nname);
        for (key, value) in &node.sysctls {
            let have = ns.sysctls.get(key).map(|v| normalize(v));
            if have.as_deref() != Some(normalize(value).as_str()) {
                let st = if names_device(key) { stage::SYSCTL_DEVICE } else { stage::SYSCTL_GLOBAL };
                self.push(st, Op::SetSysctl { node: nname.into(), key: key.clone(), value: value.clone() });
            }
        }
        // Settings the lab made before and no longer declares go back to what they were.
        if let Some(restore) = state.and_then(|s| s.sysctl_restore.get(nname)) {
            for (key, prev) in restore {
                if !node.sysctls.contains_key(key) {
                    let have = ns.sysctls.get(key).map(|v| normalize(v));
                    if have.as_deref() != Some(normalize(prev).as_str()) {
                        self.push(stage::SYSCTL_GLOBAL, Op::RestoreSysctl { node: nname.into(), key: key.clone(), value: prev.clone() });
                    }
                }
            }
        }
    }

    /// The lab's devices that the file no longer declares.
    fn removed_devices(&mut self) {
        let lab = self.lab;
        let mut deleted_peers: BTreeSet<(String, u32)> = BTreeSet::new();
        for (nname, node) in &lab.nodes {
            let ns = self.ns(nname);
            for l in &ns.links {
                if l.name == "lo" || node.interfaces.contains_key(&l.name) || node.anchors.contains_key(&l.name) || !self.ours(nname, l) {
                    continue;
                }
                if deleted_peers.contains(&(nname.clone(), l.ifindex)) {
                    continue;
                }
                // Deleting one veth end deletes the other; skip planning its twin.
                if l.kind.as_deref() == Some("veth") {
                    if let Some(peer) = l.link {
                        for (other, _) in &lab.nodes {
                            if let Some(pl) = self.ns(other).link_by_index(peer) {
                                if pl.link == Some(l.ifindex) && !lab.nodes[other].interfaces.contains_key(&pl.name) {
                                    deleted_peers.insert((other.clone(), peer));
                                }
                            }
                        }
                    }
                }
                self.push(stage::LINK_DELETE, Op::DeleteLink { node: nname.clone(), ifname: l.name.clone() });
            }
        }
    }

    fn removed_namespaces(&mut self, state: Option<&LabState>) {
        let Some(state) = state else { return };
        for (node, netns) in &state.netns {
            let still = self.lab.nodes.contains_key(node) && self.lab.netns_name(node).as_deref() == Some(netns.as_str());
            if !still {
                self.push(stage::NETNS_DELETE, Op::DeleteNetns { node: node.clone(), netns: netns.clone() });
            }
        }
    }
}

/// Whether an up Ethernet-like device that the kernel gives a link-local address has none (it
/// was deleted by hand; the kernel makes it only when the device comes up or gets its carrier).
/// Only kinds measured to get one, and only once the kernel reports the device operationally up
/// (its link-local address is made in that same notification).
fn link_local_deleted(ns: &ObservedNs, have: &ObservedLink) -> bool {
    const GENERATES: [&str; 10] = ["veth", "bridge", "macvlan", "macvtap", "vxlan", "tun", "vlan", "bond", "team", "geneve"];
    have.up
        && have.oper == "up"
        && have.mac.is_some()
        && have.addr_gen_mode == Some(crate::observed::ADDR_GEN_MODE_EUI64)
        && have.kind.as_deref().is_some_and(|k| GENERATES.contains(&k))
        && !ns.addrs_of(have.ifindex).any(|a| matches!(a.addr, IpNet::V6(v) if v.addr().is_unicast_link_local()))
}

fn route_op(r: &Route) -> RouteOp {
    RouteOp { dst: r.dst, via: r.via, dev: r.dev.clone(), metric: r.metric, table: r.table, src: r.src, proto: None }
}

/// The kernel gives IPv6 routes metric 1024 when none is set.
fn effective_metric(r: &RouteOp) -> u32 {
    r.metric.unwrap_or(if r.dst.addr().is_ipv6() { 1024 } else { 0 })
}

fn same_key(w: &RouteOp, h: &RouteOp) -> bool {
    w.dst == h.dst && w.table == h.table && effective_metric(w) == effective_metric(h)
}

fn route_matches(w: &RouteOp, h: &RouteOp) -> bool {
    same_key(w, h) && w.via == h.via && (w.dev.is_none() || w.dev == h.dev) && (w.src.is_none() || w.src == h.src)
}

fn names_device(key: &str) -> bool {
    let parts = sysctl_components(key);
    matches!((parts.get(1).map(String::as_str), parts.get(2).map(String::as_str)), (Some("ipv4" | "ipv6"), Some("conf" | "neigh")))
        && parts.get(3).map(|d| d != "all" && d != "default").unwrap_or(false)
}

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sysctl keys the observer should read for a lab (declared ones and ones to restore).
pub fn sysctl_keys(lab: &Lab, state: Option<&LabState>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, node) in &lab.nodes {
        let e = out.entry(n.clone()).or_default();
        e.extend(node.sysctls.keys().cloned());
        if let Some(r) = state.and_then(|s| s.sysctl_restore.get(n)) {
            e.extend(r.keys().cloned());
        }
        e.sort();
        e.dedup();
    }
    out
}

/// A veth end has the queues its file declares (an end without `queues` accepts any count,
/// so that pairs made by an older vnet, with the kernel's one per CPU, are kept).
fn queues_as_declared(i: &Interface, have: &ObservedLink) -> bool {
    match &i.kind {
        KindSpec::Veth(VethSpec { queues: Some(q), .. }) => have.tx_queues == Some(*q) && have.rx_queues == Some(*q),
        _ => true,
    }
}

/// The addresses of a device to delete, in an order the kernel carries out as asked, and the
/// declared ones that must be deleted with them and added again. Deleting a primary IPv4
/// address makes the kernel delete the secondaries of its subnet too (or promote one, with
/// `promote_secondaries`): secondaries go first, so a secondary that goes is not already gone,
/// and one that stays is taken off before its primary and put back after, whatever the sysctl.
fn address_deletions(have: &[&ObservedAddr], declared: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    let same_subnet = |a: &IpNet, b: &IpNet| a.prefix_len() == b.prefix_len() && a.network() == b.network();
    let gone_primaries: Vec<IpNet> = have.iter().filter(|h| !h.secondary && h.addr.addr().is_ipv4() && !declared.contains(&h.addr)).map(|h| h.addr).collect();
    let readd: Vec<IpNet> =
        have.iter().filter(|h| h.secondary && declared.contains(&h.addr) && gone_primaries.iter().any(|p| same_subnet(p, &h.addr))).map(|h| h.addr).collect();
    let goes = |h: &&&ObservedAddr| !declared.contains(&h.addr) || readd.contains(&h.addr);
    let delete = have.iter().filter(|h| h.secondary).filter(goes).chain(have.iter().filter(|h| !h.secondary).filter(goes)).map(|h| h.addr).collect();
    (delete, readd)
}

#[cfg(test)]
mod tests;
