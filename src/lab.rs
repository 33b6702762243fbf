//! `Lab`: a running lab as a Rust value, for integration tests that want a throwaway network.
//! Built from a file, from text or in code, brought up with an isolated host and a name no
//! other test uses, torn down on drop (also when the test panics). The lab belongs to the
//! process that built it: that process holds a lock on the lab's record for the lab's life,
//! which the kernel releases when it dies (see `state::owner`). Meanwhile no other process's
//! `up` takes the lab over; if the process dies before its labs are dropped, `vnet gc` removes
//! them.
//!
//! ```
//! use vnet::Lab;
//!
//! let lab = Lab::builder("pair")
//!     .link("a:eth0", "b:eth0")
//!     .address("a:eth0", "10.0.0.1/24")
//!     .address("b:eth0", "10.0.0.2/24")
//!     .up()
//!     .expect("lab comes up");
//! // A command inside node b: it sees b's interfaces (and b's /sys).
//! let out = lab.node("b").command("ip").args(["-br", "link"]).output().unwrap();
//! let links = String::from_utf8_lossy(&out.stdout);
//! assert!(links.lines().any(|l| l.starts_with("eth0@")), "{links}");
//! // A closure on a thread inside node b's namespace: the sockets it opens are b's. (Only
//! // sockets: files such as /sys/class/net or /proc/net read from the closure are still
//! // those of the test process's own namespace; look at a node with `command`.)
//! let listener = lab.node("b").run(|| std::net::TcpListener::bind("10.0.0.2:8080")).unwrap();
//! let _client = lab.node("a").run(|| std::net::TcpStream::connect("10.0.0.2:8080")).unwrap();
//! let (_, peer) = listener.accept().unwrap();
//! assert_eq!(peer.ip().to_string(), "10.0.0.1");
//! // Dropping `lab` removes it.
//! ```
//!
//! Warnings (those `vnet validate` gives, and those raised while building) are printed to
//! stderr when the lab comes up, and kept: `Lab::warnings`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::lifecycle::{self, DownReport, LabStatus, Ownership, UpOptions, UpReport};
use crate::model::file::{InterfaceSpec, LinkSpec, RouteSpec, SysctlValue, TableRef, Topology};
use crate::model::kind::KindSpec;
use crate::model::source::{text_name, SourceText};
use crate::model::{self, Diag, Diagnostics, Format, Loaded};

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

