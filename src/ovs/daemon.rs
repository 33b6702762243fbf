//! A lab's private Open vSwitch in one node: ovsdb-server on a database created from the
//! installed schema, and ovs-vswitchd, both started inside the node's namespace (ovs-vswitchd
//! opens ports by name in its own namespace, and makes the bridge's devices there) with every
//! file in the lab's run directory (/run/vnet/LAB/ovs/NODE). Both detach (re-parented away
//! from vnet); their pids are read from their pid files. Stopping asks ovs-vswitchd to exit
//! with `--cleanup` (its datapath and the devices it made go) before signals, and only ever
//! signals a process of the right name whose command line names the lab's directory.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{jsonrpc, vswitch, Target};

pub const OVSDB_SERVER: &str = "ovsdb-server";
pub const VSWITCHD: &str = "ovs-vswitchd";

/// The installed vswitch schema (`OVS_PKGDATADIR` overrides the directory).
pub fn schema() -> PathBuf {
    std::env::var_os("OVS_PKGDATADIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/share/openvswitch")).join("vswitch.ovsschema")
}

/// Whether a program is on PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

/// What is missing to run a private Open vSwitch, as one message (None: nothing).
pub fn missing_software() -> Option<String> {
    let missing: Vec<&str> = ["ovsdb-tool", OVSDB_SERVER, VSWITCHD, "ovs-ofctl"].into_iter().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "Open vSwitch is not installed ({} not found); the lab's OVS bridges need it (Debian package openvswitch-switch)",
            missing.join(", ")
        ));
    }
    if !schema().is_file() {
        return Some(format!("the Open vSwitch database schema {} is missing (Debian package openvswitch-common)", schema().display()));
    }
    None
}

fn pidfile(dir: &Path, program: &str) -> PathBuf {
    dir.join(format!("{program}.pid"))
}

fn ctl(dir: &Path, program: &str) -> PathBuf {
    dir.join(format!("{program}.ctl"))
}

/// Whether `pid` is a running (not zombie) process.
pub fn alive(pid: u32) -> bool {
    crate::apply::team::alive(pid)
}

/// Whether `pid` is `program` started on `dir` (its command line names the directory).
fn is_ours(pid: u32, program: &str, dir: &Path) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    // comm is cut at 15 bytes: `ovs-vswitchd`, `ovsdb-server` fit.
    if comm.trim() != program {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = dir.to_string_lossy();
    String::from_utf8_lossy(&cmdline).split('\0').any(|a| a.contains(needle.as_ref()))
}

/// The running daemons of the instance in `dir`: program -> pid.
pub fn running(dir: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for program in [OVSDB_SERVER, VSWITCHD] {
        let pid = std::fs::read_to_string(pidfile(dir, program)).ok().and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|p| alive(*p) && is_ours(*p, program, dir)) {
            out.insert(program.to_string(), pid);
        }
    }
    out
}

