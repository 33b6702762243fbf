//! The commands: ADD, DEL, CHECK, STATUS and GC, each over the kinds, IPAM and the records.

use serde_json::Value;

use super::conf::{parse_mark, NetConf};
use super::env::Env;
use super::error::{code, CniError};
use super::ipam;
use super::kinds::{self, Ctx};
use super::netops::Ns;
use super::result::CniOutput;
use super::store::{self, Record};

fn lock(conf: &NetConf) -> Result<store::Lock, CniError> {
    store::lock(&conf.state_dir, &conf.name).map_err(|e| CniError::io(format!("lock the state of network {} in {}", conf.name, conf.state_dir.display()), &e))
}

fn prev(conf: &NetConf) -> Result<Option<CniOutput>, CniError> {
    conf.prev_result.as_ref().map(|v| CniOutput::parse(v, "prevResult")).transpose()
}

/// ADD: devices, then IPAM, then the container's addresses and routes; undone in reverse on
/// any failure, so a failed ADD leaves nothing behind.
pub fn add(conf: &NetConf, env: &Env) -> Result<Value, CniError> {
    let prev = prev(conf)?;
    let mut cont =
        Ns::open(&env.netns)?.ok_or_else(|| CniError::with(code::UNKNOWN_CONTAINER, "the container's network namespace does not exist", env.netns.clone()))?;
    let mut host = Ns::host()?;
    let _lock = lock(conf)?;
    let ctx = Ctx { conf, env, mark: conf.mark(&env.container_id, &env.ifname) };
    let mut made = kinds::create(&ctx, &mut host, &mut cont)?;
    let host_ifname = made.host_ifname.clone();
    let undo_devices = |host: &mut Ns, cont: &mut Ns| {
        let _ = kinds::remove(conf.kind.name(), &ctx.mark, &env.ifname, host_ifname.as_deref(), host, Some(cont));
    };
    let mut ip = match ipam::add(conf, env) {
        Ok(r) => r,
        Err(e) => {
            undo_devices(&mut host, &mut cont);
            return Err(e);
        }
    };
    let configured = kinds::after_ipam(&ctx, &mut host, &mut made, &mut ip).and_then(|()| kinds::configure(&mut cont, made.container_ifindex, &ip));
    if let Err(e) = configured {
        let _ = ipam::del(conf, env);
        undo_devices(&mut host, &mut cont);
        return Err(e);
    }
    let dns = if conf.dns.is_empty() { ip.dns.clone() } else { conf.dns.clone() };
    let mine = CniOutput {
        interfaces: made.interfaces.clone(),
        ips: ip
            .ips
            .iter()
            .cloned()
            .map(|mut c| {
                c.interface = Some(made.container);
                c
            })
            .collect(),
        routes: ip.routes.clone(),
        dns,
    };
    let all = match prev {
        Some(p) => p.chain(mine),
        None => mine,
    };
    let out = all.to_json(&conf.cni_version, conf.version);
    let rec = Record {
        network: conf.name.clone(),
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        netns: env.netns.clone(),
        kind: conf.kind.name().to_string(),
        host_ifname: made.host_ifname.clone(),
        config: String::from_utf8_lossy(&conf.raw).to_string(),
        result: out.clone(),
    };
    if let Err(e) = store::save(&conf.state_dir, &rec) {
        let _ = ipam::del(conf, env);
        undo_devices(&mut host, &mut cont);
        return Err(CniError::io("write the attachment record", &e));
    }
    Ok(out)
}

/// DEL: idempotent. Releases IPAM and removes the attachment's marked devices, whatever is
/// left of them: called twice, for a namespace that is gone, after a reboot.
pub fn del(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let _lock = lock(conf)?;
    let rec = store::load(&conf.state_dir, &conf.name, &env.container_id, &env.ifname).ok().flatten();
    let mark = conf.mark(&env.container_id, &env.ifname);
    let netns = if env.has_netns() { env.netns.clone() } else { rec.as_ref().map(|r| r.netns.clone()).unwrap_or_default() };
    let removed = remove_devices(conf.kind.name(), &mark, &conf.name, &env.container_id, &env.ifname, &netns, rec.as_ref());
    // The record stays while IPAM still holds the addresses, so GC can retry.
    ipam::del(conf, env)?;
    removed?;
    store::remove(&conf.state_dir, &conf.name, &env.container_id, &env.ifname).map_err(|e| CniError::io("remove the attachment record", &e))
}

fn remove_devices(kind: &str, mark: &str, network: &str, container_id: &str, ifname: &str, netns: &str, rec: Option<&Record>) -> Result<(), CniError> {
    let mut host = Ns::host()?;
    // A namespace that is gone (or a path that no longer names one) took its devices with it.
    let mut cont = if netns.is_empty() { None } else { Ns::open(netns).ok().flatten() };
    let host_ifname = rec.and_then(|r| r.host_ifname.clone()).or_else(|| (kind == "bridge").then(|| kinds::bridge_host_name(network, container_id, ifname)));
    kinds::remove(kind, mark, ifname, host_ifname.as_deref(), &mut host, cont.as_mut())
}

