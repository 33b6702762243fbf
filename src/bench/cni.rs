//! `vnet bench cni`: ADD and DEL latency of vnet-cni against the reference plugins
//! (containernetworking-plugins) on the same configurations, in the same run. Each plugin gets
//! a scratch namespace playing the runtime's host and one playing the container; plugins are
//! started exactly alike (fork, setns into the host namespace, exec) and interleaved, so
//! machine noise hits both. Every ADD's result is checked before its time counts, and each
//! host namespace must hold nothing of the attachments afterwards.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cni::exec;
use crate::kernel::kinds;
use crate::kernel::msg::{self, LinkBase};
use crate::kernel::netns;
use crate::kernel::nl::Netlink;

/// Options of `vnet bench cni`.
#[derive(Clone, Debug)]
pub struct Options {
    /// ADD/DEL cycles per plugin and scenario.
    pub iterations: usize,
    /// The vnet-cni executable (default: next to the running `vnet`).
    pub plugin: Option<PathBuf>,
    /// Directory of the reference plugins.
    pub reference_dir: PathBuf,
}

/// Latencies of one plugin in one scenario, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub add_median_ms: f64,
    pub add_p90_ms: f64,
    pub del_median_ms: f64,
    pub del_p90_ms: f64,
}

/// One scenario: the same configuration through both plugins.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: String,
    pub iterations: usize,
    pub reference: Latency,
    pub vnet_cni: Latency,
    /// vnet-cni's median divided by the reference's (below 1: vnet-cni is faster).
    pub ratio_add: f64,
    pub ratio_del: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub scenarios: Vec<Scenario>,
}

/// A namespace made for the run, deleted (by its exact name) on drop.
struct Scratch {
    name: String,
    fd: OwnedFd,
}

impl Scratch {
    fn new(name: String) -> Result<Scratch, String> {
        netns::prepare_dir().map_err(|e| format!("prepare /run/netns: {e}"))?;
        netns::reserve(&name).map_err(|e| format!("reserve namespace {name}: {e}"))?;
        let n = name.clone();
        let made = std::thread::spawn(move || -> std::io::Result<OwnedFd> {
            netns::unshare_thread()?;
            let mut nl = Netlink::open()?;
            let up = msg::LinkSet { up: Some(true), ..Default::default() };
            nl.request(msg::set_link(1, None, &up), 0).map_err(|e| std::io::Error::other(e.to_string()))?;
            netns::bind_current(&n)?;
            netns::open_current()
        })
        .join()
        .map_err(|_| "namespace thread panicked".to_string())?;
        match made {
            Ok(fd) => Ok(Scratch { name, fd }),
            Err(e) => {
                let _ = netns::delete(&name);
                Err(format!("create namespace {name}: {e}"))
            }
        }
    }

    fn path(&self) -> String {
        netns::netns_path(&self.name).display().to_string()
    }

    /// A veth pair `lan0`/`lan0p` inside, both up: a master for macvlan.
    fn add_lan(&self) -> Result<(), String> {
        netns::run_in(Some(&self.fd), || -> Result<(), String> {
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            let peer = msg::link_with(&LinkBase { name: "lan0p".into(), ..Default::default() });
            let m = msg::new_link(&LinkBase { name: "lan0".into(), up: true, ..Default::default() }, Some(kinds::veth_info(peer)));
            nl.request(m, NLM_F_CREATE | NLM_F_EXCL).map_err(|e| e.to_string())?;
            let up = msg::LinkSet { up: Some(true), ..Default::default() };
            nl.request(msg::set_link(0, Some("lan0p"), &up), 0).map_err(|e| e.to_string())?;
            Ok(())
        })
        .map_err(|e| e.to_string())?
    }

    fn devices(&self) -> Result<Vec<String>, String> {
        netns::run_in(Some(&self.fd), || -> Result<Vec<String>, String> {
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            Ok(crate::kernel::observe::links(&mut nl).map_err(|e| e.to_string())?.into_iter().map(|l| l.name).collect())
        })
        .map_err(|e| e.to_string())?
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::delete(&self.name);
    }
}

