//! The CNI result (interfaces, IP configurations, routes, DNS) in vnet-cni's own form, read
//! from any spec version (a delegated IPAM plugin's answer, a `prevResult`) and written in the
//! version the configuration asks for: 1.1.0 (with the interface and route fields it added),
//! 1.0.0, 0.3.x/0.4.0 (`version` on each IP) and 0.1.0/0.2.0 (`ip4`/`ip6`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{code, CniError};
use super::version::{Version, V0_3_0, V1_0_0, V1_1_0};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace path for container interfaces; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(default, rename = "socketPath", skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IpConfig {
    /// Index into `interfaces`.
    pub interface: Option<usize>,
    /// Address with its prefix length (host bits kept).
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
}

impl Route {
    pub fn to(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_none() && self.search.is_empty() && self.options.is_empty()
    }
    /// Fills what `self` lacks from `other`.
    pub fn merge(&mut self, other: &Dns) {
        for n in &other.nameservers {
            if !self.nameservers.contains(n) {
                self.nameservers.push(n.clone());
            }
        }
        if self.domain.is_none() {
            self.domain = other.domain.clone();
        }
        for s in &other.search {
            if !self.search.contains(s) {
                self.search.push(s.clone());
            }
        }
        for o in &other.options {
            if !self.options.contains(o) {
                self.options.push(o.clone());
            }
        }
    }
}

/// A result in vnet-cni's form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CniOutput {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn bad(what: &str, detail: impl Into<String>) -> CniError {
    CniError::with(code::DECODE_FAILURE, format!("cannot decode {what}"), detail.into())
}

fn ip(v: &Value, what: &str) -> Result<Option<IpAddr>, CniError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(|_| bad(what, format!("`{s}` is not an IP address"))),
        other => Err(bad(what, format!("expected an IP address string, got {other}"))),
    }
}

fn net(v: &Value, what: &str) -> Result<IpNet, CniError> {
    match v.as_str() {
        Some(s) => s.parse().map_err(|_| bad(what, format!("`{s}` is not an address in CIDR form"))),
        None => Err(bad(what, format!("expected a CIDR string, got {v}"))),
    }
}

fn opt_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn route_from(v: &Value, what: &str) -> Result<Route, CniError> {
    Ok(Route {
        dst: net(&v["dst"], what)?,
        gw: ip(&v["gw"], what)?,
        mtu: opt_u32(&v["mtu"]),
        advmss: opt_u32(&v["advmss"]),
        priority: opt_u32(&v["priority"]),
        table: opt_u32(&v["table"]),
        scope: v["scope"].as_u64().and_then(|n| u8::try_from(n).ok()),
    })
}

impl CniOutput {
    /// Reads a result of any supported version (`what` names it in errors).
    pub fn parse(v: &Value, what: &str) -> Result<CniOutput, CniError> {
        if !v.is_object() {
            return Err(bad(what, "expected a JSON object"));
        }
        let mut out = CniOutput::default();
        if let Some(d) = v.get("dns").filter(|d| !d.is_null()) {
            out.dns = serde_json::from_value(d.clone()).map_err(|e| bad(what, e.to_string()))?;
        }
        if v.get("ip4").is_some() || v.get("ip6").is_some() {
            // 0.1.0 / 0.2.0: one configuration per family, routes inside it.
            for key in ["ip4", "ip6"] {
                let Some(c) = v.get(key).filter(|c| !c.is_null()) else {
                    continue;
                };
                out.ips.push(IpConfig { interface: None, address: net(&c["ip"], what)?, gateway: ip(&c["gateway"], what)? });
                for r in c["routes"].as_array().into_iter().flatten() {
                    out.routes.push(route_from(r, what)?);
                }
            }
            return Ok(out);
        }
        for i in v["interfaces"].as_array().into_iter().flatten() {
            out.interfaces.push(serde_json::from_value(i.clone()).map_err(|e| bad(what, e.to_string()))?);
        }
        for c in v["ips"].as_array().into_iter().flatten() {
            let interface = match &c["interface"] {
                Value::Null => None,
                x => Some(x.as_u64().ok_or_else(|| bad(what, format!("interface index {x} is not a number")))? as usize),
            };
            if let Some(i) = interface {
                if i >= out.interfaces.len() {
                    return Err(bad(what, format!("IP configuration names interface {i}, but there are {}", out.interfaces.len())));
                }
            }
            out.ips.push(IpConfig { interface, address: net(&c["address"], what)?, gateway: ip(&c["gateway"], what)? });
        }
        for r in v["routes"].as_array().into_iter().flatten() {
            out.routes.push(route_from(r, what)?);
        }
        Ok(out)
    }