/// CHECK: what ADD made is still there as the previous result says.
pub fn check(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let prev = prev(conf)?.ok_or_else(|| CniError::config("CHECK needs `prevResult`, the result of the ADD to check"))?;
    let mut cont =
        Ns::open(&env.netns)?.ok_or_else(|| CniError::with(code::UNKNOWN_CONTAINER, "the container's network namespace does not exist", env.netns.clone()))?;
    let mut host = Ns::host()?;
    let ctx = Ctx { conf, env, mark: conf.mark(&env.container_id, &env.ifname) };
    kinds::check(&ctx, &mut host, &mut cont, &prev)?;
    ipam::check(conf, env)
}

/// STATUS: whether an ADD could succeed now.
pub fn status(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let mut host = Ns::host().map_err(|e| CniError::with(code::NOT_AVAILABLE, e.msg, e.details))?;
    kinds::status(conf, &mut host)?;
    let probe = match &conf.kind {
        super::conf::Kind::Macvlan(_) => Some("macvlan"),
        super::conf::Kind::Ipvlan(_) => Some("ipvlan"),
        super::conf::Kind::Vlan(_) => Some("vlan"),
        _ => None,
    };
    if let Some(feature) = probe {
        let missing = crate::lifecycle::preflight::missing_named(&[feature])
            .map_err(|e| CniError::with(code::NOT_AVAILABLE, "cannot probe the kernel", e.to_string()))?;
        if !missing.is_empty() {
            return Err(CniError::with(code::NOT_AVAILABLE, format!("the kernel cannot make {feature} devices"), format!("missing: {}", missing.join(", "))));
        }
    }
    std::fs::create_dir_all(&conf.state_dir)
        .map_err(|e| CniError::with(code::NOT_AVAILABLE, format!("state directory {} is not usable", conf.state_dir.display()), e.to_string()))?;
    if let Some((t, _)) = &conf.ipam {
        if t != ipam::BUILTIN_STATIC {
            super::exec::find(t, &env.path).map_err(|e| CniError::with(code::NOT_AVAILABLE, e.msg, e.details))?;
        }
    }
    ipam::network_command(conf, env, "STATUS")
}

/// GC: every recorded attachment of the network that the runtime no longer lists is deleted
/// (IPAM released with the configuration it was added with); marked host devices of the
/// network with no record and no listing go too. Continues past failures, reports them all.
pub fn gc(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let valid = conf.valid_attachments.clone().unwrap_or_default();
    let is_valid = |cid: &str, ifname: &str| valid.iter().any(|a| a.container_id == cid && a.ifname == ifname);
    let _lock = lock(conf)?;
    let (records, mut problems) = store::list(&conf.state_dir, &conf.name);
    for r in records.iter().filter(|r| !is_valid(&r.container_id, &r.ifname)) {
        let old = NetConf::parse(r.config.as_bytes(), "DEL").unwrap_or_else(|_| conf.clone());
        let mut e = env.clone();
        e.container_id = r.container_id.clone();
        e.ifname = r.ifname.clone();
        e.netns = r.netns.clone();
        let mark = conf.mark(&r.container_id, &r.ifname);
        if let Err(x) = remove_devices(&r.kind, &mark, &conf.name, &r.container_id, &r.ifname, &r.netns, Some(r)) {
            problems.push(format!("{}/{}: {x}", r.container_id, r.ifname));
            continue;
        }
        if let Err(x) = ipam::del_with(&old, &e, r.config.as_bytes()) {
            problems.push(format!("{}/{}: release IPAM: {x}", r.container_id, r.ifname));
            continue;
        }
        if let Err(x) = store::remove(&conf.state_dir, &conf.name, &r.container_id, &r.ifname) {
            problems.push(format!("{}/{}: remove record: {x}", r.container_id, r.ifname));
        }
    }
    // Host devices of this network that no record accounts for (a record lost with its disk).
    match Ns::host().and_then(|mut h| Ok((h.links()?, h))) {
        Ok((links, mut host)) => {
            for l in links {
                let Some((net, cid, ifname)) = l.alias.as_deref().and_then(parse_mark) else {
                    continue;
                };
                if net != conf.name || is_valid(cid, ifname) || records.iter().any(|r| r.container_id == cid && r.ifname == ifname && is_valid(cid, ifname)) {
                    continue;
                }
                if let Err(x) = host.delete(l.ifindex) {
                    problems.push(format!("delete host device {}: {x}", l.name));
                }
            }
        }
        Err(x) => problems.push(x.to_string()),
    }
    if let Err(x) = ipam::network_command(conf, env, "GC") {
        problems.push(format!("IPAM GC: {x}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::with(code::IO_FAILURE, "GC could not remove everything", problems.join("; ")))
    }
}
