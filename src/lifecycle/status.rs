//! `status`: labs, nodes, devices, addresses and routes as the kernel reports them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::lab::{format_mac, owner_mark, HOST};
use crate::model::netfeat::spec::BpfHookSpec;
use crate::model::netfeat::Impairment;
use crate::observed::netfeat::{NsFeatures, ObservedQdisc, QdiscParams, VNET_BPF_PRIO};
use crate::observed::{NsState, ObservedNs, RTPROT_KERNEL};
use crate::plan::{qdisc_drift, Op, QdiscDrift};
use crate::state::{self, Phase};

use super::session::observe_named;

#[derive(Clone, Debug, Serialize)]
pub struct LabStatus {
    pub lab: String,
    pub phase: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub isolated_host: bool,
    pub nodes: Vec<NodeStatus>,
    /// Why the kernel could not be compared with the record (a device of the same name that
    /// is not the lab's, ...): the lab is then not as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_error: Option<String>,
    /// The process that owns the lab (a lab of the Rust test library), if any: running or
    /// gone (then `vnet gc` removes the lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerStatus>,
    /// The command that made the lab from its file, when one did (a test library's lab was
    /// not made by `vnet up`, and has a name of its own).
    #[serde(skip)]
    pub up_command: Option<String>,
}

/// The owner of a lab, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnerStatus {
    /// Its pid, as the owner saw it (in its own PID namespace).
    pub pid: u32,
    /// Whether it is still running (it holds the lab's owner lock).
    pub running: bool,
    /// The pid is one of another PID namespace than `status`'s.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub other_pid_namespace: bool,
    /// In words: "owner pid N is running" or "owner pid N is gone: `vnet gc` removes it".
    pub note: String,
}

impl OwnerStatus {
    fn of(st: &state::LabState) -> Option<OwnerStatus> {
        use state::owner::OwnerState;
        let (pid, elsewhere, running) = match state::owner::state(&state::lab_dir(&st.lab), Some(st), None) {
            OwnerState::Alive { pid, elsewhere } => (pid, elsewhere, true),
            OwnerState::Gone { pid, elsewhere } => (pid, elsewhere, false),
            OwnerState::None | OwnerState::This => return None,
        };
        let who = format!("owner {}", OwnerState::describe_pid(pid, elsewhere));
        let note = if running { format!("{who} is running") } else { format!("{who} is gone: `vnet gc` removes it") };
        Some(OwnerStatus { pid, running, other_pid_namespace: elsewhere, note })
    }
}

impl LabStatus {
    /// Whether the kernel holds what the record says is up: every node's namespace, every
    /// declared device with its state, addresses, routes, sysctls and traffic control (nothing
    /// for `vnet up` to do). A lab being built or removed is what it is.
    pub fn as_recorded(&self) -> bool {
        self.phase != Phase::Up
            || (self.drift_error.is_none()
                && self.nodes.iter().all(|n| {
                    n.present
                        && n.missing_devices.is_empty()
                        && n.drift.is_empty()
                        && n.devices.iter().all(|d| d.drift.is_empty() && d.tc.as_ref().is_none_or(TcStatus::as_declared))
                }))
    }

