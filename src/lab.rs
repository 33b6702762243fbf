//! `Lab`: a running lab as a Rust value, for integration tests that want a throwaway network.
//! Built from a file or in code, brought up with an isolated host and a name no other test
//! uses, torn down on drop (also when the test panics). If the test process dies before its
//! labs are dropped, `vnet gc` removes them: the process holds a lock on the lab's record for the
//! lab's life, which the kernel releases when it dies (see `state::owner`).
//!
//! ```no_run
//! use vnet::Lab;
//!
//! let lab = Lab::builder("pair")
//!     .link("a:eth0", "b:eth0")
//!     .address("a:eth0", "10.0.0.1/24")
//!     .address("b:eth0", "10.0.0.2/24")
//!     .up()
//!     .expect("lab comes up");
//! let out = lab.node("a").command("ip").args(["-br", "addr"]).output().unwrap();
//! assert!(String::from_utf8_lossy(&out.stdout).contains("10.0.0.1/24"));
//! // A closure on a thread inside node b's namespace:
//! let ifs = lab.node("b").run(|| std::fs::read_dir("/sys/class/net").unwrap().count());
//! assert!(ifs >= 2);
//! // Dropping `lab` removes it.
//! ```

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::lifecycle::up::Ownership;
use crate::lifecycle::{self, DownReport, LabStatus, UpOptions};
use crate::model::file::{InterfaceSpec, LinkSpec, RouteSpec, SysctlValue, TableRef, Topology};
use crate::model::kind::KindSpec;
use crate::model::{self, Loaded};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other lab of this or any other running process uses: base-PID-N-RANDOM. The
/// pid alone would not do: processes in separate PID namespaces share pids (each may be pid 1).
pub fn unique_name(base: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("-{}-{n}-{:08x}", std::process::id(), crate::state::random_u32());
    let keep = 40usize.saturating_sub(suffix.len());
    let base: String = base.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(keep).collect();
    format!("{base}{suffix}")
}

/// A lab that is up. Dropping it takes it down.
pub struct Lab {
    loaded: Loaded,
    /// This process's claim on the lab (see `state::owner`): while it lives, no other `up`
    /// takes the lab over and `gc` leaves it; the kernel releases it if the process dies.
    owner: crate::state::owner::Owner,
    down_on_drop: bool,
    /// Whether `loaded` was read from a topology file (so its spans point into it).
    from_file: bool,
}

/// Options for bringing a lab up from a file or a topology.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Replace the file's name with a unique one (default true, so tests never clash).
    pub unique_name: bool,
    /// Run `host` in its own namespace (default true: tests never touch the real root).
    pub isolated_host: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions { unique_name: true, isolated_host: true }
    }
}

