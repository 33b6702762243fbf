//! `vnet bench star|chain|tree --nodes N`: the same generated lab built three ways in one run —
//! vnet, a hand-tuned `ip -batch` build, and a tutorial-style shell script of `ip` commands —
//! each verified (one probe per node) before its time counts. Prints wall times, ratios and
//! vnet's peak RSS.

pub mod cni;
pub mod topology;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use topology::{generate, Generated, Shape};

use crate::probe::neigh::{self, Table};
use crate::state::{self, bench::BenchRecord};

/// Options of a scale benchmark run.
#[derive(Clone, Debug)]
pub struct Options {
    pub shape: Shape,
    pub nodes: usize,
    /// Skip the (slow) one-command-per-step shell script baseline.
    pub skip_script: bool,
    /// vnet's lab without an isolated host: its `host` is the namespace vnet runs in, as for a
    /// user's lab on a machine. A scratch namespace plays that root namespace here.
    pub root_host: bool,
    /// Rounds of vnet and `ip -batch`, alternating; times are their medians (one run on a
    /// shared VM can be off by a quarter).
    pub rounds: usize,
}

/// Results; field names are part of the command's JSON contract.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub topology: String,
    pub nodes: usize,
    pub machine: String,
    /// Where vnet's `host` was: `isolated` (a namespace of the lab's) or `root` (the namespace
    /// vnet runs in, a scratch one standing in for the machine's).
    pub vnet_host: String,
    /// Rounds run; the `*_s` times of vnet and `ip -batch` are medians over them.
    pub rounds: usize,
    pub vnet_up_s: f64,
    pub vnet_reup_s: f64,
    pub vnet_down_s: f64,
    /// `down` returns once the lab's devices are gone; the namespaces it emptied are then freed
    /// by the kernel's cleanup worker. Until that is done too, as the baselines' `*_gone_s`.
    pub vnet_gone_s: f64,
    pub ip_batch_up_s: f64,
    /// `ip netns del` returns before the kernel has destroyed the namespaces and their
    /// devices; vnet's `down` returns once the devices are gone. `*_gone_s` time each way until
    /// the kernel's cleanup of everything it released is done (a witness namespace released
    /// after them is gone).
    pub ip_batch_down_s: f64,
    pub ip_batch_gone_s: f64,
    pub ip_script_up_s: Option<f64>,
    pub ip_script_down_s: Option<f64>,
    pub ip_script_gone_s: Option<f64>,
    /// vnet up time divided by the baseline's (below 1: vnet is faster).
    pub ratio_vnet_ip_batch: f64,
    pub ratio_vnet_ip_script: Option<f64>,
    /// vnet down (returned) divided by the `ip -batch` teardown until all is gone.
    pub ratio_vnet_down_ip_batch_gone: f64,
    /// Both until the kernel has destroyed everything they released.
    pub ratio_vnet_gone_ip_batch_gone: f64,
    /// Every round's time, in order (the spread behind the medians).
    pub vnet_up_runs_s: Vec<f64>,
    pub vnet_down_runs_s: Vec<f64>,
    pub ip_batch_up_runs_s: Vec<f64>,
    /// Peak resident memory of the `vnet` processes (up, re-up, down), in MB.
    pub peak_rss_mb: f64,
    /// Probes answered / sent, per way.
    pub vnet_verified: String,
    pub ip_batch_verified: String,
    pub ip_script_verified: Option<String>,
    /// Neighbour table limits raised for the run (and restored after).
    pub neigh_raised: bool,
}

