//! Planning Open vSwitch: the lab's OVS bridges, ports and flows against what the node's OVS
//! database and switch hold. Rows carrying the lab's mark (`external_ids:vnet-lab`) are the
//! lab's; anything else is left alone, and a name the lab wants held by such a row is a clash.
//! Flows are told apart by cookie: the lab's tag in the high half, a hash of the flow in the
//! low half, so a changed flow is one removed and one added, and nobody else's is touched.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{stage, LinkChange, Op, Planner};
use crate::model::kind::{KindSpec, OvsBridgeSpec, OvsDatapath, OvsPortSpec};
use crate::model::lab::{format_mac, Interface, Lab, Node};
use crate::observed::ovs::{ObservedOvs, OvsBridgeObs, OvsIfaceObs, OvsInstance, OvsPortObs};
use crate::observed::ObservedLink;
use crate::state::LabState;

/// Stages of OVS operations (see `plan::stage`).
pub mod ovs_stage {
    /// The node's private OVS starts once its namespace exists.
    pub const START: u16 = 41;
    /// Bridges and ports, once the port devices exist (one OVSDB transaction per node).
    pub const CONFIG: u16 = 44;
    /// Flows, once ports have OpenFlow numbers.
    pub const FLOWS: u16 = 52;
    /// Bridges and ports the file no longer declares.
    pub const REMOVE: u16 = 78;
    /// A private OVS no longer needed stops before namespaces go.
    pub const STOP: u16 = 85;
}

/// One operation on a node's Open vSwitch.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum OvsOp {
    /// Start a private ovsdb-server and ovs-vswitchd for the lab, inside the node.
    Start,
    /// A new bridge with its ports (its own internal interface included).
    AddBridge {
        bridge: BridgeRow,
    },
    /// Changed settings of an existing bridge (`None`: unchanged).
    SetBridge {
        bridge: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        datapath: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fail_mode: Option<Option<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        controller: Option<Option<String>>,
    },
    AddPort {
        bridge: String,
        port: PortRow,
    },
    /// A port's settings, written whole.
    SetPort {
        bridge: String,
        port: PortRow,
    },
    DelPort {
        bridge: String,
        port: String,
    },
    DelBridge {
        bridge: String,
    },
    /// Flows added (with their cookies) and removed (by cookie), in one bundle.
    Flows {
        bridge: String,
        add: Vec<FlowRow>,
        del: Vec<u64>,
    },
    /// Stop the node's private OVS.
    Stop,
}

/// A bridge as the lab wants it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BridgeRow {
    pub name: String,
    pub datapath: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// The bridge's own internal interface.
    pub local: PortRow,
    pub ports: Vec<PortRow>,
}

/// A port as the lab wants it (one interface of the same name).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PortRow {
    pub name: String,
    /// Made by OVS (`type: internal`) rather than an existing device.
    pub internal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ofport: Option<u32>,
    /// For internal interfaces: OVSDB's `mtu_request` and `mac`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A flow to install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowRow {
    pub cookie: u64,
    /// ovs-ofctl syntax, without the cookie.
    pub line: String,
}

/// The high half of the cookies of a lab's flows.
pub fn lab_cookie_tag(lab: &str) -> u32 {
    crate::state::group_for(lab)
}

/// Mask selecting the lab tag of a cookie.
pub const COOKIE_TAG_MASK: u64 = 0xffff_ffff_0000_0000;

pub fn flow_cookie(lab: &str, line: &str) -> u64 {
    (u64::from(lab_cookie_tag(lab)) << 32) | u64::from(crate::model::kind::ovs_flow::flow_hash(line))
}

/// The datapath a bridge gets: the declared one, else the kernel's where it has one.
pub fn datapath_for(spec: &OvsBridgeSpec, kernel_datapath: bool) -> OvsDatapath {
    spec.datapath.unwrap_or(if kernel_datapath { OvsDatapath::System } else { OvsDatapath::Netdev })
}