impl Lab {
    /// Brings up the lab of a topology file, with a unique name and an isolated host.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Lab> {
        Lab::from_file_with(path, LabOptions::default())
    }

    pub fn from_file_with(path: impl AsRef<Path>, opts: LabOptions) -> Result<Lab> {
        let path = path.as_ref();
        let loaded = model::load_file_with(path, |t| adjust(t, &opts)).map_err(Error::Invalid)?;
        Lab::start(loaded, Some(path))
    }

    /// Brings up a topology built in code.
    pub fn from_topology(mut topo: Topology, opts: LabOptions) -> Result<Lab> {
        adjust(&mut topo, &opts);
        let loaded = model::load_topology(&topo).map_err(Error::Invalid)?;
        Lab::start(loaded, None)
    }

    /// Starts a topology in code; see `LabBuilder`.
    pub fn builder(name: &str) -> LabBuilder {
        LabBuilder { topo: Topology { name: name.to_string(), ..Default::default() }, opts: LabOptions::default() }
    }

    fn start(loaded: Loaded, file: Option<&Path>) -> Result<Lab> {
        let owner = crate::state::owner::Owner::new();
        let opts = UpOptions { file: file.map(Path::to_path_buf), owner: Ownership::Process(owner.clone()), ..Default::default() };
        lifecycle::up(&loaded, &opts)?;
        Ok(Lab { loaded, owner, down_on_drop: true, from_file: file.is_some() })
    }

    /// The lab's (unique) name.
    pub fn name(&self) -> &str {
        &self.loaded.lab.name
    }

    /// The validated model the lab was built from.
    pub fn model(&self) -> &model::Lab {
        &self.loaded.lab
    }

    /// A node of the lab. Panics if there is none of that name (a test bug).
    pub fn node(&self, name: &str) -> NodeRef<'_> {
        assert!(self.loaded.lab.nodes.contains_key(name), "lab {} has no node {name}", self.name());
        NodeRef { lab: self, node: name.to_string(), netns: self.loaded.lab.netns_name(name) }
    }

    /// The lab as the kernel reports it.
    pub fn status(&self) -> Result<LabStatus> {
        Ok(lifecycle::status(Some(self.name()))?.remove(0))
    }

    /// Applies a changed topology to the running lab (same name and host mode are kept).
    pub fn update(&mut self, mut topo: Topology) -> Result<lifecycle::UpReport> {
        topo.name = self.name().to_string();
        topo.isolated_host = self.loaded.lab.isolated_host;
        let loaded = model::load_topology(&topo).map_err(Error::Invalid)?;
        let r = lifecycle::up(&loaded, &UpOptions { owner: Ownership::Process(self.owner.clone()), ..Default::default() })?;
        self.loaded = loaded;
        Ok(r)
    }

    /// The lab opened for inspection (namespaces of every node, record, model).
    pub fn running(&self) -> Result<crate::inspect::RunningLab> {
        let st = crate::state::load(self.name()).map_err(|e| Error::io("read lab state", e))?.ok_or_else(|| Error::NoSuchLab(self.name().to_string()))?;
        crate::inspect::RunningLab::with(st, self.loaded.clone(), self.from_file)
    }

    /// Runs the lab's expectations (or, without any, the full reachability matrix) and returns
    /// the report; `report.ok` says whether everything held, `report.failures()` what did not.
    ///
    /// ```
    /// use vnet::model::expect::ExpectSpec;
    /// use vnet::Lab;
    ///
    /// // A router between two subnets; a and c reach each other through it, TCP port 8080 on c
    /// // answers (the check listens there for the test), and d, on no link at all, is cut off.
    /// let lab = Lab::builder("check-doc")
    ///     .link("a:eth0", "r:eth0")
    ///     .link("r:eth1", "c:eth0")
    ///     .address("a:eth0", "10.61.1.2/24")
    ///     .address("r:eth0", "10.61.1.1/24")
    ///     .address("r:eth1", "10.61.2.1/24")
    ///     .address("c:eth0", "10.61.2.2/24")
    ///     .address("d:lo", "10.61.9.9/32")
    ///     .route("a", "default", Some("10.61.1.1"), None)
    ///     .route("c", "default", Some("10.61.2.1"), None)
    ///     .sysctl("r", "net.ipv4.ip_forward", "1")
    ///     .expect(ExpectSpec::reach("a", "c"))
    ///     .expect(ExpectSpec::tcp("a", "c", 8080, true))
    ///     .expect(ExpectSpec::no_reach("a", "d"))
    ///     .up()
    ///     .expect("lab comes up");
    /// let report = lab.check().expect("probes run");
    /// assert!(report.ok, "{:#?}", report.failures());
    /// assert_eq!(report.expectations[0].targets[0].seen, "reply from 10.61.2.2");
    /// // Break it: without forwarding on r, the check says which pair failed and what it saw.
    /// assert!(lab.node("r").command("sysctl").args(["-qw", "net.ipv4.ip_forward=0"]).status().unwrap().success());
    /// let report = lab.check().unwrap();
    /// assert!(!report.ok);
    /// assert!(report.failures()[0].starts_with("reach a -> c: a -> 10.61.2.2: timeout"), "{:?}", report.failures());
    /// // Dropping `lab` removes it, also when an assertion above fails.
    /// ```
    pub fn check(&self) -> Result<crate::check::CheckReport> {
        self.check_with(&crate::check::CheckOptions::default())
    }

    /// `check` with options (timeout, forcing the matrix).
    pub fn check_with(&self, opts: &crate::check::CheckOptions) -> Result<crate::check::CheckReport> {
        crate::check::check_running(&self.running()?, opts)
    }

    /// Takes the lab down now and reports what was removed.
    pub fn down(mut self) -> Result<DownReport> {
        self.down_on_drop = false;
        lifecycle::down::down_owned(self.name(), &self.owner)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.down_on_drop {
            if let Err(e) = lifecycle::down::down_owned(self.name(), &self.owner) {
                eprintln!("vnet: could not take lab {} down: {e}", self.name());
            }
        }
    }
}

fn adjust(t: &mut Topology, opts: &LabOptions) {
    if opts.unique_name {
        t.name = unique_name(&t.name);
        t.netns_prefix = None;
    }
    t.isolated_host |= opts.isolated_host;
}

/// A node of a running lab.
pub struct NodeRef<'a> {
    lab: &'a Lab,
    node: String,
    netns: Option<String>,
}

