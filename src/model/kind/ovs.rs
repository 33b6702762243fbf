//! Open vSwitch: a programmable switch in a node, run by ovs-vswitchd and configured through
//! its database (OVSDB), not over rtnetlink. Ports join it with `master: <ovs bridge>` (veth
//! ends, taps, and `ovs-internal` ports that OVS itself creates); per-port VLAN settings and
//! OpenFlow flows (ovs-ofctl syntax) are declared on the bridge.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ovs_flow::{self, Flow};
use super::{Drift, KindSpec};
use crate::model::diag::Diag;
use crate::model::lab::Node;
use crate::model::source::Path;
use crate::model::validate::Ctx;

/// Where the bridge forwards packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OvsDatapath {
    /// The kernel datapath (needs the openvswitch module).
    System,
    /// The userspace datapath inside ovs-vswitchd (works on any kernel).
    Netdev,
}

impl OvsDatapath {
    pub fn name(self) -> &'static str {
        match self {
            OvsDatapath::System => "system",
            OvsDatapath::Netdev => "netdev",
        }
    }
}

/// What the bridge does while it has no controller connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OvsFailMode {
    /// Acts as a learning switch (OVS's default).
    Standalone,
    /// Forwards only what flows say.
    Secure,
}

impl OvsFailMode {
    pub fn name(self) -> &'static str {
        match self {
            OvsFailMode::Standalone => "standalone",
            OvsFailMode::Secure => "secure",
        }
    }
}

/// How a port treats VLAN tags (OVS's `vlan_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OvsVlanMode {
    Access,
    Trunk,
    NativeTagged,
    NativeUntagged,
}

impl OvsVlanMode {
    pub fn name(self) -> &'static str {
        match self {
            OvsVlanMode::Access => "access",
            OvsVlanMode::Trunk => "trunk",
            OvsVlanMode::NativeTagged => "native-tagged",
            OvsVlanMode::NativeUntagged => "native-untagged",
        }
    }
}

/// Settings of one port of an OVS bridge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OvsPortSpec {
    /// Access port of this VLAN (1..=4094): frames enter untagged and are tagged inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    /// Trunk port carrying these VLANs (tagged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    /// access, trunk, native-tagged or native-untagged (OVS picks from tag/trunks otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_mode: Option<OvsVlanMode>,
    /// The OpenFlow port number to ask for (1..=65279), so flows can use a fixed number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ofport: Option<u32>,
}

/// A flow: one ovs-ofctl line, or its parts.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OvsFlowSpec {
    /// `priority=100,in_port=p1,actions=drop` (ovs-ofctl add-flow syntax, without cookie).
    Line(String),
    Parts(OvsFlowParts),
}

impl<'de> Deserialize<'de> for OvsFlowSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match crate::model::forms::scalar_or_map(d, "a flow line (a string) or a mapping of its parts")? {
            crate::model::forms::Form::Scalar(line) => OvsFlowSpec::Line(line),
            crate::model::forms::Form::Map(parts) => OvsFlowSpec::Parts(parts),
        })
    }
}

/// A flow given by parts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OvsFlowParts {
    /// OpenFlow table (0..=254, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// 0..=65535, default 32768.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Match fields, e.g. `in_port=p1,ip,nw_dst=10.0.0.2` (empty: every packet).
    #[serde(default, rename = "match", skip_serializing_if = "String::is_empty")]
    pub matches: String,
    /// Actions, e.g. `output:p2` or `drop`.
    pub actions: String,
}

impl OvsFlowSpec {
    /// The checked flow, or why it is wrong.
    pub fn parse(&self) -> Result<Flow, String> {
        match self {
            OvsFlowSpec::Line(s) => ovs_flow::parse(s),
            OvsFlowSpec::Parts(p) => ovs_flow::parse_parts(&p.matches, &p.actions, p.table, p.priority),
        }
    }
}

