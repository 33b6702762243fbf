//! Bridge kind: a bridge on the host (made on first use, never removed: other attachments and
//! the host's own configuration may rely on it) and per attachment a veth pair, its container
//! end born in the container's namespace with its final name, its host end a port of the
//! bridge. With `isGateway` the bridge holds each subnet's gateway address and the host
//! forwards, as the reference plugin does.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::{container_iface, host_iface, mark_and_up, Ctx, Made};
use crate::cni::conf::NetConf;
use crate::cni::error::{code, CniError};
use crate::cni::netops::{self, Ns};
use crate::cni::result::{CniOutput, Route};
use crate::kernel::kinds;
use crate::kernel::msg::{self, LinkBase, LinkSet};
use crate::kernel::nl::Request;
use crate::model::kind::{BridgeSpec, KindSpec};
use crate::observed::ObservedLink;

/// The host end's name: stable per attachment, so a retried ADD or a DEL without a record
/// finds it. `veth` + 8 hex digits, like the reference plugin's random names.
pub fn host_name(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in network.bytes().chain([0]).chain(container_id.bytes()).chain([0]).chain(ifname.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("veth{h:08x}")
}

/// The host bridge, created (up) if missing.
fn ensure_bridge(conf: &NetConf, host: &mut Ns) -> Result<ObservedLink, CniError> {
    let name = conf.bridge.as_deref().expect("bridge kind has a bridge name");
    if let Some(l) = host.link(name)? {
        if l.kind.as_deref() != Some("bridge") {
            return Err(CniError::with(
                code::CONFLICT,
                format!("{name} already exists but is not a bridge"),
                format!("it is a {}", l.kind.as_deref().unwrap_or("device without kind")),
            ));
        }
        if !l.up {
            host.send("bring the bridge up", vec![Request::new(msg::set_link(l.ifindex, None, &LinkSet { up: Some(true), ..Default::default() }), 0)])?;
        }
        return Ok(l);
    }
    let base = LinkBase { name: name.to_string(), mtu: conf.mtu, up: true, ..Default::default() };
    let info = kinds::link_info(&KindSpec::Bridge(BridgeSpec::default()));
    match host.nl().request(msg::new_link(&base, info), NLM_F_CREATE | NLM_F_EXCL) {
        Ok(_) => {}
        Err(e) if e.errno == libc::EEXIST => {} // made meanwhile by a concurrent ADD of another network
        Err(e) => return Err(CniError::kernel(format!("create bridge {name}"), &e)),
    }
    let l = host.link(name)?.ok_or_else(|| CniError::new(code::KERNEL, format!("bridge {name} vanished after creation")))?;
    if conf.promisc_mode {
        let mut m = LinkMessage::default();
        m.header.index = l.ifindex;
        m.header.flags = LinkFlags::Promisc;
        m.header.change_mask = LinkFlags::Promisc;
        host.send("set the bridge promiscuous", vec![Request::new(RouteNetlinkMessage::SetLink(m), 0)])?;
    }
    Ok(l)
}

/// An index for the host end, chosen so the message marking it can follow its creation in the
/// same write: far above the kernel's own, random, unused.
fn fresh_index(existing: &[ObservedLink]) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let i = 0x1000_0000 + (h.finish() as u32 % 0x5000_0000);
        if !existing.iter().any(|l| l.ifindex == i) {
            return i;
        }
    }
}

pub(super) fn create(ctx: &Ctx, host: &mut Ns, cont: &mut Ns) -> Result<Made, CniError> {
    let conf = ctx.conf;
    let br = ensure_bridge(conf, host)?;
    let hname = host_name(&conf.name, &ctx.env.container_id, &ctx.env.ifname);
    let existing = host.links()?;
    if let Some(old) = existing.iter().find(|l| l.name == hname) {
        if old.alias.as_deref() != Some(ctx.mark.as_str()) {
            return Err(CniError::with(code::CONFLICT, format!("host device {hname} already exists"), "it is not this attachment's"));
        }
        // Left by an ADD that failed before it could clean up.
        host.delete(old.ifindex)?;
    }
    let index = fresh_index(&existing);
    let peer = LinkBase { name: ctx.env.ifname.clone(), mtu: conf.mtu, mac: conf.mac, netns_fd: Some(cont.fd()), ..Default::default() };
    let base = LinkBase { name: hname.clone(), mtu: conf.mtu, master: Some(br.ifindex), up: true, ..Default::default() };
    let mut create = msg::new_link(&base, Some(kinds::veth_info(msg::link_with(&peer))));
    if let RouteNetlinkMessage::NewLink(l) = &mut create {
        l.header.index = index;
    }
    let mark = LinkSet { alias: Some(ctx.mark.clone()), ..Default::default() };
    let mut reqs = vec![Request::new(create, NLM_F_CREATE | NLM_F_EXCL), Request::new(msg::set_link(index, None, &mark), 0).glued()];
    if conf.hairpin_mode {
        reqs.push(Request::new(msg::set_link(index, None, &LinkSet { info: Some(kinds::bridge_port_info(true)), ..Default::default() }), 0));
    }
    host.send(&format!("create veth {hname} / {}", ctx.env.ifname), reqs)?;
    let made = (|| {
        let c = mark_and_up(cont, &ctx.env.ifname, &ctx.mark, true)?;
        let h = host.link(&hname)?.ok_or_else(|| CniError::new(code::KERNEL, format!("host device {hname} vanished")))?;
        let now = host.link(&br.name)?.unwrap_or(br.clone());
        Ok(Made {
            interfaces: vec![host_iface(&now), host_iface(&h), container_iface(ctx, &c)],
            container: 2,
            container_ifindex: c.ifindex,
            host_ifname: Some(hname.clone()),
            bridge_mac: br.mac,
        })
    })();
    if made.is_err() {
        let _ = host.delete(index);
    }
    made
}