    /// Appends `mine` after `self` (a chained plugin's previous result), renumbering its
    /// interface indexes.
    pub fn chain(mut self, mine: CniOutput) -> CniOutput {
        let off = self.interfaces.len();
        self.interfaces.extend(mine.interfaces);
        self.ips.extend(mine.ips.into_iter().map(|mut c| {
            c.interface = c.interface.map(|i| i + off);
            c
        }));
        for r in mine.routes {
            if !self.routes.contains(&r) {
                self.routes.push(r);
            }
        }
        self.dns.merge(&mine.dns);
        self
    }

    /// The result as the specification's JSON for version `v` (`s` is its text).
    pub fn to_json(&self, s: &str, v: Version) -> Value {
        if v < V0_3_0 {
            return self.legacy_json(s);
        }
        let mut o = Map::new();
        o.insert("cniVersion".into(), s.into());
        let ifaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut i = i.clone();
                if v < V1_1_0 {
                    i.mtu = None;
                    i.socket_path = None;
                    i.pci_id = None;
                }
                serde_json::to_value(i).expect("interface serializes")
            })
            .collect();
        if !ifaces.is_empty() {
            o.insert("interfaces".into(), ifaces.into());
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|c| {
                let mut m = Map::new();
                if v < V1_0_0 {
                    m.insert("version".into(), (if c.address.addr().is_ipv4() { "4" } else { "6" }).into());
                }
                if let Some(i) = c.interface {
                    m.insert("interface".into(), i.into());
                }
                m.insert("address".into(), c.address.to_string().into());
                if let Some(g) = c.gateway {
                    m.insert("gateway".into(), g.to_string().into());
                }
                Value::Object(m)
            })
            .collect();
        if !ips.is_empty() {
            o.insert("ips".into(), ips.into());
        }
        let routes: Vec<Value> = self.routes.iter().map(|r| route_json(r, v >= V1_1_0)).collect();
        if !routes.is_empty() {
            o.insert("routes".into(), routes.into());
        }
        o.insert("dns".into(), serde_json::to_value(&self.dns).expect("dns serializes"));
        Value::Object(o)
    }

    fn legacy_json(&self, s: &str) -> Value {
        let mut o = Map::new();
        o.insert("cniVersion".into(), s.into());
        for (key, v4) in [("ip4", true), ("ip6", false)] {
            let Some(c) = self.ips.iter().find(|c| c.address.addr().is_ipv4() == v4) else {
                continue;
            };
            let mut m = Map::new();
            m.insert("ip".into(), c.address.to_string().into());
            if let Some(g) = c.gateway {
                m.insert("gateway".into(), g.to_string().into());
            }
            let routes: Vec<Value> = self.routes.iter().filter(|r| r.dst.addr().is_ipv4() == v4).map(|r| route_json(r, false)).collect();
            if !routes.is_empty() {
                m.insert("routes".into(), routes.into());
            }
            o.insert(key.into(), Value::Object(m));
        }
        o.insert("dns".into(), serde_json::to_value(&self.dns).expect("dns serializes"));
        Value::Object(o)
    }
}