impl NodeRef<'_> {
    /// The namespace name (under /run/netns).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.node
    }

    /// The lab this node belongs to.
    pub fn lab(&self) -> &Lab {
        self.lab
    }

    /// A `Command` that runs `program` inside the node (`ip netns exec` semantics).
    pub fn command(&self, program: &str) -> Command {
        crate::exec::command_in(self.netns.as_deref(), &self.node, program).unwrap_or_else(|e| panic!("node {} of lab {}: {e}", self.node, self.lab.name()))
    }

    /// Runs `f` on a thread inside the node's network namespace and returns its value.
    /// Sockets opened by `f` belong to the node.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let fd = self.netns.as_deref().map(|n| netns::open(n).unwrap_or_else(|e| panic!("open namespace {n}: {e}")));
        netns::run_in(fd.as_ref(), f).unwrap_or_else(|e| panic!("run in node {}: {e}", self.node))
    }
}

/// Builds a topology in code: nodes appear when first named.
pub struct LabBuilder {
    topo: Topology,
    opts: LabOptions,
}

fn split(ep: &str) -> (String, String) {
    match ep.split_once(':') {
        Some((n, i)) => (n.to_string(), i.to_string()),
        None => panic!("`{ep}` is not node:ifname"),
    }
}

impl LabBuilder {
    /// Declares a node (with no interfaces yet).
    pub fn node(mut self, name: &str) -> Self {
        self.topo.nodes.entry(name.to_string()).or_default();
        self
    }

    /// A veth pair between two endpoints `node:ifname`.
    pub fn link(mut self, a: &str, b: &str) -> Self {
        for ep in [a, b] {
            let (n, _) = split(ep);
            self.topo.nodes.entry(n).or_default();
        }
        self.topo.links.push(LinkSpec { endpoints: vec![a.to_string(), b.to_string()], mtu: None });
        self
    }

    fn iface(&mut self, ep: &str) -> &mut InterfaceSpec {
        let (n, i) = split(ep);
        self.topo
            .nodes
            .entry(n)
            .or_default()
            .interfaces
            .entry(i.clone())
            .or_insert_with(|| InterfaceSpec::new(if i == "lo" { KindSpec::Loopback(Default::default()) } else { KindSpec::Veth(Default::default()) }))
    }

    /// Declares a device of a given kind (`node:ifname`).
    pub fn device(mut self, ep: &str, kind: KindSpec) -> Self {
        self.iface(ep).kind = kind;
        self
    }

    /// A bridge device.
    pub fn bridge(self, ep: &str) -> Self {
        self.device(ep, KindSpec::Bridge(Default::default()))
    }

    pub fn address(mut self, ep: &str, cidr: &str) -> Self {
        self.iface(ep).addresses.push(cidr.to_string());
        self
    }

    pub fn master(mut self, ep: &str, master: &str) -> Self {
        self.iface(ep).master = Some(master.to_string());
        self
    }

    pub fn mtu(mut self, ep: &str, mtu: u32) -> Self {
        self.iface(ep).mtu = Some(mtu);
        self
    }

    /// A route in `node`: `to` is `default`, a prefix or an address.
    pub fn route(mut self, node: &str, to: &str, via: Option<&str>, dev: Option<&str>) -> Self {
        self.topo.nodes.entry(node.to_string()).or_default().routes.push(RouteSpec {
            to: to.to_string(),
            via: via.map(str::to_string),
            dev: dev.map(str::to_string),
            metric: None,
            table: None::<TableRef>,
            src: None,
        });
        self
    }

    pub fn sysctl(mut self, node: &str, key: &str, value: &str) -> Self {
        self.topo.nodes.entry(node.to_string()).or_default().sysctls.insert(key.to_string(), SysctlValue::Str(value.to_string()));
        self
    }

    /// An expectation for `Lab::check`, e.g. `ExpectSpec::reach("a", "b")`.
    pub fn expect(mut self, e: crate::model::expect::ExpectSpec) -> Self {
        self.topo.expect.push(e);
        self
    }

    /// Any other change to the topology.
    pub fn with(mut self, f: impl FnOnce(&mut Topology)) -> Self {
        f(&mut self.topo);
        self
    }

    /// Keep the given name instead of a unique one.
    pub fn keep_name(mut self) -> Self {
        self.opts.unique_name = false;
        self
    }

    /// The topology built so far.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    pub fn up(self) -> Result<Lab> {
        Lab::from_topology(self.topo, self.opts)
    }
}
