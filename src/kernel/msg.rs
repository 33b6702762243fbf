//! Builders for the rtnetlink messages vnet sends: links, addresses, routes, and the dumps the
//! observer reads.

use std::net::IpAddr;
use std::os::fd::RawFd;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// Settings of a device at creation (beside its kind).
#[derive(Clone, Debug, Default)]
pub struct LinkBase {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub master: Option<u32>,
    pub up: bool,
    pub group: u32,
    /// Target namespace (for a veth peer, or a device created in one namespace for another).
    pub netns_fd: Option<RawFd>,
    /// Transmit and receive queues to allocate (the kernel's default: one per CPU).
    pub queues: Option<u32>,
}

fn base_attrs(m: &mut LinkMessage, b: &LinkBase) {
    m.attributes.push(LinkAttribute::IfName(b.name.clone()));
    if let Some(mtu) = b.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = b.mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(master) = b.master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    if b.group != 0 {
        m.attributes.push(LinkAttribute::Group(b.group));
    }
    if let Some(fd) = b.netns_fd {
        m.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(q) = b.queues {
        m.attributes.push(LinkAttribute::NumTxQueues(q));
        m.attributes.push(LinkAttribute::NumRxQueues(q));
    }
    if b.up {
        m.header.flags |= LinkFlags::Up;
        m.header.change_mask |= LinkFlags::Up;
    }
}

/// A link message carrying a device's base settings (used for veth peers, too).
pub fn link_with(b: &LinkBase) -> LinkMessage {
    let mut m = LinkMessage::default();
    base_attrs(&mut m, b);
    m
}

/// RTM_NEWLINK creating a device.
pub fn new_link(b: &LinkBase, info: Option<Vec<LinkInfo>>) -> RouteNetlinkMessage {
    let mut m = link_with(b);
    if let Some(info) = info {
        m.attributes.push(LinkAttribute::LinkInfo(info));
    }
    RouteNetlinkMessage::NewLink(m)
}

/// What to change on an existing device.
#[derive(Clone, Debug, Default)]
pub struct LinkSet {
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub up: Option<bool>,
    /// `Some(0)` detaches from the master.
    pub master: Option<u32>,
    pub alias: Option<String>,
    pub info: Option<Vec<LinkInfo>>,
    /// Turn off IPv6 link-local address generation (must precede the device going up; the
    /// kernel refuses this attribute in a create message).
    pub no_ipv6_ll: bool,
    /// Ask for operational state UP (IFLA_OPERSTATE). A bridge brought up once its ports
    /// already have carrier sees no carrier transition and would stay at UNKNOWN; the kernel
    /// still recomputes the state on the next real carrier change.
    pub operstate_up: bool,
}

/// RTM_NEWLINK (without NLM_F_CREATE) changing a device found by index, or by name when the
/// index is 0 (so a change can follow a create in the same batch).
pub fn set_link(ifindex: u32, name: Option<&str>, s: &LinkSet) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    if ifindex == 0 {
        if let Some(n) = name {
            m.attributes.push(LinkAttribute::IfName(n.to_string()));
        }
    }
    if let Some(mtu) = s.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = s.mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(master) = s.master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    if let Some(a) = &s.alias {
        m.attributes.push(LinkAttribute::IfAlias(a.clone()));
    }
    if let Some(info) = &s.info {
        m.attributes.push(LinkAttribute::LinkInfo(info.clone()));
    }
    if s.no_ipv6_ll {
        m.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])]));
    }
    if let Some(up) = s.up {
        if up {
            m.header.flags |= LinkFlags::Up;
        }
        m.header.change_mask |= LinkFlags::Up;
    }
    if s.operstate_up {
        m.attributes.push(LinkAttribute::OperState(netlink_packet_route::link::State::Up));
    }
    // RTM_SETLINK ignores IFLA_LINKINFO: kind and port options change through RTM_NEWLINK
    // (without NLM_F_CREATE) on the existing device.
    if s.info.is_some() {
        return RouteNetlinkMessage::NewLink(m);
    }
    RouteNetlinkMessage::SetLink(m)
}

/// RTM_NEWLINK turning multicast snooping off on a bridge found by name. Sent just before a
/// bridge with many ports is deleted: with snooping on, every port's removal re-arms a timer on
/// each remaining port (O(N²), ~0.1 s of star-1000's `down`).
pub fn bridge_snooping_off(name: &str) -> RouteNetlinkMessage {
    use netlink_packet_route::link::{InfoBridge, InfoData, InfoKind};
    let info = vec![LinkInfo::Kind(InfoKind::Bridge), LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::MulticastSnooping(false)]))];
    set_link(0, Some(name), &LinkSet { info: Some(info), ..Default::default() })
}

