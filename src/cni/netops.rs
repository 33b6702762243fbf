//! The kernel side of vnet-cni, over vnet's kernel layer: a namespace handle (fd + netlink
//! socket opened inside it), device lookups, addresses and routes as the reference plugins set
//! them (routes with protocol `boot`, scope universe unless told), sysctls inside a namespace.

use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::error::{code, CniError};
use super::result::Route;
use crate::kernel::handle::{self, NsHandle};
use crate::kernel::nl::{KernelError, Netlink, Request};
use crate::kernel::{msg, netns, observe, sysctl};
use crate::observed::{ObservedAddr, ObservedLink, ObservedRoute};

/// The main routing table.
const MAIN: u32 = 254;

/// One network namespace, ready for requests: vnet's namespace handle (fd + a netlink socket
/// opened inside it) and the path it was opened from.
pub struct Ns {
    pub handle: NsHandle,
    /// Empty for the plugin's own namespace.
    pub path: String,
}

impl Ns {
    /// The namespace the plugin runs in: the runtime's "host".
    pub fn host() -> Result<Ns, CniError> {
        let handle = handle::open_root("host").map_err(|e| CniError::io("open a netlink socket in the host namespace", &e))?;
        Ok(Ns { handle, path: String::new() })
    }

    /// A container's namespace by path: `None` when the path does not exist (the container
    /// is gone); an error when it exists but is not a network namespace.
    pub fn open(path: &str) -> Result<Option<Ns>, CniError> {
        let fd = match std::fs::File::open(path) {
            Ok(f) => OwnedFd::from(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CniError::io(format!("open CNI_NETNS {path}"), &e)),
        };
        if !is_netns(&fd) {
            return Err(CniError::with(code::INVALID_ENV, "CNI_NETNS is not a network namespace", path.to_string()));
        }
        let nl = netns::run_in(Some(&fd), Netlink::open).and_then(|r| r).map_err(|e| CniError::io(format!("open a netlink socket in {path}"), &e))?;
        let handle = NsHandle { node: "container".into(), netns: None, fd, nl, ifindex: Default::default() };
        Ok(Some(Ns { handle, path: path.to_string() }))
    }

    /// The namespace's file descriptor (IFLA_NET_NS_FD of devices born there).
    pub fn fd(&self) -> RawFd {
        self.handle.raw_fd()
    }

    /// The namespace's netlink socket.
    pub fn nl(&mut self) -> &mut Netlink {
        &mut self.handle.nl
    }

    /// Runs `f` on a thread inside this namespace (sysctls, tun ioctls).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, CniError> {
        netns::run_in(Some(&self.handle.fd), f).map_err(|e| CniError::io("enter a network namespace", &e))
    }

    /// A device by name.
    pub fn link(&mut self, name: &str) -> Result<Option<ObservedLink>, CniError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.handle.nl.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(reply) => Ok(reply.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(observe::decode_link(&l)),
                _ => None,
            })),
            Err(e) if e.errno == libc::ENODEV => Ok(None),
            Err(e) => Err(CniError::kernel(format!("look up device {name}"), &e)),
        }
    }

    pub fn links(&mut self) -> Result<Vec<ObservedLink>, CniError> {
        observe::links(&mut self.handle.nl).map_err(|e| CniError::kernel("list devices", &e))
    }

    /// Addresses and routes of the namespace.
    pub fn addrs_routes(&mut self) -> Result<(Vec<ObservedAddr>, Vec<ObservedRoute>), CniError> {
        let o = observe::observe_ns(&mut self.handle.nl, &[]).map_err(|e| CniError::kernel("dump addresses and routes", &e))?;
        Ok((o.addrs, o.routes))
    }

    /// Sends requests in order on this namespace's socket; the first failure is the error.
    pub fn send(&mut self, what: &str, reqs: Vec<Request>) -> Result<Vec<Vec<RouteNetlinkMessage>>, CniError> {
        let mut out = Vec::new();
        for r in self.handle.nl.batch(reqs) {
            out.push(r.map_err(|e| CniError::kernel(what.to_string(), &e))?);
        }
        Ok(out)
    }

    /// Deletes a device by index; a device already gone is fine.
    pub fn delete(&mut self, ifindex: u32) -> Result<(), CniError> {
        match self.handle.nl.request(msg::del_link(ifindex), 0) {
            Ok(_) => Ok(()),
            Err(e) if e.errno == libc::ENODEV => Ok(()),
            Err(e) => Err(CniError::kernel("delete device", &e)),
        }
    }

    /// Writes a sysctl inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), CniError> {
        let (k, v) = (key.to_string(), value.to_string());
        self.run(move || sysctl::write(&k, &v))?.map_err(|e| CniError::io(format!("set {key}"), &e))
    }
}

