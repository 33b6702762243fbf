//! Validation: every check runs before any change to the kernel, all findings are collected, and
//! each one points at the text it is about. Produces the typed `Lab` when there is no error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use indexmap::IndexMap;
use ipnet::IpNet;

use super::diag::{Diag, Diagnostics};
use super::file::{InterfaceSpec, Ipv6Mode, TableRef, Topology};
use super::kind::{KindSpec, LoopbackSpec, VethSpec};
use super::lab::{parse_mac, Endpoint, Interface, Lab, Node, Route, HOST, TABLE_LOCAL, TABLE_MAIN};
use super::source::{Document, Path, Seg};

/// Where findings go, with the document used to locate them.
pub(crate) struct Ctx<'a> {
    doc: &'a Document,
    pub(crate) diags: Diagnostics,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(doc: &'a Document) -> Self {
        Ctx { doc, diags: Diagnostics::new(Some(doc.source.clone())) }
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
}

/// Why an interface name is unusable, if it is.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an interface name cannot be empty".into());
    }
    if name.len() > 15 {
        return Some(format!("interface name `{name}` is {} bytes; the kernel allows at most 15", name.len()));
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` is not a valid interface name"));
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control()) {
        let what = match c {
            '/' => "`/`".to_string(),
            ':' => "`:`".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            _ => "a control character".to_string(),
        };
        return Some(format!("interface name `{name}` contains {what}, which the kernel does not allow"));
    }
    None
}

/// Why a node or lab name is unusable, if it is (they become file and namespace names).
pub(crate) fn plain_name_problem(what: &str, name: &str, max: usize, dot: bool) -> Option<String> {
    let allowed = if dot { "letters, digits, `-`, `_` and `.`" } else { "letters, digits, `-` and `_`" };
    if name.is_empty() {
        return Some(format!("{what} name cannot be empty"));
    }
    if name.len() > max {
        return Some(format!("{what} name `{name}` is {} bytes; at most {max} are allowed", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || (dot && *c == '.'))) {
        let what_c = match c {
            ' ' => "a space".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            c if c.is_control() => "a control character".to_string(),
            c => format!("`{c}`"),
        };
        return Some(format!("{what} name `{name}` contains {what_c}; use only {allowed}"));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Some(format!("{what} name `{name}` must start with a letter, digit or `_`"));
    }
    None
}

/// Why a lab name is unusable, if it is.
pub fn lab_name_problem(name: &str) -> Option<String> {
    plain_name_problem("lab", name, 40, false)
}

/// Checks a decoded topology; returns the lab and any warnings, or every finding.
pub fn validate(topo: &Topology, doc: &Document, mut diags: Diagnostics) -> Result<(Lab, Diagnostics), Diagnostics> {
    let mut ctx = Ctx::new(doc);
    let decode_failed = diags.has_errors();
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
        let span = ctx.span(&[]);
        ctx.push(
            Diag::error("the lab has no nodes").maybe_label(span.map(|s| s.start..s.start), "add `nodes:`").help("declare at least one node under `nodes`"),
        );
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
    let mut addr_seen: HashMap<IpAddr, (Endpoint, Path)> = HashMap::new();
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
            let iface = check_interface(ctx, nname, ifname, spec, path, &mut addr_seen, peers.get(&Endpoint::new(nname, ifname)).cloned());
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
                routes: Vec::new(),
                sysctls: IndexMap::new(),
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

    // Routes and sysctls.
    for (nname, n) in &topo.nodes {
        let routes = check_routes(ctx, nname, n, nodes.get(nname));
        let sysctls = check_sysctls(ctx, nname, n, nodes.get(nname));
        if let Some(node) = nodes.get_mut(nname) {
            node.routes = routes;
            node.sysctls = sysctls;
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

/// Pairs veth ends from `links` and `peer:` settings; adds undeclared ends as plain veths.
/// Returns each end's peer.
fn resolve_veths(topo: &Topology, ctx: &mut Ctx, ifaces: &mut IndexMap<String, IndexMap<String, (InterfaceSpec, Path)>>) -> HashMap<Endpoint, Endpoint> {
    let mut peers: HashMap<Endpoint, Endpoint> = HashMap::new();
    // Where each end was first paired (for "declared twice" messages).
    let mut first: HashMap<Endpoint, Path> = HashMap::new();
    // Ends named by a pairing that was refused: "has no peer" would only repeat that error.
    let mut refused: HashSet<Endpoint> = HashSet::new();

    // Pairs two ends; false (with the error reported) when one of them already has another peer.
    let mut pair = |ctx: &mut Ctx, a: &Endpoint, b: &Endpoint, pa: &Path, pb: &Path, peers: &mut HashMap<Endpoint, Endpoint>| -> bool {
        for (end, p, other) in [(a, pa, b), (b, pb, a)] {
            if let Some(prev) = peers.get(end) {
                if prev == other {
                    continue; // same pair stated twice (link + peer), consistent
                }
                let span = ctx.span(p);
                let prev_span = first.get(end).and_then(|fp| ctx.span(fp));
                ctx.push(
                    Diag::error(format!("veth end `{end}` is declared twice: paired with `{prev}` and with `{other}`"))
                        .maybe_label(span, "second pairing")
                        .maybe_label(prev_span, "first pairing")
                        .help("a veth end belongs to exactly one pair; give the second one another interface name"),
                );
                return false;
            }
        }
        first.entry(a.clone()).or_insert_with(|| pa.clone());
        first.entry(b.clone()).or_insert_with(|| pb.clone());
        peers.insert(a.clone(), b.clone());
        peers.insert(b.clone(), a.clone());
        true
    };

    for (li, link) in topo.links.iter().enumerate() {
        let lp = ctx.idx(&[Seg::Key("links".into())], li);
        let ep_path = ctx.sub(&lp, "endpoints");
        if link.endpoints.len() != 2 {
            // Count what the file says (a link that failed to decode was reported already).
            if let Some(serde_json::Value::Array(a)) = ctx.doc().get(&ep_path) {
                if a.len() != 2 {
                    ctx.error_at(&ep_path, format!("a link has exactly two endpoints, got {}", a.len()), "expected [node:ifname, node:ifname]");
                }
            }
            refused.extend(link.endpoints.iter().filter_map(|r| Endpoint::parse(r)));
            continue;
        }
        let mut ends = Vec::new();
        for (j, raw) in link.endpoints.iter().enumerate() {
            let p = ctx.idx(&ep_path, j);
            match Endpoint::parse(raw) {
                None => ctx.error_at(&p, format!("endpoint `{raw}` is not of the form `node:ifname`"), "expected node:ifname"),
                Some(ep) => {
                    if !topo.nodes.contains_key(&ep.node) {
                        ctx.error_at(&p, format!("unknown node `{}` in link endpoint `{raw}`", ep.node), format!("no node named `{}`", ep.node));
                        push_did_you_mean(ctx, &ep.node, topo.nodes.keys());
                    } else if let Some(problem) = ifname_problem(&ep.ifname) {
                        ctx.error_at(&p, problem, "invalid interface name");
                    } else {
                        ends.push((ep, p));
                    }
                }
            }
        }
        if ends.len() != 2 {
            refused.extend(ends.into_iter().map(|(e, _)| e));
            continue;
        }
        let (b, pb) = ends.pop().unwrap();
        let (a, pa) = ends.pop().unwrap();
        if a == b {
            ctx.error_at(&ep_path, format!("link connects `{a}` to itself"), "both ends are the same");
            refused.insert(a);
            continue;
        }
        let mut ok = true;
        for (ep, p) in [(&a, &pa), (&b, &pb)] {
            if let Some((spec, _)) = ifaces.get(&ep.node).and_then(|m| m.get(&ep.ifname)) {
                if !matches!(spec.kind, KindSpec::Veth(_)) {
                    let kind = spec.kind.name();
                    ctx.error_at(p, format!("link endpoint `{ep}` is a {kind}; a link end must be a veth"), format!("`{ep}` is declared as a {kind}"));
                    ok = false;
                }
            }
        }
        if !ok || !pair(ctx, &a, &b, &pa, &pb, &mut peers) {
            refused.insert(a);
            refused.insert(b);
            continue;
        }
        for (ep, p) in [(&a, &pa), (&b, &pb)] {
            let node = ifaces.entry(ep.node.clone()).or_default();
            if !node.contains_key(&ep.ifname) {
                let mut spec = InterfaceSpec::new(KindSpec::Veth(VethSpec::default()));
                spec.mtu = link.mtu;
                node.insert(ep.ifname.clone(), (spec, p.clone()));
            } else if let Some((spec, _)) = node.get_mut(&ep.ifname) {
                if spec.mtu.is_none() {
                    spec.mtu = link.mtu;
                }
            }
        }
    }

    // `peer:` on declared veths.
    let mut implicit: Vec<(Endpoint, Path)> = Vec::new();
    for (nname, list) in ifaces.iter() {
        for (ifname, (spec, path)) in list {
            if let KindSpec::Veth(VethSpec { peer: Some(raw), .. }) = &spec.kind {
                let pp = ctx.sub(path, "peer");
                let me = Endpoint::new(nname, ifname);
                match Endpoint::parse(raw) {
                    None => ctx.error_at(&pp, format!("peer `{raw}` is not of the form `node:ifname`"), "expected node:ifname"),
                    Some(other) if other == me => ctx.error_at(&pp, format!("veth `{me}` cannot be its own peer"), "same as this end"),
                    Some(other) => {
                        if !topo.nodes.contains_key(&other.node) {
                            ctx.error_at(&pp, format!("unknown node `{}` in peer `{raw}`", other.node), format!("no node named `{}`", other.node));
                            push_did_you_mean(ctx, &other.node, topo.nodes.keys());
                        } else if let Some(problem) = ifname_problem(&other.ifname) {
                            ctx.error_at(&pp, problem, "invalid interface name");
                        } else {
                            let declared = ifaces.get(&other.node).and_then(|m| m.get(&other.ifname));
                            match declared {
                                Some((ospec, _)) if !matches!(ospec.kind, KindSpec::Veth(_)) => {
                                    ctx.error_at(&pp, format!("peer `{other}` is a {}; a veth's peer must be a veth", ospec.kind.name()), "not a veth");
                                }
                                _ => {
                                    if pair(ctx, &me, &other, &pp, &pp, &mut peers) {
                                        if declared.is_none() {
                                            implicit.push((other.clone(), pp.clone()));
                                        }
                                        continue;
                                    }
                                    refused.insert(other.clone());
                                }
                            }
                        }
                    }
                }
                refused.insert(me);
            }
        }
    }
    for (ep, p) in implicit {
        let node = ifaces.entry(ep.node.clone()).or_default();
        node.entry(ep.ifname.clone()).or_insert((InterfaceSpec::new(KindSpec::Veth(VethSpec::default())), p));
    }

    // Ends that never found a peer.
    for (nname, list) in ifaces.iter() {
        for (ifname, (spec, path)) in list {
            let me = Endpoint::new(nname, ifname);
            if matches!(spec.kind, KindSpec::Veth(_)) && !peers.contains_key(&me) && ifname != "lo" && !refused.contains(&me) {
                let span = ctx.key_span(path);
                ctx.push(
                    Diag::error(format!("veth `{me}` has no peer"))
                        .maybe_label(span, "declared here without a peer")
                        .help(format!("add a link `endpoints: [{me}, <node>:<ifname>]`, set `peer: <node>:<ifname>`, or give the interface a `kind`")),
                );
            }
        }
    }
    peers
}

pub(crate) fn push_did_you_mean<'a>(ctx: &mut Ctx, wrong: &str, names: impl Iterator<Item = &'a String>) {
    if let Some(n) = super::decode::closest(wrong, names.map(String::as_str)) {
        if let Some(last) = ctx.diags_last_mut() {
            if last.help.is_none() {
                last.help = Some(format!("did you mean `{n}`?"));
            }
        }
    }
}

impl Ctx<'_> {
    fn diags_last_mut(&mut self) -> Option<&mut Diag> {
        self.diags.last_mut()
    }
}

/// The closest of `names` to `wrong`, if close enough to suggest.
pub(crate) fn did_you_mean<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names.map(|n| (edit_distance(wrong, n), n)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, n)| n)
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn check_interface(
    ctx: &mut Ctx,
    nname: &str,
    ifname: &str,
    spec: &InterfaceSpec,
    path: &Path,
    addr_seen: &mut HashMap<IpAddr, (Endpoint, Path)>,
    peer: Option<Endpoint>,
) -> Interface {
    let me = Endpoint::new(nname, ifname);
    let is_lo = matches!(spec.kind, KindSpec::Loopback(_));
    if let Some(mtu) = spec.mtu {
        let max = if is_lo { 65536 } else { 65535 };
        if !(68..=max).contains(&mtu) {
            ctx.error_at(&ctx.sub(path, "mtu"), format!("mtu {mtu} of `{me}` is out of range (68..={max})"), "out of range");
        }
    }
    let mac = match &spec.mac {
        None => None,
        Some(raw) => {
            let mp = ctx.sub(path, "mac");
            match parse_mac(raw) {
                Err(why) => {
                    ctx.error_at(&mp, format!("bad MAC address `{raw}`: {why}"), "bad MAC");
                    None
                }
                Ok(m) if m[0] & 1 == 1 => {
                    ctx.error_at(
                        &mp,
                        format!("MAC `{raw}` is a multicast address; a device needs a unicast one (first byte even), e.g. 02:..."),
                        "multicast MAC",
                    );
                    None
                }
                Ok(m) if m == [0; 6] => {
                    ctx.error_at(&mp, "MAC 00:00:00:00:00:00 is not a valid device address", "zero MAC");
                    None
                }
                Ok(_) if is_lo => {
                    ctx.error_at(&mp, "the loopback device has no MAC address", "not settable on lo");
                    None
                }
                Ok(m) => Some(m),
            }
        }
    };
    let mut addresses = Vec::new();
    let mut local_seen: HashSet<IpAddr> = HashSet::new();
    for (i, raw) in spec.addresses.iter().enumerate() {
        let ap = ctx.idx(&ctx.sub(path, "addresses"), i);
        match parse_cidr(raw) {
            Err(why) => ctx.error_at(&ap, format!("bad address `{raw}`: {why}"), "bad CIDR"),
            Ok(net) => {
                if let Some((other, op)) = addr_seen.get(&net.addr()) {
                    let span = ctx.span(&ap);
                    let other_span = ctx.span(op);
                    let where_ = if *other == me { "on the same interface".to_string() } else { format!("also on `{other}`") };
                    ctx.push(
                        Diag::error(format!("address {} is declared twice ({where_})", net.addr()))
                            .maybe_label(span, "declared again here")
                            .maybe_label(other_span, "first declared here"),
                    );
                } else {
                    addr_seen.insert(net.addr(), (me.clone(), ap.clone()));
                }
                if net.addr().is_ipv6() {
                    if let Some(m) = spec.mtu {
                        if m < 1280 && local_seen.insert(net.addr()) {
                            ctx.warn_at(
                                &ctx.sub(path, "mtu"),
                                format!("IPv6 needs an MTU of at least 1280; `{me}` has {m}, so its IPv6 addresses will not work"),
                                "below 1280",
                            );
                        }
                    }
                }
                addresses.push(net);
            }
        }
    }
    if spec.hairpin.is_some() && spec.master.is_none() {
        ctx.error_at(&ctx.sub(path, "hairpin"), format!("`hairpin` is a bridge port option but `{me}` has no `master`"), "needs `master`");
    }
    Interface {
        name: ifname.to_string(),
        kind: spec.kind.clone(),
        up: spec.up.unwrap_or(true),
        mtu: spec.mtu,
        mac,
        addresses,
        master: spec.master.clone(),
        hairpin: spec.hairpin,
        peer,
        path: path.clone(),
    }
}

/// Ports a Linux bridge can hold: port numbers are 10 bits and 0 is reserved (BR_MAX_PORTS).
pub const BRIDGE_MAX_PORTS: usize = 1023;

fn check_bridge_ports(ctx: &mut Ctx, nname: &str, node: &Node) {
    for br in node.interfaces.values().filter(|i| matches!(i.kind, KindSpec::Bridge(_))) {
        let ports = node.interfaces.values().filter(|i| i.master.as_deref() == Some(br.name.as_str())).count();
        if ports > BRIDGE_MAX_PORTS {
            ctx.error_at_key(
                &br.path,
                format!("bridge `{nname}:{}` has {ports} ports; a Linux bridge holds at most {BRIDGE_MAX_PORTS}", br.name),
                "too many ports",
            );
            if let Some(last) = ctx.diags_last_mut() {
                last.help = Some("spread the ports over several bridges joined by veth pairs (one L2 segment)".into());
            }
        }
    }
}

fn check_master(ctx: &mut Ctx, nname: &str, node: &Node, iface: &Interface, all: &IndexMap<String, Node>) {
    let Some(master) = &iface.master else { return };
    let mp = ctx.sub(&iface.path, "master");
    let me = Endpoint::new(nname, &iface.name);
    if master == &iface.name {
        ctx.error_at(&mp, format!("`{me}` cannot be its own master"), "same interface");
        return;
    }
    if matches!(iface.kind, KindSpec::Loopback(_)) {
        ctx.error_at(&mp, "the loopback device cannot be a bridge port", "lo has no master");
        return;
    }
    match node.interfaces.get(master) {
        None => {
            ctx.error_at(
                &mp,
                format!("unknown device `{master}`: `master` of `{me}` must be a bridge, bond or team in node `{nname}`"),
                format!("no device `{master}` in node `{nname}`"),
            );
            let elsewhere =
                all.iter().filter(|(n, _)| *n != nname).find_map(|(n, other)| other.interfaces.get(master).filter(|m| m.kind.is_master()).map(|m| (n, m)));
            match elsewhere {
                Some((other, m)) => {
                    if let Some(last) = ctx.diags_last_mut() {
                        last.help = Some(format!("`{master}` is a {} in node `{other}`; a port and its master must be in the same node (connect the nodes with a veth pair and make the far end the port)", m.kind.name()));
                    }
                }
                None => push_did_you_mean(ctx, master, node.interfaces.keys()),
            }
        }
        Some(m) if !m.kind.is_master() => {
            ctx.error_at(
                &mp,
                format!("`master` of `{me}` is `{master}`, a {}; it must be a bridge, bond or team in the same node", m.kind.name()),
                "not a master",
            );
        }
        Some(m) => {
            if iface.kind.is_master() && m.kind.is_master() && matches!(iface.kind, KindSpec::Bridge(_)) && matches!(m.kind, KindSpec::Bridge(_)) {
                ctx.error_at(
                    &mp,
                    format!("bridge `{me}` cannot be a port of bridge `{master}`: the kernel refuses bridges inside bridges"),
                    "bridge in a bridge",
                );
            }
            // Cycles through masters (a -> b -> a).
            let mut seen = HashSet::new();
            seen.insert(iface.name.clone());
            let mut cur = m;
            while let Some(next) = &cur.master {
                if !seen.insert(cur.name.clone()) || next == &iface.name {
                    ctx.error_at(&mp, format!("`master` chain of `{me}` loops back to itself"), "cycle");
                    break;
                }
                match node.interfaces.get(next) {
                    Some(n) => cur = n,
                    None => break,
                }
            }
        }
    }
}

/// Parses `10.0.0.1/24` / `fd00::1/64`. A bare address is refused: the prefix decides the
/// connected route, so guessing it would be a silent source of "unreachable".
pub fn parse_cidr(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    if !raw.contains('/') {
        if raw.parse::<IpAddr>().is_ok() {
            return Err("missing prefix length (e.g. `/24` or `/64`)".into());
        }
        return Err("not an IP address".into());
    }
    let (a, p) = raw.split_once('/').unwrap();
    let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an IP address"))?;
    let plen: u8 = p.parse().map_err(|_| format!("`{p}` is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if plen > max {
        return Err(format!("prefix length {plen} is over {max}"));
    }
    if addr.is_unspecified() {
        return Err("the unspecified address cannot be assigned".into());
    }
    if addr.is_multicast() {
        return Err("a multicast address cannot be assigned to an interface".into());
    }
    IpNet::new(addr, plen).map_err(|e| e.to_string())
}

fn parse_route_dst(raw: &str, via: Option<IpAddr>) -> Result<IpNet, String> {
    match raw.trim() {
        "default" => Ok(match via {
            Some(IpAddr::V6(_)) => "::/0".parse().unwrap(),
            _ => "0.0.0.0/0".parse().unwrap(),
        }),
        "default6" => Ok("::/0".parse().unwrap()),
        s if s.contains('/') => {
            let net: IpNet = s.parse().map_err(|_| format!("`{s}` is not a prefix"))?;
            if net.trunc() != net {
                return Err(format!("`{s}` has host bits set; did you mean `{}`?", net.trunc()));
            }
            Ok(net)
        }
        s => {
            let a: IpAddr = s.parse().map_err(|_| format!("`{s}` is not `default`, a prefix or an address"))?;
            Ok(IpNet::from(a))
        }
    }
}

fn check_routes(ctx: &mut Ctx, nname: &str, spec: &super::file::NodeSpec, node: Option<&Node>) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    let rbase = ctx.sub(&ctx.node_path(nname), "routes");
    for (i, r) in spec.routes.iter().enumerate() {
        let p = ctx.idx(&rbase, i);
        let mut ok = true;
        let via = match &r.via {
            None => None,
            Some(v) => match v.trim().parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    ctx.error_at(&ctx.sub(&p, "via"), format!("gateway `{v}` is not an IP address"), "bad address");
                    ok = false;
                    None
                }
            },
        };
        let dst = match parse_route_dst(&r.to, via) {
            Ok(d) => Some(d),
            Err(why) => {
                ctx.error_at(&ctx.sub(&p, "to"), format!("bad route destination: {why}"), "bad destination");
                ok = false;
                None
            }
        };
        let src = match &r.src {
            None => None,
            Some(s) => match s.trim().parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    ctx.error_at(&ctx.sub(&p, "src"), format!("source `{s}` is not an IP address"), "bad address");
                    ok = false;
                    None
                }
            },
        };
        let table = match &r.table {
            None => TABLE_MAIN,
            Some(TableRef::Id(0)) => {
                ctx.error_at(&ctx.sub(&p, "table"), "table 0 is not a routing table", "use 1.. or main");
                ok = false;
                0
            }
            Some(TableRef::Id(n)) => *n,
            Some(TableRef::Name(s)) => match s.as_str() {
                "main" => TABLE_MAIN,
                "local" => TABLE_LOCAL,
                "default" => 253,
                other => {
                    ctx.error_at(&ctx.sub(&p, "table"), format!("unknown table `{other}`: use a number, `main` or `local`"), "unknown table");
                    ok = false;
                    0
                }
            },
        };
        if r.via.is_none() && r.dev.is_none() {
            ctx.error_at(&p, "a route needs `via` (a gateway), `dev` (a device), or both", "neither via nor dev");
            ok = false;
        }
        if let (Some(d), Some(v)) = (dst, via) {
            if d.addr().is_ipv4() != v.is_ipv4() {
                ctx.error_at(&ctx.sub(&p, "via"), format!("gateway {v} and destination {d} are of different IP families"), "family mismatch");
                ok = false;
            }
        }
        if let (Some(d), Some(s)) = (dst, src) {
            if d.addr().is_ipv4() != s.is_ipv4() {
                ctx.error_at(&ctx.sub(&p, "src"), format!("source {s} and destination {d} are of different IP families"), "family mismatch");
                ok = false;
            }
        }
        if let (Some(dev), Some(node)) = (&r.dev, node) {
            if !node.interfaces.contains_key(dev) {
                ctx.error_at(
                    &ctx.sub(&p, "dev"),
                    format!("unknown device `{dev}` in a route of node `{nname}`"),
                    format!("no device `{dev}` in node `{nname}`"),
                );
                push_did_you_mean(ctx, dev, node.interfaces.keys());
                ok = false;
            }
        }
        // The gateway must be on a connected prefix of the node (warning: on-link tricks exist).
        if let (Some(v), Some(node)) = (via, node) {
            let link_local_v6 = matches!(v, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
            let reachable =
                node.interfaces.iter().any(|(name, i)| r.dev.as_ref().is_none_or(|d| d == name) && i.addresses.iter().any(|a| a.contains(&v) && a.addr() != v))
                    || (link_local_v6 && r.dev.is_some())
                    || out.iter().any(|other| other.via.is_none() && other.dst.contains(&v));
            if !reachable {
                ctx.warn_at(
                    &ctx.sub(&p, "via"),
                    format!("gateway {v} is not reachable through any address of node `{nname}`"),
                    "no address of the node covers this gateway",
                );
            }
        }
        if ok {
            if let Some(dst) = dst {
                let route = Route { dst, via, dev: r.dev.clone(), metric: r.metric, table, src, path: p.clone() };
                if let Some(first) = out.iter().find(|o| o.dst == route.dst && o.table == route.table && o.metric == route.metric) {
                    let table = match table {
                        TABLE_MAIN => "main".to_string(),
                        TABLE_LOCAL => "local".to_string(),
                        t => t.to_string(),
                    };
                    let (span, first_span) = (ctx.span(&p), ctx.span(&first.path));
                    ctx.push(
                        Diag::error(format!("route to {} (table {table}, metric {}) is declared twice", route.dst, route.metric.unwrap_or(0)))
                            .maybe_label(span, "declared again here")
                            .maybe_label(first_span, "first declared here")
                            .help("routes are told apart by destination, table and metric; merge them or give one another metric"),
                    );
                } else {
                    out.push(route);
                }
            }
        }
    }
    out
}

/// Splits a sysctl key into /proc/sys path components. Dotted keys split on `.`; keys written
/// with `/` split on `/` (so interface names with dots can be named).
pub fn sysctl_components(key: &str) -> Vec<String> {
    if key.contains('/') {
        key.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect()
    } else {
        key.split('.').map(str::to_string).collect()
    }
}

/// The canonical key of a sysctl: dotted, or `/`-separated when a component has a dot.
pub fn sysctl_key(parts: &[String]) -> String {
    if parts.iter().any(|p| p.contains('.')) {
        parts.join("/")
    } else {
        parts.join(".")
    }
}

fn check_sysctls(ctx: &mut Ctx, nname: &str, spec: &super::file::NodeSpec, node: Option<&Node>) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let base = ctx.sub(&ctx.node_path(nname), "sysctls");
    let mut canonical: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (key, value) in &spec.sysctls {
        let kp = ctx.sub(&base, key);
        let parts = sysctl_components(key);
        if parts.first().map(String::as_str) != Some("net") {
            ctx.error_at_key(&kp, format!("sysctl `{key}` is not a network sysctl; only `net.*` sysctls are per namespace"), "not under net.");
            continue;
        }
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty() || p == ".." || p == "." || p.chars().any(|c| c.is_whitespace() || c.is_control())) {
            ctx.error_at_key(&kp, format!("sysctl `{key}` is not a valid sysctl name"), "invalid name");
            continue;
        }
        // Per-device keys name a device of this node.
        if matches!((parts.get(1).map(String::as_str), parts.get(2).map(String::as_str)), (Some("ipv4" | "ipv6"), Some("conf" | "neigh"))) {
            if let (Some(dev), Some(node)) = (parts.get(3), node) {
                if dev != "all" && dev != "default" && !node.interfaces.contains_key(dev) {
                    ctx.error_at_key(
                        &kp,
                        format!("unknown device `{dev}` in sysctl `{key}` of node `{nname}`"),
                        format!("no device `{dev}` in node `{nname}`"),
                    );
                    continue;
                }
            }
        }
        let v = value.to_kernel_string();
        if v.is_empty() {
            ctx.error_at(&kp, format!("sysctl `{key}` has an empty value"), "no value");
            continue;
        }
        if v.contains('\n') {
            ctx.error_at(&kp, format!("sysctl `{key}` needs a one-line value"), "several lines");
            continue;
        }
        if let Some(prev) = canonical.insert(parts.clone(), key.clone()) {
            ctx.error_at_key(&kp, format!("sysctl `{key}` is the same setting as `{prev}`"), "declared twice");
            continue;
        }
        out.insert(sysctl_key(&parts), v);
    }
    out
}
