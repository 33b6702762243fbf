//! The `vnet` command: argument parsing and printing over the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vnet::lifecycle::{self, LabStatus, Ownership, UpOptions};
use vnet::model::{self, Diagnostics};
use vnet::state::owner::Owner;
use vnet::Error;

#[derive(Parser)]
#[command(name = "vnet", version, about = "Declarative Linux network virtualization", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a lab from a topology file (or bring a running one in line with it).
    Up {
        file: PathBuf,
        /// Run the node `host` in a fresh namespace instead of the real root namespace.
        #[arg(long)]
        isolated_host: bool,
        /// Raise the machine's neighbour table limits when the lab can exceed them (restored at down).
        #[arg(long)]
        raise_neigh_limits: bool,
        /// Build this host's share of a multi-host lab (its nodes and its tunnel ends).
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove everything a lab created.
    Down {
        #[arg(value_parser = lab_arg)]
        lab: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the operations `up` would perform against the live kernel.
    Plan {
        file: PathBuf,
        #[arg(long)]
        isolated_host: bool,
        /// Plan this host's share of a multi-host lab.
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show labs as the kernel reports them, with where each differs from its record (what `up`
    /// would change: a device down, an address, route or sysctl changed by hand, traffic
    /// control); exit 1 when a lab that is up is not as recorded.
    Status {
        #[arg(value_parser = lab_arg)]
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node (like `ip netns exec`); its exit code is passed through.
    Exec {
        #[arg(value_parser = lab_arg)]
        lab: String,
        node: String,
        /// The command and its arguments, after `--` or directly (`vnet exec LAB NODE ip -br a`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Remove what labs left behind when their owner vanished.
    Gc {
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks: build generated labs with vnet and with iproute2, compare.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Change traffic control of a device in a running lab:
    /// `vnet impair LAB NODE:IFACE delay 20ms jitter 5ms loss 1% rate 10mbit`, or `--clear`.
    Impair {
        #[arg(value_parser = lab_arg)]
        lab: String,
        /// The device, `node:ifname`.
        target: String,
        /// Settings as `name value` pairs: delay, jitter, loss, duplicate, reorder, corrupt, rate, burst, limit.
        settings: Vec<String>,
        /// Remove the device's traffic control (its previous qdisc comes back).
        #[arg(long, conflicts_with = "settings")]
        clear: bool,
    },
    /// Check a topology file without touching the kernel; with `--kernel`, also what this
    /// kernel would refuse (as `plan` does, without looking at running labs).
    Validate {
        file: PathBuf,
        /// Also ask the running kernel, in a scratch namespace (root): sysctl names and values
        /// (exit 2), device kinds, qdiscs and features it lacks (exit 3).
        #[arg(long)]
        kernel: bool,
    },
    /// Print the JSON Schema of topology files.
    Schema,
    /// Verify a running lab: its expectations, or the full reachability matrix without any.
    /// Exit code 0 only when everything holds.
    Check {
        #[arg(value_parser = lab_arg)]
        lab: String,
        #[arg(long)]
        json: bool,
        /// Probe the full matrix even when the file declares expectations.
        #[arg(long)]
        matrix: bool,
        /// Milliseconds a probe waits for an answer.
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
    /// Follow a packet (an ICMP echo, or `--tcp`/`--udp PORT`) hop by hop with the kernel's own
    /// lookups, then confirm with one probe of the same protocol.
    Trace {
        #[arg(value_parser = lab_arg)]
        lab: String,
        node: String,
        /// An address, or a node name (its first address).
        destination: String,
        /// Trace a TCP connection to this port (firewall rules and port forwards on it apply;
        /// the probe connects to a listener the trace starts where the packet is delivered).
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..), conflicts_with = "udp")]
        tcp: Option<u16>,
        /// Trace a UDP datagram to this port (likewise; the listener answers the probe).
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        udp: Option<u16>,
        #[arg(long)]
        json: bool,
    },
    /// Find the usual reasons a lab does not behave, each with its fix (exit 1 when any is an error).
    Doctor {
        #[arg(value_parser = lab_arg)]
        lab: String,
        #[arg(long)]
        json: bool,
    },
    /// Capture packets of a node's device: pcap (-w FILE, `-` for stdout) or one line per packet.
    Capture {
        #[arg(value_parser = lab_arg)]
        lab: String,
        /// NODE:IFACE
        #[arg(value_parser = node_iface_arg)]
        target: (String, String),
        /// Write pcap here (`-`: stdout) instead of summary lines.
        #[arg(short = 'w', long = "write")]
        write: Option<PathBuf>,
        /// Stop after N matching packets.
        #[arg(long)]
        count: Option<usize>,
        /// Filter, e.g. `icmp`, `tcp port 80`, `host 10.0.0.2 and not arp` (see docs/capture.md).
        #[arg(long, value_parser = filter_arg)]
        filter: Option<vnet::capture::Filter>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Draw a lab (a topology file or a running lab): SVG (no graphviz needed), DOT or Mermaid.
    Graph {
        /// A topology file or the name of a running lab.
        target: String,
        #[arg(long, default_value = "svg")]
        format: vnet::graph::Format,
        /// Write here instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// One bridge in the host, N namespaces on it.
    Star(ScaleArgs),
    /// N namespaces in a routed line.
    Chain(ScaleArgs),
    /// A two-level tree of bridges with N leaves.
    Tree(ScaleArgs),
    /// Star-N lab, full ICMP matrix by `vnet check`, compared with `ip netns exec … ping` in the same run.
    Check {
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        #[arg(long)]
        json: bool,
        /// Pairs probed by the baseline (extrapolated to the full matrix).
        #[arg(long, default_value_t = 200)]
        baseline_sample: usize,
        #[arg(long)]
        no_baseline: bool,
    },
    /// CNI ADD/DEL latency: vnet-cni against the reference plugins, same configurations.
    Cni {
        /// ADD/DEL cycles per plugin and scenario.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// The vnet-cni executable (default: next to this `vnet`).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Directory of the reference plugins.
        #[arg(long, default_value = "/usr/lib/cni")]
        reference_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ScaleArgs {
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    #[arg(long)]
    json: bool,
    /// Skip the slow one-`ip`-command-per-step baseline.
    #[arg(long)]
    skip_script: bool,
    /// Build vnet's lab without an isolated host (its `host` is the namespace vnet runs in, as
    /// a user's lab on a machine); a scratch namespace stands in for the root namespace.
    #[arg(long)]
    root_host: bool,
    /// Rounds of vnet and `ip -batch`, alternating; the times shown are their medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
}

fn main() -> ExitCode {
    // Output into a closed pipe (`vnet trace ... | head`) ends the process quietly, as with
    // other command-line tools, instead of a panic. Rust's sockets send with MSG_NOSIGNAL, so
    // probes still get EPIPE as an error.
    // SAFETY: restoring the default disposition of a signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VNET_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// A lab named on the command line follows the rules of the file's `name`: a name such as
/// `""` or `a/../b` must never reach the lab's record directory.
fn lab_arg(s: &str) -> Result<String, String> {
    match vnet::model::validate::lab_name_problem(s) {
        Some(why) => Err(why),
        None => Ok(s.to_string()),
    }
}

/// `NODE:IFACE`, refused as a usage error (exit 2) when it is not that.
fn node_iface_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((n, i)) if !n.is_empty() && !i.is_empty() => Ok((n.to_string(), i.to_string())),
        _ => Err(format!("`{s}` is not NODE:IFACE (e.g. `a:eth0`)")),
    }
}

fn filter_arg(s: &str) -> Result<vnet::capture::Filter, String> {
    vnet::capture::Filter::parse(s).map_err(|e| e.to_string())
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn report(e: &Error) {
    match e {
        Error::Invalid(d) => eprint!("{}", d.report(color())),
        other => eprintln!("error: {other}"),
    }
}

fn print_warnings(d: &Diagnostics) {
    if d.warnings().next().is_some() {
        eprint!("{}", d.report(color()));
    }
}

fn load(file: &Path, isolated_host: bool) -> Result<model::Loaded, Error> {
    model::load_file_with(file, |t| t.isolated_host |= isolated_host).map_err(Error::Invalid)
}

/// The lab of a file, or one host's share of it (`--host`).
fn load_share(file: &Path, isolated_host: bool, host: Option<&str>) -> Result<model::Loaded, Error> {
    let mut loaded = load(file, isolated_host)?;
    if let Some(h) = host {
        loaded.lab = model::hosts::share(&loaded.lab, h).map_err(|d| Error::Invalid(vec![d].into()))?;
    }
    Ok(loaded)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serializable")
}

fn run(cli: Cli) -> Result<u8, Error> {
    match cli.cmd {
        Cmd::Up { file, isolated_host, raise_neigh_limits, host, json: as_json } => {
            let mut loaded = load_share(&file, isolated_host, host.as_deref())?;
            print_warnings(&loaded.warnings);
            loaded.release_document();
            // Run by the process that owns the lab (`vnet bench`), it acts as that owner.
            let owner = match Owner::borrowed(&vnet::state::lab_dir(&loaded.lab.name)) {
                Some(o) => Ownership::Process(o),
                None => Ownership::Command,
            };
            let opts = UpOptions { file: Some(file.clone()), owner, progress: true, raise_neigh_limits };
            let r = lifecycle::up(&loaded, &opts)?;
            print_warnings(&r.warnings);
            if as_json {
                println!("{}", json(&serde_json::json!({"lab": r.lab, "operations": r.plan.len(), "elapsed_s": r.elapsed.as_secs_f64(), "plan": r.plan})));
            } else if r.plan.is_empty() {
                println!("lab {} is up; nothing to do", r.lab);
            } else {
                println!("lab {} is up: {} operations in {:.0} ms", r.lab, r.plan.len(), r.elapsed.as_secs_f64() * 1000.0);
            }
            Ok(0)
        }
        Cmd::Down { lab, json: as_json } => {
            let r = match Owner::borrowed(&vnet::state::lab_dir(&lab)) {
                Some(o) => lifecycle::down::down_owned(&lab, &o)?,
                None => lifecycle::down(&lab)?,
            };
            if as_json {
                println!("{}", json(&r));
            } else {
                println!(
                    "lab {} is down: {} namespaces and {} root-namespace devices removed in {:.0} ms",
                    lab,
                    r.namespaces.len(),
                    r.root_devices.len(),
                    r.elapsed.as_secs_f64() * 1000.0
                );
                if let Some(pid) = r.owner_still_running {
                    let who = vnet::state::owner::OwnerState::describe_pid(pid, r.owner_elsewhere);
                    println!("note: the lab belonged to {who}, which is still running (a test's lab: it may go on using it)");
                }
                for p in &r.problems {
                    eprintln!("warning: {p}");
                }
            }
            Ok(if r.problems.is_empty() { 0 } else { 1 })
        }
        Cmd::Plan { file, isolated_host, host, json: as_json } => {
            let loaded = load_share(&file, isolated_host, host.as_deref())?;
            print_warnings(&loaded.warnings);
            let plan = lifecycle::plan(&loaded)?;
            if as_json {
                println!("{}", json(&plan));
            } else if plan.is_empty() {
                println!("lab {}: nothing to do", plan.lab);
            } else {
                print!("{plan}");
                println!("{} operations", plan.len());
            }
            Ok(0)
        }
        Cmd::Status { lab, json: as_json } => {
            let s = lifecycle::status(lab.as_deref())?;
            if as_json {
                println!("{}", json(&s));
            } else {
                print!("{}", lifecycle::status::render(&s));
            }
            // 1 when a lab that is up is not as its record says (`up` would change something).
            Ok(if s.iter().all(LabStatus::as_recorded) { 0 } else { 1 })
        }
        Cmd::Exec { lab, node, command } => {
            let mut cmd = vnet::exec::command(&lab, &node, &command[0])?;
            cmd.args(&command[1..]);
            let status = match cmd.status() {
                Ok(status) => status,
                // As a shell (and `env`) reports it: 127 for a command not found, 126 for one
                // that cannot run, so scripts tell these from the command's own failures.
                Err(e) => {
                    let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
                    report(&Error::io(format!("run `{}` in {lab}:{node}", command[0]), e));
                    return Ok(code);
                }
            };
            use std::os::unix::process::ExitStatusExt;
            Ok(match (status.code(), status.signal()) {
                (Some(c), _) => c as u8,
                (None, Some(sig)) => (128 + sig) as u8,
                _ => 1,
            })
        }
        Cmd::Gc { dry_run, json: as_json } => {
            let r = lifecycle::gc(dry_run)?;
            if as_json {
                println!("{}", json(&r));
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                println!(
                    "gc {verb}: {} abandoned labs, {} orphan namespaces, {} orphan root-namespace devices",
                    r.labs.len(),
                    r.namespaces.len(),
                    r.root_devices.len()
                );
                for l in &r.labs {
                    println!("  lab {l}");
                }
                for n in &r.namespaces {
                    println!("  namespace {n}");
                }
                for d in &r.root_devices {
                    println!("  device {d}");
                }
                for o in r.ovs.iter().chain(&r.benchmarks) {
                    println!("  {o}");
                }
                for p in &r.problems {
                    eprintln!("warning: {p}");
                }
            }
            Ok(if r.problems.is_empty() { 0 } else { 1 })
        }
        Cmd::Impair { lab, target, settings, clear } => {
            let imp = if clear {
                None
            } else {
                let i = vnet::model::netfeat::Impairment::from_words(&settings)
                    .map_err(|m| Error::Invalid(Diagnostics::from(vec![vnet::model::Diag::error(m)])))?;
                Some(i)
            };
            let r = lifecycle::impair::impair(&lab, &target, imp.as_ref())?;
            if r.plan.is_empty() {
                println!("lab {lab}: {target} already as asked; nothing to do");
            } else {
                print!("{}", r.plan);
            }
            Ok(0)
        }
        Cmd::Validate { file, kernel } => {
            let loaded = load(&file, false)?;
            print_warnings(&loaded.warnings);
            if kernel {
                lifecycle::up::check_against_kernel(&loaded)?;
            }
            let against = if kernel { ", and this kernel takes it" } else { "" };
            println!("{}: lab {} is valid ({} nodes){against}", file.display(), loaded.lab.name, loaded.lab.nodes.len());
            Ok(0)
        }
        Cmd::Bench { what: BenchCmd::Check { nodes, json: as_json, baseline_sample, no_baseline } } => {
            let r = vnet::check::bench::run(&vnet::check::bench::BenchOptions { nodes, baseline_sample, no_baseline })?;
            if as_json {
                println!("{}", json(&r));
            } else {
                print!("{}", vnet::check::bench::render(&r));
            }
            Ok(if r.reached == r.probes && r.neighbour_limits.restored { 0 } else { 1 })
        }
        Cmd::Bench { what: BenchCmd::Cni { iterations, plugin, reference_dir, json: as_json } } => {
            let opts = vnet::bench::cni::Options { iterations, plugin, reference_dir };
            let r = vnet::bench::cni::run(&opts).map_err(|e| Error::io("benchmark", std::io::Error::other(e)))?;
            if as_json {
                println!("{}", json(&r));
            } else {
                print!("{}", vnet::bench::cni::render(&r));
            }
            Ok(0)
        }
        Cmd::Bench { what } => {
            let (shape, a) = match what {
                BenchCmd::Star(a) => (vnet::bench::Shape::Star, a),
                BenchCmd::Chain(a) => (vnet::bench::Shape::Chain, a),
                BenchCmd::Tree(a) => (vnet::bench::Shape::Tree, a),
                BenchCmd::Check { .. } => unreachable!("handled above"),
                BenchCmd::Cni { .. } => unreachable!("handled above"),
            };
            let opts = vnet::bench::Options { shape, nodes: a.nodes, skip_script: a.skip_script, root_host: a.root_host, rounds: a.rounds.into() };
            let r = vnet::bench::run(&opts).map_err(|e| Error::io("benchmark", std::io::Error::other(e)))?;
            if a.json {
                println!("{}", json(&r));
            } else {
                print!("{}", vnet::bench::render(&r));
            }
            Ok(0)
        }
        Cmd::Schema => {
            print!("{}", model::schema::json_schema());
            Ok(0)
        }
        Cmd::Check { lab, json: as_json, matrix, timeout_ms } => {
            let opts = vnet::check::CheckOptions { timeout: std::time::Duration::from_millis(timeout_ms), matrix, progress: true, ..Default::default() };
            let r = vnet::check::check(&lab, &opts)?;
            if as_json {
                println!("{}", json(&r));
            } else {
                print!("{}", vnet::check::report::render(&r));
            }
            Ok(if r.ok { 0 } else { 1 })
        }
        Cmd::Trace { lab, node, destination, tcp, udp, json: as_json } => {
            let proto = match (tcp, udp) {
                (Some(p), _) => vnet::trace::Proto::Tcp(p),
                (None, Some(p)) => vnet::trace::Proto::Udp(p),
                (None, None) => vnet::trace::Proto::Icmp,
            };
            let t = vnet::trace::trace_flow(&lab, &node, &destination, proto)?;
            if as_json {
                println!("{}", json(&t));
            } else {
                print!("{}", vnet::trace::hop::render(&t));
            }
            let there_and_back = t.verdict == vnet::trace::Verdict::Delivered && t.back_verdict.is_none_or(|v| v == vnet::trace::Verdict::Delivered);
            Ok(if there_and_back && t.confirm.as_ref().is_none_or(|c| c.agrees) { 0 } else { 1 })
        }
        Cmd::Doctor { lab, json: as_json } => {
            let r = vnet::doctor::doctor(&lab)?;
            if as_json {
                println!("{}", json(&r));
            } else {
                print!("{}", vnet::doctor::render(&r));
            }
            Ok(if r.findings.iter().any(|f| f.severity == vnet::doctor::Severity::Error) { 1 } else { 0 })
        }
        Cmd::Capture { lab, target, write, count, filter, duration } => capture(&lab, target, write, count, filter, duration),
        Cmd::Graph { target, format, output } => {
            let text = vnet::graph::draw_target(&target, format)?;
            match output {
                Some(p) => std::fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))?,
                None => print!("{text}"),
            }
            Ok(0)
        }
    }
}

fn capture(
    lab: &str,
    (node, iface): (String, String),
    write: Option<PathBuf>,
    count: Option<usize>,
    filter: Option<vnet::capture::Filter>,
    duration: Option<f64>,
) -> Result<u8, Error> {
    use std::io::Write;
    use vnet::capture::{self, Capture, CaptureOptions};
    let (node, iface) = (node.as_str(), iface.as_str());
    let rl = vnet::inspect::RunningLab::open(lab)?;
    let mut cap = Capture::open(&rl, node, iface)?;
    let opts = CaptureOptions { count, filter, duration: duration.map(std::time::Duration::from_secs_f64) };
    let io_err = |e: std::io::Error| Error::io("capture", e);
    let mut pcap = match &write {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            Some(capture::pcap::PcapWriter::new(Box::new(std::io::stdout()) as Box<dyn Write>, cap.linktype, 262_144).map_err(io_err)?)
        }
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|e| Error::io(format!("create {}", p.display()), e))?;
            Some(capture::pcap::PcapWriter::new(Box::new(std::io::BufWriter::new(f)) as Box<dyn Write>, cap.linktype, 262_144).map_err(io_err)?)
        }
    };
    eprintln!("capturing on {node}:{iface} in lab {lab}");
    let iface = iface.to_string();
    let stats = cap
        .run(&opts, |p, d| match pcap.as_mut() {
            Some(w) => {
                w.packet(p.ts, &p.data, p.len)?;
                w.flush()
            }
            None => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", capture::summary(&iface, p, d))?;
                out.flush()
            }
        })
        .map_err(io_err)?;
    eprintln!("{} packets captured ({} seen)", stats.matched, stats.seen);
    Ok(0)
}
