//! The operations a plan is made of. Plain data: the executor translates each into netlink
//! (or /proc) requests; `vnet plan` prints them.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::kind::KindSpec;
use crate::model::lab::format_mac;

/// Stages order a plan: everything in one stage can be sent at once (per namespace, in order);
/// a stage starts when the previous one is acknowledged.
pub mod stage {
    pub const NETNS: u16 = 0;
    pub const SYSCTL_GLOBAL: u16 = 10;
    pub const REPLACE: u16 = 15;
    /// Link creation: CREATE + dependency level (masters and lower devices first).
    pub const CREATE: u16 = 20;
    pub const KIND_OPTIONS: u16 = 38;
    pub const CHANGE: u16 = 40;
    pub const PORT: u16 = 42;
    /// Masters come up last, once every port is attached and up: the kernel then selects the
    /// port states once (each port enabled on a running bridge rescans all ports: O(N^2)).
    pub const MASTER_UP: u16 = 45;
    /// Devices stacked on a lower (VLANs...) come up after it (ENETDOWN otherwise), one stage
    /// per stacking level (46..=49).
    pub const UPPER_UP: u16 = 46;
    pub const SYSCTL_DEVICE: u16 = 50;
    pub const ADDR_DEL: u16 = 55;
    pub const ADDR_ADD: u16 = 60;
    pub const ROUTE_DEL: u16 = 65;
    pub const ROUTE_ADD: u16 = 70;
    /// NAT/firewall tables, qdiscs, BPF, xfrm (issue 6): after addresses and routes exist.
    pub const FEATURES: u16 = 75;
    pub const LINK_DELETE: u16 = 80;
    pub const NETNS_DELETE: u16 = 90;
}

/// The far end of a veth being created, born directly in its namespace with its final name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeerEnd {
    pub node: String,
    pub ifname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_mac")]
    pub mac: Option<[u8; 6]>,
    /// Transmit and receive queues of the peer (its own `queues`, default 1).
    #[serde(skip_serializing_if = "is_one")]
    pub queues: u32,
    /// IPv6 off on this end (a bridge port: see `CreateLink::no_ipv6`).
    #[serde(skip_serializing_if = "is_false")]
    pub no_ipv6: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A device to create.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateLink {
    pub node: String,
    pub ifname: String,
    pub kind: KindSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_mac")]
    pub mac: Option<[u8; 6]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Up in the create message itself.
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerEnd>,
    /// IPv6 turned off (`disable_ipv6`) right after the creation, before the device has
    /// carrier: a bridge port in a lab without link-local addresses. Otherwise the kernel adds
    /// a multicast route per port to one shared node of the namespace's IPv6 table and walks the
    /// whole table each time a port gets carrier or goes: quadratic in a bridge's ports.
    #[serde(skip_serializing_if = "is_false")]
    pub no_ipv6: bool,
}

/// Changes to an existing device; `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_mac")]
    pub mac: Option<[u8; 6]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// `Some(None)` detaches from the current master.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Option<String>>,
    /// Set the lab's ownership mark (alias).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mark: bool,
}

impl LinkChange {
    pub fn is_empty(&self) -> bool {
        self.mtu.is_none() && self.mac.is_none() && self.up.is_none() && self.master.is_none() && !self.mark
    }
}

/// A route to add or delete. `dev` is resolved to an ifindex by the executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteOp {
    pub dst: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    pub table: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// The routing protocol of a route to delete that vnet did not add with its own (a route
    /// added by hand, by a daemon, or by an older vnet as `static`); `None`: vnet's (RTPROT_VNET).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
}