fn is_netns<F: AsFd>(fd: F) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    use std::os::fd::AsRawFd;
    // SAFETY: fd is open, st is a valid out-pointer.
    if unsafe { libc::fstatfs(fd.as_fd().as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == NSFS_MAGIC && is_net_type(fd)
}

/// NS_GET_NSTYPE: the namespace behind an nsfs fd is a network namespace.
fn is_net_type<F: AsFd>(fd: F) -> bool {
    use std::os::fd::AsRawFd;
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)
                                                 // SAFETY: the ioctl takes no argument.
    let t = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NS_GET_NSTYPE as _) };
    t == libc::CLONE_NEWNET
}

/// RTM_NEWROUTE as the reference plugins send it (netlink library defaults: protocol boot,
/// scope universe, main table), with the 1.1 route fields when given.
pub fn new_route(r: &Route, gw: Option<IpAddr>, oif: u32) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    let a = r.dst.addr();
    m.header.address_family = if a.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.destination_prefix_length = r.dst.prefix_len();
    m.header.protocol = RouteProtocol::Boot;
    m.header.kind = RouteType::Unicast;
    m.header.scope = r.scope.map(RouteScope::from).unwrap_or(RouteScope::Universe);
    let table = r.table.unwrap_or(MAIN);
    m.header.table = if table < 256 { table as u8 } else { RouteHeader::RT_TABLE_UNSPEC };
    m.attributes.push(RouteAttribute::Table(table));
    if r.dst.prefix_len() > 0 {
        m.attributes.push(RouteAttribute::Destination(RouteAddress::from(r.dst.trunc().addr())));
    }
    if let Some(g) = gw {
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(g)));
    }
    m.attributes.push(RouteAttribute::Oif(oif));
    if let Some(p) = r.priority {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    let mut metrics = Vec::new();
    if let Some(x) = r.mtu {
        metrics.push(RouteMetric::Mtu(x));
    }
    if let Some(x) = r.advmss {
        metrics.push(RouteMetric::Advmss(x));
    }
    if !metrics.is_empty() {
        m.attributes.push(RouteAttribute::Metrics(metrics));
    }
    RouteNetlinkMessage::NewRoute(m)
}

/// Whether an observed route is the one `r` (with next hop `gw`) asked for on device `oif`.
pub fn route_present(have: &[ObservedRoute], r: &Route, gw: Option<IpAddr>, oif: u32) -> bool {
    let table = r.table.unwrap_or(MAIN);
    have.iter().any(|h| h.dst == r.dst.trunc() && h.table == table && h.via == gw && h.oif == Some(oif))
}

/// Adds an address; one already there is fine (a retried ADD, a shared gateway).
pub fn add_addr_req(ifindex: u32, net: &IpNet) -> Request {
    Request::new(msg::new_addr(ifindex, net), NLM_F_CREATE | NLM_F_EXCL)
}

/// Ignores "exists" for requests where an earlier identical object is fine.
pub fn exists_ok(r: Result<Vec<RouteNetlinkMessage>, KernelError>) -> Result<(), KernelError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.errno == libc::EEXIST => Ok(()),
        Err(e) => Err(e),
    }
}

/// The first usable address of a subnet (the gateway the reference bridge plugin picks when
/// IPAM gives none).
pub fn first_host(net: &IpNet) -> IpAddr {
    match net.trunc() {
        IpNet::V4(n) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(n.network()).wrapping_add(1))),
        IpNet::V6(n) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(n.network()).wrapping_add(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_defaults_to_the_first_host() {
        assert_eq!(first_host(&"10.1.0.77/24".parse().unwrap()).to_string(), "10.1.0.1");
        assert_eq!(first_host(&"fd00:1::9/64".parse().unwrap()).to_string(), "fd00:1::1");
    }

    #[test]
    fn routes_carry_the_reference_defaults_and_1_1_fields() {
        let r = Route { mtu: Some(1400), priority: Some(5), ..Route::to("10.2.0.0/16".parse().unwrap(), None) };
        let RouteNetlinkMessage::NewRoute(m) = new_route(&r, Some("10.1.0.1".parse().unwrap()), 7) else { panic!() };
        assert_eq!(m.header.protocol, RouteProtocol::Boot);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(m.header.table, 254);
        assert!(m.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(m.attributes.contains(&RouteAttribute::Priority(5)));
        assert!(m.attributes.contains(&RouteAttribute::Metrics(vec![RouteMetric::Mtu(1400)])));
    }
}
