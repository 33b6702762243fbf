//! The validated lab: what the planner consumes. Every reference is resolved and every value
//! typed; building one is only possible through validation.

use std::fmt;
use std::net::IpAddr;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Serialize;

use super::file::Topology;
use super::kind::KindSpec;
use super::source::Path;

/// The node name that means "the root namespace" (or its isolated stand-in).
pub const HOST: &str = "host";

/// The ownership mark carried (as IFLA_IFALIAS) by every device a lab creates.
pub fn owner_mark(lab: &str) -> String {
    format!("vnet:{lab}")
}

/// A checked lab, ready to plan.
#[derive(Clone, Debug, Serialize)]
pub struct Lab {
    pub name: String,
    pub isolated_host: bool,
    pub netns_prefix: String,
    /// Whether devices get IPv6 link-local addresses (see `Topology::ipv6`).
    pub ipv6_link_local: bool,
    pub nodes: IndexMap<String, Node>,
    /// Expectations verified by `vnet check`.
    pub expect: Vec<super::expect::Expect>,
    /// Neighbour table limits to apply while up: `Some(None)` = sized automatically.
    pub neighbour_limits: Option<Option<[u64; 3]>>,
    /// IPsec connections between nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipsec: Vec<super::netfeat::Tunnel>,
    /// The file form this lab was validated from (kept for state and re-planning).
    #[serde(skip)]
    pub topology: Topology,
    /// Hosts of a multi-host lab (empty: the lab is on one machine).
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub hosts: IndexMap<String, super::hosts::Host>,
    /// Ends of links between hosts.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tunnels: std::collections::BTreeMap<Endpoint, super::hosts::Tunnel>,
    /// The host whose share this is (`vnet up --host`), for a multi-host lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
}

impl Lab {
    /// The namespace name of a node, or `None` for the real root namespace.
    pub fn netns_name(&self, node: &str) -> Option<String> {
        if node == HOST && !self.isolated_host {
            None
        } else {
            Some(format!("{}{}", self.netns_prefix, node))
        }
    }

    /// The mark that device aliases of this lab carry.
    pub fn mark(&self) -> String {
        owner_mark(&self.name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    pub fn interface(&self, ep: &Endpoint) -> Option<&Interface> {
        self.nodes.get(&ep.node).and_then(|n| n.interfaces.get(&ep.ifname))
    }

    /// Whether the lab uses the real root namespace (a non-isolated `host` node).
    pub fn uses_root_namespace(&self) -> bool {
        !self.isolated_host && self.nodes.contains_key(HOST)
    }

    /// The node whose handle creates tunnel ends: the lab's node in the namespace vnet runs in
    /// (a non-isolated `host`), else `UNDERLAY`.
    pub fn underlay_node(&self) -> String {
        self.nodes.keys().find(|n| self.netns_name(n).is_none()).cloned().unwrap_or_else(|| UNDERLAY.to_string())
    }

    /// The tunnel end this interface is, in a host's share of a multi-host lab.
    pub fn tunnel(&self, node: &str, ifname: &str) -> Option<&super::hosts::Tunnel> {
        self.share.as_ref()?;
        self.tunnels.get(&Endpoint::new(node, ifname))
    }
}

/// The handle key of the namespace `vnet` runs in, where tunnel ends are created from (their
/// UDP sockets live there, on the host's underlay) when no node of the lab is that namespace.
pub const UNDERLAY: &str = "@underlay";

/// A node: one network namespace.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub name: String,
    /// Interfaces in declaration order; `lo` is always present.
    pub interfaces: IndexMap<String, Interface>,
    /// Devices vnet adds of its own accord (`model::anchor`), by name: planned like the
    /// interfaces, shown nowhere the file's interfaces are.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub anchors: IndexMap<String, Interface>,
    pub routes: Vec<Route>,
    /// sysctl key (dotted, e.g. `net.ipv4.ip_forward`) -> value as the kernel writes it.
    pub sysctls: IndexMap<String, String>,
    /// Where each sysctl is written in the file (by key as in `sysctls`): the kernel alone can
    /// tell a misspelled name or a refused value, after the document is released.
    #[serde(skip)]
    pub sysctl_places: IndexMap<String, SysctlPlace>,
    /// NAT, firewall, traffic control and BPF of this node.
    pub features: super::netfeat::NodeFeatures,
    /// The host the node runs on, in a multi-host lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip)]
    pub path: Path,
}

/// The byte ranges of a sysctl's key and value in the topology file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysctlPlace {
    pub key: Option<std::ops::Range<usize>>,
    pub value: Option<std::ops::Range<usize>>,
}

/// `node:ifname`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub node: String,
    pub ifname: String,
}

impl Endpoint {
    pub fn new(node: impl Into<String>, ifname: impl Into<String>) -> Self {
        Endpoint { node: node.into(), ifname: ifname.into() }
    }
    /// Parses `node:ifname` (exactly one colon, both parts non-empty).
    pub fn parse(s: &str) -> Option<Endpoint> {
        let (n, i) = s.split_once(':')?;
        if n.is_empty() || i.is_empty() || i.contains(':') {
            return None;
        }
        Some(Endpoint::new(n.trim(), i.trim()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.ifname)
    }
}

/// A checked interface.
#[derive(Clone, Debug, Serialize)]
pub struct Interface {
    pub name: String,
    pub kind: KindSpec,
    pub up: bool,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<IpNet>,
    pub master: Option<String>,
    pub hairpin: Option<bool>,
    /// For veth ends: the other end.
    pub peer: Option<Endpoint>,
    /// Where the interface was declared (its entry under `interfaces`, or its link endpoint).
    #[serde(skip)]
    pub path: Path,
}

/// A checked route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub metric: Option<u32>,
    pub table: u32,
    pub src: Option<IpAddr>,
    #[serde(skip)]
    pub path: Path,
}

/// The kernel's main routing table.
pub const TABLE_MAIN: u32 = 254;
/// The kernel's local routing table.
pub const TABLE_LOCAL: u32 = 255;

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_route(f, &self.dst, self.via, self.dev.as_deref(), self.metric, self.table, self.src)
    }
}

/// A route the way `vnet plan` and messages write it: `default via 10.0.0.1 dev eth0 metric 5`.
pub fn write_route(
    f: &mut fmt::Formatter<'_>,
    dst: &IpNet,
    via: Option<IpAddr>,
    dev: Option<&str>,
    metric: Option<u32>,
    table: u32,
    src: Option<IpAddr>,
) -> fmt::Result {
    if dst.prefix_len() == 0 {
        write!(f, "default{}", if dst.addr().is_ipv6() { "6" } else { "" })?;
    } else {
        write!(f, "{dst}")?;
    }
    if let Some(v) = via {
        write!(f, " via {v}")?;
    }
    if let Some(d) = dev {
        write!(f, " dev {d}")?;
    }
    if let Some(m) = metric {
        write!(f, " metric {m}")?;
    }
    if table != TABLE_MAIN {
        write!(f, " table {table}")?;
    }
    if let Some(s) = src {
        write!(f, " src {s}")?;
    }
    Ok(())
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err("a MAC address has six hex bytes separated by `:`".into());
    }
    let mut out = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(format!("`{p}` is not a two-digit hex byte"));
        }
        out[i] = u8::from_str_radix(p, 16).map_err(|_| format!("`{p}` is not a hex byte"))?;
    }
    Ok(out)
}