fn port_row(name: &str, iface: Option<&Interface>, spec: Option<&OvsPortSpec>) -> PortRow {
    let internal = iface.is_some_and(|i| i.kind.is_ovs());
    let s = spec.cloned().unwrap_or_default();
    PortRow {
        name: name.to_string(),
        internal,
        tag: s.tag,
        trunks: s.trunks,
        vlan_mode: s.vlan_mode.map(|m| m.name().to_string()),
        ofport: s.ofport,
        mtu: iface.filter(|_| internal).and_then(|i| i.mtu),
        mac: iface.filter(|_| internal).and_then(|i| i.mac).map(|m| format_mac(&m)),
    }
}

/// The bridge the lab wants, from its interface in `node`.
pub fn bridge_row(node: &Node, br: &Interface, spec: &OvsBridgeSpec, kernel_datapath: bool) -> BridgeRow {
    let mut local = port_row(&br.name, Some(br), spec.ports.get(&br.name));
    local.internal = true;
    let ports = node
        .interfaces
        .values()
        .filter(|i| i.master.as_deref() == Some(br.name.as_str()))
        .map(|i| port_row(&i.name, Some(i), spec.ports.get(&i.name)))
        .collect();
    BridgeRow {
        name: br.name.clone(),
        datapath: datapath_for(spec, kernel_datapath).name().to_string(),
        fail_mode: spec.fail_mode.map(|m| m.name().to_string()),
        controller: spec.controller.clone(),
        local,
        ports,
    }
}

/// What a port row has, in the form `PortRow` compares.
pub fn observed_row(p: &OvsPortObs) -> PortRow {
    let iface: Option<&OvsIfaceObs> = p.interfaces.iter().find(|i| i.name == p.name).or(p.interfaces.first());
    let internal = iface.is_some_and(|i| i.kind == "internal");
    PortRow {
        name: p.name.clone(),
        internal,
        tag: p.tag.and_then(|t| u16::try_from(t).ok()),
        trunks: p.trunks.iter().filter_map(|t| u16::try_from(*t).ok()).collect(),
        vlan_mode: p.vlan_mode.clone(),
        ofport: iface.and_then(|i| i.ofport_request).and_then(|o| u32::try_from(o).ok()),
        mtu: iface.filter(|_| internal).and_then(|i| i.mtu_request).and_then(|m| u32::try_from(m).ok()),
        mac: iface.filter(|_| internal).and_then(|i| i.mac.clone()),
    }
}

/// Whether an existing port needs rewriting: only what the file sets counts for MTU and MAC
/// (a port the file leaves at OVS's default keeps whatever it has).
fn port_differs(want: &PortRow, have: &PortRow) -> bool {
    let mut h = have.clone();
    if want.mtu.is_none() {
        h.mtu = None;
    }
    if want.mac.is_none() {
        h.mac = None;
    }
    let mut w = want.clone();
    w.trunks.sort_unstable();
    h.trunks.sort_unstable();
    w.mac = w.mac.map(|m| m.to_ascii_lowercase());
    h.mac = h.mac.map(|m| m.to_ascii_lowercase());
    w != h
}

