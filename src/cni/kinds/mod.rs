//! The device kinds an attachment is made of. Each file creates its devices (container side
//! marked with the attachment's alias), removes only devices carrying that mark, and checks
//! that what ADD made is still there. Shared here: the context, the result of creation, and the
//! container-side configuration every kind ends with (addresses, routes, up).

mod bridge;
mod lowered;
mod tap;

pub use bridge::host_name as bridge_host_name;

use std::net::IpAddr;

use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_route::link::LinkAttribute;

use super::conf::{Kind, NetConf};
use super::env::Env;
use super::error::{code, CniError};
use super::netops::{self, Ns};
use super::result::{CniOutput, Interface};
use crate::kernel::msg::{self, LinkSet};
use crate::kernel::nl::Request;
use crate::model::lab::format_mac;
use crate::observed::ObservedLink;

/// What an invocation works on.
pub struct Ctx<'a> {
    pub conf: &'a NetConf,
    pub env: &'a Env,
    /// The alias every device of this attachment carries.
    pub mark: String,
}

/// What ADD created.
#[derive(Debug)]
pub struct Made {
    /// Interfaces for the result, in the order the reference plugins list them.
    pub interfaces: Vec<Interface>,
    /// Index of the container interface in `interfaces`.
    pub container: usize,
    pub container_ifindex: u32,
    /// The host end of a veth pair.
    pub host_ifname: Option<String>,
    /// The host bridge's MAC before the new port joined (pinned when it becomes a gateway).
    pub bridge_mac: Option<[u8; 6]>,
}

/// Creates the attachment's devices.
pub fn create(ctx: &Ctx, host: &mut Ns, cont: &mut Ns) -> Result<Made, CniError> {
    if let Some(l) = cont.link(&ctx.env.ifname)? {
        let whose = if l.alias.as_deref() == Some(ctx.mark.as_str()) { "made by an earlier ADD of this attachment" } else { "not made by vnet-cni" };
        return Err(CniError::with(
            code::CONFLICT,
            format!("device {} already exists in the container", ctx.env.ifname),
            format!("{} ({whose})", ctx.env.netns),
        ));
    }
    match &ctx.conf.kind {
        Kind::Bridge => bridge::create(ctx, host, cont),
        Kind::Macvlan(_) | Kind::Ipvlan(_) | Kind::Vlan(_) => lowered::create(ctx, host, cont),
        Kind::Tap => tap::create(ctx, cont),
    }
}

/// Kind-specific work once IPAM has answered (a bridge's gateway address), before the
/// container side is configured; may add routes to the result.
pub fn after_ipam(ctx: &Ctx, host: &mut Ns, made: &mut Made, ipam: &mut CniOutput) -> Result<(), CniError> {
    match &ctx.conf.kind {
        Kind::Bridge => bridge::after_ipam(ctx, host, made, ipam),
        _ => Ok(()),
    }
}

