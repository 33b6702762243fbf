//! The file form of NAT, firewall, traffic control, BPF and IPsec declarations: plain serde
//! types (the JSON Schema comes from them). Values stay strings where validation must report
//! bad ones with their location; `super` holds the checked forms.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// NAT in a node: masquerade and SNAT on the way out, port forwards (DNAT) on the way in.
/// Needs `net.ipv4.ip_forward`, which vnet turns on in the node unless the file sets it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatSpec {
    /// Rewrite the source of packets from `source` leaving through `out` to `out`'s address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masquerade: Vec<MasqueradeSpec>,
    /// Rewrite the source of packets from `source` leaving through `out` to a fixed address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snat: Vec<SnatSpec>,
    /// Forward a port of this node to `node:port` or `address:port` (DNAT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_forwards: Vec<PortForwardSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MasqueradeSpec {
    /// A prefix (`192.168.1.0/24`), an address, or a node name (its addresses).
    pub source: String,
    /// Output device in this node.
    pub out: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnatSpec {
    /// A prefix, an address, or a node name.
    pub source: String,
    /// Output device in this node.
    pub out: String,
    /// The address sources are rewritten to.
    pub to: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForwardSpec {
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<L4Proto>,
    /// The port of this node that is forwarded.
    pub port: u16,
    /// Destination: `node:port` (the node's first IPv4 address) or `address:port`.
    pub to: String,
    /// Only packets arriving on this device (default: any).
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_dev: Option<String>,
}

/// Transport protocols NAT and firewall rules match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum L4Proto {
    Tcp,
    Udp,
    Icmp,
}

impl L4Proto {
    pub fn name(&self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Icmp => "icmp",
        }
    }
}

/// Allow/deny rules of a node, in order, first match wins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallSpec {
    /// What happens to forwarded packets no rule matches: `accept` (default) or `drop`. With
    /// `drop`, replies of allowed connections still pass (conntrack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Drop,
}

/// Which traffic a rule filters: forwarded through the node (default), to it, or from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChainKind {
    Forward,
    Input,
    Output,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `accept` or `drop`.
    pub action: Verdict,
    /// Source: a node name, a prefix or an address (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Destination: a node name, a prefix or an address (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<L4Proto>,
    /// Destination port (needs `proto: tcp` or `udp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `forward` (default), `input` or `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainKind>,
}

/// Traffic control on one device: netem impairments and/or a rate limit. With only `rate`
/// the qdisc is tbf; with any impairment it is netem (which carries the rate itself).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcSpec {
    /// Added latency, e.g. `20ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Text>,
    /// Random variation of the delay, e.g. `5ms` (needs `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Text>,
    /// Random loss, e.g. `1%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Text>,
    /// Random duplication, e.g. `0.5%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<Text>,
    /// Share of packets sent at once while the others are delayed, e.g. `25%` (needs `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<Text>,
    /// Random single-bit corruption, e.g. `0.1%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<Text>,
    /// Rate limit, e.g. `10mbit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Text>,
    /// Queue length in packets (netem) ; tbf derives its byte limit from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// tbf bucket size, e.g. `32kb` (default: enough for 10 ms at `rate`, at least 4 MTUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Text>,
}

/// A compiled BPF program attached to a device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BpfSpec {
    /// Device in this node.
    pub dev: String,
    /// `tc-ingress`, `tc-egress` (clsact, direct action) or `xdp`.
    pub hook: BpfHookSpec,
    /// The ELF object file (relative to the topology file's directory).
    pub object: String,
    /// The program's name (its function name) in the object.
    pub program: String,
    /// XDP only: `generic` (default, works on every device) or `native` (driver support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<XdpMode>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BpfHookSpec {
    #[default]
    TcIngress,
    TcEgress,
    Xdp,
}

impl BpfHookSpec {
    pub fn name(&self) -> &'static str {
        match self {
            BpfHookSpec::TcIngress => "tc-ingress",
            BpfHookSpec::TcEgress => "tc-egress",
            BpfHookSpec::Xdp => "xdp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    Generic,
    Native,
}

/// An IPsec (ESP) connection between two nodes: xfrm states and policies in both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpsecSpec {
    /// Name (default `ipsec<N>`); names generated keys in the lab record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tunnel` (default: subnets behind two gateways) or `transport` (host to host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IpsecMode>,
    /// The two ends.
    pub ends: Vec<IpsecEndSpec>,
    /// AEAD algorithm, e.g. `rfc4106(gcm(aes))` (the default when no `enc` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aead: Option<String>,
    /// AEAD key in hex (`0x...`, key + 4-byte salt); generated per lab when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Text>,
    /// AEAD ICV length in bits: 64, 96 or 128 (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icv: Option<u32>,
    /// Encryption algorithm (instead of AEAD), e.g. `cbc(aes)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc_key: Option<Text>,
    /// Authentication algorithm with `enc`, e.g. `hmac(sha256)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<Text>,
    /// Truncation of the authentication tag in bits (default: half the hash, as RFC 4868).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_trunc: Option<u32>,
    /// SPIs of the two directions, first→second and second→first (default derived from the
    /// connection's position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spi: Option<Vec<SpiValue>>,
    /// reqid tying states to policies (default: the connection's position + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reqid: Option<u32>,
}

/// A number, or a string in hex (`0x1000`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SpiValue {
    Num(u32),
    Str(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpsecMode {
    Tunnel,
    Transport,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpsecEndSpec {
    pub node: String,
    /// The end's address the ESP packets use (one of the node's addresses).
    pub address: String,
    /// Tunnel mode: the prefix behind this end (default: `address` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
}

/// A value written as text or as a number (YAML reads `20`, `1.5` and `0x10` as numbers): kept
/// so that validation can say what is wrong with it instead of "invalid type".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Text {
    Str(String),
    Int(i64),
    Float(f64),
}

impl Text {
    pub fn as_text(&self) -> String {
        match self {
            Text::Str(s) => s.clone(),
            Text::Int(i) => i.to_string(),
            Text::Float(f) => f.to_string(),
        }
    }
    pub fn is_number(&self) -> bool {
        !matches!(self, Text::Str(_))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::Str(s.to_string())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::Str(s)
    }
}

/// Per-device traffic control of a node, by interface name.
pub type TcMap = IndexMap<String, TcSpec>;