/// One side of a scenario: a plugin, its configuration, its namespaces.
struct Side {
    plugin: PathBuf,
    conf: Value,
    host: Scratch,
    container: Scratch,
    adds: Vec<Duration>,
    dels: Vec<Duration>,
}

impl Side {
    fn env(&self, command: &str, cid: &str, path: &str) -> BTreeMap<String, String> {
        [("CNI_COMMAND", command), ("CNI_CONTAINERID", cid), ("CNI_NETNS", &self.container.path()), ("CNI_IFNAME", "eth0"), ("CNI_PATH", path)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(std::env::var("PATH").ok().map(|p| ("PATH".to_string(), p)))
            .collect()
    }

    /// One ADD and one DEL, timed; the ADD's result must carry the container interface (and
    /// an address when the scenario has IPAM).
    fn cycle(&mut self, i: usize, path: &str, want_ip: bool) -> Result<(), String> {
        let cid = format!("bench-{i}");
        let stdin = self.conf.to_string();
        let t = Instant::now();
        let a = exec::invoke(&self.plugin, &self.env("ADD", &cid, path), stdin.as_bytes(), Some(self.host.fd.as_fd()));
        let add = t.elapsed();
        let out = a.map_err(|e| format!("{} ADD: {e}", self.plugin.display()))?.output.unwrap_or(Value::Null);
        let has_if = out["interfaces"].as_array().is_some_and(|l| l.iter().any(|i| i["name"] == "eth0"));
        let has_ip = out["ips"].as_array().is_some_and(|l| !l.is_empty());
        if !has_if || (want_ip && !has_ip) {
            return Err(format!("{} ADD returned an incomplete result: {out}", self.plugin.display()));
        }
        let t = Instant::now();
        exec::invoke(&self.plugin, &self.env("DEL", &cid, path), stdin.as_bytes(), Some(self.host.fd.as_fd()))
            .map_err(|e| format!("{} DEL: {e}", self.plugin.display()))?;
        self.dels.push(t.elapsed());
        self.adds.push(add);
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn latency(adds: &[Duration], dels: &[Duration]) -> Latency {
    let q = |v: &[Duration], p: f64| {
        let mut s = v.to_vec();
        s.sort();
        ms(s[((s.len() as f64 - 1.0) * p).round() as usize])
    };
    Latency { add_median_ms: q(adds, 0.5), add_p90_ms: q(adds, 0.9), del_median_ms: q(dels, 0.5), del_p90_ms: q(dels, 0.9) }
}

fn vnet_cni_path(opts: &Options) -> Result<PathBuf, String> {
    if let Some(p) = &opts.plugin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe.with_file_name("vnet-cni");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("no vnet-cni next to {} (build it, or pass --plugin)", exe.display()))
    }
}

/// The run's directory (IPAM data, records), removed however the run ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs every scenario.
pub fn run(opts: &Options) -> Result<Report, String> {
    let mine = vnet_cni_path(opts)?;
    let tag = std::process::id();
    let dir = std::env::temp_dir().join(format!("vnet-bench-cni-{tag}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _dir = RemoveOnDrop(dir.clone());
    let path = format!("{}:{}", mine.parent().unwrap_or(Path::new(".")).display(), opts.reference_dir.display());
    let ipam = |who: &str, subnet: &str| json!({ "type": "host-local", "subnet": subnet, "dataDir": dir.join(who).display().to_string() });
    let scenarios: Vec<(&str, &str, Value, bool)> = vec![
        ("bridge + host-local", "bridge", json!({ "bridge": "cni0", "isGateway": true, "ipam": ipam("{}-br", "10.201.0.0/16") }), true),
        ("bridge, no IPAM (L2)", "bridge", json!({ "bridge": "cni0" }), false),
        ("macvlan + host-local", "macvlan", json!({ "master": "lan0", "mode": "bridge", "ipam": ipam("{}-mv", "10.202.0.0/16") }), true),
    ];
    let mut out = Vec::new();
    for (k, (name, kind, body, want_ip)) in scenarios.into_iter().enumerate() {
        let mut sides = Vec::new();
        for (who, plugin) in [("ref", opts.reference_dir.join(kind)), ("vnet", mine.clone())] {
            if !plugin.exists() {
                return Err(format!("plugin {} is missing (Debian: containernetworking-plugins)", plugin.display()));
            }
            let mut conf = body.clone();
            conf["cniVersion"] = "1.0.0".into();
            conf["name"] = format!("bench{k}").into();
            conf["type"] = if who == "vnet" { "vnet-cni".into() } else { kind.into() };
            if who == "vnet" {
                conf["kind"] = kind.into();
                conf["stateDir"] = dir.join("state").display().to_string().into();
            }
            if let Some(d) = conf["ipam"]["dataDir"].as_str() {
                conf["ipam"]["dataDir"] = d.replace("{}", who).into();
            }
            let host = Scratch::new(format!("vnet-bench-cni-{tag}-{k}-{who}-h"))?;
            let container = Scratch::new(format!("vnet-bench-cni-{tag}-{k}-{who}-c"))?;
            if kind == "macvlan" {
                host.add_lan()?;
            }
            sides.push(Side { plugin, conf, host, container, adds: Vec::new(), dels: Vec::new() });
        }
        // One warm-up cycle each (page cache, the bridge's creation), then interleaved runs,
        // alternating which plugin goes first.
        for s in sides.iter_mut() {
            s.cycle(usize::MAX, &path, want_ip)?;
            s.adds.clear();
            s.dels.clear();
        }
        for i in 0..opts.iterations {
            let order: [usize; 2] = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for j in order {
                sides[j].cycle(i, &path, want_ip)?;
            }
        }
        for s in &sides {
            let left: Vec<String> = s.host.devices()?.into_iter().filter(|d| !matches!(d.as_str(), "lo" | "cni0" | "lan0" | "lan0p")).collect();
            if !left.is_empty() {
                return Err(format!("{}: devices left in the host namespace after DEL: {left:?}", s.plugin.display()));
            }
            let cleft: Vec<String> = s.container.devices()?.into_iter().filter(|d| d != "lo").collect();
            if !cleft.is_empty() {
                return Err(format!("{}: devices left in the container after DEL: {cleft:?}", s.plugin.display()));
            }
        }
        let r = latency(&sides[0].adds, &sides[0].dels);
        let v = latency(&sides[1].adds, &sides[1].dels);
        out.push(Scenario {
            name: name.to_string(),
            iterations: opts.iterations,
            ratio_add: v.add_median_ms / r.add_median_ms,
            ratio_del: v.del_median_ms / r.del_median_ms,
            reference: r,
            vnet_cni: v,
        });
    }
    Ok(Report { machine: super::machine(), scenarios: out })
}

/// The table printed by `vnet bench cni`.
pub fn render(r: &Report) -> String {
    let mut s = format!("CNI ADD/DEL latency (median / p90, ms) on {}\n", r.machine);
    s.push_str(&format!("{:<24} {:<10} {:>16} {:>16}\n", "scenario", "plugin", "ADD", "DEL"));
    for sc in &r.scenarios {
        for (who, l) in [("reference", &sc.reference), ("vnet-cni", &sc.vnet_cni)] {
            s.push_str(&format!(
                "{:<24} {:<10} {:>7.2} / {:>6.2} {:>7.2} / {:>6.2}\n",
                sc.name, who, l.add_median_ms, l.add_p90_ms, l.del_median_ms, l.del_p90_ms
            ));
        }
        s.push_str(&format!("{:<24} vnet-cni / reference (median): ADD {:.2}x, DEL {:.2}x ({} cycles each)\n", "", sc.ratio_add, sc.ratio_del, sc.iterations));
    }
    s
}
