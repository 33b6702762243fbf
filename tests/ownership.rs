//! Who owns a lab, across processes: labs of the Rust library belong to the process that built
//! them (an owner lock the kernel releases when the process dies, whatever its PID namespace),
//! another process's `up` never takes a live owner's lab over, `gc` collects a lab whose owner
//! was killed, and labs that raise the machine's neighbour limits share them (the last one to go
//! puts the machine's values back).
//!
//! The owners are this test binary run again as a child process (`child_process` below), alone
//! or in a PID namespace of its own (`unshare -p -f`, where it is pid 1).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use vnet::lab::unique_name;
use vnet::model::file::NeighbourLimits;
use vnet::Lab;

const CHILD: &str = "VNET_OWNERSHIP_CHILD";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn show(o: &std::process::Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), text(&o.stdout), text(&o.stderr))
}

/// The pair lab every owner here builds (`name`, `keep`: that exact name), with the neighbour
/// limits `neigh` held raised while it lives.
fn pair(name: &str, keep: bool, neigh: Option<[u64; 3]>) -> vnet::lab::LabBuilder {
    let mut b = Lab::builder(name).link("a:eth0", "b:eth0").address("a:eth0", "10.83.0.1/24").address("b:eth0", "10.83.0.2/24");
    if keep {
        b = b.keep_name();
    }
    if let Some([gc_thresh1, gc_thresh2, gc_thresh3]) = neigh {
        b = b.with(|t| t.neighbour_limits = Some(NeighbourLimits::Explicit { gc_thresh1, gc_thresh2, gc_thresh3 }));
    }
    b
}

/// Not a test of its own: the body of the owner processes the tests start (this binary run
/// again with `VNET_OWNERSHIP_CHILD=NAME [keep] [neigh=A,B,C]`). Brings up a pair lab, prints
/// `LAB name PID pid`, holds the lab until its stdin closes, then takes it down and prints how
/// that went.
#[test]
#[ignore = "the owner process of the other tests, which run it with VNET_OWNERSHIP_CHILD set"]
fn child_process() {
    let spec = std::env::var(CHILD).expect("run by the ownership tests, with VNET_OWNERSHIP_CHILD set");
    let words: Vec<&str> = spec.split_whitespace().collect();
    let neigh = words.iter().find_map(|w| w.strip_prefix("neigh=")).map(|v| {
        let n: Vec<u64> = v.split(',').map(|x| x.parse().unwrap()).collect();
        [n[0], n[1], n[2]]
    });
    let mut out = std::io::stdout();
    match pair(words[0], words.contains(&"keep"), neigh).up() {
        Ok(lab) => {
            writeln!(out, "LAB {} PID {}", lab.name(), std::process::id()).unwrap();
            out.flush().unwrap();
            let mut rest = String::new();
            let _ = std::io::stdin().read_to_string(&mut rest);
            match lab.down() {
                Ok(_) => writeln!(out, "DOWN ok").unwrap(),
                Err(e) => writeln!(out, "DOWN error {}: {e}", e.exit_code()).unwrap(),
            }
        }
        Err(e) => writeln!(out, "UP error {}: {e}", e.exit_code()).unwrap(),
    }
    out.flush().unwrap();
}

/// An owner process holding its lab.
struct Owner {
    child: Child,
    out: BufReader<ChildStdout>,
    lab: String,
    /// Its pid as it sees it (1 in a PID namespace of its own).
    pid: u32,
}