/// Gateways: each IP configuration without one gets the subnet's first address when the bridge
/// is the gateway; the bridge then holds it (with the subnet's prefix), the host forwards, and
/// with `isDefaultGateway` a default route through it joins the result. The bridge's MAC is
/// pinned to what it was before this port joined: a gateway's MAC must not follow its ports.
pub(super) fn after_ipam(ctx: &Ctx, host: &mut Ns, made: &mut Made, ipam: &mut CniOutput) -> Result<(), CniError> {
    let conf = ctx.conf;
    if !conf.is_gateway {
        return Ok(());
    }
    let br_name = conf.bridge.as_deref().expect("bridge kind has a bridge name");
    let br = host.link(br_name)?.ok_or_else(|| CniError::new(code::KERNEL, format!("bridge {br_name} vanished")))?;
    let mut reqs = Vec::new();
    let mut families = (false, false);
    for c in ipam.ips.iter_mut() {
        let gw = *c.gateway.get_or_insert_with(|| netops::first_host(&c.address));
        let net = ipnet::IpNet::new(gw, c.address.prefix_len()).expect("prefix fits its family");
        reqs.push(netops::add_addr_req(br.ifindex, &net));
        if gw.is_ipv4() {
            families.0 = true;
        } else {
            families.1 = true;
        }
        if conf.is_default_gateway {
            let any = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            let dst: ipnet::IpNet = any.parse().expect("literal");
            if ipam.routes.iter().any(|r| r.dst == dst) {
                return Err(CniError::with(code::INVALID_CONFIG, "isDefaultGateway conflicts with a default route from IPAM", any));
            }
            ipam.routes.push(Route::to(dst, Some(gw)));
        }
    }
    for r in host.nl().batch(reqs) {
        netops::exists_ok(r).map_err(|e| CniError::kernel(format!("add the gateway address to {br_name}"), &e))?;
    }
    // A bridge left without ports has no MAC (all zeros) until one joins: pin the one it took.
    let mac = made.bridge_mac.filter(|m| m.iter().any(|b| *b != 0)).or(br.mac);
    if let Some(mac) = mac {
        host.send("pin the bridge's MAC", vec![Request::new(msg::set_link(br.ifindex, None, &LinkSet { mac: Some(mac), ..Default::default() }), 0)])?;
        made.interfaces[0].mac = Some(crate::model::lab::format_mac(&mac));
    }
    if families.0 {
        host.sysctl("net.ipv4.ip_forward", "1")?;
    }
    if families.1 {
        host.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    }
    Ok(())
}

pub(super) fn check(ctx: &Ctx, host: &mut Ns, cont_link: &ObservedLink) -> Result<(), CniError> {
    let conf = ctx.conf;
    let br_name = conf.bridge.as_deref().expect("bridge kind has a bridge name");
    let br = host.link(br_name)?.ok_or_else(|| CniError::check(format!("bridge {br_name} is missing")))?;
    if br.kind.as_deref() != Some("bridge") {
        return Err(CniError::check(format!("{br_name} is not a bridge")));
    }
    if cont_link.kind.as_deref() != Some("veth") {
        return Err(CniError::check(format!("{} is a {} instead of a veth", cont_link.name, cont_link.kind.as_deref().unwrap_or("device"))));
    }
    let hname = host_name(&conf.name, &ctx.env.container_id, &ctx.env.ifname);
    let h = host.link(&hname)?.ok_or_else(|| CniError::check(format!("host end {hname} is missing")))?;
    if h.master != Some(br.ifindex) {
        return Err(CniError::check(format!("host end {hname} is not a port of {br_name}")));
    }
    if cont_link.link != Some(h.ifindex) {
        return Err(CniError::check(format!("{} is not paired with host end {hname}", cont_link.name)));
    }
    if !h.up {
        return Err(CniError::check(format!("host end {hname} is down")));
    }
    Ok(())
}

pub(super) fn status(conf: &NetConf, host: &mut Ns) -> Result<(), CniError> {
    let name = conf.bridge.as_deref().expect("bridge kind has a bridge name");
    match host.link(name)? {
        Some(l) if l.kind.as_deref() != Some("bridge") => {
            Err(CniError::with(code::NOT_AVAILABLE, format!("{name} exists but is not a bridge"), "ADD would fail"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_and_distinct() {
        let a = host_name("n", "c1", "eth0");
        assert_eq!(a, host_name("n", "c1", "eth0"));
        assert_ne!(a, host_name("n", "c1", "eth1"));
        assert_ne!(a, host_name("n2", "c1", "eth0"));
        assert_eq!(a.len(), 12);
    }
}