impl Planner<'_> {
    fn ovs_op(&mut self, st: u16, node: &str, op: OvsOp) {
        self.push(st, Op::Ovs { node: node.into(), ovs_op: op });
    }

    /// Whether an observed device is an internal interface of one of the lab's OVS rows.
    pub(super) fn ovs_device(&self, node: &str, link: &ObservedLink) -> bool {
        self.observed.ovs.get(node).is_some_and(|o| o.owns_device(&self.lab.name, &link.name))
    }

    /// The master a port has in the kernel: none for ports of an OVS bridge (OVS attaches them).
    pub(super) fn kernel_master(&self, node: &str, master: Option<&String>) -> Option<String> {
        let m = master?;
        let on_ovs = self.lab.node(node).and_then(|n| n.interfaces.get(m)).is_some_and(|mi| matches!(mi.kind, KindSpec::OvsBridge(_)));
        (!on_ovs).then(|| m.clone())
    }

    /// Plans every node's OVS.
    pub(super) fn ovs(&mut self, state: Option<&LabState>) {
        let lab: &Lab = self.lab;
        let empty = ObservedOvs::default();
        for (nname, node) in &lab.nodes {
            let obs = self.observed.ovs.get(nname).unwrap_or(&empty);
            let bridges: Vec<(&Interface, &OvsBridgeSpec)> = node
                .interfaces
                .values()
                .filter_map(|i| match &i.kind {
                    KindSpec::OvsBridge(s) => Some((i, s)),
                    _ => None,
                })
                .collect();
            if bridges.is_empty() {
                self.ovs_leftovers(nname, obs, &BTreeSet::new());
                if matches!(obs.instance, OvsInstance::Private { .. }) {
                    self.ovs_op(ovs_stage::STOP, nname, OvsOp::Stop);
                }
                continue;
            }
            if !obs.instance.is_running() {
                self.ovs_op(ovs_stage::START, nname, OvsOp::Start);
            }
            let declared: BTreeSet<String> = bridges.iter().map(|(i, _)| i.name.clone()).collect();
            for (br, spec) in &bridges {
                self.ovs_bridge(nname, node, br, spec, obs);
            }
            self.ovs_leftovers(nname, obs, &declared);
            self.ovs_devices_up(nname, node, obs);
        }
        // A port moving between the lab's bridges is given up once, before it is added.
        let moved: Vec<(String, String, String)> = self
            .steps
            .iter()
            .filter(|s| s.stage == ovs_stage::CONFIG)
            .filter_map(|s| match &s.op {
                Op::Ovs { node, ovs_op: OvsOp::DelPort { bridge, port } } => Some((node.clone(), bridge.clone(), port.clone())),
                _ => None,
            })
            .collect();
        self.steps.retain(|s| {
            !(s.stage == ovs_stage::REMOVE
                && matches!(&s.op, Op::Ovs { node, ovs_op: OvsOp::DelPort { bridge, port } } if moved.iter().any(|(n, b, p)| n == node && b == bridge && p == port)))
        });
        // Nodes the file no longer has: their private OVS stops before the namespace goes.
        if let Some(st) = state {
            for node in st.ovs.keys() {
                if !lab.nodes.contains_key(node) {
                    self.ovs_op(ovs_stage::STOP, node, OvsOp::Stop);
                }
            }
        }
    }

    fn ovs_bridge(&mut self, nname: &str, node: &Node, br: &Interface, spec: &OvsBridgeSpec, obs: &ObservedOvs) {
        let lab_name = self.lab.name.clone();
        let want = bridge_row(node, br, spec, obs.kernel_datapath);
        let flows: Vec<FlowRow> = spec
            .parsed_flows()
            .into_iter()
            .map(|f| {
                let line = f.line();
                FlowRow { cookie: flow_cookie(&lab_name, &line), line }
            })
            .collect();
        // Ports the lab wants that another bridge holds: a foreign one clashes; one of the
        // lab's bridges gives it up first (in the same transaction, before it is added here).
        for p in std::iter::once(&want.local).chain(&want.ports) {
            if let Some(other) = obs.port_owner(&p.name).filter(|b| b.name != br.name) {
                if other.lab.as_deref() != Some(lab_name.as_str()) {
                    self.clash(
                        nname,
                        format!("OVS port `{}` already exists on OVS bridge `{}`, which does not belong to lab `{lab_name}`", p.name, other.name),
                    );
                    return;
                }
                let op = OvsOp::DelPort { bridge: other.name.clone(), port: p.name.clone() };
                self.ovs_op(ovs_stage::CONFIG, nname, op);
            }
        }
        let Some(have) = obs.bridge(&br.name) else {
            if self.is_root(nname) && self.ns(nname).link(&br.name).is_some() {
                self.clash(nname, format!("interface `{}` already exists; OVS cannot create the bridge's own interface", br.name));
                return;
            }
            for p in want.ports.iter().filter(|p| p.internal) {
                if self.is_root(nname) && self.ns(nname).link(&p.name).is_some() {
                    self.clash(nname, format!("interface `{}` already exists; OVS cannot create the internal port", p.name));
                    return;
                }
            }
            self.ovs_op(ovs_stage::CONFIG, nname, OvsOp::AddBridge { bridge: want });
            if !flows.is_empty() {
                self.ovs_op(ovs_stage::FLOWS, nname, OvsOp::Flows { bridge: br.name.clone(), add: flows, del: Vec::new() });
            }
            return;
        };
        if have.lab.as_deref() != Some(lab_name.as_str()) {
            self.clash(nname, format!("OVS bridge `{}` already exists and does not belong to lab `{lab_name}`", br.name));
            return;
        }
        // Bridge settings: the datapath only when declared (an automatic choice stays).
        let datapath = spec.datapath.map(|d| d.name().to_string()).filter(|d| *d != have.datapath_type);
        let fail_mode = (want.fail_mode != have.fail_mode).then(|| want.fail_mode.clone());
        let controller = (want.controller.as_ref().map(|c| vec![c.clone()]).unwrap_or_default() != have.controllers).then(|| want.controller.clone());
        if datapath.is_some() || fail_mode.is_some() || controller.is_some() {
            self.ovs_op(ovs_stage::CONFIG, nname, OvsOp::SetBridge { bridge: br.name.clone(), datapath, fail_mode, controller });
        }
        // Ports: the lab's ones are compared; ports someone else added stay.
        for p in std::iter::once(&want.local).chain(&want.ports) {
            match have.port(&p.name) {
                None => self.ovs_op(ovs_stage::CONFIG, nname, OvsOp::AddPort { bridge: br.name.clone(), port: p.clone() }),
                Some(hp) if hp.lab.as_deref() != Some(lab_name.as_str()) => {
                    self.clash(nname, format!("OVS port `{}` on bridge `{}` does not belong to lab `{lab_name}`", p.name, br.name));
                }
                Some(hp) => {
                    let h = observed_row(hp);
                    if h.internal != p.internal {
                        self.ovs_op(ovs_stage::CONFIG, nname, OvsOp::DelPort { bridge: br.name.clone(), port: p.name.clone() });
                        self.ovs_op(ovs_stage::CONFIG, nname, OvsOp::AddPort { bridge: br.name.clone(), port: p.clone() });
                    } else if port_differs(p, &h) {
                        self.ovs_op(ovs_stage::CONFIG, nname, OvsOp::SetPort { bridge: br.name.clone(), port: p.clone() });
                    }
                }
            }
        }
        let wanted: BTreeSet<&str> = std::iter::once(&want.local).chain(&want.ports).map(|p| p.name.as_str()).collect();
        for hp in &have.ports {
            let moving = self
                .steps
                .iter()
                .any(|s| matches!(&s.op, Op::Ovs { node, ovs_op: OvsOp::DelPort { bridge, port } } if node == nname && *bridge == br.name && *port == hp.name));
            if hp.lab.as_deref() == Some(lab_name.as_str()) && !wanted.contains(hp.name.as_str()) && !moving {
                self.ovs_op(ovs_stage::REMOVE, nname, OvsOp::DelPort { bridge: br.name.clone(), port: hp.name.clone() });
            }
        }
        // Flows by cookie.
        let have_flows: BTreeSet<u64> = have.flow_cookies.clone().unwrap_or_default().into_iter().collect();
        let want_cookies: BTreeSet<u64> = flows.iter().map(|f| f.cookie).collect();
        let add: Vec<FlowRow> = flows.into_iter().filter(|f| !have_flows.contains(&f.cookie)).collect();
        let del: Vec<u64> = have_flows.iter().filter(|c| !want_cookies.contains(c)).copied().collect();
        if !add.is_empty() || !del.is_empty() {
            self.ovs_op(ovs_stage::FLOWS, nname, OvsOp::Flows { bridge: br.name.clone(), add, del });
        }
    }

    /// The lab's bridges that the node no longer declares.
    fn ovs_leftovers(&mut self, nname: &str, obs: &ObservedOvs, declared: &BTreeSet<String>) {
        let lab_name = self.lab.name.clone();
        let gone: Vec<String> = obs
            .bridges
            .iter()
            .filter(|b: &&OvsBridgeObs| b.lab.as_deref() == Some(lab_name.as_str()) && !declared.contains(&b.name))
            .map(|b| b.name.clone())
            .collect();
        for b in gone {
            // A device of the same name declared as another kind is made after OVS let go of it.
            let reused = self.lab.node(nname).is_some_and(|n| n.interfaces.contains_key(&b));
            let st = if reused { stage::REPLACE } else { ovs_stage::REMOVE };
            self.ovs_op(st, nname, OvsOp::DelBridge { bridge: b });
        }
    }

    /// Devices OVS makes (the bridge's own interface, internal ports) come up as declared:
    /// new ones once OVS made them, existing ones when their state differs.
    fn ovs_devices_up(&mut self, nname: &str, node: &Node, obs: &ObservedOvs) {
        for iface in node.interfaces.values().filter(|i| i.kind.is_ovs()) {
            let have = self.ns(nname).link(&iface.name).filter(|l| obs.owns_device(&self.lab.name, &l.name));
            let up = match have {
                Some(h) if h.up != iface.up => Some(iface.up),
                Some(_) => None,
                None if iface.up => Some(true),
                None => None,
            };
            if let Some(up) = up {
                let change = LinkChange { up: Some(up), ..Default::default() };
                self.push(stage::MASTER_UP, Op::ChangeLink { node: nname.into(), ifname: iface.name.clone(), change });
            }
        }
    }
}