fn route_json(r: &Route, v11: bool) -> Value {
    let mut m = json!({ "dst": r.dst.to_string() });
    if let Some(g) = r.gw {
        m["gw"] = g.to_string().into();
    }
    if v11 {
        for (k, x) in [("mtu", r.mtu), ("advmss", r.advmss), ("priority", r.priority), ("table", r.table)] {
            if let Some(x) = x {
                m[k] = x.into();
            }
        }
        if let Some(s) = r.scope {
            m["scope"] = s.into();
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniOutput {
        CniOutput {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: Some("/run/netns/c".into()),
                ..Default::default()
            }],
            ips: vec![
                IpConfig { interface: Some(0), address: "10.1.0.5/24".parse().unwrap(), gateway: Some("10.1.0.1".parse().unwrap()) },
                IpConfig { interface: Some(0), address: "fd00::5/64".parse().unwrap(), gateway: None },
            ],
            routes: vec![Route { table: Some(100), ..Route::to("0.0.0.0/0".parse().unwrap(), Some("10.1.0.1".parse().unwrap())) }],
            dns: Dns { nameservers: vec!["10.1.0.1".into()], ..Default::default() },
        }
    }

    #[test]
    fn writes_each_version_in_its_shape() {
        let r = sample();
        let v11 = r.to_json("1.1.0", V1_1_0);
        assert_eq!(v11["interfaces"][0]["mtu"], 1500);
        assert_eq!(v11["routes"][0]["table"], 100);
        assert_eq!(v11["ips"][0], json!({"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}));
        let v10 = r.to_json("1.0.0", V1_0_0);
        assert!(v10["interfaces"][0].get("mtu").is_none());
        assert!(v10["routes"][0].get("table").is_none());
        let v04 = r.to_json("0.4.0", Version(0, 4, 0));
        assert_eq!(v04["ips"][1]["version"], "6");
        let v02 = r.to_json("0.2.0", Version(0, 2, 0));
        assert_eq!(v02["ip4"]["ip"], "10.1.0.5/24");
        assert_eq!(v02["ip4"]["routes"][0]["gw"], "10.1.0.1");
        assert_eq!(v02["ip6"]["ip"], "fd00::5/64");
        assert!(v02.get("interfaces").is_none());
    }

    #[test]
    fn reads_back_what_it_writes_in_every_version() {
        let r = sample();
        for (s, v) in [("1.1.0", V1_1_0), ("1.0.0", V1_0_0), ("0.3.1", Version(0, 3, 1))] {
            let back = CniOutput::parse(&r.to_json(s, v), "result").unwrap();
            assert_eq!(back.ips, r.ips, "{s}");
            assert_eq!(back.routes[0].dst, r.routes[0].dst);
            assert_eq!(back.dns, r.dns);
        }
        let legacy = CniOutput::parse(&r.to_json("0.2.0", Version(0, 2, 0)), "result").unwrap();
        assert_eq!(legacy.ips.len(), 2);
        assert_eq!(legacy.routes.len(), 1);
    }

    #[test]
    fn chaining_renumbers_interfaces() {
        let prev = CniOutput {
            interfaces: vec![Interface { name: "lo".into(), ..Default::default() }],
            ips: vec![IpConfig { interface: Some(0), address: "127.0.0.1/8".parse().unwrap(), gateway: None }],
            ..Default::default()
        };
        let all = prev.chain(sample());
        assert_eq!(all.interfaces.len(), 2);
        assert_eq!(all.ips[1].interface, Some(1));
        assert_eq!(all.dns.nameservers, vec!["10.1.0.1".to_string()]);
    }

    #[test]
    fn bad_results_are_decode_errors() {
        let e = CniOutput::parse(&json!({"ips": [{"address": "10.0.0.300/24"}]}), "IPAM result").unwrap_err();
        assert_eq!(e.code, 6);
        assert!(e.msg.contains("IPAM result"));
        let e = CniOutput::parse(&json!({"interfaces": [], "ips": [{"interface": 3, "address": "10.0.0.1/24"}]}), "prevResult").unwrap_err();
        assert!(e.details.contains("interface 3"), "{e:?}");
    }
}