/// Options for bringing a lab up from a file, text or a topology.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Replace the file's name with a unique one (default true, so tests never clash): the
    /// name given, cut to fit, then `-PID-N-RANDOM`. The name given must be a valid lab name
    /// (letters, digits, `-` and `_`, not starting with `-`); one that is not is refused as
    /// written, not changed.
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
    /// Brings up the lab of a topology file (YAML, TOML or JSON, by its extension), with a
    /// unique name and an isolated host. An invalid file is `Error::Invalid`, its findings
    /// pointing into the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Lab> {
        Lab::from_file_with(path, LabOptions::default())
    }

    /// `from_file` with options: e.g. `LabOptions { unique_name: false, ..Default::default() }`
    /// keeps the file's name.
    pub fn from_file_with(path: impl AsRef<Path>, opts: LabOptions) -> Result<Lab> {
        let path = path.as_ref();
        let loaded = model::load_file_with(path, |t| adjust(t, &opts)).map_err(Error::Invalid)?;
        Lab::start(loaded, Some(path))
    }

    /// Brings up the lab of topology text, read as a file of that format is (with a unique
    /// name and an isolated host). Findings point into the text, named `<yaml>` (`<toml>`,
    /// `<json>`).
    ///
    /// ```
    /// use vnet::{Format, Lab};
    ///
    /// let lab = Lab::from_str(
    ///     r#"
    /// name: text
    /// nodes:
    ///   a: { interfaces: { eth0: { addresses: [10.0.0.1/24] } } }
    ///   b: { interfaces: { eth0: { addresses: [10.0.0.2/24] } } }
    /// links:
    ///   - endpoints: [a:eth0, b:eth0]
    /// "#,
    ///     Format::Yaml,
    /// )
    /// .unwrap();
    /// assert!(lab.name().starts_with("text-"));
    /// assert!(lab.check().unwrap().ok);
    /// ```
    pub fn from_str(text: &str, format: Format) -> Result<Lab> {
        Lab::from_str_with(text, format, LabOptions::default())
    }

    /// `from_str` with options.
    pub fn from_str_with(text: &str, format: Format, opts: LabOptions) -> Result<Lab> {
        let loaded = model::load_str_with(text_name(format), text, format, |t| adjust(t, &opts)).map_err(Error::Invalid)?;
        Lab::start(loaded, None)
    }

    /// Brings up a topology built in code (see also `builder`, and `Topology::parse` for
    /// text).
    pub fn from_topology(mut topo: Topology, opts: LabOptions) -> Result<Lab> {
        adjust(&mut topo, &opts);
        let loaded = model::load_topology(&topo).map_err(Error::Invalid)?;
        Lab::start(loaded, None)
    }

    /// Starts a topology in code; see `LabBuilder`. `name` is the base of the lab's unique
    /// name, and must itself be a valid lab name (letters, digits, `-` and `_`).
    pub fn builder(name: &str) -> LabBuilder {
        LabBuilder { topo: Topology { name: name.to_string(), ..Default::default() }, opts: LabOptions::default(), problems: Vec::new() }
    }

    fn start(loaded: Loaded, file: Option<&Path>) -> Result<Lab> {
        let owner = crate::state::owner::Owner::new();
        let opts = UpOptions { file: file.map(Path::to_path_buf), owner: Ownership::Process(owner.clone()), ..Default::default() };
        let report = lifecycle::up(&loaded, &opts)?;
        let mut lab = Lab { loaded, owner, down_on_drop: true, from_file: file.is_some() };
        lab.note_warnings(report.warnings, &Diagnostics::default());
        Ok(lab)
    }

    /// Adds the warnings raised while building to validation's, and prints those not printed
    /// before (not in `before`) to stderr.
    fn note_warnings(&mut self, built: Diagnostics, before: &Diagnostics) {
        self.loaded.warnings.extend(built);
        if self.loaded.warnings.source.is_none() {
            self.loaded.warnings.source = Some(self.loaded.document.source.clone());
        }
        let mut fresh = Diagnostics::new(self.loaded.warnings.source.clone());
        for d in self.loaded.warnings.iter().filter(|d| !before.iter().any(|b| b == *d)) {
            fresh.push(d.clone());
        }
        if !fresh.is_empty() {
            let n = fresh.len();
            eprint!("vnet: lab {} is up with {n} warning{}:\n{}", self.name(), if n == 1 { "" } else { "s" }, fresh.report(false));
        }
    }

    /// The warnings about the lab: those `vnet validate` gives about its topology (a veth
    /// pair's ends with different MTUs, ...) and those raised while building it. They are
    /// printed to stderr when the lab comes up (and at `update`, those that are new); this
    /// is for a test that wants to assert on them.
    ///
    /// ```
    /// use vnet::Lab;
    ///
    /// let lab = Lab::builder("warned").link("a:eth0", "b:eth0").mtu("a:eth0", 1400).mtu("b:eth0", 1500).up().unwrap();
    /// let w: Vec<&str> = lab.warnings().iter().map(|d| d.message.as_str()).collect();
    /// assert!(w.iter().any(|m| m.contains("MTU")), "{w:?}");
    /// ```
    pub fn warnings(&self) -> &Diagnostics {
        &self.loaded.warnings
    }

    /// The lab's (unique) name.
    pub fn name(&self) -> &str {
        &self.loaded.lab.name
    }

    /// The validated model the lab was built from.
    pub fn model(&self) -> &model::Lab {
        &self.loaded.lab
    }

    /// The topology the lab was last brought up with (its unique name and isolated host
    /// filled in): clone it, change it, and pass it to `update`.
    ///
    /// ```
    /// use vnet::Lab;
    ///
    /// let mut lab = Lab::builder("edit").link("a:eth0", "b:eth0").address("a:eth0", "10.0.0.1/24").address("b:eth0", "10.0.0.2/24").up().unwrap();
    /// let mut t = lab.topology().clone();
    /// t.nodes["b"].interfaces["eth0"].addresses.push("10.0.0.3/24".into());
    /// lab.update(t).unwrap();
    /// assert!(lab.node("a").command("ping").args(["-c1", "-W2", "10.0.0.3"]).status().unwrap().success());
    /// ```
    pub fn topology(&self) -> &Topology {
        &self.loaded.lab.topology
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

    /// Applies a changed topology to the running lab, changing only what differs. The lab's
    /// name, host mode and namespace names are kept (whatever `topo` says of them), and so is
    /// the file it came from, if any, in its record. On an error the lab is as it was.
    pub fn update(&mut self, mut topo: Topology) -> Result<UpReport> {
        self.keep_identity(&mut topo);
        let loaded = model::load_topology(&topo).map_err(Error::Invalid)?;
        self.apply(loaded, None)
    }

    /// `update` with the topology of a file, which the lab's record then names.
    pub fn update_from_file(&mut self, path: impl AsRef<Path>) -> Result<UpReport> {
        let path = path.as_ref();
        let loaded = model::load_file_with(path, |t| self.keep_identity(t)).map_err(Error::Invalid)?;
        self.apply(loaded, Some(path))
    }

    /// `update` with topology text (as `from_str` reads it).
    pub fn update_from_str(&mut self, text: &str, format: Format) -> Result<UpReport> {
        let loaded = model::load_str_with(text_name(format), text, format, |t| self.keep_identity(t)).map_err(Error::Invalid)?;
        self.apply(loaded, None)
    }

    fn keep_identity(&self, topo: &mut Topology) {
        let now = &self.loaded.lab.topology;
        topo.name = self.name().to_string();
        topo.isolated_host = self.loaded.lab.isolated_host;
        topo.netns_prefix = now.netns_prefix.clone();
    }

    fn apply(&mut self, loaded: Loaded, file: Option<&Path>) -> Result<UpReport> {
        // A topology that is no file keeps the file the lab came from in its record.
        let recorded = || crate::state::load(self.name()).ok().flatten().and_then(|st| st.file);
        let kept: Option<PathBuf> = match file {
            Some(f) => Some(f.to_path_buf()),
            None => recorded(),
        };
        let report = lifecycle::up(&loaded, &UpOptions { file: kept, owner: Ownership::Process(self.owner.clone()), ..Default::default() })?;
        let before = std::mem::replace(&mut self.loaded, loaded).warnings;
        self.from_file = file.is_some();
        self.note_warnings(report.warnings.clone(), &before);
        Ok(report)
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

/// Takes the lab down; what could not be removed is printed to stderr.
impl Drop for Lab {
    fn drop(&mut self) {
        if self.down_on_drop {
            match lifecycle::down::down_owned(self.name(), &self.owner) {
                Err(e) => eprintln!("vnet: could not take lab {} down: {e}", self.name()),
                Ok(r) if !r.problems.is_empty() => {
                    eprintln!("vnet: lab {} is down, but not all of it could be removed:", self.name());
                    for p in &r.problems {
                        eprintln!("  {p}");
                    }
                }
                Ok(_) => {}
            }
        }
    }
}

fn adjust(t: &mut Topology, opts: &LabOptions) {
    // A name that is no lab name is left as written, for validation to refuse in the user's
    // words: made unique it would be changed, or refused as the generated name. (Only its
    // length does not matter: the unique name is cut to fit.)
    let base: String = t.name.chars().take(40).collect();
    if opts.unique_name && model::validate::lab_name_problem(&base).is_none() {
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

    /// The node's name, as the topology writes it.
    pub fn name(&self) -> &str {
        &self.node
    }

    /// The lab this node belongs to.
    pub fn lab(&self) -> &Lab {
        self.lab
    }

    /// A `Command` that runs `program` inside the node (`ip netns exec` semantics: the
    /// node's network namespace, its own /sys, and /etc/netns/NETNS/ bound over /etc).
    ///
    /// If the node's namespace cannot be opened (it was deleted outside vnet), this does not
    /// panic: the reason is printed to stderr and the command fails to start, `spawn`,
    /// `output` and `status` returning the OS error. `try_command` returns the error itself.
    pub fn command(&self, program: &str) -> Command {
        match self.try_command(program) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("vnet: {e}; `{program}` will fail to start");
                let errno = match &e {
                    Error::Io { source, .. } => source.raw_os_error(),
                    _ => None,
                }
                .unwrap_or(libc::ENOENT);
                failing_command(program, errno)
            }
        }
    }

    /// `command`, or the error that keeps it from running in the node
    /// (`Error::MissingNamespace` when the node's namespace is gone).
    pub fn try_command(&self, program: &str) -> Result<Command> {
        crate::exec::command_in(self.netns.as_deref(), &self.node, program).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::MissingNamespace { lab: self.lab.name().to_string(), node: self.node.clone(), netns: self.netns.clone().unwrap_or_default() }
            }
            Error::Io { context, source } => Error::Io { context: format!("node {} of lab {}: {context}", self.node, self.lab.name()), source },
            e => e,
        })
    }

    /// Runs `f` on a thread inside the node's network namespace and returns its value.
    /// Sockets opened by `f` belong to the node (nothing else follows the thread: files under
    /// /sys and /proc/net are the test process's). A panic in `f` (a failed assertion)
    /// continues in the caller with its own message, as `#[should_panic(expected = ...)]`
    /// and `catch_unwind` expect. Panics if the node's namespace cannot be entered.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let fd =
            self.netns.as_deref().map(|n| netns::open(n).unwrap_or_else(|e| panic!("node {} of lab {}: open namespace {n}: {e}", self.node, self.lab.name())));
        netns::run_in_unwinding(fd.as_ref(), f).unwrap_or_else(|e| panic!("node {} of lab {}: enter its namespace: {e}", self.node, self.lab.name()))
    }
}