/// One operation on the kernel.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A new namespace, with `lo` marked as the lab's and brought up (or left down).
    CreateNetns {
        node: String,
        netns: String,
        lo_up: bool,
    },
    CreateLink(CreateLink),
    ChangeLink {
        node: String,
        ifname: String,
        change: LinkChange,
    },
    /// Change kind options of an existing device in place.
    SetKindOptions {
        node: String,
        ifname: String,
        kind: KindSpec,
    },
    /// Bridge port options.
    SetPort {
        node: String,
        ifname: String,
        hairpin: bool,
    },
    /// Put a port of a bridge without STP to forwarding now: one still listening or learning
    /// from when STP was on would wait for the kernel's forward-delay timers.
    ForwardPort {
        node: String,
        ifname: String,
    },
    /// Turn an existing device's IPv6 link-local address on (the kernel makes it at once) or
    /// off (no more generation; the address itself goes with a `DelAddress`), as the lab's
    /// `ipv6` says.
    LinkLocal {
        node: String,
        ifname: String,
        on: bool,
        /// IPv6 itself back first: a bridge port whose IPv6 vnet turned off
        /// (`CreateLink::no_ipv6`) that leaves its bridge or gets link-local addresses.
        #[serde(skip_serializing_if = "is_false")]
        revive: bool,
    },
    AddAddress {
        node: String,
        ifname: String,
        addr: IpNet,
    },
    DelAddress {
        node: String,
        ifname: String,
        addr: IpNet,
    },
    AddRoute {
        node: String,
        route: RouteOp,
    },
    DelRoute {
        node: String,
        route: RouteOp,
    },
    /// Write a sysctl; the executor records the previous value.
    SetSysctl {
        node: String,
        key: String,
        value: String,
    },
    /// Put back a value the lab changed earlier and no longer declares.
    RestoreSysctl {
        node: String,
        key: String,
        value: String,
    },
    DeleteLink {
        node: String,
        ifname: String,
    },
    DeleteNetns {
        node: String,
        netns: String,
    },
    /// A device operation beyond link settings (bridge VLANs and fdb, VXLAN remotes, bond
    /// primary, teamd), see `plan::devices`.
    Device {
        node: String,
        ifname: String,
        device_op: super::devices::DeviceOp,
    },
    /// NAT/firewall, traffic control, BPF, IPsec (see `netfeat_ops`).
    Feature {
        node: String,
        change: super::netfeat_ops::FeatureOp,
    },
    /// An operation on the node's Open vSwitch (OVSDB, flows, its daemons), see `plan::ovs`.
    Ovs {
        node: String,
        ovs_op: super::ovs::OvsOp,
    },
}

impl Op {
    /// The node whose namespace the operation is sent to.
    pub fn node(&self) -> &str {
        match self {
            Op::CreateNetns { node, .. }
            | Op::ChangeLink { node, .. }
            | Op::SetKindOptions { node, .. }
            | Op::SetPort { node, .. }
            | Op::ForwardPort { node, .. }
            | Op::LinkLocal { node, .. }
            | Op::AddAddress { node, .. }
            | Op::DelAddress { node, .. }
            | Op::AddRoute { node, .. }
            | Op::DelRoute { node, .. }
            | Op::SetSysctl { node, .. }
            | Op::RestoreSysctl { node, .. }
            | Op::DeleteLink { node, .. }
            | Op::DeleteNetns { node, .. }
            | Op::Device { node, .. }
            | Op::Feature { node, .. }
            | Op::Ovs { node, .. } => node,
            Op::CreateLink(c) => &c.node,
        }
    }

    /// The device concerned, if any.
    pub fn device(&self) -> Option<&str> {
        match self {
            Op::ChangeLink { ifname, .. }
            | Op::SetKindOptions { ifname, .. }
            | Op::SetPort { ifname, .. }
            | Op::ForwardPort { ifname, .. }
            | Op::LinkLocal { ifname, .. }
            | Op::AddAddress { ifname, .. }
            | Op::DelAddress { ifname, .. }
            | Op::DeleteLink { ifname, .. }
            | Op::Device { ifname, .. } => Some(ifname),
            Op::CreateLink(c) => Some(&c.ifname),
            Op::AddRoute { route, .. } | Op::DelRoute { route, .. } => route.dev.as_deref(),
            Op::Feature { change, .. } => change.device(),
            _ => None,
        }
    }
}

/// An operation with its stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub stage: u16,
    #[serde(flatten)]
    pub op: Op,
}

/// What `up` would do, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub lab: String,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
    pub fn len(&self) -> usize {
        self.steps.len()
    }
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.steps.iter().map(|s| &s.op)
    }
}

fn ser_mac<S: serde::Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&format_mac(m)),
        None => s.serialize_none(),
    }
}

