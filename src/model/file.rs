//! The topology file as written by users: plain serde types, from which the JSON Schema is
//! generated. Values stay close to the text (addresses and MACs are strings) so that validation
//! can report bad ones with their location; `model::lab` holds the checked, typed form.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kind::KindSpec;

/// A lab: nodes (network namespaces), their devices, and the links between them.
///
/// Read text into one with [`Topology::parse`] (or bring a lab up from text at once with
/// `vnet::Lab::from_str`), not with serde's `Deserialize` on its own: that is the schema's
/// form, which wants every interface's `kind` spelled out, while vnet's decoder fills in what
/// a topology file may leave out (an interface named in a link is a `veth`, `lo` a loopback)
/// and reports every problem with its place in the text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Lab name; names its state directory, namespaces and ownership marks. Letters, digits, `-`, `_`.
    pub name: String,
    /// Run the node `host` in a fresh namespace standing in for the root one, so the machine's
    /// real root namespace is never touched (tests always do this).
    #[serde(default, skip_serializing_if = "is_false")]
    pub isolated_host: bool,
    /// Prefix of namespace names under /run/netns; defaults to `<name>-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_prefix: Option<String>,
    /// IPv6 link-local addresses on lab devices: `auto` (on when the lab declares any IPv6
    /// address, off otherwise: faster, quieter), `on`, or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Mode>,
    /// Raise the machine's neighbour table limits (root namespace, shared by all namespaces)
    /// for the lab's life: `auto` sizes them for the lab; or give gc_thresh1/2/3. Restored at
    /// `down`. Without it, `up` only warns when the lab can exceed the limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbour_limits: Option<NeighbourLimits>,
    /// Nodes by name. The node `host` is the root namespace (or its isolated stand-in).
    #[serde(default)]
    pub nodes: IndexMap<String, NodeSpec>,
    /// Point-to-point links (veth pairs) between nodes, written `node:ifname`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
    /// What the lab should do, verified by `vnet check`: reach / no-reach, TCP and UDP ports,
    /// path MTU, routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<super::expect::ExpectSpec>,
    /// IPsec (ESP) connections between nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipsec: Vec<super::netfeat::spec::IpsecSpec>,
    /// Machines the lab spans, by name; every node then names its `host`. A link between
    /// nodes on different hosts is a VXLAN tunnel over the hosts' underlay; each host builds
    /// its share with `vnet up FILE --host NAME`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub hosts: IndexMap<String, super::hosts::HostSpec>,
}

impl Topology {
    /// Reads topology text (YAML, TOML or JSON) as a topology file is read, e.g. to edit it
    /// and pass it to `vnet::Lab::from_topology` or `vnet::Lab::update`. Only the form is
    /// checked here (syntax, known keys, value types); the rest is validated when the topology
    /// is brought up. Findings point into the text, named `<yaml>` (or `<toml>`, `<json>`).
    ///
    /// ```
    /// use vnet::{Format, Topology};
    ///
    /// let t = Topology::parse("name: pair\nnodes: { a: {}, b: {} }\nlinks: [ { endpoints: [a:eth0, b:eth0] } ]\n", Format::Yaml).unwrap();
    /// assert_eq!(t.links[0].endpoints, ["a:eth0", "b:eth0"]);
    /// let e = Topology::parse("name: pair\nnodez: {}\n", Format::Yaml).unwrap_err();
    /// assert!(e.to_string().starts_with("<yaml>:2:1: error: unknown field `nodez`"), "{e}");
    /// ```
    pub fn parse(text: &str, format: super::Format) -> Result<Topology, super::Diagnostics> {
        let document = super::parse_text(super::source::text_name(format), text, format)?;
        let (topo, mut diags) = super::decode::decode(&document);
        for f in document.findings() {
            diags.push(f.clone());
        }
        if diags.has_errors() {
            diags.retain_errors();
            diags.sort();
            return Err(diags);
        }
        Ok(topo)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether lab devices get IPv6 link-local addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ipv6Mode {
    Auto,
    On,
    Off,
}

/// Neighbour table limits to set while the lab is up.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum NeighbourLimits {
    /// `auto`: sized for the lab's largest possible need.
    Auto(AutoWord),
    Explicit {
        gc_thresh1: u64,
        gc_thresh2: u64,
        gc_thresh3: u64,
    },
}

impl<'de> Deserialize<'de> for NeighbourLimits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Explicit {
            gc_thresh1: u64,
            gc_thresh2: u64,
            gc_thresh3: u64,
        }
        Ok(match super::forms::scalar_or_map(d, "`auto` or a mapping { gc_thresh1, gc_thresh2, gc_thresh3 }")? {
            super::forms::Form::Scalar(w) => NeighbourLimits::Auto(w),
            super::forms::Form::Map(Explicit { gc_thresh1, gc_thresh2, gc_thresh3 }) => NeighbourLimits::Explicit { gc_thresh1, gc_thresh2, gc_thresh3 },
        })
    }
}