/// A `Command` that fails to start with `errno` (before `program` is looked for).
fn failing_command(program: &str, errno: i32) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    // SAFETY: the hook only builds an error from an integer: no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || Err(std::io::Error::from_raw_os_error(errno)));
    }
    cmd
}

/// Builds a topology in code: nodes appear when first named, an interface (`node:ifname`)
/// when first given a setting (a veth, or the loopback for `lo`, unless `device` says
/// otherwise). Mistakes, such as an endpoint that is not `node:ifname`, are reported by `up`.
pub struct LabBuilder {
    topo: Topology,
    opts: LabOptions,
    /// Calls that could not be applied to the topology, reported by `up`.
    problems: Vec<String>,
}

fn split(ep: &str) -> Option<(String, String)> {
    ep.split_once(':').map(|(n, i)| (n.to_string(), i.to_string()))
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
            // An endpoint that is not node:ifname is refused by validation, at `up`.
            if let Some((n, _)) = split(ep) {
                self.topo.nodes.entry(n).or_default();
            }
        }
        self.topo.links.push(LinkSpec { endpoints: vec![a.to_string(), b.to_string()], mtu: None });
        self
    }

    fn iface(&mut self, call: &str, ep: &str) -> Option<&mut InterfaceSpec> {
        let Some((n, i)) = split(ep) else {
            self.problems.push(format!("{call}(\"{ep}\", ..): `{ep}` is not of the form `node:ifname`"));
            return None;
        };
        let iface = self
            .topo
            .nodes
            .entry(n)
            .or_default()
            .interfaces
            .entry(i.clone())
            .or_insert_with(|| InterfaceSpec::new(if i == "lo" { KindSpec::Loopback(Default::default()) } else { KindSpec::Veth(Default::default()) }));
        Some(iface)
    }

    /// Declares a device of a given kind (`node:ifname`).
    pub fn device(mut self, ep: &str, kind: KindSpec) -> Self {
        if let Some(i) = self.iface("device", ep) {
            i.kind = kind;
        }
        self
    }

    /// A bridge device.
    pub fn bridge(self, ep: &str) -> Self {
        self.device(ep, KindSpec::Bridge(Default::default()))
    }

    /// An address in CIDR form (`10.0.0.1/24`, `fd00::1/64`) on `node:ifname`; call it again
    /// for more.
    pub fn address(mut self, ep: &str, cidr: &str) -> Self {
        if let Some(i) = self.iface("address", ep) {
            i.addresses.push(cidr.to_string());
        }
        self
    }

    /// Makes `node:ifname` a port of the bridge `master` (an interface of the same node).
    pub fn master(mut self, ep: &str, master: &str) -> Self {
        if let Some(i) = self.iface("master", ep) {
            i.master = Some(master.to_string());
        }
        self
    }

    /// The MTU of `node:ifname`.
    pub fn mtu(mut self, ep: &str, mtu: u32) -> Self {
        if let Some(i) = self.iface("mtu", ep) {
            i.mtu = Some(mtu);
        }
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

    /// A sysctl set in `node`'s namespace while the lab is up, e.g.
    /// `sysctl("r", "net.ipv4.ip_forward", "1")`.
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

    /// Validates the topology and brings the lab up (with a unique name and an isolated
    /// host, unless told otherwise). An invalid topology, or a builder call that could not be
    /// applied, is `Error::Invalid`, saying what is wrong; nothing is built then.
    pub fn up(self) -> Result<Lab> {
        if !self.problems.is_empty() {
            let source = SourceText { name: format!("<lab {}>", self.topo.name), text: Default::default() };
            let diags: Diagnostics = self.problems.into_iter().map(Diag::error).collect::<Vec<_>>().into();
            return Err(Error::Invalid(diags.with_source(source)));
        }
        Lab::from_topology(self.topo, self.opts)
    }
}