/// Options of an Open vSwitch bridge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OvsBridgeSpec {
    /// `system` (kernel datapath) or `netdev` (userspace). Default: `system` where the kernel
    /// has the openvswitch module, `netdev` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath: Option<OvsDatapath>,
    /// `standalone` (default: a learning switch when no controller answers) or `secure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<OvsFailMode>,
    /// OpenFlow controller target: `tcp:IP[:PORT]`, `ssl:IP[:PORT]`, `unix:FILE`, or a passive
    /// `ptcp:[PORT][:IP]`, `punix:FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Per-port settings. A device named here joins the bridge (as with `master:` on it).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub ports: IndexMap<String, OvsPortSpec>,
    /// OpenFlow flows, in ovs-ofctl syntax. vnet marks them with a cookie of its own and
    /// removes them with the lab; flows others add are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<OvsFlowSpec>,
}

/// A port that OVS itself creates on a bridge (type `internal`): a device the node can
/// address, like the bridge's own interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OvsInternalSpec {}

/// Highest OpenFlow port number a port may ask for (0xfeff).
pub const MAX_OFPORT: u32 = 65279;

impl OvsBridgeSpec {
    pub const FIELDS: &'static [&'static str] = &["datapath", "fail_mode", "controller", "ports", "flows"];

    /// The flows, checked (validation refused bad ones, so these parse).
    pub fn parsed_flows(&self) -> Vec<Flow> {
        self.flows.iter().filter_map(|f| f.parse().ok()).collect()
    }

    /// OVS settings are compared against OVSDB by the planner (`plan::ovs`), not from links.
    pub fn drift(&self, _have: &OvsBridgeSpec) -> Drift {
        Drift::Same
    }

    pub(crate) fn check(&self, ctx: &mut Ctx, node: &str, ifname: &str) {
        let base = ctx.iface_path(node, ifname);
        if let Some(c) = &self.controller {
            if let Err(why) = controller_problem(c) {
                ctx.error_at(&ctx.sub(&base, "controller"), format!("bad OpenFlow controller target `{c}`: {why}"), "bad target");
            }
        }
        let pp = ctx.sub(&base, "ports");
        for (port, p) in &self.ports {
            let at = ctx.sub(&pp, port);
            let vlan_ok = |v: u16| (1..=4094).contains(&v);
            if let Some(t) = p.tag {
                if !vlan_ok(t) {
                    ctx.error_at(&ctx.sub(&at, "tag"), format!("VLAN tag {t} of port `{port}` is out of range: use 1..=4094"), "not a usable VLAN id");
                }
            }
            for (i, t) in p.trunks.iter().enumerate() {
                if !vlan_ok(*t) {
                    ctx.error_at(
                        &ctx.idx(&ctx.sub(&at, "trunks"), i),
                        format!("trunk VLAN {t} of port `{port}` is out of range: use 1..=4094"),
                        "not a usable VLAN id",
                    );
                }
            }
            match (p.vlan_mode, p.tag.is_some(), p.trunks.is_empty()) {
                (None | Some(OvsVlanMode::Access), true, false) => ctx.error_at(
                    &at,
                    format!("port `{port}` has both a `tag` (access port) and `trunks`; set `vlan_mode: native-tagged` or `native-untagged` to carry both"),
                    "tag and trunks",
                ),
                (Some(OvsVlanMode::Access), false, _) => ctx.error_at(&ctx.sub(&at, "vlan_mode"), format!("access port `{port}` needs a `tag`"), "no tag"),
                (Some(OvsVlanMode::Trunk), true, _) => {
                    ctx.error_at(&ctx.sub(&at, "tag"), format!("trunk port `{port}` cannot have a `tag`; list its VLANs in `trunks`"), "tag on a trunk")
                }
                (Some(OvsVlanMode::NativeTagged | OvsVlanMode::NativeUntagged), false, _) => {
                    ctx.error_at(&ctx.sub(&at, "vlan_mode"), format!("port `{port}` in native mode needs a `tag` (its native VLAN)"), "no tag")
                }
                _ => {}
            }
            if let Some(o) = p.ofport {
                if !(1..=MAX_OFPORT).contains(&o) {
                    ctx.error_at(
                        &ctx.sub(&at, "ofport"),
                        format!("OpenFlow port number {o} of port `{port}` is out of range: use 1..={MAX_OFPORT}"),
                        "out of range",
                    );
                }
            }
        }
        let fp = ctx.sub(&base, "flows");
        let mut seen: Vec<(String, Path)> = Vec::new();
        for (i, f) in self.flows.iter().enumerate() {
            let at = ctx.idx(&fp, i);
            match f.parse() {
                Err(why) => ctx.error_at(&at, format!("bad flow of OVS bridge `{node}:{ifname}`: {why}"), "bad flow"),
                Ok(flow) => {
                    let key = format!("table={},priority={},{}", flow.table, flow.priority, flow.matches);
                    if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                        let (span, first_span) = (ctx.span(&at), ctx.span(first));
                        ctx.push(
                            Diag::error(format!("two flows of OVS bridge `{node}:{ifname}` have the same table, priority and match; OpenFlow keeps only one"))
                                .maybe_label(span, "second flow")
                                .maybe_label(first_span, "first flow")
                                .help("merge their actions, or tell them apart by priority"),
                        );
                    } else {
                        seen.push((key, at));
                    }
                }
            }
        }
    }
}

