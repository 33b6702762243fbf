//! Validation: every check runs before any change to the kernel, all findings are collected, and
//! each one points at the text it is about. Produces the typed `Lab` when there is no error.
//! Names, interfaces, veth pairing, routes and sysctls each have their own file here.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::diag::{Diag, Diagnostics};
use super::file::{InterfaceSpec, Ipv6Mode, Topology};
use super::kind::{KindSpec, LoopbackSpec};
use super::lab::{Endpoint, Interface, Lab, Node, HOST};
use super::source::{Document, Path, Seg};

mod iface;
mod names;
mod routes;
mod sysctls;
mod veths;

use iface::{check_bridge_ports, check_duplicate_addresses, check_duplicate_macs, check_interface, check_master, check_veth_mtus};
pub(crate) use names::{did_you_mean, edit_distance, plain_name_problem, push_did_you_mean};
pub use names::{ifname_problem, lab_name_problem};
pub(crate) use routes::address_like_problem;
use routes::check_routes;
pub use routes::parse_cidr;
use sysctls::check_sysctls;
pub use sysctls::{sysctl_components, sysctl_key};
use veths::resolve_veths;

/// Where findings go, with the document used to locate them.
pub(crate) struct Ctx<'a> {
    doc: &'a Document,
    pub(crate) diags: Diagnostics,
    /// Veth ends whose MTU comes from their link's `mtu`, where errors about it point.
    mtu_from_link: HashMap<Endpoint, Path>,
    /// Decoding left pieces out: findings that follow from the whole (a gateway no address
    /// reaches) would mislead.
    pub(crate) partial: bool,
    /// What the file declares but decoding left out (its error is reported).
    failed: Failed,
}

/// Nodes and interfaces written in the file that failed to decode.
#[derive(Default)]
struct Failed {
    /// `nodes` is not a mapping: no node decoded.
    nodes_unknown: bool,
    nodes: std::collections::HashSet<String>,
    ifaces: std::collections::HashSet<Endpoint>,
}