/// Runs one benchmark. Each build must pass its probes, else the run fails.
pub fn run(opts: &Options) -> Result<Report, String> {
    let g = generate(opts.shape, opts.nodes);
    let tag = format!("{}{}-{}", opts.shape.name(), opts.nodes, std::process::id());
    let dir = ScratchDir::new(std::env::temp_dir().join(format!("vnet-bench-{tag}")))?;
    // What killed runs left (their baseline namespaces, raised limits) goes first.
    let (undone, problems) = crate::lifecycle::gc::benchmarks(false);
    for l in undone.iter().chain(&problems) {
        eprintln!("vnet bench: {l}");
    }
    // Limits raised for the run (one entry per probe and its answer), put back on drop (or,
    // if this process is killed, by `vnet gc` or the next run that raises them).
    let neigh = neigh::raise(Table::Arp, (g.probes.len() * 4) as u64).map_err(|e| format!("raise the neighbour table limits: {e}"))?;
    let neigh_raised = !neigh.previous().is_empty();
    // The run's record: if this process dies, `vnet gc` (or the next run) undoes what it names.
    let mut record = RecordGuard(BenchRecord { pid: std::process::id(), ..Default::default() });
    let note = |r: &BenchRecord| state::bench::save(r).map_err(|e| format!("write the benchmark's record: {e}"));
    record.scratch = Some(dir.to_path_buf());
    note(&record)?;
    // Between phases: the kernel first finishes destroying what the previous phase (or an
    // earlier run) released, then its deferred work settles.
    let settle_ms = 500 + 2 * opts.nodes as u64;
    let settle = || {
        match crate::kernel::witness::Witness::barrier(Duration::from_secs(60)) {
            Ok(true) => {}
            Ok(false) => eprintln!("vnet bench: the kernel was still destroying namespaces after 60 s"),
            Err(e) => eprintln!("vnet bench: cannot wait for the kernel's namespace cleanup: {e}"),
        }
        std::thread::sleep(Duration::from_millis(settle_ms));
    };
    settle();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;

    // vnet and `ip -batch` in alternate rounds, so that the machine's drift during the run
    // (memory the hypervisor took back, other load) weighs on both alike.
    let lab = format!("vb-{tag}");
    let file = dir.join("lab.json");
    let mut topo = g.topology(&lab);
    topo.isolated_host = !opts.root_host;
    std::fs::write(&file, serde_json::to_vec(&topo).unwrap()).map_err(|e| e.to_string())?;
    // The namespace standing in for the machine's root namespace (root-host runs).
    let root = if opts.root_host {
        let name = format!("vr-{tag}");
        record.namespaces = vec![name.clone()];
        note(&record)?;
        Some(ScratchNetns::new(name)?)
    } else {
        None
    };
    let mut vnet_runs = Vec::new();
    let mut batch_runs = Vec::new();
    for _ in 0..opts.rounds.max(1) {
        vnet_runs.push(vnet_round(&exe, &file, &lab, root.as_ref(), &g, opts.nodes)?);
        settle();
        batch_runs.push(batch_round(&dir, &tag, &g, opts.nodes, &mut record)?);
        settle();
    }
    drop(root);

    // Shell script.
    let (script_up, script_down, verified_s): (_, Option<Teardown>, _) = if opts.skip_script {
        (None, None, None)
    } else {
        let pfx = format!("is-{tag}-");
        let ns_s = |n: &str| format!("{pfx}{n}");
        let path = dir.join("build.sh");
        std::fs::write(&path, g.ip_script(&ns_s)).map_err(|e| e.to_string())?;
        record.namespaces = g.namespaces.iter().map(|n| ns_s(n)).collect();
        note(&record)?;
        let up = timed_with(Command::new("bash").arg(&path).process_group(0), &mut |pid| {
            record.baseline_pgid = Some(pid);
            let _ = state::bench::save(&record);
        });
        let verified = if up.is_ok() { probe_all(&g.probes.iter().map(|(n, a)| (ns_s(n), *a)).collect::<Vec<_>>()) } else { Verified::default() };
        let down = delete_until_gone(&dir, &g.namespaces.iter().map(|n| ns_s(n)).collect::<Vec<_>>());
        if down.is_ok() {
            record.namespaces.clear();
            note(&record)?;
        }
        let (up, down) = (up?, down?);
        check_all(&verified, opts.nodes, "ip script")?;
        (Some(up.wall.as_secs_f64()), Some(down), Some(format!("{}/{}", verified.answered, opts.nodes)))
    };
    drop(dir);
    for p in neigh.restore() {
        eprintln!("vnet bench: {p}");
    }
    drop(record);

    let med = |v: Vec<f64>| median(&v);
    let vnet_up_runs_s: Vec<f64> = vnet_runs.iter().map(|r| r.up.wall.as_secs_f64()).collect();
    let vnet_down_runs_s: Vec<f64> = vnet_runs.iter().map(|r| r.down.wall.as_secs_f64()).collect();
    let ip_batch_up_runs_s: Vec<f64> = batch_runs.iter().map(|r| r.up.wall.as_secs_f64()).collect();
    let vnet_up_s = median(&vnet_up_runs_s);
    let vnet_down_s = median(&vnet_down_runs_s);
    let vnet_gone_s = med(vnet_runs.iter().map(|r| r.gone.as_secs_f64()).collect());
    let ip_batch_up_s = median(&ip_batch_up_runs_s);
    let ip_batch_down_s = med(batch_runs.iter().map(|r| r.down.returned.as_secs_f64()).collect());
    let ip_batch_gone_s = med(batch_runs.iter().map(|r| r.down.gone.as_secs_f64()).collect());
    let peak_rss_mb = vnet_runs.iter().flat_map(|r| [r.up.rss_kb, r.reup.rss_kb, r.down.rss_kb]).max().unwrap_or(0) as f64 / 1024.0;
    Ok(Report {
        topology: opts.shape.name().to_string(),
        nodes: opts.nodes,
        machine: machine(),
        vnet_host: if opts.root_host { "root" } else { "isolated" }.to_string(),
        rounds: vnet_runs.len(),
        vnet_up_s,
        vnet_reup_s: med(vnet_runs.iter().map(|r| r.reup.wall.as_secs_f64()).collect()),
        vnet_down_s,
        vnet_gone_s,
        ip_batch_up_s,
        ip_batch_down_s,
        ip_batch_gone_s,
        ip_script_up_s: script_up,
        ip_script_down_s: script_down.as_ref().map(|d| d.returned.as_secs_f64()),
        ip_script_gone_s: script_down.as_ref().map(|d| d.gone.as_secs_f64()),
        ratio_vnet_ip_batch: vnet_up_s / ip_batch_up_s,
        ratio_vnet_ip_script: script_up.map(|s| vnet_up_s / s),
        ratio_vnet_down_ip_batch_gone: vnet_down_s / ip_batch_gone_s,
        ratio_vnet_gone_ip_batch_gone: vnet_gone_s / ip_batch_gone_s,
        vnet_up_runs_s,
        vnet_down_runs_s,
        ip_batch_up_runs_s,
        peak_rss_mb,
        vnet_verified: format!("{}/{}", opts.nodes, opts.nodes),
        ip_batch_verified: format!("{}/{}", opts.nodes, opts.nodes),
        ip_script_verified: verified_s,
        neigh_raised,
    })
}