/// Why a controller target is unusable, if it is.
pub fn controller_problem(target: &str) -> Result<(), String> {
    let Some((scheme, rest)) = target.split_once(':') else {
        return Err("expected `tcp:IP[:PORT]`, `ssl:IP[:PORT]`, `unix:FILE`, `ptcp:[PORT][:IP]` or `punix:FILE`".into());
    };
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    match scheme {
        "tcp" | "ssl" => {
            let (ip, port) = split_host_port(rest);
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("`{ip}` is not an IP address"));
            }
            match port {
                Some(p) if !port_ok(p) => Err(format!("`{p}` is not a port number")),
                _ => Ok(()),
            }
        }
        "ptcp" | "pssl" => {
            let (port, ip) = match rest.split_once(':') {
                Some((p, ip)) => (p, Some(ip.trim_start_matches('[').trim_end_matches(']'))),
                None => (rest, None),
            };
            if !port.is_empty() && !port_ok(port) {
                return Err(format!("`{port}` is not a port number"));
            }
            match ip {
                Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => Err(format!("`{ip}` is not an IP address")),
                _ => Ok(()),
            }
        }
        "unix" | "punix" if !rest.is_empty() => Ok(()),
        "unix" | "punix" => Err("a unix socket target needs a file name".into()),
        other => Err(format!("unknown connection method `{other}` (use tcp, ssl, unix, ptcp, pssl or punix)")),
    }
}

/// `IP[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, p)) => (ip, p.strip_prefix(':')),
            None => (rest, None),
        };
    }
    if s.matches(':').count() > 1 {
        return (s, None);
    }
    match s.split_once(':') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    }
}