/// RTM_DELLINK of one device.
pub fn del_link(ifindex: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    RouteNetlinkMessage::DelLink(m)
}

/// RTM_DELLINK of every device in an interface group: one request, one kernel batch.
pub fn del_group(group: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::Group(group));
    RouteNetlinkMessage::DelLink(m)
}

pub fn dump_links() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(LinkMessage::default())
}

/// A dump of bridge ports only (family AF_BRIDGE, as `bridge link show`): small messages
/// without the peer namespace id that a full link dump looks up for every veth end, by a linear
/// walk of the namespace's id table (thousands of ids in a big lab's host).
pub fn dump_bridge_ports() -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    RouteNetlinkMessage::GetLink(m)
}

pub fn dump_addrs() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetAddress(AddressMessage::default())
}

pub fn dump_routes(family: AddressFamily) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family;
    // Table 0 with strict checking: every table.
    m.header.table = RouteHeader::RT_TABLE_UNSPEC;
    RouteNetlinkMessage::GetRoute(m)
}

fn family(a: &IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn addr_msg(ifindex: u32, net: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    let a = net.addr();
    m.header.family = family(&a);
    m.header.prefix_len = net.prefix_len();
    m.header.index = ifindex;
    m.header.scope = if a.is_loopback() { AddressScope::Host } else { AddressScope::Universe };
    m.attributes.push(AddressAttribute::Local(a));
    m.attributes.push(AddressAttribute::Address(a));
    m
}

/// RTM_NEWADDR. IPv6 addresses skip duplicate address detection: lab addresses are declared
/// (validation refuses duplicates), and DAD would leave them unusable for a second or more.
pub fn new_addr(ifindex: u32, net: &IpNet) -> RouteNetlinkMessage {
    let mut m = addr_msg(ifindex, net);
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() < 31 {
            m.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
        }
    } else {
        m.header.flags = AddressHeaderFlags::Nodad | AddressHeaderFlags::Permanent;
        m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad | AddressFlags::Permanent));
    }
    RouteNetlinkMessage::NewAddress(m)
}

pub fn del_addr(ifindex: u32, net: &IpNet) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelAddress(addr_msg(ifindex, net))
}

/// A route as the executor sends it: devices already resolved to indexes.
#[derive(Clone, Debug)]
pub struct RouteWire {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    pub table: u32,
    pub src: Option<IpAddr>,
    /// RTPROT_*: vnet's own for the routes it adds; a deletion names the route's (the kernel
    /// deletes only a route of the protocol asked for), as does the undo that puts it back.
    pub protocol: u8,
}

fn route_msg(r: &RouteWire) -> RouteMessage {
    let mut m = RouteMessage::default();
    let a = r.dst.addr();
    m.header.address_family = family(&a);
    m.header.destination_prefix_length = r.dst.prefix_len();
    m.header.protocol = RouteProtocol::from(r.protocol);
    m.header.kind = RouteType::Unicast;
    m.header.scope = if r.via.is_none() && r.dst.addr().is_ipv4() { RouteScope::Link } else { RouteScope::Universe };
    if r.table < 256 {
        m.header.table = r.table as u8;
    } else {
        m.header.table = RouteHeader::RT_TABLE_UNSPEC;
    }
    m.attributes.push(RouteAttribute::Table(r.table));
    if r.dst.prefix_len() > 0 {
        m.attributes.push(RouteAttribute::Destination(RouteAddress::from(a)));
    }
    if let Some(v) = r.via {
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(v)));
    }
    if let Some(o) = r.oif {
        m.attributes.push(RouteAttribute::Oif(o));
    }
    if let Some(p) = r.metric {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    if let Some(s) = r.src {
        m.attributes.push(RouteAttribute::PrefSource(RouteAddress::from(s)));
    }
    m
}

pub fn new_route(r: &RouteWire) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewRoute(route_msg(r))
}

pub fn del_route(r: &RouteWire) -> RouteNetlinkMessage {
    let mut m = route_msg(r);
    // Deletion matches on what is given; scope "nowhere" matches any scope.
    m.header.scope = RouteScope::NoWhere;
    RouteNetlinkMessage::DelRoute(m)
}
