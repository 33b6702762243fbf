//! Driving CNI plugins exactly as a container runtime does: CNI_* variables and the network
//! configuration on stdin, the plugin started in the runtime's network namespace (here a
//! scratch namespace made by the test and entered with `nsenter --net=`, so the real root
//! namespace is never touched), containers as namespaces made by the test.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::{ip_json, Scratch};

/// Where the reference plugins of Debian's containernetworking-plugins live.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// The `vnet-cni` binary built for this test run.
pub fn vnet_cni_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vnet-cni"))
}

/// CNI_PATH: vnet-cni's directory, then the reference plugins.
pub fn cni_path() -> String {
    format!("{}:{REFERENCE_DIR}", vnet_cni_bin().parent().unwrap().display())
}

/// Asserts the reference plugins are installed (scripts/setup installs them).
pub fn require_reference() {
    for p in ["bridge", "macvlan", "ipvlan", "vlan", "host-local", "static", "loopback", "tuning"] {
        assert!(
            std::path::Path::new(REFERENCE_DIR).join(p).exists(),
            "reference plugin {p} missing from {REFERENCE_DIR}: run scripts/setup (containernetworking-plugins)"
        );
    }
}

/// What a plugin answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: i32,
    pub out: Value,
    pub stderr: String,
}

impl Reply {
    /// Asserts success and returns stdout's JSON (Null when empty).
    pub fn ok(self) -> Value {
        assert_eq!(self.code, 0, "plugin failed: {} {}", self.out, self.stderr);
        self.out
    }
    /// Asserts failure with the given CNI error code and returns the error JSON.
    pub fn err(self, code: u64) -> Value {
        assert_ne!(self.code, 0, "plugin unexpectedly succeeded: {}", self.out);
        assert_eq!(self.out["code"].as_u64(), Some(code), "wrong error: {} {}", self.out, self.stderr);
        assert!(self.out["msg"].as_str().is_some_and(|m| !m.is_empty()), "error without msg: {}", self.out);
        self.out
    }
}

/// One invocation with exactly these variables (nothing else from the test's environment
/// beyond PATH), stdin `conf`, in the namespace `host`.
pub fn invoke_raw(plugin: &str, host: &str, vars: &[(&str, &str)], stdin: &[u8]) -> Reply {
    let bin = if plugin == "vnet-cni" { vnet_cni_bin() } else { PathBuf::from(REFERENCE_DIR).join(plugin) };
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{host}")).arg(bin);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start plugin");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|e| panic!("plugin printed non-JSON ({e}): {text}")) };
    Reply { code: out.status.code().unwrap_or(-1), out: v, stderr: String::from_utf8_lossy(&out.stderr).to_string() }
}

/// A runtime's view of one host: its namespace and a state directory of its own (IPAM
/// dataDir, vnet-cni stateDir), both removed on drop.
pub struct Runtime {
    pub host: Scratch,
    pub dir: PathBuf,
}

impl Runtime {
    pub fn new(base: &str) -> Runtime {
        let host = Scratch::new(base);
        let dir = std::env::temp_dir().join(format!("vnet-cni-test-{}", host.name));
        std::fs::create_dir_all(&dir).unwrap();
        Runtime { host, dir }
    }

    /// A network configuration with this runtime's directories filled in (`ipam.dataDir` for
    /// host-local, `stateDir` for vnet-cni).
    pub fn conf(&self, mut c: Value) -> Value {
        if c["ipam"]["type"] == "host-local" && c["ipam"].get("dataDir").is_none() {
            c["ipam"]["dataDir"] = self.dir.join("ipam").display().to_string().into();
        }
        if c["type"] == "vnet-cni" && c.get("stateDir").is_none() {
            c["stateDir"] = self.dir.join("state").display().to_string().into();
        }
        c
    }

    /// Runs `command` for container `cid` (namespace `netns`, interface `ifname`).
    pub fn call(&self, command: &str, conf: &Value, cid: &str, netns: Option<&str>, ifname: &str) -> Reply {
        let path = cni_path();
        let ns_path = netns.map(|n| format!("/run/netns/{n}")).unwrap_or_default();
        let mut vars = vec![("CNI_COMMAND", command), ("CNI_CONTAINERID", cid), ("CNI_IFNAME", ifname), ("CNI_PATH", path.as_str())];
        if netns.is_some() {
            vars.push(("CNI_NETNS", ns_path.as_str()));
        }
        let plugin = conf["type"].as_str().expect("conf has a type").to_string();
        invoke_raw(&plugin, &self.host.name, &vars, conf.to_string().as_bytes())
    }

    pub fn add(&self, conf: &Value, cid: &str, netns: &str, ifname: &str) -> Value {
        self.call("ADD", conf, cid, Some(netns), ifname).ok()
    }

    pub fn del(&self, conf: &Value, cid: &str, netns: Option<&str>, ifname: &str) {
        self.call("DEL", conf, cid, netns, ifname).ok();
    }