/// Lab-wide checks once every interface is known: devices named in a bridge's `ports` join it,
/// ports are devices OVS can attach, `ovs-internal` ports sit on an OVS bridge, flows name
/// only the bridge's ports, OpenFlow port numbers are unique per bridge.
pub(crate) fn resolve(ctx: &mut Ctx, nodes: &mut IndexMap<String, Node>) {
    for node in nodes.values_mut() {
        join_listed_ports(ctx, node);
    }
    for (nname, node) in nodes.iter() {
        for iface in node.interfaces.values() {
            let master = iface.master.as_ref().and_then(|m| node.interfaces.get(m).map(|mi| (m, mi)));
            let on_ovs = matches!(master, Some((_, mi)) if matches!(mi.kind, KindSpec::OvsBridge(_)));
            let mp = ctx.sub(&iface.path, "master");
            let me = format!("{nname}:{}", iface.name);
            match &iface.kind {
                KindSpec::OvsInternal(_) if iface.master.is_none() => {
                    ctx.error_at_key(&iface.path, format!("OVS internal port `{me}` needs `master: <ovs bridge>`: OVS creates it on a bridge"), "no bridge")
                }
                KindSpec::OvsInternal(_) if master.is_some() && !on_ovs => {
                    ctx.error_at(&mp, format!("OVS internal port `{me}` can only be a port of an `ovs-bridge`"), "not an OVS bridge")
                }
                KindSpec::OvsBridge(_) if iface.master.is_some() => {
                    ctx.error_at(&mp, format!("OVS bridge `{me}` cannot be a port of another bridge; connect bridges with a veth pair"), "bridge in a bridge")
                }
                KindSpec::Tun(_) if on_ovs => {
                    ctx.error_at(&mp, format!("`{me}` is a tun (layer 3); OVS bridge ports carry Ethernet frames (use a tap)"), "not Ethernet")
                }
                _ => {}
            }
            if on_ovs && iface.hairpin.is_some() {
                ctx.error_at(
                    &ctx.sub(&iface.path, "hairpin"),
                    format!("`hairpin` is a Linux bridge port option; `{me}` is a port of an OVS bridge"),
                    "not for OVS",
                );
            }
        }
        for br in node.interfaces.values() {
            let KindSpec::OvsBridge(spec) = &br.kind else {
                continue;
            };
            let is_port = |p: &str| p == br.name || node.interfaces.get(p).is_some_and(|i| i.master.as_deref() == Some(br.name.as_str()));
            let fp = ctx.sub(&br.path, "flows");
            for (i, f) in spec.flows.iter().enumerate() {
                let Ok(flow) = f.parse() else { continue };
                for p in flow.ports.iter().filter(|p| !is_port(p)) {
                    let at = ctx.idx(&fp, i);
                    ctx.error_at(
                        &at,
                        format!("flow of OVS bridge `{nname}:{}` names `{p}`, which is not one of its ports", br.name),
                        format!("unknown port `{p}`"),
                    );
                    let ports: Vec<String> =
                        node.interfaces.values().filter(|i| i.master.as_deref() == Some(br.name.as_str())).map(|i| i.name.clone()).collect();
                    if let Some(best) = crate::model::decode::closest(p, ports.iter().map(String::as_str)) {
                        if let Some(last) = ctx.diags.last_mut() {
                            last.help = Some(format!("did you mean `{best}`?"));
                        }
                    }
                }
            }
            let pp = ctx.sub(&br.path, "ports");
            let mut ofports: Vec<(u32, &str)> = Vec::new();
            for (port, p) in &spec.ports {
                let Some(o) = p.ofport else { continue };
                if let Some((_, first)) = ofports.iter().find(|(n, _)| *n == o) {
                    ctx.error_at(
                        &ctx.sub(&ctx.sub(&pp, port), "ofport"),
                        format!("ports `{first}` and `{port}` of OVS bridge `{nname}:{}` ask for the same OpenFlow port number {o}", br.name),
                        "taken",
                    );
                } else {
                    ofports.push((o, port));
                }
            }
        }
    }
}