/// Starts ovsdb-server and ovs-vswitchd for a node in `dir`, inside the namespace `netns`
/// (None: the namespace vnet runs in). Leftovers of an earlier instance there are stopped and
/// removed first. Returns the pids.
pub fn start(dir: &Path, netns: Option<&str>, node: &str) -> io::Result<BTreeMap<String, u32>> {
    if let Some(why) = missing_software() {
        return Err(io::Error::new(io::ErrorKind::NotFound, why));
    }
    if dir.exists() {
        stop(dir, &BTreeMap::new())?;
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let db = dir.join("conf.db");
    let out = std::process::Command::new("ovsdb-tool").arg("create").arg(&db).arg(schema()).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("ovsdb-tool create: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    let sock = dir.join("db.sock");
    let mut args: Vec<String> = vec![db.display().to_string(), format!("--remote=punix:{}", sock.display())];
    args.extend(common_args(dir, OVSDB_SERVER));
    spawn(dir, netns, node, OVSDB_SERVER, &args)?;
    let target = Target::new(dir);
    let mut client = target.connect().map_err(|e| io::Error::other(format!("connect to the new ovsdb-server: {e}")))?;
    vswitch::init(&mut client).map_err(|e| io::Error::other(format!("initialise the Open vSwitch database: {e}")))?;
    let mut args = vec![format!("unix:{}", sock.display())];
    args.extend(common_args(dir, VSWITCHD));
    if let Err(e) = spawn(dir, netns, node, VSWITCHD, &args) {
        let _ = stop(dir, &BTreeMap::new());
        return Err(e);
    }
    let pids = running(dir);
    if pids.len() != 2 {
        let _ = stop(dir, &pids);
        return Err(io::Error::other(format!("Open vSwitch in node {node} did not stay up: {}", log_tail(dir))));
    }
    Ok(pids)
}

fn common_args(dir: &Path, program: &str) -> Vec<String> {
    vec![
        format!("--pidfile={}", pidfile(dir, program).display()),
        format!("--unixctl={}", ctl(dir, program).display()),
        format!("--log-file={}", dir.join(format!("{program}.log")).display()),
        "--detach".into(),
        "--no-chdir".into(),
        "-vconsole:off".into(),
    ]
}

/// Runs a daemon with --detach: it returns once the daemon is initialised (ovs-vswitchd: has
/// read and applied its configuration).
fn spawn(dir: &Path, netns: Option<&str>, node: &str, program: &str, args: &[String]) -> io::Result<()> {
    let mut cmd = crate::exec::command_in(netns, node, program).map_err(|e| io::Error::other(e.to_string()))?;
    for var in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR"] {
        cmd.env(var, dir);
    }
    // The machine's system-id and other settings are not the lab's business.
    cmd.env("OVS_SYSCONFDIR", dir);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let out = cmd.output().map_err(|e| io::Error::new(e.kind(), format!("run {program}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let why = if err.is_empty() { log_tail(dir) } else { err };
        return Err(io::Error::other(format!("{program} failed to start in node {node}: {why}")));
    }
    Ok(())
}

fn log_tail(dir: &Path) -> String {
    let mut last = String::new();
    for program in [VSWITCHD, OVSDB_SERVER] {
        let text = std::fs::read_to_string(dir.join(format!("{program}.log"))).unwrap_or_default();
        if let Some(l) = text.lines().rev().find(|l| l.contains("|ERR|") || l.contains("|EMER|") || l.contains("|WARN|")) {
            last = format!("{program}: {l}");
            break;
        }
    }
    if last.is_empty() {
        "no error in its logs".into()
    } else {
        last
    }
}

/// Stops the instance in `dir` (pids from its pid files, plus `recorded`): ovs-vswitchd first,
/// asked to exit with cleanup, then ovsdb-server. Removes nothing else.
pub fn stop(dir: &Path, recorded: &BTreeMap<String, u32>) -> io::Result<()> {
    let mut pids = running(dir);
    for (k, v) in recorded {
        if alive(*v) && is_ours(*v, k, dir) {
            pids.entry(k.clone()).or_insert(*v);
        }
    }
    let mut problems = Vec::new();
    if let Some(pid) = pids.get(VSWITCHD) {
        // Deletes the datapath and the devices it made (persistent taps of the userspace
        // datapath, the kernel datapath's internal ports), which a signal would leave behind.
        let _ = jsonrpc::unixctl(&ctl(dir, VSWITCHD), "exit", &["--cleanup"]);
        if let Err(e) = wait_or_kill(*pid, VSWITCHD, dir) {
            problems.push(e.to_string());
        }
    }
    if let Some(pid) = pids.get(OVSDB_SERVER) {
        let _ = jsonrpc::unixctl(&ctl(dir, OVSDB_SERVER), "exit", &[]);
        if let Err(e) = wait_or_kill(*pid, OVSDB_SERVER, dir) {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(problems.join("; ")))
    }
}

/// Waits for `pid` to exit, then TERM, then KILL.
fn wait_or_kill(pid: u32, program: &str, dir: &Path) -> io::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let p = Pid::from_raw(pid as i32);
    for (signal, wait) in [(None, 3000), (Some(Signal::SIGTERM), 3000), (Some(Signal::SIGKILL), 1000)] {
        if let Some(s) = signal {
            if !(alive(pid) && is_ours(pid, program, dir)) {
                return Ok(());
            }
            let _ = kill(p, s);
        }
        let deadline = Instant::now() + Duration::from_millis(wait);
        while alive(pid) && Instant::now() < deadline {
            let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            std::thread::sleep(Duration::from_millis(10));
        }
        if !alive(pid) {
            return Ok(());
        }
    }
    Err(io::Error::other(format!("{program} {pid} does not stop")))
}

/// Every ovsdb-server / ovs-vswitchd on the machine started on a directory under `root`
/// (the labs' run directory): (pid, program, its directory).
pub fn all_under(root: &Path) -> Vec<(u32, String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    let root_s = root.to_string_lossy().to_string();
    for e in rd.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm != OVSDB_SERVER && comm != VSWITCHD {
            continue;
        }
        if !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).to_string();
        // The pid file argument names the directory: --pidfile=DIR/PROGRAM.pid
        let dir = cmdline.split('\0').find_map(|a| a.strip_prefix("--pidfile=")).map(|p| PathBuf::from(p).parent().map(Path::to_path_buf).unwrap_or_default());
        if let Some(d) = dir.filter(|d| d.starts_with(&root_s) && d.components().rev().nth(1).is_some_and(|c| c.as_os_str() == "ovs")) {
            out.push((pid, comm.to_string(), d));
        }
    }
    out
}