impl std::fmt::Display for PortRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if self.internal {
            write!(f, " internal")?;
        }
        if let Some(t) = self.tag {
            write!(f, " tag={t}")?;
        }
        if !self.trunks.is_empty() {
            let t: Vec<String> = self.trunks.iter().map(u16::to_string).collect();
            write!(f, " trunks={}", t.join(","))?;
        }
        if let Some(m) = &self.vlan_mode {
            write!(f, " vlan_mode={m}")?;
        }
        if let Some(o) = self.ofport {
            write!(f, " ofport={o}")?;
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu={m}")?;
        }
        if let Some(m) = &self.mac {
            write!(f, " mac={m}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for OvsOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OvsOp::Start => write!(f, "start ovsdb-server and ovs-vswitchd"),
            OvsOp::AddBridge { bridge: b } => {
                write!(f, "bridge {} datapath={}", b.name, b.datapath)?;
                if let Some(m) = &b.fail_mode {
                    write!(f, " fail_mode={m}")?;
                }
                if let Some(c) = &b.controller {
                    write!(f, " controller={c}")?;
                }
                let ports: Vec<String> = b.ports.iter().map(|p| format!("[{p}]")).collect();
                if !ports.is_empty() {
                    write!(f, " ports {}", ports.join(" "))?;
                }
                Ok(())
            }
            OvsOp::SetBridge { bridge, datapath, fail_mode, controller } => {
                write!(f, "set bridge {bridge}")?;
                if let Some(d) = datapath {
                    write!(f, " datapath={d}")?;
                }
                if let Some(m) = fail_mode {
                    write!(f, " fail_mode={}", m.as_deref().unwrap_or("[]"))?;
                }
                if let Some(c) = controller {
                    write!(f, " controller={}", c.as_deref().unwrap_or("[]"))?;
                }
                Ok(())
            }
            OvsOp::AddPort { bridge, port } => write!(f, "port {bridge} [{port}]"),
            OvsOp::SetPort { bridge, port } => write!(f, "set port {bridge} [{port}]"),
            OvsOp::DelPort { bridge, port } => write!(f, "del port {bridge} {port}"),
            OvsOp::DelBridge { bridge } => write!(f, "del bridge {bridge}"),
            OvsOp::Flows { bridge, add, del } => {
                write!(f, "flows {bridge}")?;
                for a in add {
                    write!(f, " +[{}]", a.line)?;
                }
                for d in del {
                    write!(f, " -0x{d:016x}")?;
                }
                Ok(())
            }
            OvsOp::Stop => write!(f, "stop ovsdb-server and ovs-vswitchd"),
        }
    }
}