impl Owner {
    /// Starts an owner (`pidns`: in a PID namespace of its own, as its pid 1) and waits for its
    /// lab to be up.
    fn start(spec: &str, pidns: bool) -> Owner {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = if pidns {
            let mut c = Command::new("unshare");
            // --kill-child: killing `unshare` kills the owner too.
            c.args(["-p", "-f", "--kill-child"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(["--exact", "child_process", "--ignored", "--nocapture", "--test-threads=1", "-q"]).env(CHILD, spec);
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        // Killed and waited for (its `Drop`) should it not come up.
        let mut owner = Owner { child, out, lab: String::new(), pid: 0 };
        let mut line = String::new();
        loop {
            line.clear();
            assert!(owner.out.read_line(&mut line).unwrap() > 0, "the owner ended before its lab was up");
            if let Some(rest) = line.trim().strip_prefix("LAB ") {
                let (lab, pid) = rest.split_once(" PID ").unwrap();
                owner.lab = lab.to_string();
                owner.pid = pid.parse().unwrap();
                return owner;
            }
            assert!(!line.starts_with("UP error"), "the owner's lab did not come up: {line}");
        }
    }

    /// Lets the owner take its lab down and end; returns what it said about the `down`.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        assert!(self.child.wait().unwrap().success());
        rest.lines().find(|l| l.starts_with("DOWN")).unwrap_or_default().to_string()
    }

    /// SIGKILL, and waits until the kernel has released its owner lock.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let t = Instant::now();
        while owner_running(&self.lab) != Some(false) {
            assert!(t.elapsed() < Duration::from_secs(10), "the owner of {} still holds its lock", self.lab);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.lab.clone()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record(lab: &str) -> Option<Vec<u8>> {
    std::fs::read(Path::new("/run/vnet").join(lab).join("state.json")).ok()
}

fn record_json(lab: &str) -> serde_json::Value {
    serde_json::from_slice(&record(lab).unwrap_or_else(|| panic!("lab {lab} has no record"))).unwrap()
}

/// `vnet status LAB --json`'s `owner` entry.
fn status_owner(lab: &str) -> serde_json::Value {
    let out = vnet(None, &["status", lab, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", show(&out)));
    v[0]["owner"].clone()
}

/// Whether the lab's owner runs, as `gc` and `status` tell (the owner lock).
fn owner_running(lab: &str) -> Option<bool> {
    use vnet::state::owner::{state, OwnerState};
    match state(&vnet::state::lab_dir(lab), vnet::state::load(lab).ok()?.as_ref(), None) {
        OwnerState::Alive { .. } => Some(true),
        OwnerState::Gone { .. } => Some(false),
        _ => None,
    }
}

/// The tests here take turns: each runs `vnet gc`, which would collect another test's killed
/// owner's lab before that test looks.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lab's namespaces and record, to compare before and after another process tried it.
fn snapshot(lab: &str) -> (Vec<String>, Option<Vec<u8>>) {
    let mut ns = namespaces_with_prefix(&format!("{lab}-"));
    ns.sort();
    (ns, record(lab))
}

/// The namespaces of a pair lab: its two nodes' (it declares no `host`, so it has no host
/// namespace).
fn pair_namespaces(lab: &str) -> Vec<String> {
    vec![format!("{lab}-a"), format!("{lab}-b")]
}

fn topology_file(lab: &str, nodes: &[&str]) -> PathBuf {
    let mut body = format!("name: {lab}\nnodes:\n");
    for n in nodes {
        body.push_str(&format!("  {n}: {{}}\n"));
    }
    body.push_str(&format!("links: [ {{ endpoints: [{}:eth0, {}:eth0] }} ]\n", nodes[0], nodes[1]));
    temp_topology(lab, "yaml", &body)
}

fn refusal(lab: &str, pid: u32, elsewhere: bool) -> String {
    let who = if elsewhere { format!("pid {pid} (in another PID namespace)") } else { format!("pid {pid}") };
    format!("lab `{lab}` belongs to {who}, which is still running: nothing was changed (the lab goes when its owner is done with it; `vnet down {lab}` removes it now)")
}

/// Two test processes in PID namespaces of their own are both pid 1 and both ask for a lab
/// "hanger": their labs get distinct names, neither touches the other's, and once one is
/// killed `status` says its owner is gone and `gc` removes its lab (and only that one).
#[test]
fn owners_in_separate_pid_namespaces_keep_their_own_labs_and_gc_collects_a_killed_ones() {
    require_root();
    let _turn = serial();
    let a = Owner::start("hanger", true);
    let b = Owner::start("hanger", true);
    let _guards = [DownGuard::new(&a.lab, None), DownGuard::new(&b.lab, None)];
    assert_eq!((a.pid, b.pid), (1, 1), "both owners are pid 1 of their PID namespace");
    assert_ne!(a.lab, b.lab, "the names do not collide");
    assert!(a.lab.starts_with("hanger-1-0-") && b.lab.starts_with("hanger-1-0-"), "{} {}", a.lab, b.lab);
    for l in [&a.lab, &b.lab] {
        assert_eq!(snapshot(l).0, pair_namespaces(l));
        let st = record_json(l);
        assert_eq!((st["owner_pid"].as_u64(), st["owner_lock"].as_bool()), (Some(1), Some(true)));
        assert_eq!(
            status_owner(l),
            serde_json::json!({"pid": 1, "running": true, "other_pid_namespace": true, "note": "owner pid 1 (in another PID namespace) is running"})
        );
    }
    let b_before = snapshot(&b.lab);

    let a_lab = a.kill();
    assert_eq!(
        status_owner(&a_lab),
        serde_json::json!({"pid": 1, "running": false, "other_pid_namespace": true, "note": "owner pid 1 (in another PID namespace) is gone: `vnet gc` removes it"})
    );
    let out = vnet(None, &["status", &a_lab]);
    assert!(text(&out.stdout).contains("\n  owner pid 1 (in another PID namespace) is gone: `vnet gc` removes it\n"), "{}", show(&out));
    let out = vnet(None, &["gc"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains(&format!("  lab {a_lab}\n")), "{}", show(&out));
    assert!(!text(&out.stdout).contains(&b.lab), "{}", show(&out));
    assert_gone(&a_lab);
    assert_eq!(snapshot(&b.lab), b_before, "the live owner's lab is untouched");

    let b_lab = b.lab.clone();
    assert_eq!(b.finish(), "DOWN ok");
    assert_gone(&b_lab);
}

/// `up` of a lab that another running process owns (the same name kept, as with
/// `keep_name()`) is refused with exit 4, naming the owner, and changes nothing: from the
/// library, from the command line, and from a second `Lab` of the owner's own process.
#[test]
fn up_of_a_lab_a_running_owner_holds_is_refused_and_changes_nothing() {
    require_root();
    let _turn = serial();
    let name = unique_name("same");
    let a = Owner::start(&format!("{name} keep"), false);
    let _guard = DownGuard::new(&name, None);
    assert_eq!(a.lab, name);
    let before = snapshot(&name);
    assert_eq!(before.0, pair_namespaces(&name));

    // Another process's library: a different topology under the same name.
    let e = Lab::builder(&name).keep_name().link("a:eth0", "c:eth0").up().err().expect("refused");
    assert_eq!(e.exit_code(), 4);
    assert_eq!(e.to_string(), refusal(&name, a.pid, false));
    assert!(matches!(e, vnet::Error::Owned { pid, elsewhere: false, .. } if pid == a.pid));
    // The command line.
    let file = topology_file(&name, &["a", "c"]);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert_eq!(text(&out.stderr), format!("error: {}\n", refusal(&name, a.pid, false)));
    assert_eq!(snapshot(&name), before, "nothing of the owner's lab changed");
    // gc leaves a live owner's lab.
    let out = vnet(None, &["gc"]);
    assert!(!text(&out.stdout).contains(&name), "{}", show(&out));
    assert_eq!(snapshot(&name), before);

    // Two labs of one name in one process: the second is refused too (flock locks belong to
    // open files, not processes).
    let mine = unique_name("mine");
    let first = pair(&mine, true, None).up().unwrap();
    let mine_before = snapshot(&mine);
    let e = Lab::builder(&mine).keep_name().node("z").up().err().expect("refused");
    assert_eq!(e.to_string(), refusal(&mine, std::process::id(), false));
    assert_eq!(snapshot(&mine), mine_before);
    // A plain `up` of this process's own lab (not a second `Lab`) is no other process's: it
    // goes through and leaves the lab (and its record, owner included) as it was.
    let loaded = vnet::model::load_topology(first.topology()).unwrap();
    assert!(vnet::lifecycle::up(&loaded, &Default::default()).unwrap().plan.is_empty());
    assert_eq!(snapshot(&mine), mine_before);
    first.down().unwrap();
    assert_gone(&mine);

    assert_eq!(a.finish(), "DOWN ok");
    assert_gone(&name);
}

/// `vnet down LAB` of a lab whose owner still runs removes it (it was asked for by name) and
/// says so; when another process has brought the name up again since, the first owner's own
/// `down` leaves that lab alone.
#[test]
fn down_by_name_of_a_running_owners_lab_says_so_and_the_owner_then_leaves_the_next_lab_alone() {
    require_root();
    let _turn = serial();
    let name = unique_name("downed");
    let a = Owner::start(&format!("{name} keep"), false);
    let _guard = DownGuard::new(&name, None);
    let out = vnet(None, &["down", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).contains(&format!("\nnote: the lab belonged to pid {}, which is still running (a test's lab: it may go on using it)\n", a.pid)),
        "{}",
        show(&out)
    );
    assert_gone(&name);

    // This process brings the name up again; the first owner's `down` must not remove it.
    let lab = pair(&name, true, None).up().unwrap();
    let before = snapshot(&name);
    assert_eq!(a.finish(), format!("DOWN error 4: {}", refusal(&name, std::process::id(), false)));
    assert_eq!(snapshot(&name), before, "the new lab is untouched");
    lab.down().unwrap();
    assert_gone(&name);
}

/// A test's lab removed by name and brought up again by the command line is not the test's
/// any more: the `Lab`'s `update` is refused and changes nothing, and its `down` leaves the
/// command line's lab alone.
#[test]
fn a_lab_removed_by_name_and_brought_up_again_is_left_alone_by_its_former_lab_value() {
    require_root();
    let _turn = serial();
    let name = unique_name("retaken");
    let mut lab = pair(&name, true, None).up().unwrap();
    let _guard = DownGuard::new(&name, None);
    let out = vnet(None, &["down", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout)
            .contains(&format!("\nnote: the lab belonged to pid {}, which is still running (a test's lab: it may go on using it)\n", std::process::id())),
        "{}",
        show(&out)
    );
    assert_gone(&name);
    let file = topology_file(&name, &["a", "b"]);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!text(&out.stderr).contains("belonged"), "a lab of nobody's: {}", show(&out));
    let before = snapshot(&name);
    assert_eq!(before.0, pair_namespaces(&name));

    let not_ours = format!("lab {name}: removed by someone else and brought up again since: not this process's lab any more; left alone");
    let e =
        lab.update_from_str("name: x\nnodes: { a: {}, b: {}, c: {} }\nlinks: [ { endpoints: [a:eth0, b:eth0] } ]\n", vnet::Format::Yaml).expect_err("refused");
    assert_eq!(e.to_string(), not_ours);
    assert_eq!(snapshot(&name), before, "the update changed nothing");
    assert_eq!(lab.down().expect_err("refused").to_string(), not_ours);
    assert_eq!(snapshot(&name), before, "the command line's lab is untouched");
    assert_eq!(status_owner(&name), serde_json::Value::Null);

    let out = vnet(None, &["down", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!text(&out.stdout).contains("note:"), "{}", show(&out));
    assert_gone(&name);
}

/// A process that owns a lab it did not build with the library (as `vnet bench` adopts the lab
/// its `vnet up` built) lets the `vnet`s it runs act as the owner: their `up` is not refused
/// and their `down` removes the lab without a note, while any other `up` is refused. Once the
/// owner lets go without a `down` (as a killed benchmark), `gc` removes the lab.
#[test]
fn an_owner_lends_its_claim_to_the_vnet_commands_it_runs() {
    require_root();
    let _turn = serial();
    let name = unique_name("lent");
    let _guard = DownGuard::new(&name, None);
    let file = topology_file(&name, &["a", "b"]);
    let up = || vnet_cmd(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    for round in ["gc", "down"] {
        let out = up().output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let owner = vnet::state::owner::adopt(&name).unwrap();
        let st = record_json(&name);
        assert_eq!((st["owner_pid"].as_u64(), st["owner_lock"].as_bool()), (Some(std::process::id() as u64), Some(true)));
        let before = snapshot(&name);
        assert_eq!(before.0, pair_namespaces(&name));

        let out = up().output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{}", show(&out));
        assert_eq!(text(&out.stderr), format!("error: {}\n", refusal(&name, std::process::id(), false)));
        let mut cmd = up();
        owner.lend_to(&mut cmd);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert_eq!(text(&out.stdout), format!("lab {name} is up; nothing to do\n"), "{}", show(&out));
        assert_eq!(snapshot(&name), before, "the lent `up` kept the lab and its owner");

        if round == "gc" {
            drop(owner);
            assert_eq!(
                status_owner(&name),
                serde_json::json!({"pid": std::process::id(), "running": false, "note": format!("owner pid {} is gone: `vnet gc` removes it", std::process::id())})
            );
            let out = vnet(None, &["gc"]);
            assert!(text(&out.stdout).contains(&format!("  lab {name}\n")), "{}", show(&out));
        } else {
            let mut cmd = vnet_cmd(None, &["down", &name]);
            owner.lend_to(&mut cmd);
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", show(&out));
            assert!(text(&out.stdout).starts_with(&format!("lab {name} is down: 2 namespaces")), "{}", show(&out));
            assert!(!text(&out.stdout).contains("note:"), "{}", show(&out));
            drop(owner);
        }
        assert_gone(&name);
    }
}

/// An owner killed outright: `status` says so, `gc --dry-run` names the lab and leaves it,
/// `gc` removes it. A command-line `up` of a dead owner's lab makes it a lab of the command
/// line (which `gc` then leaves).
#[test]
fn a_killed_owners_lab_is_shown_as_such_and_gc_removes_it_or_the_command_line_takes_it() {
    require_root();
    let _turn = serial();
    let a = Owner::start("killed", false);
    let pid = a.pid;
    let _ga = DownGuard::new(&a.lab, None);
    let lab = a.kill();
    let out = vnet(None, &["status", &lab]);
    assert!(text(&out.stdout).contains(&format!("\n  owner pid {pid} is gone: `vnet gc` removes it\n")), "{}", show(&out));
    assert_eq!(status_owner(&lab), serde_json::json!({"pid": pid, "running": false, "note": format!("owner pid {pid} is gone: `vnet gc` removes it")}));
    let out = vnet(None, &["gc", "--dry-run"]);
    assert!(text(&out.stdout).contains(&format!("  lab {lab}\n")), "{}", show(&out));
    assert_eq!(snapshot(&lab).0, pair_namespaces(&lab), "a dry run removes nothing");
    let out = vnet(None, &["gc"]);
    assert!(text(&out.stdout).contains(&format!("  lab {lab}\n")), "{}", show(&out));
    assert_gone(&lab);

    let name = unique_name("adopted");
    let b = Owner::start(&format!("{name} keep"), false);
    let _gb = DownGuard::new(&name, None);
    let pid = b.pid;
    b.kill();
    let file = topology_file(&name, &["a", "b"]);
    let out = vnet(None, &["up", file.to_str().unwrap(), "--isolated-host"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stderr).contains(&format!(
            "lab {name} belonged to pid {pid}, which is gone: it is now a lab of the command line (removed by `vnet down {name}`, not by `vnet gc`)"
        )),
        "{}",
        show(&out)
    );
    assert_eq!(status_owner(&name), serde_json::Value::Null);
    assert!(!Path::new("/run/vnet").join(&name).join("owner").exists());
    let out = vnet(None, &["gc"]);
    assert!(!text(&out.stdout).contains(&name), "{}", show(&out));
    assert_eq!(snapshot(&name).0, pair_namespaces(&name));
    let out = vnet(None, &["down", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!text(&out.stdout).contains("note:"), "{}", show(&out));
    assert_gone(&name);
}

// Neighbour limits shared by labs
// ---------------------------------------------------------------------------------------------

const LIMITS_RECORD: &str = "/run/lock/vnet-neigh-limits.json";

fn limits() -> [u64; 3] {
    [1, 2, 3].map(|n| std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{n}")).unwrap().trim().parse().unwrap())
}

/// Puts the machine's limits back as they were when the test started, however it ends (they
/// are the machine's, not the test's), highest first when lowering.
struct LimitsGuard([u64; 3]);

impl Drop for LimitsGuard {
    fn drop(&mut self) {
        if limits() != self.0 {
            for n in [1, 2, 3] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{n}"), self.0[n - 1].to_string());
            }
            eprintln!("ownership test: put the neighbour limits back to {:?}", self.0);
        }
    }
}

fn max3(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
    [a[0].max(b[0]), a[1].max(b[1]), a[2].max(b[2])]
}

/// Two labs raise the neighbour limits at once: each limit is the larger of theirs; whichever
/// goes down first, the other's stay, and the last one down puts the machine's values back.
/// An owner killed while it holds them: `gc` removes its lab and the limits go down to what
/// the remaining lab holds.
#[test]
fn labs_share_raised_neighbour_limits_and_the_last_down_puts_the_machines_back() {
    require_root();
    let _turn = serial();
    let orig = limits();
    let _guard = LimitsGuard(orig);
    assert!(!Path::new(LIMITS_RECORD).exists(), "the neighbour limits are held raised already: {:?}", std::fs::read_to_string(LIMITS_RECORD));
    let l1 = [orig[0] + 100, orig[1] + 1000, orig[2] + 2000];
    let l2 = [orig[0] + 50, orig[1] + 3000, orig[2] + 4000];
    let both = max3(l1, l2);
    for first_down in [1, 2] {
        // Up at the same time.
        let t1 = std::thread::spawn(move || pair("neigh1", false, Some(l1)).up().unwrap());
        let t2 = std::thread::spawn(move || pair("neigh2", false, Some(l2)).up().unwrap());
        let (lab1, lab2) = (t1.join().unwrap(), t2.join().unwrap());
        assert_eq!(limits(), both, "each limit is the larger of the two labs'");
        assert_eq!(record_json(lab1.name())["neigh_held"], serde_json::json!(l1));
        assert!(Path::new(LIMITS_RECORD).exists());
        let (first, second, left) = if first_down == 1 { (lab1, lab2, l2) } else { (lab2, lab1, l1) };
        let r = first.down().unwrap();
        assert_eq!(limits(), left, "the other lab's limits stay (first down: lab {first_down})");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let r = second.down().unwrap();
        assert_eq!(limits(), orig, "the last down puts the machine's values back (first down: lab {first_down})");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let mut restored = r.restored_sysctls.clone();
        restored.sort();
        let expected: Vec<String> =
            (1..=3).filter(|n| left[n - 1] != orig[n - 1]).map(|n| format!("net.ipv4.neigh.default.gc_thresh{n}={}", orig[n - 1])).collect();
        assert_eq!(restored, expected);
        assert!(!Path::new(LIMITS_RECORD).exists(), "no holder left: no record");
    }

    // A holder killed outright.
    let lab1 = pair("neigh1", false, Some(l1)).up().unwrap();
    let owner = Owner::start(&format!("neighk neigh={},{},{}", l2[0], l2[1], l2[2]), true);
    let _g = DownGuard::new(&owner.lab, None);
    assert_eq!(limits(), both);
    let killed = owner.kill();
    assert_eq!(limits(), both, "held until gc finds the owner gone");
    let out = vnet(None, &["gc"]);
    assert!(text(&out.stdout).contains(&format!("  lab {killed}\n")), "{}", show(&out));
    assert_gone(&killed);
    assert_eq!(limits(), max3(l1, orig), "down to what the remaining lab holds");
    lab1.down().unwrap();
    assert_eq!(limits(), orig);
    assert!(!Path::new(LIMITS_RECORD).exists());
}
