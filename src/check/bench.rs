//! `vnet bench check`: builds a star-N lab (isolated host: one bridge, N namespaces with a veth
//! each, addresses in one /16), probes the full matrix, tears the lab down; and, in the same
//! run, times the usual way (`ip netns exec NS ping -c1` per pair) on a sample of pairs (all of
//! them for small N), extrapolated to the full matrix, and prints the ratio.
//!
//! N nodes talking to each other need ~N(N-1) neighbour entries, while the machine's table
//! (global, limits in the root namespace only) holds 1,024 by default: the benchmark raises
//! gc_thresh1/2/3 for its run and releases them afterwards (on error and panic too, and on
//! SIGINT/SIGTERM); the machine-wide record of raised limits names the run, so that `vnet gc`
//! releases them if the process is killed outright (see `probe::neigh::raise`).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{check_running, CheckOptions};
use crate::error::{Error, Result};
use crate::lab::{Lab, LabOptions};
use crate::model::file::{InterfaceSpec, LinkSpec, NodeSpec, Topology};
use crate::model::kind::{BridgeSpec, KindSpec};
use crate::probe::neigh::{self, Table};

/// Options of the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub nodes: usize,
    /// Pairs probed by the baseline (all pairs when the matrix is smaller).
    pub baseline_sample: usize,
    /// Skip the baseline.
    pub no_baseline: bool,
}

/// What the benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub nodes: usize,
    pub probes: usize,
    pub reached: usize,
    /// Wall time of the full matrix, sockets opened to last answer.
    pub matrix_s: f64,
    pub up_s: f64,
    pub down_s: f64,
    pub neighbour_limits: NeighbourLimits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// Estimated baseline time for the full matrix over vnet's matrix time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    pub notes: Vec<String>,
}

/// Limits raised for the run, and whether they were restored.
#[derive(Clone, Debug, Serialize)]
pub struct NeighbourLimits {
    pub before: neigh::Limits,
    pub during: neigh::Limits,
    pub restored: bool,
}

/// The `ip netns exec … ping -c1` baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Baseline {
    pub method: String,
    pub sample: usize,
    pub sample_s: f64,
    pub sample_reached: usize,
    pub per_probe_ms: f64,
    /// Extrapolated to every pair of the matrix.
    pub estimated_full_s: f64,
}

/// The star topology: `host` with bridge br0 (no address), nodes n1..nN with eth0 in 10.77.0.0/16.
pub fn star(n: usize) -> Topology {
    let mut t = Topology { name: "bench-check".into(), ..Default::default() };
    let mut host = NodeSpec::default();
    host.interfaces.insert("br0".into(), InterfaceSpec::new(KindSpec::Bridge(BridgeSpec { stp: Some(false), ..Default::default() })));
    for i in 1..=n {
        let mut port = InterfaceSpec::new(KindSpec::Veth(Default::default()));
        port.master = Some("br0".into());
        host.interfaces.insert(format!("p{i}"), port);
        let mut node = NodeSpec::default();
        let mut eth = InterfaceSpec::new(KindSpec::Veth(Default::default()));
        eth.addresses.push(format!("{}/16", star_addr(i)));
        node.interfaces.insert("eth0".into(), eth);
        t.nodes.insert(format!("n{i}"), node);
        t.links.push(LinkSpec { endpoints: vec![format!("n{i}:eth0"), format!("host:p{i}")], mtu: None });
    }
    t.nodes.insert("host".into(), host);
    t.nodes.move_index(t.nodes.len() - 1, 0);
    t
}

/// Address of node i (1-based) of the star.
pub fn star_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 77, (i / 250) as u8, (i % 250 + 1) as u8))
}

/// The raised limits, released by whichever comes first: the run's end or a signal.
static RAISED: Mutex<Option<neigh::Raised>> = Mutex::new(None);

