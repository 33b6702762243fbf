//! tap: a persistent tap device made in the container's namespace with TUNSETIFF (rtnetlink
//! can neither create nor delete tun/tap devices), optionally a port of a bridge there
//! (`bridge`, made if missing), for a VM or a userspace stack inside the container.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::{container_iface, Ctx, Made};
use crate::cni::error::{code, CniError};
use crate::cni::netops::Ns;
use crate::kernel::kinds;
use crate::kernel::msg::{self, LinkBase, LinkSet};
use crate::kernel::nl::Request;
use crate::kernel::tun::{self, TunFlags};
use crate::model::kind::{BridgeSpec, KindSpec};
use crate::observed::ObservedLink;

fn flags(multi_queue: bool) -> TunFlags {
    TunFlags { tap: true, multi_queue, vnet_hdr: false }
}

pub(super) fn create(ctx: &Ctx, cont: &mut Ns) -> Result<Made, CniError> {
    let conf = ctx.conf;
    let name = ctx.env.ifname.clone();
    let (owner, group, mq) = (conf.owner, conf.group, conf.multi_queue);
    cont.run(move || tun::create(&name, flags(mq), owner, group))?
        .map_err(|e| CniError::with(code::KERNEL, format!("create tap {}", ctx.env.ifname), e.to_string()))?;
    let made = (|| {
        let master = match &conf.bridge {
            Some(b) => Some(container_bridge(cont, b)?),
            None => None,
        };
        let set = LinkSet { alias: Some(ctx.mark.clone()), mtu: conf.mtu, mac: conf.mac, master, up: Some(true), ..Default::default() };
        cont.send("set up the tap device", vec![Request::new(msg::set_link(0, Some(&ctx.env.ifname), &set), 0)])?;
        let c = cont.link(&ctx.env.ifname)?.ok_or_else(|| CniError::new(code::KERNEL, "tap device vanished"))?;
        Ok(Made { interfaces: vec![container_iface(ctx, &c)], container: 0, container_ifindex: c.ifindex, host_ifname: None, bridge_mac: None })
    })();
    if made.is_err() {
        let name = ctx.env.ifname.clone();
        let _ = cont.run(move || tun::delete(&name, flags(mq)));
    }
    made
}

/// A bridge inside the container (made up if missing).
fn container_bridge(cont: &mut Ns, name: &str) -> Result<u32, CniError> {
    if let Some(l) = cont.link(name)? {
        if l.kind.as_deref() != Some("bridge") {
            return Err(CniError::with(code::CONFLICT, format!("{name} in the container is not a bridge"), ""));
        }
        return Ok(l.ifindex);
    }
    let base = LinkBase { name: name.to_string(), up: true, ..Default::default() };
    cont.send(
        &format!("create bridge {name} in the container"),
        vec![Request::new(msg::new_link(&base, kinds::link_info(&KindSpec::Bridge(BridgeSpec::default()))), NLM_F_CREATE | NLM_F_EXCL)],
    )?;
    Ok(cont.link(name)?.ok_or_else(|| CniError::new(code::KERNEL, format!("bridge {name} vanished")))?.ifindex)
}

/// Removes a persistent tap: attach with its flags and clear persistence.
pub(super) fn delete(cont: &mut Ns, l: &ObservedLink) -> Result<(), CniError> {
    let mq = matches!(&l.spec, Some(KindSpec::Tap(s)) if s.multi_queue == Some(true));
    let name = l.name.clone();
    cont.run(move || tun::delete(&name, flags(mq)))?.map_err(|e| CniError::with(code::KERNEL, format!("delete tap {}", l.name), e.to_string()))
}

pub(super) fn check(ctx: &Ctx, cont: &mut Ns, have: &ObservedLink) -> Result<(), CniError> {
    if !matches!(have.spec, Some(KindSpec::Tap(_))) {
        return Err(CniError::check(format!("{} is not a tap device", have.name)));
    }
    if let Some(b) = &ctx.conf.bridge {
        let br = cont.link(b)?.ok_or_else(|| CniError::check(format!("bridge {b} is missing from the container")))?;
        if have.master != Some(br.ifindex) {
            return Err(CniError::check(format!("{} is not a port of {b}", have.name)));
        }
    }
    Ok(())
}

pub(super) fn status() -> Result<(), CniError> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err(CniError::with(code::NOT_AVAILABLE, "/dev/net/tun is missing", "load the tun module"));
    }
    Ok(())
}