/// Devices named in an OVS bridge's `ports` join it.
fn join_listed_ports(ctx: &mut Ctx, node: &mut Node) {
    let mut set: Vec<(String, String)> = Vec::new();
    for br in node.interfaces.values() {
        let KindSpec::OvsBridge(spec) = &br.kind else {
            continue;
        };
        let pp = ctx.sub(&br.path, "ports");
        for port in spec.ports.keys() {
            let at = ctx.sub(&pp, port);
            let here = format!("{}:{}", node.name, br.name);
            match node.interfaces.get(port) {
                None if ctx.failed_iface(&node.name, port) => {}
                None => {
                    ctx.error_at_key(
                        &at,
                        format!("unknown device `{port}` in the ports of OVS bridge `{here}`"),
                        format!("no device `{port}` in node `{}`", node.name),
                    );
                    let names: Vec<&str> = node.interfaces.keys().map(String::as_str).collect();
                    if let Some(best) = crate::model::decode::closest(port, names.into_iter()) {
                        if let Some(last) = ctx.diags.last_mut() {
                            last.help = Some(format!("did you mean `{best}`?"));
                        }
                    }
                }
                Some(_) if port == &br.name => {
                    ctx.error_at_key(&at, format!("OVS bridge `{here}` cannot list itself as a port (its own interface is always there)"), "same device")
                }
                Some(pi) if pi.master.as_ref().is_some_and(|m| m != &br.name) => ctx.error_at_key(
                    &at,
                    format!(
                        "`{}:{port}` is listed as a port of OVS bridge `{here}` but is already a port of `{}`",
                        node.name,
                        pi.master.as_deref().unwrap_or("")
                    ),
                    "another master",
                ),
                Some(_) => set.push((port.clone(), br.name.clone())),
            }
        }
    }
    for (port, br) in set {
        if let Some(pi) = node.interfaces.get_mut(&port) {
            pi.master = Some(br);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{load_str, Format};

    #[test]
    fn a_bridge_with_ports_flows_and_an_internal_port_validates() {
        let l = load_str(
            "o.yaml",
            r#"
name: o
nodes:
  sw:
    interfaces:
      ovs0:
        kind: ovs-bridge
        datapath: netdev
        fail_mode: secure
        controller: tcp:127.0.0.1:6653
        ports:
          p1: { tag: 10 }
          p2: { trunks: [10, 20], vlan_mode: trunk, ofport: 7 }
          t0: { tag: 10, trunks: [20], vlan_mode: native-untagged }
        flows:
          - table=0,priority=10,in_port=p1,actions=output:p2
          - { table: 1, priority: 5, match: "ip", actions: "normal" }
          - { actions: "drop" }
      p1: {}
      p2: { master: ovs0 }
      t0: { kind: tap }
      m0: { kind: ovs-internal, master: ovs0, addresses: [10.1.0.1/24] }
  a: {}
  b: {}
links:
  - endpoints: [a:eth0, sw:p1]
  - endpoints: [b:eth0, sw:p2]
"#,
            Format::Yaml,
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let sw = &l.lab.nodes["sw"].interfaces;
        assert_eq!(sw["p1"].master.as_deref(), Some("ovs0"), "listed in `ports`: joins the bridge");
        assert_eq!(sw["t0"].master.as_deref(), Some("ovs0"));
        let KindSpec::OvsBridge(b) = &sw["ovs0"].kind else { panic!() };
        let lines: Vec<String> = b.parsed_flows().iter().map(Flow::line).collect();
        assert_eq!(lines, ["table=0,priority=10,in_port=p1,actions=output:p2", "table=1,priority=5,ip,actions=normal", "table=0,priority=32768,actions=drop"]);
        assert!(sw["ovs0"].kind.is_master() && sw["ovs0"].kind.is_ovs() && sw["m0"].kind.is_ovs());
        assert_eq!(sw["ovs0"].kind.kernel_kind(), None, "made by OVS, not over rtnetlink");
    }

    #[test]
    fn controller_targets() {
        for ok in ["tcp:127.0.0.1:6653", "tcp:10.0.0.1", "ssl:[fd00::1]:6653", "unix:/run/c.sock", "ptcp:6653", "ptcp:6653:127.0.0.1", "ptcp:", "punix:/x"] {
            assert!(controller_problem(ok).is_ok(), "{ok}: {:?}", controller_problem(ok));
        }
        assert!(controller_problem("127.0.0.1:6653").unwrap_err().contains("unknown connection method `127.0.0.1`"));
        assert!(controller_problem("tcp:host:6653").unwrap_err().contains("not an IP address"));
        assert!(controller_problem("tcp:10.0.0.1:99999").unwrap_err().contains("not a port number"));
        assert!(controller_problem("unix:").unwrap_err().contains("file name"));
        assert!(controller_problem("controller").unwrap_err().contains("expected"));
    }
}