/// The word `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    Auto,
}

/// A node: one network namespace with its interfaces, routes and sysctls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Interfaces by name. Without `kind`, an interface is a veth end (or the loopback for `lo`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub interfaces: IndexMap<String, InterfaceSpec>,
    /// Routes in this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// Network sysctls of this node's namespace, e.g. `net.ipv4.ip_forward: 1`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub sysctls: IndexMap<String, SysctlValue>,
    /// NAT of this node (masquerade, SNAT, port forwards), in the lab's nftables table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<super::netfeat::spec::NatSpec>,
    /// Allow/deny rules of this node, in the lab's nftables table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<super::netfeat::spec::FirewallSpec>,
    /// Traffic control per device: `eth0: { delay: 20ms, loss: 1%, rate: 10mbit }`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tc: IndexMap<String, super::netfeat::spec::TcSpec>,
    /// BPF programs attached to devices (tc clsact or XDP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bpf: Vec<super::netfeat::spec::BpfSpec>,
    /// The host (one of the lab's `hosts`) this node runs on, in a multi-host lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// An interface: settings common to every kind plus the kind's own options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::schema::interface_schema)]
pub struct InterfaceSpec {
    #[serde(flatten)]
    pub kind: KindSpec,
    /// Administrative state; default up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Hardware address, `02:00:00:00:00:01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// IPv4 and IPv6 addresses in CIDR form, `10.0.0.1/24`, `fd00::1/64`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The bridge (in the same node) this interface is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Bridge port option: send frames back out of the port they came in on (for VEPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hairpin: Option<bool>,
}

impl InterfaceSpec {
    /// An interface of the given kind with every common setting at its default.
    pub fn new(kind: KindSpec) -> Self {
        InterfaceSpec { kind, up: None, mtu: None, mac: None, addresses: Vec::new(), master: None, hairpin: None }
    }
}

/// The names of the settings every interface accepts (beside its kind's own).
pub const COMMON_INTERFACE_FIELDS: &[&str] = &["kind", "up", "mtu", "mac", "addresses", "master", "hairpin"];

/// A veth pair between two nodes, containerlab style: `endpoints: [a:eth0, b:eth0]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Exactly two `node:ifname` endpoints. Per-end settings go under the node's `interfaces`.
    #[schemars(length(min = 2, max = 2), inner(pattern(r"^[^:\s]+:[^:\s]+$")))]
    pub endpoints: Vec<String>,
    /// MTU of both ends (an end's own `mtu` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A route in a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Destination: `default` (IPv4; IPv6 when `via` is IPv6), `default6`, a prefix or an address.
    pub to: String,
    /// Next-hop gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Output device (in this node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Routing table: a number or `main` (default) / `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableRef>,
    /// Preferred source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
}

/// A routing table by number or well-known name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TableRef {
    Id(u32),
    Name(String),
}

/// A sysctl value as written: number, boolean or string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

impl SysctlValue {
    /// The text the kernel expects in /proc/sys.
    pub fn to_kernel_string(&self) -> String {
        match self {
            SysctlValue::Int(i) => i.to_string(),
            SysctlValue::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
            SysctlValue::Str(s) => s.trim().to_string(),
        }
    }
}
