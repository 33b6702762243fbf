//! What the kernel has, as plain data: filled by `kernel::observe`, compared by `plan`, shown by
//! `status`. Pure types, so the planner can be tested with hand-made states.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::kind::KindSpec;

pub mod netfeat;
pub mod ovs;

/// One network device as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ObservedLink {
    pub ifindex: u32,
    pub name: String,
    /// IFLA_INFO_KIND (`veth`, `bridge`, ...); `None` for lo and physical devices.
    pub kind: Option<String>,
    pub mtu: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: Option<[u8; 6]>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier (IFF_LOWER_UP).
    pub carrier: bool,
    /// RFC 2863 operational state, lower case (`up`, `down`, `lowerlayerdown`, `unknown`).
    pub oper: String,
    pub master: Option<u32>,
    pub alias: Option<String>,
    /// IFLA_LINK: a veth's peer ifindex, a macvlan's lower device, ...
    pub link: Option<u32>,
    /// IFLA_LINK_NETNSID: the namespace (as this namespace numbers it) of `link`.
    pub link_netnsid: Option<i32>,
    pub group: u32,
    /// Transmit and receive queues the device was created with (IFLA_NUM_TX/RX_QUEUES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_queues: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_queues: Option<u32>,
    /// Kind options decoded back into the model's form, where vnet knows the kind.
    pub spec: Option<KindSpec>,
    /// Bridge port options when the device is a bridge port.
    pub hairpin: Option<bool>,
    /// Bridge ports: whether the port forwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<bool>,
    /// The kind of the master device, when enslaved (IFLA_INFO_SLAVE_KIND).
    pub port_kind: Option<String>,
    /// How the device makes its IPv6 link-local address (IFLA_INET6_ADDR_GEN_MODE: 0 eui64,
    /// 1 none, 2 stable privacy, 3 random); `None` without IPv6 on the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr_gen_mode: Option<u8>,
    /// IPv6 is disabled on the device (`disable_ipv6`): it has no IPv6 address of any kind.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ipv6_disabled: bool,
    /// Kind-specific facts the spec does not hold (e.g. a bond's active port ifindex).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

fn ser_mac<S: serde::Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&crate::model::lab::format_mac(m)),
        None => s.serialize_none(),
    }
}

/// One address on a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedAddr {
    pub ifindex: u32,
    pub addr: IpNet,
    /// Made by the kernel (IPv6 link-local) rather than configured.
    pub automatic: bool,
    /// An IPv4 address in the subnet of an earlier one on the device (IFA_F_SECONDARY): the
    /// kernel deletes it with that primary (unless `promote_secondaries` is on).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secondary: bool,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedRoute {
    pub table: u32,
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    pub src: Option<IpAddr>,
    /// RTPROT_* (2 kernel, 3 boot, 4 static, ...).
    pub protocol: u8,
    /// RTN_* (1 unicast, 2 local, 3 broadcast, ...).
    pub kind: u8,
}

/// IN6_ADDR_GEN_MODE_EUI64: link-local addresses from the MAC (the kernel's default).
pub const ADDR_GEN_MODE_EUI64: u8 = 0;
/// IN6_ADDR_GEN_MODE_NONE: no link-local address.
pub const ADDR_GEN_MODE_NONE: u8 = 1;

impl ObservedRoute {
    /// A route the kernel made itself: connected and local routes, IPv6 link-local and
    /// multicast ones (`kernel`), router advertisements (`ra`), redirects; or of a type the
    /// file cannot declare (local, broadcast, multicast, blackhole, unreachable...). vnet
    /// never deletes these, whoever added them.
    pub fn kernels_own(&self) -> bool {
        self.kind != RTN_UNICAST || matches!(self.protocol, RTPROT_REDIRECT | RTPROT_KERNEL | RTPROT_RA)
    }
}