impl Failed {
    fn of(doc: &Document, topo: &Topology) -> Failed {
        let mut f = Failed::default();
        match doc.get(&[Seg::Key("nodes".into())]) {
            Some(serde_json::Value::Object(nodes)) => {
                for (n, v) in nodes {
                    let Some(spec) = topo.nodes.get(n) else {
                        f.nodes.insert(n.clone());
                        continue;
                    };
                    if let Some(serde_json::Value::Object(ifs)) = v.get("interfaces") {
                        f.ifaces.extend(ifs.keys().filter(|i| !spec.interfaces.contains_key(*i)).map(|i| Endpoint::new(n, i)));
                    }
                }
            }
            Some(serde_json::Value::Null) | None => {}
            Some(_) => f.nodes_unknown = true,
        }
        f
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(doc: &'a Document) -> Self {
        Ctx { doc, diags: Diagnostics::new(Some(doc.source.clone())), mtu_from_link: HashMap::new(), partial: false, failed: Failed::default() }
    }
    pub(crate) fn doc(&self) -> &Document {
        self.doc
    }
    pub(crate) fn node_path(&self, node: &str) -> Path {
        vec![Seg::Key("nodes".into()), Seg::Key(node.into())]
    }
    pub(crate) fn iface_path(&self, node: &str, ifname: &str) -> Path {
        let mut p = self.node_path(node);
        p.push(Seg::Key("interfaces".into()));
        p.push(Seg::Key(ifname.into()));
        p
    }
    /// Where an interface's MTU is written: its own `mtu`, or its link's.
    pub(crate) fn mtu_path(&self, ep: &Endpoint, iface_path: &[Seg]) -> Path {
        self.mtu_from_link.get(ep).cloned().unwrap_or_else(|| self.sub(iface_path, "mtu"))
    }
    pub(crate) fn note_mtu_from_link(&mut self, ep: &Endpoint, path: Path) {
        self.mtu_from_link.insert(ep.clone(), path);
    }
    pub(crate) fn sub(&self, base: &[Seg], key: &str) -> Path {
        let mut p = base.to_vec();
        p.push(Seg::Key(key.into()));
        p
    }
    pub(crate) fn idx(&self, base: &[Seg], i: usize) -> Path {
        let mut p = base.to_vec();
        p.push(Seg::Index(i));
        p
    }
    /// An error underlining the value at `path`.
    pub(crate) fn error_at(&mut self, path: &[Seg], msg: impl Into<String>, label: impl Into<String>) {
        let span = self.doc.value_span(path);
        self.diags.push(Diag::error(msg).maybe_label(span, label));
    }
    /// An error underlining the key at `path` (e.g. a node or interface name).
    pub(crate) fn error_at_key(&mut self, path: &[Seg], msg: impl Into<String>, label: impl Into<String>) {
        let span = self.doc.key_span(path);
        self.diags.push(Diag::error(msg).maybe_label(span, label));
    }
    pub(crate) fn warn_at(&mut self, path: &[Seg], msg: impl Into<String>, label: impl Into<String>) {
        let span = self.doc.value_span(path);
        self.diags.push(Diag::warning(msg).maybe_label(span, label));
    }
    pub(crate) fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }
    pub(crate) fn span(&self, path: &[Seg]) -> Option<std::ops::Range<usize>> {
        self.doc.value_span(path)
    }
    pub(crate) fn key_span(&self, path: &[Seg]) -> Option<std::ops::Range<usize>> {
        self.doc.key_span(path)
    }
    /// Whether node `node` is in the file but failed to decode (that error is reported): an
    /// "unknown node" about it would only follow from that one.
    pub(crate) fn failed_node(&self, node: &str) -> bool {
        self.failed.nodes_unknown || self.failed.nodes.contains(node)
    }
    /// Whether interface `node:ifname` is in the file but failed to decode (e.g. an unknown
    /// kind): an "unknown device" (or "not a bridge" about the plain veth a link made in its
    /// place) would only follow from that error.
    pub(crate) fn failed_iface(&self, node: &str, ifname: &str) -> bool {
        self.failed.nodes_unknown || self.failed.nodes.contains(node) || self.failed.ifaces.contains(&Endpoint::new(node, ifname))
    }
    /// The `peer` of each interface that failed to decode: its "has no peer" would follow.
    pub(crate) fn failed_peers(&self) -> Vec<Endpoint> {
        let peer = |e: &Endpoint| match self.doc.get(&self.sub(&self.iface_path(&e.node, &e.ifname), "peer")) {
            Some(serde_json::Value::String(s)) => Endpoint::parse(s),
            _ => None,
        };
        self.failed.ifaces.iter().filter_map(peer).collect()
    }
    fn diags_last_mut(&mut self) -> Option<&mut Diag> {
        self.diags.last_mut()
    }
}

/// Checks a decoded topology; returns the lab and any warnings, or every finding.
pub fn validate(topo: &Topology, doc: &Document, mut diags: Diagnostics) -> Result<(Lab, Diagnostics), Diagnostics> {
    let mut ctx = Ctx::new(doc);
    let decode_failed = diags.has_errors();
    ctx.partial = decode_failed;
    if decode_failed {
        ctx.failed = Failed::of(doc, topo);
    }
    ctx.diags.extend(std::mem::take(&mut diags));
    let lab = build(topo, &mut ctx);
    let mut diags = ctx.diags;
    if decode_failed {
        // Warnings about a topology with pieces left out (e.g. a gateway that looks
        // unreachable because the addresses failed to decode) would mislead.
        diags.retain_errors();
    }
    diags.sort();
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok((lab, diags))
    }
}

/// "the lab has no nodes", unless that follows from an error decoding already reported.
fn no_nodes(ctx: &mut Ctx) {
    let nodes = [Seg::Key("nodes".into())];
    let d = Diag::error("the lab has no nodes").help("declare at least one node under `nodes`");
    let d = match ctx.doc().get(&nodes) {
        // `nodes` is not a mapping, or its nodes failed to decode: decoding said why.
        Some(serde_json::Value::Object(m)) if !m.is_empty() => return,
        Some(serde_json::Value::Object(_) | serde_json::Value::Null) => {
            let span = if ctx.doc().has(&nodes) { ctx.key_span(&nodes) } else { None };
            d.maybe_label(span, "no node under `nodes`")
        }
        Some(_) => return,
        None => {
            // A misspelt `nodes` (`node:`, `Nodes:`) is an unknown field whose help says so.
            if let serde_json::Value::Object(root) = &ctx.doc().value {
                if root.keys().any(|k| super::decode::closest(k, ["nodes"].into_iter()).is_some()) {
                    return;
                }
            }
            // Where `nodes:` would go: after what the file has.
            d.maybe_label(ctx.span(&[]).map(|s| s.end..s.end), "add `nodes:`")
        }
    };
    ctx.push(d);
}