    /// How many operations `vnet up` would perform to bring the kernel back to the record.
    pub fn drift_count(&self) -> usize {
        self.nodes.iter().map(|n| n.drift.len() + n.devices.iter().map(|d| d.drift.len()).sum::<usize>()).sum()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// Namespace name; `None` for the real root namespace.
    pub netns: Option<String>,
    /// Whether the namespace exists and carries the lab's mark.
    pub present: bool,
    pub devices: Vec<DeviceStatus>,
    /// Devices the applied topology declares in this node that the kernel does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_devices: Vec<String>,
    pub routes: Vec<RouteStatus>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Where the node differs from the record and no device of it is concerned (routes,
    /// sysctls, NAT, a missing device): the operations `vnet up` would perform, as `vnet plan`
    /// writes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceStatus {
    pub name: String,
    pub ifindex: u32,
    pub kind: String,
    /// Administrative state.
    pub up: bool,
    pub carrier: bool,
    /// Operational state as the kernel reports it.
    pub oper: String,
    pub mtu: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// The other end of a veth, `node:ifname`, when it is in the lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hairpin: Option<bool>,
    /// Kind-specific facts: a macvtap's `char_device`, a VXLAN's `vni`/`remote`, a bond's
    /// `mode`/`active_port`, a VLAN's `id`, a team's `teamd_pid`, ...
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Traffic control: what the lab declares on the device and what the kernel has; absent
    /// when neither has anything (no declaration, the kernel's default qdisc).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc: Option<TcStatus>,
    /// Where the device differs from the record (down though declared up, an address missing
    /// or not declared, another MTU, ...): the operations `vnet up` would perform on it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}

/// A device's traffic control, declared and observed.
#[derive(Clone, Debug, Serialize)]
pub struct TcStatus {
    /// The declared root qdisc in the file's words (`tbf rate 10mbit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
    /// The device's root qdisc as the kernel reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qdisc: Option<QdiscStatus>,
    /// How the two compare: `as-declared`, `missing`, `differs`, `undeclared` (or `clean`).
    pub state: QdiscDrift,
    /// BPF programs the lab declares on the device (tc hooks and XDP).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bpf: Vec<BpfStatus>,
}

impl TcStatus {
    /// Whether the kernel has what is declared (an undeclared qdisc is not the record's).
    pub fn as_declared(&self) -> bool {
        !self.state.is_drift() && self.bpf.iter().all(|b| b.attached)
    }
}

/// A root qdisc as observed.
#[derive(Clone, Debug, Serialize)]
pub struct QdiscStatus {
    /// `tbf 7654: rate 10mbit burst 12500b`, in the file's words.
    pub text: String,
    pub kind: String,
    /// As `tc` writes it: `7654:` (vnet's), `0:` (the kernel's default).
    pub handle: String,
    /// `vnet`, `default` (the kernel's own) or `other` (somebody else's).
    pub owner: &'static str,
    /// netem/tbf parameters in the kernel's units.
    pub params: QdiscParams,
}

/// A declared BPF program and whether the kernel has it on its hook.
#[derive(Clone, Debug, Serialize)]
pub struct BpfStatus {
    pub hook: BpfHookSpec,
    pub program: String,
    pub attached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteStatus {
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    pub table: u32,
    /// `kernel` for routes derived from addresses, `static` for declared ones.
    pub proto: String,
}

/// Status of one lab, or of every lab with a record.
pub fn status(lab: Option<&str>) -> Result<Vec<LabStatus>> {
    let names = match lab {
        Some(l) => {
            if state::load(l).map_err(|e| Error::io("read lab state", e))?.is_none() {
                return Err(Error::NoSuchLab(l.to_string()));
            }
            vec![l.to_string()]
        }
        None => state::list(),
    };
    let mut out = Vec::new();
    for name in names {
        // With no lab named, one unreadable record (another vnet version's) must not hide the rest.
        let st = match state::load(&name) {
            Ok(Some(st)) => st,
            Ok(None) => continue,
            Err(e) if lab.is_none() => {
                tracing::warn!("skipping lab {name}: {e}");
                continue;
            }
            Err(e) => return Err(Error::io("read lab state", e)),
        };
        out.push(one(&st)?);
    }
    Ok(out)
}

fn one(st: &state::LabState) -> Result<LabStatus> {
    let mark = owner_mark(&st.lab);
    let topo_nodes: Vec<String> = st.topology.as_ref().map(|t| t.nodes.keys().cloned().collect()).unwrap_or_default();
    let root_node = if !st.isolated_host && topo_nodes.iter().any(|n| n == HOST) { Some(HOST.to_string()) } else { None };
    let named: Vec<(String, String)> = st.netns.iter().map(|(n, ns)| (n.clone(), ns.clone())).collect();
    let keys: BTreeMap<String, Vec<String>> =
        st.topology.as_ref().map(|t| t.nodes.iter().map(|(n, s)| (n.clone(), s.sysctls.keys().cloned().collect())).collect()).unwrap_or_default();
    // A lab that is up: one observation serves both what the kernel has and the plan of the
    // record against it (where it differs). Otherwise, or when the record no longer loads,
    // what the kernel has.
    let (mut session, mut drift, drift_error) = match st.topology.as_ref().filter(|_| st.phase == Phase::Up).map(crate::model::load_topology) {
        Some(Ok(loaded)) => {
            let keyed = super::netfeat::with_keys(&loaded.lab, Some(st)).map_err(|e| Error::io("read IPsec keys", e))?;
            let session = super::session::observe_lab(&loaded.lab, keyed.as_ref())?;
            let (drift, error) = drift(crate::plan::plan(&loaded.lab, &session.observed, keyed.as_ref()));
            (session, drift, error)
        }
        other => {
            let error = match other {
                Some(Err(d)) => Some(format!("the recorded topology no longer loads: {d}")),
                _ => None,
            };
            (observe_named(&mark, named, root_node.clone(), &keys, Some(st))?, DriftByPlace::new(), error)
        }
    };
    // Declared traffic control (as applied, `vnet impair` included) and the kernel's: every
    // namespace's root qdiscs in one dump each, BPF programs where the lab declares some.
    let declared_tc: BTreeMap<(String, String), Impairment> = st
        .topology
        .iter()
        .flat_map(|t| t.nodes.iter())
        .flat_map(|(n, spec)| spec.tc.iter().filter_map(move |(dev, tc)| Impairment::from_spec(tc).ok().map(|i| ((n.clone(), dev.clone()), i))))
        .collect();
    let declared_bpf: BTreeMap<String, Vec<(String, BpfHookSpec, String)>> = st
        .topology
        .iter()
        .flat_map(|t| t.nodes.iter())
        .map(|(n, spec)| (n.clone(), spec.bpf.iter().map(|b| (b.dev.clone(), b.hook, b.program.clone())).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let bpf_devs = declared_bpf.iter().map(|(n, v)| (n.clone(), v.iter().map(|(d, _, _)| d.clone()).collect())).collect();
    let t = std::time::Instant::now();
    crate::kernel::netfeat::observe::observe_tc(&mut session.handles, &mut session.observed, &bpf_devs)
        .map_err(|e| Error::io("observe qdiscs and BPF programs", std::io::Error::other(e)))?;
    tracing::debug!(target: "vnet::timing", "status: qdiscs and BPF programs {:?}", t.elapsed());
    // Every (node, ifindex) -> (link peer index) for veth peer matching.
    let mut nodes = Vec::new();
    let mut order: Vec<String> = topo_nodes.clone();
    for n in session.observed.nodes.keys() {
        if !order.contains(n) {
            order.push(n.clone());
        }
    }
    for node in &order {
        let Some(ns_state) = session.observed.nodes.get(node) else { continue };
        let (present, ns) = match ns_state {
            NsState::Owned(o) | NsState::Root(o) => (true, o),
            _ => (false, &EMPTY),
        };
        let root = matches!(ns_state, NsState::Root(_));
        let devices = ns
            .links
            .iter()
            .filter(|l| !root || l.alias.as_deref() == Some(mark.as_str()))
            // A busy bridge's teardown anchor (`model::anchor`) is vnet's, not the file's.
            .filter(|l| !crate::model::anchor::is_anchor(&l.name))
            .map(|l| DeviceStatus {
                name: l.name.clone(),
                ifindex: l.ifindex,
                kind: l.kind.clone().unwrap_or_else(|| if l.name == "lo" { "loopback".into() } else { "device".into() }),
                up: l.up,
                carrier: l.carrier,
                oper: l.oper.clone(),
                mtu: l.mtu,
                mac: l.mac.map(|m| format_mac(&m)).filter(|_| l.name != "lo"),
                master: l.master.and_then(|m| ns.name_of(m)).map(str::to_string),
                peer: peer_of(&session.observed.nodes, node, l.ifindex, l.link, l.kind.as_deref()),
                addresses: ns.addrs_of(l.ifindex).map(|a| a.addr.to_string()).collect(),
                hairpin: l.hairpin,
                details: super::devinfo::details(l, ns, st.daemons.get(&format!("{node}:{}", l.name)).copied()),
                tc: tc_status(
                    declared_tc.get(&(node.clone(), l.name.clone())),
                    declared_bpf.get(node).map(Vec::as_slice).unwrap_or(&[]),
                    &l.name,
                    &ns.features,
                ),
                drift: drift.remove(&(node.clone(), Some(l.name.clone()))).unwrap_or_default(),
            })
            .collect::<Vec<_>>();
        // Declared devices gone from a node that is there (deleted by hand); Open vSwitch's own
        // ports are not necessarily kernel devices.
        let missing_devices: Vec<String> = if present {
            st.topology
                .as_ref()
                .and_then(|t| t.nodes.get(node))
                .map(|n| {
                    n.interfaces
                        .iter()
                        .filter(|(name, i)| name.as_str() != "lo" && !i.kind.is_ovs() && ns.link(name).is_none())
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let lab_dev: Vec<u32> = devices.iter().map(|d| d.ifindex).collect();
        let routes = ns
            .routes
            .iter()
            .filter(|r| r.kind == 1 && r.table != 255)
            .filter(|r| !root || r.oif.map(|o| lab_dev.contains(&o)).unwrap_or(false))
            .filter(|r| !(r.dst.addr().is_ipv6() && r.protocol == RTPROT_KERNEL && r.dst.prefix_len() == 64 && r.dst.addr().to_string().starts_with("fe80")))
            .map(|r| RouteStatus {
                dst: if r.dst.prefix_len() == 0 {
                    if r.dst.addr().is_ipv6() {
                        "default6".into()
                    } else {
                        "default".into()
                    }
                } else {
                    r.dst.to_string()
                },
                via: r.via.map(|v| v.to_string()),
                dev: r.oif.and_then(|o| ns.name_of(o)).map(str::to_string),
                metric: r.metric,
                table: r.table,
                proto: crate::observed::route_protocol_name(r.protocol),
            })
            .collect();
        nodes.push(NodeStatus {
            node: node.clone(),
            netns: st.netns.get(node).cloned(),
            present,
            devices,
            missing_devices,
            routes,
            sysctls: ns.sysctls.clone(),
            drift: Vec::new(),
        });
    }
    // What no listed device took: under its node.
    for ((node, _), ops) in drift {
        if let Some(n) = nodes.iter_mut().find(|n| n.node == node) {
            n.drift.extend(ops);
        }
    }
    Ok(LabStatus {
        lab: st.lab.clone(),
        phase: st.phase,
        file: st.file.as_ref().map(|f| f.display().to_string()),
        isolated_host: st.isolated_host,
        nodes,
        drift_error,
        owner: OwnerStatus::of(st),
        up_command: st
            .file
            .as_ref()
            .filter(|_| st.owner_pid.is_none())
            .map(|f| format!("vnet up {}{}", f.display(), if st.isolated_host { " --isolated-host" } else { "" })),
    })
}

/// Where the kernel differs from the lab's record, by node and device: the operations `vnet up`
/// would perform (the plan of the recorded topology against the kernel); or why there is no
/// such plan.
type DriftByPlace = BTreeMap<(String, Option<String>), Vec<String>>;

fn drift(plan: std::result::Result<crate::plan::Plan, Vec<crate::plan::Clash>>) -> (DriftByPlace, Option<String>) {
    let mut out = DriftByPlace::new();
    match plan {
        Ok(plan) => {
            for op in plan.ops() {
                let text = op.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                // Routes go with the node's routes, not under the device they leave by.
                let device = match op {
                    Op::AddRoute { .. } | Op::DelRoute { .. } => None,
                    op => op.device().map(str::to_string),
                };
                out.entry((op.node().to_string(), device)).or_default().push(text);
            }
            (out, None)
        }
        Err(clashes) => (out, Some(Error::Clash(clashes).to_string())),
    }
}

/// What `status` says of a device's traffic control; `None` when there is nothing to say.
fn tc_status(want: Option<&Impairment>, bpf: &[(String, BpfHookSpec, String)], dev: &str, have: &NsFeatures) -> Option<TcStatus> {
    let q = have.qdiscs.get(dev);
    let state = qdisc_drift(want, q);
    let bpf: Vec<BpfStatus> = bpf
        .iter()
        .filter(|(d, _, _)| d == dev)
        .map(|(_, hook, program)| {
            let on = have.bpf.iter().find(|b| b.ifname == dev && b.hook == *hook && (*hook == BpfHookSpec::Xdp || b.prio == VNET_BPF_PRIO));
            BpfStatus { hook: *hook, program: program.clone(), attached: on.is_some(), prog_id: on.map(|b| b.prog_id) }
        })
        .collect();
    if state == QdiscDrift::Clean && bpf.is_empty() {
        return None;
    }
    Some(TcStatus { declared: want.map(|i| i.to_string()), qdisc: q.map(qdisc_status), state, bpf })
}

fn qdisc_status(q: &ObservedQdisc) -> QdiscStatus {
    let owner = if q.is_vnet() {
        "vnet"
    } else if q.is_default() {
        "default"
    } else {
        "other"
    };
    QdiscStatus { text: q.describe(), kind: q.kind.clone(), handle: q.handle_text(), owner, params: q.params }
}

/// The traffic control lines under a device.
fn render_tc(t: &TcStatus) -> Vec<String> {
    let mut out = Vec::new();
    let declared = t.declared.as_deref().unwrap_or("");
    let have = match &t.qdisc {
        Some(q) if q.owner == "default" => format!("its default qdisc {}", q.text),
        Some(q) if q.owner == "vnet" => q.text.clone(),
        Some(q) => format!("{} (not vnet's)", q.text),
        None => "no qdisc".into(),
    };
    match t.state {
        QdiscDrift::Clean => {}
        QdiscDrift::AsDeclared => out.push(format!("tc {} (as declared)", t.qdisc.as_ref().map(|q| q.text.as_str()).unwrap_or(declared))),
        QdiscDrift::Missing => out.push(format!("tc MISSING: declared {declared}; the kernel has {have}")),
        QdiscDrift::Differs => out.push(format!("tc DIFFERS: declared {declared}; the kernel has {have}")),
        QdiscDrift::Undeclared => match &t.qdisc {
            Some(q) if q.owner == "vnet" => out.push(format!("tc {} (vnet's, no longer declared)", q.text)),
            Some(q) => out.push(format!("tc {} (not declared, not put there by vnet)", q.text)),
            None => {}
        },
    }
    for b in &t.bpf {
        match b.prog_id {
            Some(id) if b.attached => out.push(format!("bpf {} {} (attached, id {id})", b.hook.name(), b.program)),
            _ => out.push(format!("bpf {} {} MISSING (declared, not attached)", b.hook.name(), b.program)),
        }
    }
    out
}

static EMPTY: ObservedNs =
    ObservedNs { links: Vec::new(), addrs: Vec::new(), routes: Vec::new(), sysctls: BTreeMap::new(), features: crate::observed::netfeat::NsFeatures::new() };

fn peer_of(all: &BTreeMap<String, NsState>, me: &str, ifindex: u32, link: Option<u32>, kind: Option<&str>) -> Option<String> {
    if kind != Some("veth") {
        return None;
    }
    let link = link?;
    let mut candidates = all.iter().filter_map(|(n, s)| s.ns().map(|o| (n, o))).filter_map(|(n, o)| {
        o.link_by_index(link)
            .filter(|l| l.link == Some(ifindex) && l.kind.as_deref() == Some("veth") && !(n == me && l.ifindex == ifindex))
            .map(|l| format!("{n}:{}", l.name))
    });
    let first = candidates.next();
    if candidates.next().is_some() {
        return None; // ambiguous
    }
    first
}

/// Human-readable rendering.
pub fn render(labs: &[LabStatus]) -> String {
    let mut s = String::new();
    if labs.is_empty() {
        s.push_str("no labs\n");
    }
    for l in labs {
        let phase = match l.phase {
            Phase::Up => "up",
            Phase::Building => "building",
            Phase::Removing => "removing",
        };
        let iso = if l.isolated_host { ", isolated host" } else { "" };
        s.push_str(&format!("lab {} ({phase}, {} nodes{iso})\n", l.lab, l.nodes.len()));
        if let Some(o) = &l.owner {
            s.push_str(&format!("  {}\n", o.note));
        }
        for n in &l.nodes {
            let where_ = match &n.netns {
                Some(ns) => ns.clone(),
                None => "root namespace".into(),
            };
            s.push_str(&format!("  {} ({}){}\n", n.node, where_, if n.present { "" } else { " MISSING" }));
            for d in &n.devices {
                let mut line = format!(
                    "    {:<15} {:<9} {:<5} mtu {:<5}",
                    d.name,
                    d.kind,
                    if d.up {
                        if d.carrier || d.name == "lo" {
                            "UP"
                        } else {
                            "NO-CARRIER"
                        }
                    } else {
                        "DOWN"
                    },
                    d.mtu
                );
                if let Some(m) = &d.master {
                    line.push_str(&format!(" master {m}"));
                }
                if let Some(p) = &d.peer {
                    line.push_str(&format!(" peer {p}"));
                }
                if !d.addresses.is_empty() {
                    line.push_str(&format!(" {}", d.addresses.join(" ")));
                }
                line.push_str(&super::devinfo::render(&d.details));
                s.push_str(line.trim_end());
                s.push('\n');
                for t in d.tc.iter().flat_map(render_tc) {
                    s.push_str(&format!("      {t}\n"));
                }
                render_drift(&mut s, "      ", &d.drift);
            }
            for d in &n.missing_devices {
                s.push_str(&format!("    {d:<15} MISSING (declared, not in the kernel)\n"));
            }
            for r in &n.routes {
                if r.proto == "kernel" {
                    continue;
                }
                let mut line = format!("    route {}", r.dst);
                if let Some(v) = &r.via {
                    line.push_str(&format!(" via {v}"));
                }
                if let Some(d) = &r.dev {
                    line.push_str(&format!(" dev {d}"));
                }
                if let Some(m) = r.metric {
                    line.push_str(&format!(" metric {m}"));
                }
                if r.table != 254 {
                    line.push_str(&format!(" table {}", r.table));
                }
                s.push_str(&line);
                s.push('\n');
            }
            for (k, v) in &n.sysctls {
                s.push_str(&format!("    sysctl {k} = {v}\n"));
            }
            render_drift(&mut s, "    ", &n.drift);
        }
        if let Some(e) = &l.drift_error {
            s.push_str(&format!("  cannot compare the kernel with the record: {e}\n"));
        }
        let n = l.drift_count();
        if n > 0 {
            let up = match &l.up_command {
                Some(c) => format!("`{c}`"),
                None => "`vnet up` with the lab's file".into(),
            };
            s.push_str(&format!("  DIFFERS from the record: {n} operation{} to put it back ({up}, if the file is unchanged)\n", if n == 1 { "" } else { "s" }));
        }
    }
    s
}

/// At most this many drift lines per node or device; a node re-created whole has many.
const DRIFT_LINES: usize = 8;

fn render_drift(s: &mut String, indent: &str, ops: &[String]) {
    for op in ops.iter().take(DRIFT_LINES) {
        s.push_str(&format!("{indent}DIFFERS, up would: {op}\n"));
    }
    if ops.len() > DRIFT_LINES {
        s.push_str(&format!("{indent}DIFFERS, and {} more operations\n", ops.len() - DRIFT_LINES));
    }
}