/// The routing protocol number vnet stamps on the routes it adds: 118 (`v`), which neither the
/// kernel (`RTPROT_*` in rtnetlink.h) nor iproute2 (`/etc/iproute2/rt_protos`) gives to anyone,
/// so that vnet's routes are told apart from routes added by hand (`ip route add` says `boot`
/// unless told otherwise) or by a routing daemon.
pub const RTPROT_VNET: u8 = 118;
/// What vnet stamped before it had a number of its own: in a lab's namespace, a `static` route
/// is a route of a lab built by an older vnet.
pub const RTPROT_STATIC: u8 = 4;
pub const RTPROT_BOOT: u8 = 3;
/// Routes the kernel derives from addresses.
pub const RTPROT_KERNEL: u8 = 2;
pub const RTPROT_REDIRECT: u8 = 1;
/// Routes learned from IPv6 router advertisements.
pub const RTPROT_RA: u8 = 9;
/// RTN_UNICAST: the only route type a lab declares.
pub const RTN_UNICAST: u8 = 1;

/// A routing protocol number as `ip route` names it.
pub fn route_protocol_name(p: u8) -> String {
    match p {
        0 => "unspec".into(),
        RTPROT_REDIRECT => "redirect".into(),
        RTPROT_KERNEL => "kernel".into(),
        RTPROT_BOOT => "boot".into(),
        RTPROT_STATIC => "static".into(),
        RTPROT_RA => "ra".into(),
        16 => "dhcp".into(),
        RTPROT_VNET => "vnet".into(),
        p => p.to_string(),
    }
}

/// Everything observed in one namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ObservedNs {
    pub links: Vec<ObservedLink>,
    pub addrs: Vec<ObservedAddr>,
    pub routes: Vec<ObservedRoute>,
    /// Values of the sysctls that were asked for (canonical key -> value).
    pub sysctls: BTreeMap<String, String>,
    /// NAT/firewall table, qdiscs, BPF, xfrm (issue 6).
    #[serde(skip_serializing_if = "is_default")]
    pub features: netfeat::NsFeatures,
}

fn is_default(f: &netfeat::NsFeatures) -> bool {
    *f == netfeat::NsFeatures::default()
}

impl ObservedNs {
    pub fn link(&self, name: &str) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.name == name)
    }
    pub fn link_by_index(&self, ifindex: u32) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.ifindex == ifindex)
    }
    /// Configured (non-automatic) addresses of a device.
    pub fn addrs_of(&self, ifindex: u32) -> impl Iterator<Item = &ObservedAddr> {
        self.addrs.iter().filter(move |a| a.ifindex == ifindex)
    }
    pub fn name_of(&self, ifindex: u32) -> Option<&str> {
        self.link_by_index(ifindex).map(|l| l.name.as_str())
    }
}

/// The state of a node's namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum NsState {
    /// No namespace of that name.
    Absent,
    /// A namespace of that name exists but is not this lab's (no mark on its `lo`).
    Foreign,
    /// The lab's own namespace.
    Owned(ObservedNs),
    /// The machine's real root namespace (a non-isolated `host`): only marked devices are the lab's.
    Root(ObservedNs),
}

impl NsState {
    pub fn ns(&self) -> Option<&ObservedNs> {
        match self {
            NsState::Owned(o) | NsState::Root(o) => Some(o),
            _ => None,
        }
    }
}

/// What the kernel has for a whole lab: each node's namespace, plus namespaces the lab owned
/// before (from its state) that the file no longer names.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Observed {
    /// node name -> state of its namespace.
    pub nodes: BTreeMap<String, NsState>,
    /// node name -> its Open vSwitch, for nodes with OVS bridges (now or in the lab's record).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ovs: BTreeMap<String, ovs::ObservedOvs>,
    /// The kernel has the VXLAN driver. Asked only when a busy bridge is to be made (its
    /// anchor is a VXLAN device, `model::anchor`); false otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub vxlan: bool,
}