    /// CHECK with the previous result, as the runtime keeps it.
    pub fn check(&self, conf: &Value, prev: &Value, cid: &str, netns: &str, ifname: &str) -> Reply {
        let mut c = conf.clone();
        c["prevResult"] = prev.clone();
        self.call("CHECK", &c, cid, Some(netns), ifname)
    }

    /// A network configuration list, run plugin by plugin as libcni does: ADD in order, each
    /// plugin getting the previous one's result as `prevResult`; returns the final result.
    pub fn add_list(&self, list: &Value, cid: &str, netns: &str, ifname: &str) -> Value {
        let mut prev = Value::Null;
        for p in list["plugins"].as_array().unwrap() {
            let c = self.list_conf(list, p, &prev);
            prev = self.call("ADD", &c, cid, Some(netns), ifname).ok();
        }
        prev
    }

    /// CHECK over a list, in order, each plugin with the final ADD result.
    pub fn check_list(&self, list: &Value, result: &Value, cid: &str, netns: &str, ifname: &str) -> Vec<Reply> {
        list["plugins"].as_array().unwrap().iter().map(|p| self.call("CHECK", &self.list_conf(list, p, result), cid, Some(netns), ifname)).collect()
    }

    /// DEL over a list, in reverse order, each plugin with the final ADD result.
    pub fn del_list(&self, list: &Value, result: &Value, cid: &str, netns: Option<&str>, ifname: &str) {
        for p in list["plugins"].as_array().unwrap().iter().rev() {
            self.call("DEL", &self.list_conf(list, p, result), cid, netns, ifname).ok();
        }
    }

    fn list_conf(&self, list: &Value, plugin: &Value, prev: &Value) -> Value {
        let mut c = plugin.clone();
        c["cniVersion"] = list["cniVersion"].clone();
        c["name"] = list["name"].clone();
        if !prev.is_null() {
            c["prevResult"] = prev.clone();
        }
        self.conf(c)
    }

    /// `ip -j ARGS` in the runtime's namespace.
    pub fn ip(&self, args: &[&str]) -> Value {
        ip_json(Some(&self.host.name), args)
    }

    /// Names of the devices in the runtime's namespace.
    pub fn devices(&self) -> Vec<String> {
        names(&self.ip(&["link", "show"]))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ifname` of every entry of an `ip -j link` answer.
pub fn names(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect()
}

/// A container: a namespace with `lo` up, as runtimes make them.
pub fn container(base: &str) -> Scratch {
    let s = Scratch::new(base);
    s.ip(&["link", "set", "lo", "up"]);
    s
}

/// The parts of a device that must agree between two plugins' work (not names of host ends,
/// indexes, MACs or timers): kind and kind options, MTU, flags, state, port kind, whether its
/// peer or lower is in another namespace. Left out on purpose: the transmit queue length —
/// the reference plugins send IFLA_TXQLEN 0 (Go's zero value), vnet-cni keeps the kernel's
/// default (1000), which qdiscs added later use as their default limit.
pub fn link_essentials(l: &Value) -> Value {
    let mut flags: Vec<String> = l["flags"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(str::to_string)).collect();
    flags.sort();
    let info = &l["linkinfo"];
    let mut data = info["info_data"].clone();
    if let Some(o) = data.as_object_mut() {
        // Per-device identities and timers.
        for k in ["bridge_id", "root_id", "designated_root", "hello_timer", "tcn_timer", "topology_change_timer", "gc_timer"] {
            o.remove(k);
        }
    }
    json!({
        "mtu": l["mtu"],
        "operstate": l["operstate"],
        "flags": flags,
        "kind": info["info_kind"],
        "data": data,
        "slave_kind": info["info_slave_kind"],
        "link_type": l["link_type"],
        "has_link_netns": l.get("link_netnsid").is_some(),
    })
}

/// Global addresses of a device (`a/len`), sorted; link-local ones differ by MAC.
pub fn global_addrs(netns: &str, dev: &str) -> Vec<String> {
    let v = ip_json(Some(netns), &["addr", "show", "dev", dev]);
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect();
    out.sort();
    out
}

/// Routes of a namespace as `ip -j route` shows them (both families, IPv6 link-local and
/// multicast noise removed), sorted.
pub fn routes(netns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        let v = ip_json(Some(netns), &[fam, "route", "show", "table", "all"]);
        for r in v.as_array().into_iter().flatten() {
            let dst = r["dst"].as_str().unwrap_or("");
            if dst.starts_with("fe80")
                || dst.starts_with("ff00")
                || r["type"] == "local"
                || r["type"] == "broadcast"
                || r["type"] == "multicast"
                || r["table"] == "local"
            {
                continue;
            }
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("expires");
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.to_string());
    out
}

/// One ICMP echo from a namespace.
pub fn ping_ns(netns: &str, addr: &str) -> bool {
    Command::new("ip").args(["netns", "exec", netns, "ping", "-c", "2", "-i", "0.3", "-W", "1", addr]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// The shape of a result: its keys, recursively, with array lengths (values aside).
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), shape(x))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => Value::Null,
    }
}
