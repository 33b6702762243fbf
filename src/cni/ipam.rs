//! IP address management. `ipam.type` names a plugin (host-local, static, dhcp, ...) that is
//! found on CNI_PATH and run with the same environment and the same configuration, as the
//! spec's delegation rules say; or `vnet-static`, vnet-cni's built-in static allocator (the
//! reference `static` plugin's fields, no process to start).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::conf::NetConf;
use super::env::Env;
use super::error::{code, CniError};
use super::exec;
use super::result::{CniOutput, Dns, IpConfig, Route};

/// The IPAM type served inside vnet-cni.
pub const BUILTIN_STATIC: &str = "vnet-static";

/// Runs IPAM ADD: the addresses, routes and DNS for the attachment (no interfaces).
pub fn add(conf: &NetConf, env: &Env) -> Result<CniOutput, CniError> {
    match &conf.ipam {
        None => Ok(CniOutput::default()),
        Some((t, v)) if t == BUILTIN_STATIC => builtin(v, conf, env),
        Some((t, _)) => {
            let a = delegate(t, conf, env, "ADD", &conf.raw)?;
            let out = a.ok_or_else(|| CniError::with(code::DECODE_FAILURE, format!("IPAM plugin `{t}` returned no result"), ""))?;
            let mut r = CniOutput::parse(&out, &format!("the result of IPAM plugin `{t}`"))?;
            r.interfaces.clear();
            Ok(r)
        }
    }
}

/// Runs IPAM DEL (releasing the addresses). Built-in static allocations hold nothing.
pub fn del(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    del_with(conf, env, &conf.raw)
}

/// IPAM DEL with a given configuration (GC replays the one recorded at ADD).
pub fn del_with(conf: &NetConf, env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    match &conf.ipam {
        Some((t, _)) if t != BUILTIN_STATIC => delegate(t, conf, env, "DEL", stdin).map(drop),
        _ => Ok(()),
    }
}

/// Runs IPAM CHECK.
pub fn check(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    match &conf.ipam {
        Some((t, v)) if t == BUILTIN_STATIC => builtin(v, conf, env).map(drop),
        Some((t, _)) => delegate(t, conf, env, "CHECK", &conf.raw).map(drop),
        None => Ok(()),
    }
}

/// STATUS and GC go to plugins that know them (spec 1.1.0 and later); an older plugin (the
/// reference host-local before 1.2) answers neither, so it is only required to exist.
pub fn network_command(conf: &NetConf, env: &Env, command: &str) -> Result<(), CniError> {
    let Some((t, _)) = &conf.ipam else {
        return Ok(());
    };
    if t == BUILTIN_STATIC {
        return Ok(());
    }
    let plugin = exec::find(t, &env.path)?;
    let versions = exec::supported_versions(&plugin, &env.vars, &conf.cni_version)?;
    if !versions.iter().any(|v| v == &conf.cni_version) {
        return Ok(());
    }
    delegate(t, conf, env, command, &conf.raw).map(drop)
}

fn delegate(t: &str, conf: &NetConf, env: &Env, command: &str, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let plugin = exec::find(t, &env.path)?;
    let mut vars = env.vars.clone();
    vars.insert("CNI_COMMAND".into(), command.into());
    // GC replays DEL for recorded attachments: their identity, not the GC call's.
    if !env.container_id.is_empty() {
        vars.insert("CNI_CONTAINERID".into(), env.container_id.clone());
    }
    if !env.ifname.is_empty() {
        vars.insert("CNI_IFNAME".into(), env.ifname.clone());
    }
    vars.insert("CNI_NETNS".into(), env.netns.clone());
    let a = match exec::invoke(&plugin, &vars, stdin, None) {
        Err(e) if e.code == code::INCOMPATIBLE_VERSION => {
            // An IPAM plugin older than the configuration (the reference plugins before 1.2
            // stop at 1.0.0) gets the same configuration at the newest version it speaks;
            // its result is read whatever its version.
            let theirs = exec::supported_versions(&plugin, &env.vars, &conf.cni_version)?;
            let Some(v) = best_common(&theirs, conf.version) else {
                return Err(e);
            };
            let mut cfg: Value =
                serde_json::from_slice(stdin).map_err(|x| CniError::with(code::DECODE_FAILURE, "cannot decode the network configuration", x.to_string()))?;
            cfg["cniVersion"] = v.into();
            exec::invoke(&plugin, &vars, cfg.to_string().as_bytes(), None)?
        }
        r => r?,
    };
    if !a.stderr.is_empty() {
        eprint!("{}", a.stderr);
    }
    Ok(a.output)
}

/// The newest version both sides speak, not newer than the configuration's.
fn best_common(theirs: &[String], upto: super::version::Version) -> Option<String> {
    use super::version::{Version, SUPPORTED};
    theirs
        .iter()
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .filter_map(|v| Some((Version::parse(v)?, v.clone())))
        .filter(|(x, _)| *x <= upto)
        .max()
        .map(|(_, s)| s)
}

/// The built-in allocator's configuration (the reference `static` plugin's fields).
#[derive(Debug, Default, Deserialize)]
struct StaticConf {
    #[serde(default)]
    addresses: Vec<StaticAddress>,
    #[serde(default)]
    routes: Vec<StaticRoute>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Debug, Deserialize)]