fn check_all(got: &Verified, want: usize, who: &str) -> Result<(), String> {
    if got.answered == want {
        Ok(())
    } else {
        let shown: Vec<&str> = got.unanswered.iter().take(5).map(String::as_str).collect();
        let more = got.unanswered.len().saturating_sub(shown.len());
        Err(format!(
            "{who}: only {} of {want} probes answered ({}{}); the build does not work, so its time does not count",
            got.answered,
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ))
    }
}

/// One vnet round: `up` (its probes must all answer), an `up` with nothing to do, `down`,
/// and the wait until the kernel has destroyed what `down` released.
struct VnetRun {
    up: Timed,
    reup: Timed,
    down: Timed,
    gone: Duration,
}

fn vnet_round(exe: &Path, file: &Path, lab: &str, root: Option<&ScratchNetns>, g: &Generated, nodes: usize) -> Result<VnetRun, String> {
    let vnet_cmd = || match root {
        Some(r) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", crate::kernel::netns::netns_path(&r.0).display())).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let up = timed(vnet_cmd().arg("up").arg(file))?;
    let owner = adopt(lab);
    // The `vnet`s run on the lab act as its owner: not refused as another process's lab.
    let as_owner = |c: &mut Command| {
        if let Some(o) = &owner {
            o.lend_to(c);
        }
    };
    let ns_vnet = |n: &str| match root {
        Some(r) if n == crate::model::HOST => r.0.clone(),
        _ => format!("{lab}-{n}"),
    };
    let verified = probe_all(&g.probes.iter().map(|(n, a)| (ns_vnet(n), *a)).collect::<Vec<_>>());
    let mut reup_cmd = vnet_cmd();
    as_owner(reup_cmd.arg("up").arg(file));
    let reup = timed(&mut reup_cmd);
    let mut down_cmd = vnet_cmd();
    as_owner(down_cmd.arg("down").arg(lab));
    let down = timed(&mut down_cmd);
    let gone = down.as_ref().map_err(String::clone).and_then(|d| Ok(d.wall + kernel_done()?));
    drop(owner);
    let (reup, down, gone) = (reup?, down?, gone?);
    check_all(&verified, nodes, "vnet")?;
    Ok(VnetRun { up, reup, down, gone })
}

/// One `ip -batch` round: the build (its probes must all answer) and its teardown.
struct BatchRun {
    up: Timed,
    down: Teardown,
}

fn batch_round(dir: &Path, tag: &str, g: &Generated, nodes: usize, record: &mut RecordGuard) -> Result<BatchRun, String> {
    let pfx = format!("ib-{tag}-");
    let ns_b = |n: &str| format!("{pfx}{n}");
    let (host, files) = g.ip_batch(&ns_b);
    record.namespaces = g.namespaces.iter().map(|n| ns_b(n)).collect();
    state::bench::save(record).map_err(|e| format!("write the benchmark's record: {e}"))?;
    let batch = run_batch(dir, &host, &files, &mut |pid| {
        record.baseline_pgid = Some(pid);
        let _ = state::bench::save(record);
    });
    // A failed build is reported as such (after removing what it made).
    let verified = if batch.is_ok() { probe_all(&g.probes.iter().map(|(n, a)| (ns_b(n), *a)).collect::<Vec<_>>()) } else { Verified::default() };
    let down = delete_until_gone(dir, &g.namespaces.iter().map(|n| ns_b(n)).collect::<Vec<_>>());
    if down.is_ok() {
        record.namespaces.clear();
        state::bench::save(record).map_err(|e| format!("write the benchmark's record: {e}"))?;
    }
    let (up, down) = (batch?, down?);
    check_all(&verified, nodes, "ip -batch")?;
    Ok(BatchRun { up, down })
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Probes answered, and the others as `namespace → address: what was seen`.
#[derive(Default)]
struct Verified {
    answered: usize,
    unanswered: Vec<String>,
}

/// One ICMP echo from each namespace to its address (in-process, all in flight at once);
/// which answered.
fn probe_all(probes: &[(String, std::net::Ipv4Addr)]) -> Verified {
    use crate::probe::echo::{self, EchoOptions, EchoProbe};
    use std::os::fd::AsFd;
    let fds: Vec<Option<std::os::fd::OwnedFd>> = probes.iter().map(|(ns, _)| crate::kernel::netns::open(ns).ok()).collect();
    let sources: Vec<Option<std::os::fd::BorrowedFd<'_>>> = fds.iter().map(|f| f.as_ref().map(|f| f.as_fd())).collect();
    let list: Vec<EchoProbe> = probes
        .iter()
        .enumerate()
        .filter(|(i, _)| fds[*i].is_some())
        .map(|(i, (_, dst))| EchoProbe { src: i, dst: (*dst).into(), size: None, df: false, phase: 0 })
        .collect();
    // Few in flight: each first echo starts with an ARP broadcast flooded to every bridge port,
    // and thousands at once overflow the per-CPU receive backlog (net.core.netdev_max_backlog).
    let opts = EchoOptions { timeout: std::time::Duration::from_secs(2), window: 16, ..Default::default() };
    // A second round for the unanswered: across joined bridges the first echo can be lost
    // while the neighbour entries are being made (the same for every way of building).
    let mut answered = 0;
    let mut left = list;
    let mut seen_last = Vec::new();
    for round in 0..3 {
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let r = match echo::run(&sources, &left, &opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("probes failed: {e}");
                break;
            }
        };
        let mut again = Vec::new();
        let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
        seen_last.clear();
        for (p, x) in left.into_iter().zip(r) {
            if x.outcome.is_reply() {
                answered += 1;
            } else {
                *seen.entry(format!("{:?}", x.outcome)).or_default() += 1;
                seen_last.push(format!("{} → {}: {:?}", probes[p.src].0, probes[p.src].1, x.outcome));
                again.push(p);
            }
        }
        if !seen.is_empty() {
            tracing::debug!(target: "vnet::bench", "unanswered probes: {seen:?}");
        }
        left = again;
        if left.is_empty() {
            seen_last.clear();
            break;
        }
    }
    if left.is_empty() {
        seen_last.clear();
    }
    Verified { answered, unanswered: seen_last }
}

/// A finished child process: wall time and peak RSS.
struct Timed {
    wall: Duration,
    rss_kb: i64,
}

fn timed(cmd: &mut Command) -> Result<Timed, String> {
    timed_with(cmd, &mut |_| {})
}

/// `timed`, telling `started` the child's pid as soon as it runs.
fn timed_with(cmd: &mut Command, started: &mut dyn FnMut(u32)) -> Result<Timed, String> {
    let t = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    started(child.id());
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 gives the child's own peak RSS (ru_maxrss, in KB).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    if r < 0 {
        return Err(format!("{cmd:?}: {}", std::io::Error::last_os_error()));
    }
    let st = std::process::ExitStatus::from_raw(status);
    if !st.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("{cmd:?} failed ({st}): {}", err.trim()));
    }
    Ok(Timed { wall, rss_kb: ru.ru_maxrss })
}