fn build(topo: &Topology, ctx: &mut Ctx) -> Lab {
    // A missing or non-string name was reported by decoding.
    if matches!(ctx.doc().get(&[Seg::Key("name".into())]), Some(serde_json::Value::String(_))) {
        if let Some(p) = lab_name_problem(&topo.name) {
            ctx.error_at(&[Seg::Key("name".into())], p, "invalid lab name");
        }
    }
    let netns_prefix = topo.netns_prefix.clone().unwrap_or_else(|| format!("{}-", topo.name));
    if let Some(prefix) = &topo.netns_prefix {
        if prefix.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')) || prefix.len() > 64 {
            ctx.error_at(
                &[Seg::Key("netns_prefix".into())],
                format!("netns_prefix `{prefix}` may hold only letters, digits, `-`, `_`, `.` (at most 64)"),
                "invalid prefix",
            );
        }
    }
    if topo.nodes.is_empty() {
        no_nodes(ctx);
    }

    // Node names.
    for name in topo.nodes.keys() {
        if let Some(p) = plain_name_problem("node", name, 64, true) {
            let path = ctx.node_path(name);
            ctx.error_at_key(&path, p, "invalid node name");
        }
    }

    // Interfaces as declared, then veth ends added by links and peers.
    let mut ifaces: IndexMap<String, IndexMap<String, (InterfaceSpec, Path)>> = IndexMap::new();
    for (nname, n) in &topo.nodes {
        let entry = ifaces.entry(nname.clone()).or_default();
        for (ifname, i) in &n.interfaces {
            entry.insert(ifname.clone(), (i.clone(), ctx.iface_path(nname, ifname)));
        }
    }
    let peers = resolve_veths(topo, ctx, &mut ifaces);

    // Per-interface checks.
    let mut addr_decls = Vec::new();
    let mut nodes: IndexMap<String, Node> = IndexMap::new();
    let any_v6 = topo.nodes.values().any(|n| {
        n.interfaces.values().any(|i| i.addresses.iter().any(|a| a.contains(':')))
            || n.routes.iter().any(|r| r.to.contains(':') || r.via.as_deref().unwrap_or("").contains(':') || r.to == "default6")
    });

    for (nname, list) in &ifaces {
        let mut out: IndexMap<String, Interface> = IndexMap::new();
        let root_host = nname == HOST && !topo.isolated_host;
        for (ifname, (spec, path)) in list {
            if let Some(p) = ifname_problem(ifname) {
                ctx.error_at_key(path, p, "invalid interface name");
            } else if crate::model::anchor::is_anchor(ifname) {
                let why = format!(
                    "interface names starting with `{}` are vnet's own (a busy bridge's teardown anchor); choose another name",
                    crate::model::anchor::PREFIX
                );
                ctx.error_at_key(path, why, "reserved name");
            }
            if ifname == "lo" && !matches!(spec.kind, KindSpec::Loopback(_)) {
                ctx.error_at_key(path, format!("`lo` is the loopback device of node `{nname}`; it cannot be a {}", spec.kind.name()), "reserved name");
            }
            if root_host && ifname == "lo" {
                ctx.error_at_key(
                    path,
                    "the root namespace's `lo` does not belong to the lab; set `isolated_host: true` to configure the host's loopback",
                    "not the lab's device",
                );
            }
            spec.kind.check(ctx, nname, ifname);
            let iface = check_interface(ctx, nname, ifname, spec, path, &mut addr_decls, peers.get(&Endpoint::new(nname, ifname)).cloned());
            out.insert(ifname.clone(), iface);
        }
        if !out.contains_key("lo") {
            out.insert(
                "lo".into(),
                Interface {
                    name: "lo".into(),
                    kind: KindSpec::Loopback(LoopbackSpec {}),
                    up: true,
                    mtu: None,
                    mac: None,
                    addresses: Vec::new(),
                    master: None,
                    hairpin: None,
                    peer: None,
                    path: ctx.node_path(nname),
                },
            );
            // Keep lo first, as the kernel lists it.
            out.move_index(out.len() - 1, 0);
        }
        nodes.insert(
            nname.clone(),
            Node {
                name: nname.clone(),
                interfaces: out,
                anchors: IndexMap::new(),
                routes: Vec::new(),
                sysctls: IndexMap::new(),
                sysctl_places: IndexMap::new(),
                features: Default::default(),
                host: None,
                path: ctx.node_path(nname),
            },
        );
    }

    // Stacking (lower devices, listed ports), then masters, after all interfaces are known.
    super::kind::links::resolve(ctx, &mut nodes, topo.isolated_host);
    // Hosts of a multi-host lab; links between hosts become tunnel ends.
    let (hosts, tunnels) = super::hosts::resolve(ctx, topo, &mut nodes);
    // Masters, after all interfaces are known.
    for (nname, node) in &nodes {
        for iface in node.interfaces.values() {
            check_master(ctx, nname, node, iface, &nodes);
        }
        check_bridge_ports(ctx, nname, node);
    }
    // Teardown anchors of busy bridges, in the lab's own namespaces only.
    for (nname, node) in nodes.iter_mut() {
        if nname != HOST || topo.isolated_host {
            node.anchors = crate::model::anchor::for_node(node).into_iter().map(|a| (a.name.clone(), a)).collect();
        }
    }
    check_duplicate_addresses(ctx, &nodes, &addr_decls);
    check_duplicate_macs(ctx, &nodes);
    check_veth_mtus(ctx, &nodes);

    // Routes and sysctls.
    for (nname, n) in &topo.nodes {
        let routes = check_routes(ctx, nname, n, nodes.get(nname), nname == HOST && !topo.isolated_host);
        let (sysctls, places) = check_sysctls(ctx, nname, n, nodes.get(nname));
        if let Some(node) = nodes.get_mut(nname) {
            node.routes = routes;
            node.sysctls = sysctls;
            node.sysctl_places = places;
        }
    }
    // NAT, firewall, traffic control, BPF, IPsec (issue 6).
    super::netfeat::check_nodes(ctx, topo, &mut nodes);
    let ipsec = super::netfeat::ipsec::check(ctx, topo, &nodes);

    let expect = super::expect::check(ctx, &topo.expect, &nodes);

    let ipv6_link_local = match topo.ipv6.unwrap_or(Ipv6Mode::Auto) {
        Ipv6Mode::On => true,
        Ipv6Mode::Off => false,
        Ipv6Mode::Auto => any_v6,
    };
    if topo.ipv6 == Some(Ipv6Mode::Off) && any_v6 {
        ctx.warn_at(
            &[Seg::Key("ipv6".into())],
            "ipv6 is off but the lab declares IPv6 addresses; devices get no link-local addresses, so neighbour discovery may fail",
            "off",
        );
    }

    let neighbour_limits = match &topo.neighbour_limits {
        None => None,
        Some(super::file::NeighbourLimits::Auto(_)) => Some(None),
        Some(super::file::NeighbourLimits::Explicit { gc_thresh1, gc_thresh2, gc_thresh3 }) => {
            if !(0 < *gc_thresh1 && gc_thresh1 <= gc_thresh2 && gc_thresh2 <= gc_thresh3) {
                ctx.error_at(
                    &[Seg::Key("neighbour_limits".into())],
                    format!("neighbour limits must satisfy 0 < gc_thresh1 <= gc_thresh2 <= gc_thresh3, got {gc_thresh1}/{gc_thresh2}/{gc_thresh3}"),
                    "out of order",
                );
            }
            Some(Some([*gc_thresh1, *gc_thresh2, *gc_thresh3]))
        }
    };

    Lab {
        name: topo.name.clone(),
        isolated_host: topo.isolated_host,
        netns_prefix,
        ipv6_link_local,
        neighbour_limits,
        nodes,
        expect,
        ipsec,
        topology: topo.clone(),
        hosts,
        tunnels,
        share: None,
    }
}