impl fmt::Display for RouteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::model::lab::write_route(f, &self.dst, self.via, self.dev.as_deref(), self.metric, self.table, self.src)?;
        match self.proto {
            Some(p) => write!(f, " proto {}", crate::observed::route_protocol_name(p)),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateNetns { node, netns, .. } => write!(f, "+ netns   {node} ({netns})"),
            Op::CreateLink(c) => {
                write!(f, "+ link    {}:{} {}", c.node, c.ifname, c.kind.name())?;
                if let Some(p) = &c.peer {
                    write!(f, " peer {}:{}", p.node, p.ifname)?;
                }
                if let Some(m) = &c.master {
                    write!(f, " master {m}")?;
                }
                if let Some(m) = c.mtu {
                    write!(f, " mtu {m}")?;
                }
                if let Some(m) = &c.mac {
                    write!(f, " mac {}", format_mac(m))?;
                }
                // Queues are shown where they are not the default one.
                if let Some(q) = c.kind.queues().filter(|q| *q != 1) {
                    write!(f, " queues {q}")?;
                }
                if let Some(p) = c.peer.as_ref().filter(|p| p.queues != 1) {
                    write!(f, " peer-queues {}", p.queues)?;
                }
                if c.up {
                    write!(f, " up")?;
                }
                if c.no_ipv6 {
                    write!(f, " no-ipv6")?;
                }
                if c.peer.as_ref().is_some_and(|p| p.no_ipv6) {
                    write!(f, " peer-no-ipv6")?;
                }
                Ok(())
            }
            Op::ChangeLink { node, ifname, change } => {
                write!(f, "~ link    {node}:{ifname}")?;
                if let Some(m) = change.mtu {
                    write!(f, " mtu {m}")?;
                }
                if let Some(m) = &change.mac {
                    write!(f, " mac {}", format_mac(m))?;
                }
                match &change.master {
                    Some(Some(m)) => write!(f, " master {m}")?,
                    Some(None) => write!(f, " nomaster")?,
                    None => {}
                }
                match change.up {
                    Some(true) => write!(f, " up")?,
                    Some(false) => write!(f, " down")?,
                    None => {}
                }
                if change.mark {
                    write!(f, " mark")?;
                }
                Ok(())
            }
            Op::SetKindOptions { node, ifname, kind } => {
                write!(f, "~ {:<7} {node}:{ifname} {}", kind.name(), serde_json::to_string(kind).unwrap_or_default())
            }
            Op::SetPort { node, ifname, hairpin } => {
                write!(f, "~ port    {node}:{ifname} hairpin {}", if *hairpin { "on" } else { "off" })
            }
            Op::ForwardPort { node, ifname } => write!(f, "~ port    {node}:{ifname} forwarding"),
            Op::LinkLocal { node, ifname, on, revive } => {
                write!(f, "~ link    {node}:{ifname} ipv6 {}link-local {}", if *revive { "on, " } else { "" }, if *on { "on" } else { "off" })
            }
            Op::AddAddress { node, ifname, addr } => write!(f, "+ addr    {node}:{ifname} {addr}"),
            Op::DelAddress { node, ifname, addr } => write!(f, "- addr    {node}:{ifname} {addr}"),
            Op::AddRoute { node, route } => write!(f, "+ route   {node}: {route}"),
            Op::DelRoute { node, route } => write!(f, "- route   {node}: {route}"),
            Op::SetSysctl { node, key, value } => write!(f, "~ sysctl  {node}: {key} = {value}"),
            Op::RestoreSysctl { node, key, value } => write!(f, "~ sysctl  {node}: {key} = {value} (restore)"),
            Op::DeleteLink { node, ifname } => write!(f, "- link    {node}:{ifname}"),
            Op::DeleteNetns { node, netns } => write!(f, "- netns   {node} ({netns})"),
            Op::Device { node, ifname, device_op } => write!(f, "+ device  {node}:{ifname} {device_op}"),
            Op::Feature { node, change } => f.write_str(&change.display(node)),
            Op::Ovs { node, ovs_op } => write!(f, "~ ovs     {node}: {ovs_op}"),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{}", s.op)?;
        }
        Ok(())
    }
}