/// Builds with `ip -batch` files, in a process group of its own (recorded through `started`,
/// so that `gc` can stop it if the benchmark dies).
fn run_batch(dir: &Path, host: &str, files: &[(String, String)], started: &mut dyn FnMut(u32)) -> Result<Timed, String> {
    let host_file = dir.join("host.batch");
    std::fs::write(&host_file, host).map_err(|e| e.to_string())?;
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    for (i, (ns, text)) in files.iter().enumerate() {
        let p = dir.join(format!("ns{i}.batch"));
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        paths.push((ns.clone(), p));
    }
    // The whole build is one shell run, so its process starts count as they would by hand.
    let mut script = format!("set -e\nip -batch {}\n", host_file.display());
    for (ns, p) in &paths {
        script.push_str(&format!("ip -n {ns} -batch {}\n", p.display()));
    }
    let s = dir.join("batch.sh");
    std::fs::write(&s, script).map_err(|e| e.to_string())?;
    timed_with(Command::new("bash").arg(&s).process_group(0), started)
}

/// The run's record, removed when the run ends (also by an error) unless it still names
/// baseline namespaces that could not be deleted: those are left for `vnet gc`.
struct RecordGuard(BenchRecord);

impl std::ops::Deref for RecordGuard {
    type Target = BenchRecord;
    fn deref(&self) -> &BenchRecord {
        &self.0
    }
}