/// Removes the devices of an attachment that carry its mark: the container side when the
/// namespace is still there, and the host end of a veth pair.
pub fn remove(kind: &str, mark: &str, ifname: &str, host_ifname: Option<&str>, host: &mut Ns, cont: Option<&mut Ns>) -> Result<(), CniError> {
    if let Some(cont) = cont {
        if let Some(l) = cont.link(ifname)? {
            if l.alias.as_deref() == Some(mark) {
                if l.kind.as_deref() == Some("tun") {
                    tap::delete(cont, &l)?;
                } else {
                    cont.delete(l.ifindex)?;
                }
            }
        }
    }
    if kind == "bridge" {
        if let Some(h) = host_ifname {
            if let Some(l) = host.link(h)? {
                if l.alias.as_deref() == Some(mark) {
                    host.delete(l.ifindex)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks what ADD made against the previous result.
pub fn check(ctx: &Ctx, host: &mut Ns, cont: &mut Ns, prev: &CniOutput) -> Result<(), CniError> {
    let ifname = &ctx.env.ifname;
    let (idx, want) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| &i.name == ifname && i.sandbox.is_some())
        .ok_or_else(|| CniError::check(format!("prevResult lists no container interface {ifname}")))?;
    if want.sandbox.as_deref() != Some(ctx.env.netns.as_str()) {
        return Err(CniError::check(format!("prevResult puts {ifname} in {}, not in CNI_NETNS {}", want.sandbox.as_deref().unwrap_or(""), ctx.env.netns)));
    }
    let have = cont.link(ifname)?.ok_or_else(|| CniError::check(format!("device {ifname} is missing from the container")))?;
    if have.alias.as_deref() != Some(ctx.mark.as_str()) {
        return Err(CniError::check(format!("device {ifname} in the container was not made by this attachment (alias {:?})", have.alias)));
    }
    if let (Some(m), Some(h)) = (&want.mac, have.mac) {
        if !m.eq_ignore_ascii_case(&format_mac(&h)) {
            return Err(CniError::check(format!("device {ifname} has MAC {} instead of {m}", format_mac(&h))));
        }
    }
    if let Some(mtu) = ctx.conf.mtu {
        if have.mtu != mtu {
            return Err(CniError::check(format!("device {ifname} has MTU {} instead of {mtu}", have.mtu)));
        }
    }
    if !have.up {
        return Err(CniError::check(format!("device {ifname} is down")));
    }
    match &ctx.conf.kind {
        Kind::Bridge => bridge::check(ctx, host, &have)?,
        Kind::Macvlan(_) | Kind::Ipvlan(_) | Kind::Vlan(_) => lowered::check(ctx, host, &have)?,
        Kind::Tap => tap::check(ctx, cont, &have)?,
    }
    // Addresses and routes of this interface, as ADD configured them.
    let (addrs, routes) = cont.addrs_routes()?;
    let mine: Vec<_> = prev.ips.iter().filter(|c| c.interface == Some(idx)).collect();
    for c in &mine {
        if !addrs.iter().any(|a| a.ifindex == have.ifindex && a.addr == c.address) {
            return Err(CniError::check(format!("address {} is missing from {ifname}", c.address)));
        }
    }
    // Routes are not tied to interfaces in a result: this attachment's are those through a
    // gateway on one of its subnets, or device routes when no other interface has addresses.
    let mine_owned: Vec<_> = mine.iter().map(|c| (*c).clone()).collect();
    let alone = prev.ips.iter().all(|c| c.interface == Some(idx));
    for r in &prev.routes {
        let gw = r.gw.or_else(|| gateway_for(&mine_owned, r.dst.addr()));
        let ours = match gw {
            Some(g) => mine.iter().any(|c| c.address.contains(&g)),
            None => alone,
        };
        if ours && !netops::route_present(&routes, r, gw, have.ifindex) {
            return Err(CniError::check(format!("route to {} is missing from the container", r.dst)));
        }
    }
    Ok(())
}

/// Whether the network can take an ADD now (STATUS).
pub fn status(conf: &NetConf, host: &mut Ns) -> Result<(), CniError> {
    match &conf.kind {
        Kind::Bridge => bridge::status(conf, host),
        Kind::Macvlan(_) | Kind::Ipvlan(_) | Kind::Vlan(_) => lowered::status(conf, host),
        Kind::Tap => tap::status(),
    }
}

/// The gateway of the IP configuration of `dst`'s family (a route without `gw` goes there).
pub fn gateway_for(ips: &[super::result::IpConfig], dst: IpAddr) -> Option<IpAddr> {
    ips.iter().filter(|c| c.address.addr().is_ipv4() == dst.is_ipv4()).find_map(|c| c.gateway)
}

/// The container side once IPAM answered: addresses, then routes (a route without `gw` uses
/// the gateway of its family, as the reference plugins' ConfigureIface does).
pub fn configure(cont: &mut Ns, ifindex: u32, ipam: &CniOutput) -> Result<(), CniError> {
    let mut reqs: Vec<Request> = ipam.ips.iter().map(|c| netops::add_addr_req(ifindex, &c.address)).collect();
    for r in &ipam.routes {
        let gw = r.gw.or_else(|| gateway_for(&ipam.ips, r.dst.addr()));
        reqs.push(Request::new(netops::new_route(r, gw, ifindex), NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL));
    }
    if reqs.is_empty() {
        return Ok(());
    }
    cont.send("configure addresses and routes in the container", reqs).map(drop)
}

/// Marks a device made in the container (by name: its index is not known to the socket that
/// made it) and brings it up.
pub fn mark_and_up(cont: &mut Ns, ifname: &str, mark: &str, up: bool) -> Result<ObservedLink, CniError> {
    let set = LinkSet { alias: Some(mark.to_string()), up: up.then_some(true), ..Default::default() };
    cont.send("mark the container device", vec![Request::new(msg::set_link(0, Some(ifname), &set), 0)])?;
    cont.link(ifname)?.ok_or_else(|| CniError::new(code::KERNEL, format!("device {ifname} vanished from the container")))
}

/// The result entry of a container interface.
pub fn container_iface(ctx: &Ctx, l: &ObservedLink) -> Interface {
    Interface { name: l.name.clone(), mac: l.mac.map(|m| format_mac(&m)), mtu: Some(l.mtu), sandbox: Some(ctx.env.netns.clone()), ..Default::default() }
}

/// The result entry of a host interface.
pub fn host_iface(l: &ObservedLink) -> Interface {
    Interface { name: l.name.clone(), mac: l.mac.map(|m| format_mac(&m)), mtu: Some(l.mtu), ..Default::default() }
}

/// Adds IFLA_LINK to a create message.
fn with_lower(mut m: netlink_packet_route::RouteNetlinkMessage, lower: u32) -> netlink_packet_route::RouteNetlinkMessage {
    if let netlink_packet_route::RouteNetlinkMessage::NewLink(l) = &mut m {
        l.attributes.push(LinkAttribute::Link(lower));
    }
    m
}