fn signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// SIGINT and SIGTERM are blocked in this thread (and in the threads it starts from now on)
/// and waited for by a thread of their own, which releases the raised limits (under the
/// record's lock, which a signal handler could not take) and ends the process as the signal
/// would have.
fn arm_signals() {
    let set = signals();
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            if let Some(r) = RAISED.lock().unwrap_or_else(|e| e.into_inner()).take() {
                for p in r.restore() {
                    eprintln!("vnet: {p}");
                }
            }
            unsafe { libc::_exit(128 + sig as i32) };
        }
    });
}

/// Releases the raised limits still in `RAISED` when dropped (by a panic's unwinding).
struct ReleaseOnDrop;

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(r) = RAISED.lock().unwrap_or_else(|e| e.into_inner()).take() {
            for p in r.restore() {
                eprintln!("vnet: {p}");
            }
        }
    }
}

fn disarm_signals() {
    let _ = signals().thread_unblock();
}

/// Runs the benchmark.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let n = opts.nodes;
    if n < 2 {
        return Err(Error::io("bench check", std::io::Error::other("--nodes must be at least 2")));
    }
    let probes = n * (n - 1);
    let before = neigh::limits(Table::Arp).map_err(|e| Error::io("read the neighbour table limits", e))?;
    // Put back on return; on a signal that can be caught, at once; if this process is killed,
    // by `vnet gc` or the next run that raises them.
    let raised = neigh::raise(Table::Arp, probes as u64 + 2 * n as u64).map_err(|e| Error::io("raise the neighbour table limits", e))?;
    let during = neigh::limits(Table::Arp).map_err(|e| Error::io("read the neighbour table limits", e))?;
    *RAISED.lock().unwrap_or_else(|e| e.into_inner()) = Some(raised);
    // A panic in `measure` unwinds through this guard: the limits are released then too (a
    // value in a static is never dropped).
    let guard = ReleaseOnDrop;
    arm_signals();
    let result = measure(opts);
    let problems = RAISED.lock().unwrap_or_else(|e| e.into_inner()).take().map(neigh::Raised::restore).unwrap_or_default();
    drop(guard);
    disarm_signals();
    let after = neigh::limits(Table::Arp).ok();
    let mut r = result?;
    r.neighbour_limits = NeighbourLimits { before, during, restored: problems.is_empty() && after == Some(before) };
    r.notes.extend(problems);
    Ok(r)
}

fn measure(opts: &BenchOptions) -> Result<BenchReport> {
    let n = opts.nodes;
    let t = Instant::now();
    // Owned by this process: if it dies, `vnet gc` removes the lab.
    let lab = Lab::from_topology(star(n), LabOptions::default())?;
    let up_s = t.elapsed().as_secs_f64();
    let rl = lab.running()?;
    let report = check_running(&rl, &CheckOptions { timeout: Duration::from_secs(2), ..Default::default() })?;
    let m = report.matrix.clone().expect("a lab without expectations gets the matrix");
    let mut notes = report.notes.clone();
    let baseline = if opts.no_baseline {
        None
    } else {
        match baseline(&lab, n, opts.baseline_sample.max(1)) {
            Ok(b) => Some(b),
            Err(e) => {
                notes.push(format!("baseline not measured: {e}"));
                None
            }
        }
    };
    drop(rl);
    let t = Instant::now();
    let down = lab.down()?;
    let down_s = t.elapsed().as_secs_f64();
    notes.extend(down.problems);
    let ratio = baseline.as_ref().map(|b| b.estimated_full_s / m.matrix_s.max(1e-9));
    Ok(BenchReport {
        nodes: n,
        probes: m.probes,
        reached: m.reached,
        matrix_s: m.matrix_s,
        up_s,
        down_s,
        neighbour_limits: NeighbourLimits { before: Default::default(), during: Default::default(), restored: false },
        baseline,
        ratio,
        notes,
    })
}