impl std::ops::DerefMut for RecordGuard {
    fn deref_mut(&mut self) -> &mut BenchRecord {
        &mut self.0
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if self.0.namespaces.is_empty() {
            let _ = state::bench::remove(self.0.pid);
        }
    }
}

/// Makes this process the owner of the lab vnet built (as the test library does), so that
/// `vnet gc` removes it if the benchmark dies before its `down`; the lab is the benchmark's
/// while the returned handle lives.
fn adopt(lab: &str) -> Option<state::owner::Owner> {
    state::owner::adopt(lab).map_err(|e| eprintln!("vnet bench: cannot own lab {lab}: {e}")).ok()
}

/// Deletes namespaces the benchmark created, by their exact names, in one `ip -batch`.
/// The run's generated files; removed however the run ends (an error returns early).
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(path: std::path::PathBuf) -> Result<ScratchDir, String> {
        std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A baseline's teardown: when its commands returned, and when the kernel had destroyed what
/// they released.
struct Teardown {
    returned: Duration,
    gone: Duration,
}

/// `ip netns del` for every name, then waits for the kernel's cleanup (as `vnet_gone_s` does
/// after vnet's `down`), timing both.
fn delete_until_gone(dir: &Path, names: &[String]) -> Result<Teardown, String> {
    let returned = delete_namespaces(dir, names)?.wall;
    Ok(Teardown { returned, gone: returned + kernel_done()? })
}

/// Waits until the kernel has destroyed every namespace released so far; how long that took.
fn kernel_done() -> Result<Duration, String> {
    let t = Instant::now();
    match crate::kernel::witness::Witness::barrier(Duration::from_secs(60)) {
        Ok(true) => Ok(t.elapsed()),
        Ok(false) => Err("the kernel was still destroying released namespaces after 60 s".into()),
        Err(e) => Err(format!("cannot wait for the kernel's namespace cleanup: {e}")),
    }
}

fn delete_namespaces(dir: &Path, names: &[String]) -> Result<Timed, String> {
    let p = dir.join("del.batch");
    let text: String = names.iter().map(|n| format!("netns del {n}\n")).collect();
    std::fs::write(&p, text).map_err(|e| e.to_string())?;
    timed(Command::new("ip").arg("-force").arg("-batch").arg(&p))
}

/// A named namespace made for the run, deleted on drop (with whatever is still in it).
struct ScratchNetns(String);

impl ScratchNetns {
    fn new(name: String) -> Result<ScratchNetns, String> {
        let out = Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| format!("ip netns add {name}: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(ScratchNetns(name))
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = crate::kernel::netns::delete(&self.0);
    }
}

/// The machine, for the report: CPU model, cores, kernel.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {model}, Linux {}", kernel.trim())
}

/// The table printed by `vnet bench`.
pub fn render(r: &Report) -> String {
    let mut s = format!("{}-{} on {}{}\n", r.topology, r.nodes, r.machine, if r.vnet_host == "root" { " (vnet's host: the root namespace)" } else { "" });
    if r.rounds > 1 {
        let span = |v: &[f64]| {
            let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            format!("{lo:.3}–{hi:.3} s")
        };
        s.push_str(&format!(
            "medians of {} rounds (vnet and ip -batch alternating); up: vnet {}, ip -batch {}; vnet down {}\n",
            r.rounds,
            span(&r.vnet_up_runs_s),
            span(&r.ip_batch_up_runs_s),
            span(&r.vnet_down_runs_s)
        ));
    }
    s.push_str(&format!("{:<12} {:>10} {:>10} {:>10} {:>13} {:>12}\n", "", "up", "re-up", "down", "all gone", "verified"));
    s.push_str(&format!(
        "{:<12} {:>9.3}s {:>9.3}s {:>9.3}s {:>12.3}s {:>12}\n",
        "vnet", r.vnet_up_s, r.vnet_reup_s, r.vnet_down_s, r.vnet_gone_s, r.vnet_verified
    ));
    s.push_str(&format!(
        "{:<12} {:>9.3}s {:>10} {:>9.3}s {:>12.3}s {:>12}\n",
        "ip -batch", r.ip_batch_up_s, "-", r.ip_batch_down_s, r.ip_batch_gone_s, r.ip_batch_verified
    ));
    if let (Some(u), Some(d), Some(g), Some(v)) = (r.ip_script_up_s, r.ip_script_down_s, r.ip_script_gone_s, &r.ip_script_verified) {
        s.push_str(&format!("{:<12} {:>9.3}s {:>10} {:>9.3}s {:>12.3}s {:>12}\n", "ip script", u, "-", d, g, v));
    }
    s.push_str(&format!("vnet up / ip -batch up: {:.2}x", r.ratio_vnet_ip_batch));
    if let Some(x) = r.ratio_vnet_ip_script {
        s.push_str(&format!("   vnet up / ip script up: {x:.3}x"));
    }
    s.push_str(&format!(
        "\nvnet down / ip -batch until all is gone: {:.2}x   both until all is gone: {:.2}x",
        r.ratio_vnet_down_ip_batch_gone, r.ratio_vnet_gone_ip_batch_gone
    ));
    s.push_str(&format!(
        "\nvnet peak RSS: {:.1} MB{}\n",
        r.peak_rss_mb,
        if r.neigh_raised { "   (neighbour table limits raised for the run, restored)" } else { "" }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_no_runs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[0.7]), 0.7);
        assert_eq!(median(&[]), 0.0);
    }
}
