//! macvlan, ipvlan and vlan: a device on a host device (`master`, default: the device of the
//! host's default route), created from the host's socket and born directly in the container's
//! namespace with its final name (IFLA_NET_NS_FD), so it is never moved or renamed.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::{container_iface, mark_and_up, with_lower, Ctx, Made};
use crate::cni::conf::{Kind, NetConf};
use crate::cni::error::{code, CniError};
use crate::cni::netops::Ns;
use crate::kernel::kinds;
use crate::kernel::msg::{self, LinkBase};
use crate::kernel::nl::Request;
use crate::model::kind::{IpvlanSpec, KindSpec, MacvlanSpec, VlanSpec};
use crate::observed::ObservedLink;

fn spec(kind: &Kind, master: &str) -> KindSpec {
    match kind {
        Kind::Macvlan(m) => KindSpec::Macvlan(MacvlanSpec { link: master.into(), mode: Some(*m), macs: Vec::new() }),
        Kind::Ipvlan(m) => KindSpec::Ipvlan(IpvlanSpec { link: master.into(), mode: Some(*m), flag: None }),
        Kind::Vlan(id) => KindSpec::Vlan(VlanSpec { link: master.into(), id: *id, protocol: None }),
        _ => unreachable!("not a device on a lower"),
    }
}

/// The master device: as configured, or the one the host's default route leaves through.
fn master(conf: &NetConf, host: &mut Ns) -> Result<ObservedLink, CniError> {
    let name = match &conf.master {
        Some(m) => m.clone(),
        None => {
            let (_, routes) = host.addrs_routes()?;
            let oif = routes
                .iter()
                .find(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() && r.table == 254)
                .and_then(|r| r.oif)
                .ok_or_else(|| CniError::config(format!("kind {} needs `master`: the host has no default route to take it from", conf.kind.name())))?;
            host.links()?.into_iter().find(|l| l.ifindex == oif).map(|l| l.name).unwrap_or_default()
        }
    };
    host.link(&name)?
        .ok_or_else(|| CniError::with(code::INVALID_CONFIG, format!("master device {name} not found"), "it must exist in the runtime's network namespace"))
}

pub(super) fn create(ctx: &Ctx, host: &mut Ns, cont: &mut Ns) -> Result<Made, CniError> {
    let conf = ctx.conf;
    let m = master(conf, host)?;
    let kind = spec(&conf.kind, &m.name);
    // ipvlan devices share their master's MAC address.
    let mac = if matches!(conf.kind, Kind::Ipvlan(_)) { None } else { conf.mac };
    let base = LinkBase { name: ctx.env.ifname.clone(), mtu: conf.mtu, mac, netns_fd: Some(cont.fd()), ..Default::default() };
    let create = with_lower(msg::new_link(&base, kinds::link_info(&kind)), m.ifindex);
    host.send(&format!("create {} {} on {}", kind.name(), ctx.env.ifname, m.name), vec![Request::new(create, NLM_F_CREATE | NLM_F_EXCL)])?;
    let made = (|| {
        if matches!(conf.kind, Kind::Macvlan(_)) {
            // Neighbours learn the new MAC at once (the reference plugin sets this too).
            let key = format!("net/ipv4/conf/{}/arp_notify", ctx.env.ifname);
            cont.sysctl(&key, "1")?;
        }
        let c = mark_and_up(cont, &ctx.env.ifname, &ctx.mark, true)?;
        Ok(Made { interfaces: vec![container_iface(ctx, &c)], container: 0, container_ifindex: c.ifindex, host_ifname: None, bridge_mac: None })
    })();
    if made.is_err() {
        if let Ok(Some(l)) = cont.link(&ctx.env.ifname) {
            let _ = cont.delete(l.ifindex);
        }
    }
    made
}

pub(super) fn check(ctx: &Ctx, host: &mut Ns, have: &ObservedLink) -> Result<(), CniError> {
    let conf = ctx.conf;
    let m = master(conf, host).map_err(|e| CniError::check(e.msg))?;
    let want = spec(&conf.kind, &m.name);
    if have.kind.as_deref() != want.kernel_kind() {
        return Err(CniError::check(format!("{} is a {} instead of a {}", have.name, have.kind.as_deref().unwrap_or("device"), want.name())));
    }
    if have.spec.as_ref().is_some_and(|s| want.drift(Some(s)) != crate::model::kind::Drift::Same) {
        return Err(CniError::check(format!("{} has other {} options than configured", have.name, want.name())));
    }
    if have.link != Some(m.ifindex) {
        return Err(CniError::check(format!("{} does not sit on master {}", have.name, m.name)));
    }
    Ok(())
}

pub(super) fn status(conf: &NetConf, host: &mut Ns) -> Result<(), CniError> {
    master(conf, host).map_err(|e| CniError::with(code::NOT_AVAILABLE, e.msg, e.details))?;
    Ok(())
}