/// Pairs (from, to), 1-based, spread evenly over the matrix.
pub fn sample_pairs(n: usize, want: usize) -> Vec<(usize, usize)> {
    let all = n * (n - 1);
    let k = want.min(all);
    (0..k)
        .map(|j| {
            let idx = j * all / k;
            let from = idx / (n - 1) + 1;
            let mut to = idx % (n - 1) + 1;
            if to >= from {
                to += 1;
            }
            (from, to)
        })
        .collect()
}

fn baseline(lab: &Lab, n: usize, sample: usize) -> std::io::Result<Baseline> {
    let pairs = sample_pairs(n, sample);
    let t = Instant::now();
    let mut reached = 0;
    for (from, to) in &pairs {
        let ns = lab.node(&format!("n{from}")).netns().unwrap_or_default().to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-c1", "-W1", "-q", &star_addr(*to).to_string()])
            .output()
            .map_err(|e| std::io::Error::new(e.kind(), format!("run ip netns exec … ping: {e}")))?;
        if out.status.success() {
            reached += 1;
        } else if String::from_utf8_lossy(&out.stderr).contains("not found") || out.status.code() == Some(127) {
            return Err(std::io::Error::other("ping is not installed (scripts/setup installs iputils-ping)"));
        }
    }
    let sample_s = t.elapsed().as_secs_f64();
    let per = sample_s / pairs.len() as f64;
    Ok(Baseline {
        method: "ip netns exec NS ping -c1 -W1 ADDR, one process per pair, run after vnet's matrix (neighbour entries warm)".into(),
        sample: pairs.len(),
        sample_s,
        sample_reached: reached,
        per_probe_ms: per * 1000.0,
        estimated_full_s: per * (n * (n - 1)) as f64,
    })
}

/// Text report.
pub fn render(r: &BenchReport) -> String {
    let mut s = format!(
        "vnet bench check: star-{} (isolated host, one bridge, /16)\n  up {:.3} s, down {:.3} s\n  matrix: {} ICMP probes, {} answered, {:.3} s\n",
        r.nodes, r.up_s, r.down_s, r.probes, r.reached, r.matrix_s
    );
    if let Some(b) = &r.baseline {
        s.push_str(&format!(
            "  baseline: {} pairs by `ip netns exec … ping -c1` in {:.3} s ({:.2} ms per pair, {} answered) -> {:.2} s estimated for all {} pairs\n",
            b.sample, b.sample_s, b.per_probe_ms, b.sample_reached, b.estimated_full_s, r.probes
        ));
    }
    if let Some(x) = r.ratio {
        s.push_str(&format!("  ratio: vnet check is {x:.1}x faster than the baseline\n"));
    }
    let l = &r.neighbour_limits;
    s.push_str(&format!(
        "  neighbour limits: gc_thresh3 {} -> {} for the run, {}\n",
        l.before.gc_thresh3,
        l.during.gc_thresh3,
        if l.restored { "restored" } else { "NOT restored (see notes)" }
    ));
    for n in &r.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_topology_validates_with_one_address_per_node() {
        let l = crate::model::load_topology(&star(300)).unwrap().lab;
        assert_eq!(l.nodes.len(), 301);
        assert_eq!(super::super::matrix::pairs(&l).len(), 300 * 299);
        assert_eq!(star_addr(1).to_string(), "10.77.0.2");
        assert_eq!(star_addr(250).to_string(), "10.77.1.1");
    }

    #[test]
    fn sample_is_spread_and_never_a_self_pair() {
        let s = sample_pairs(100, 200);
        assert_eq!(s.len(), 200);
        assert!(s.iter().all(|(a, b)| a != b && (1..=100).contains(a) && (1..=100).contains(b)));
        assert_eq!(s.first(), Some(&(1, 2)));
        assert!(s.iter().any(|(a, _)| *a == 100));
        let all = sample_pairs(4, 1000);
        assert_eq!(all.len(), 12, "all pairs when the matrix is small");
        let mut d = all.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 12);
    }
}