/// What an OVS operation leaves behind, as the observer would see it (planner tests).
#[cfg(test)]
pub(super) fn simulate(lab: &Lab, o: &mut crate::observed::Observed, node: &str, op: &OvsOp) {
    use crate::observed::NsState;
    let mark = Some(lab.name.clone());
    let next = 1000 + o.nodes.values().filter_map(|s| s.ns()).flat_map(|n| n.links.iter().map(|l| l.ifindex)).max().unwrap_or(0);
    let mut devices: Vec<String> = Vec::new();
    let ovs = o.ovs.entry(node.to_string()).or_default();
    let port = |p: &PortRow| OvsPortObs {
        uuid: format!("p-{}", p.name),
        name: p.name.clone(),
        tag: p.tag.map(i64::from),
        trunks: p.trunks.iter().map(|t| i64::from(*t)).collect(),
        vlan_mode: p.vlan_mode.clone(),
        interfaces: vec![OvsIfaceObs {
            uuid: format!("i-{}", p.name),
            name: p.name.clone(),
            kind: if p.internal { "internal".into() } else { String::new() },
            ofport_request: p.ofport.map(i64::from),
            mtu_request: p.mtu.map(i64::from),
            mac: p.mac.clone(),
            lab: mark.clone(),
        }],
        lab: mark.clone(),
    };
    match op {
        OvsOp::Start => ovs.instance = OvsInstance::Private { dir: format!("/run/vnet/{}/ovs/{node}", lab.name) },
        OvsOp::Stop => *ovs = ObservedOvs::default(),
        OvsOp::AddBridge { bridge: b } => {
            let ports: Vec<OvsPortObs> = std::iter::once(&b.local).chain(&b.ports).map(port).collect();
            devices.extend(std::iter::once(&b.local).chain(&b.ports).filter(|p| p.internal).map(|p| p.name.clone()));
            ovs.bridges.push(OvsBridgeObs {
                uuid: format!("b-{}", b.name),
                name: b.name.clone(),
                datapath_type: b.datapath.clone(),
                fail_mode: b.fail_mode.clone(),
                controllers: b.controller.iter().cloned().collect(),
                ports,
                lab: mark.clone(),
                flow_cookies: Some(Vec::new()),
            });
        }
        OvsOp::SetBridge { bridge, datapath, fail_mode, controller } => {
            let b = ovs.bridges.iter_mut().find(|b| &b.name == bridge).expect("bridge exists");
            if let Some(d) = datapath {
                b.datapath_type = d.clone();
            }
            if let Some(m) = fail_mode {
                b.fail_mode = m.clone();
            }
            if let Some(c) = controller {
                b.controllers = c.iter().cloned().collect();
            }
        }
        OvsOp::AddPort { bridge, port: p } => {
            if p.internal {
                devices.push(p.name.clone());
            }
            ovs.bridges.iter_mut().find(|b| &b.name == bridge).expect("bridge exists").ports.push(port(p));
        }
        OvsOp::SetPort { bridge, port: p } => {
            let b = ovs.bridges.iter_mut().find(|b| &b.name == bridge).expect("bridge exists");
            let slot = b.ports.iter_mut().find(|x| x.name == p.name).expect("port exists");
            *slot = port(p);
        }
        OvsOp::DelPort { bridge, port } => {
            if let Some(b) = ovs.bridges.iter_mut().find(|b| &b.name == bridge) {
                b.ports.retain(|x| &x.name != port);
            }
        }
        OvsOp::DelBridge { bridge } => ovs.bridges.retain(|b| &b.name != bridge),
        OvsOp::Flows { bridge, add, del } => {
            let b = ovs.bridges.iter_mut().find(|b| &b.name == bridge).expect("bridge exists");
            let f = b.flow_cookies.get_or_insert_with(Vec::new);
            f.retain(|c| !del.contains(c));
            f.extend(add.iter().map(|a| a.cookie));
        }
    }
    if let Some(NsState::Owned(ns) | NsState::Root(ns)) = o.nodes.get_mut(node) {
        for (i, d) in devices.into_iter().enumerate() {
            ns.links.push(ObservedLink { ifindex: next + i as u32, name: d, kind: Some("tun".into()), mtu: 1500, ..Default::default() });
        }
    }
}