struct StaticAddress {
    address: String,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StaticRoute {
    dst: String,
    #[serde(default)]
    gw: Option<String>,
}

fn invalid(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::with(code::INVALID_CONFIG, msg, details)
}

fn cidr(s: &str, what: &str) -> Result<IpNet, CniError> {
    s.trim().parse::<IpNet>().map_err(|_| invalid(format!("vnet-static: invalid {what}"), format!("`{s}` is not an address in CIDR form (e.g. 10.1.0.5/24)")))
}

fn addr(s: &str, what: &str) -> Result<IpAddr, CniError> {
    s.trim().parse::<IpAddr>().map_err(|_| invalid(format!("vnet-static: invalid {what}"), format!("`{s}` is not an IP address")))
}

/// Addresses from the file, `runtimeConfig.ips`, `args.cni.ips` and CNI_ARGS `IP`/`GATEWAY`.
fn builtin(v: &Value, conf: &NetConf, env: &Env) -> Result<CniOutput, CniError> {
    let s: StaticConf = serde_json::from_value(v.clone()).map_err(|e| invalid("vnet-static: invalid configuration", e.to_string()))?;
    let mut out = CniOutput::default();
    for a in &s.addresses {
        let gateway = a.gateway.as_deref().filter(|g| !g.is_empty()).map(|g| addr(g, "gateway")).transpose()?;
        out.ips.push(IpConfig { interface: None, address: cidr(&a.address, "address")?, gateway });
    }
    let mut extra: Vec<String> = conf.runtime.ips.clone();
    if let Some(list) = conf.args.as_ref().and_then(|a| a.get("cni")).and_then(|c| c.get("ips")).and_then(Value::as_array) {
        extra.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(ips) = env.args.get("IP") {
        extra.extend(ips.split(',').filter(|s| !s.is_empty()).map(str::to_string));
    }
    let gateways: Vec<IpAddr> = match env.args.get("GATEWAY") {
        Some(g) => g.split(',').filter(|s| !s.is_empty()).map(|g| addr(g, "GATEWAY")).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    for a in extra {
        let address = cidr(&a, "address")?;
        let gateway = gateways.iter().copied().find(|g| g.is_ipv4() == address.addr().is_ipv4());
        out.ips.push(IpConfig { interface: None, address, gateway });
    }
    if out.ips.is_empty() {
        return Err(invalid("vnet-static: no addresses", "give `ipam.addresses`, runtimeConfig `ips` or CNI_ARGS `IP`"));
    }
    let mut seen = BTreeMap::new();
    for c in &out.ips {
        if let Some(g) = c.gateway {
            if g.is_ipv4() != c.address.addr().is_ipv4() {
                return Err(invalid("vnet-static: invalid gateway", format!("gateway {g} and address {} are of different IP families", c.address)));
            }
        }
        if seen.insert(c.address.addr(), ()).is_some() {
            return Err(invalid("vnet-static: duplicate address", c.address.to_string()));
        }
    }
    for r in &s.routes {
        let dst = cidr(&r.dst, "route destination")?;
        let gw = r.gw.as_deref().filter(|g| !g.is_empty()).map(|g| addr(g, "route gateway")).transpose()?;
        out.routes.push(Route::to(dst, gw));
    }
    out.dns = s.dns.unwrap_or_default();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(args: &str) -> Env {
        Env::from_vars(
            [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "eth0"), ("CNI_ARGS", args)]
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    fn conf(ipam: &str) -> NetConf {
        let s = format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"vnet-cni","kind":"bridge","ipam":{ipam}}}"#);
        NetConf::parse(s.as_bytes(), "ADD").unwrap()
    }

    #[test]
    fn builtin_static_reads_file_args_and_runtime_config() {
        let c = conf(
            r#"{"type":"vnet-static","addresses":[{"address":"10.9.0.5/24","gateway":"10.9.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.9.0.1"]}}"#,
        );
        let r = add(&c, &env("IP=fd00::7/64")).unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[0].gateway, Some("10.9.0.1".parse().unwrap()));
        assert_eq!(r.ips[1].address.to_string(), "fd00::7/64");
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.dns.nameservers, vec!["10.9.0.1"]);
    }

    #[test]
    fn builtin_static_refuses_bad_input() {
        let e = add(&conf(r#"{"type":"vnet-static"}"#), &env("")).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (7, "vnet-static: no addresses"));
        let e = add(&conf(r#"{"type":"vnet-static","addresses":[{"address":"10.9.0.5"}]}"#), &env("")).unwrap_err();
        assert!(e.details.contains("CIDR"), "{e:?}");
        let e = add(&conf(r#"{"type":"vnet-static","addresses":[{"address":"10.9.0.5/24","gateway":"fd00::1"}]}"#), &env("")).unwrap_err();
        assert_eq!(e.msg, "vnet-static: invalid gateway");
        let e = add(&conf(r#"{"type":"vnet-static","addresses":[{"address":"10.9.0.5/24"},{"address":"10.9.0.5/24"}]}"#), &env("")).unwrap_err();
        assert_eq!(e.msg, "vnet-static: duplicate address");
    }

    #[test]
    fn older_plugins_get_the_newest_common_version() {
        let theirs: Vec<String> = ["0.1.0", "0.3.1", "0.4.0", "1.0.0"].iter().map(|s| s.to_string()).collect();
        assert_eq!(best_common(&theirs, super::super::version::V1_1_0).as_deref(), Some("1.0.0"));
        assert_eq!(best_common(&theirs, super::super::version::Version(0, 4, 0)).as_deref(), Some("0.4.0"));
        assert_eq!(best_common(&[], super::super::version::V1_1_0), None);
    }

    #[test]
    fn a_missing_plugin_is_reported_with_the_search_path() {
        let e = add(&conf(r#"{"type":"no-such-ipam"}"#), &env("")).unwrap_err();
        assert_eq!(e.code, 5);
        assert_eq!(e.msg, "cannot find plugin `no-such-ipam`");
    }
}
