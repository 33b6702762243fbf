//! teamd, the daemon behind team devices: one per team device, started inside the node's
//! namespace (as `ip netns exec` would) on the device vnet created (`--take-over`), detached
//! from vnet, its pid kept in the lab's directory (and record) so that `down`, `gc` and a
//! rollback stop it. teamd holds the namespace alive while it runs, so it stops first.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::state;

fn dir(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("teamd")
}

fn base(node: &str, ifname: &str) -> String {
    format!("{node}.{ifname}")
}

/// Starts teamd for `ifname` in `node`; returns its pid once it runs.
pub fn start(lab: &str, node: &str, netns: Option<&str>, ifname: &str, config: &str) -> io::Result<u32> {
    let d = dir(lab);
    std::fs::create_dir_all(&d)?;
    let b = base(node, ifname);
    let log = d.join(format!("{b}.log"));
    let own_pidfile = d.join(format!("{b}.teamd.pid"));
    // `sh` puts teamd in the background and prints its pid: teamd is re-parented away from
    // vnet (which may exit at once) and never becomes a zombie of a long-lived test process.
    let script = r#"exec 3>&1; setsid "$@" </dev/null >"$LOG" 2>&1 & echo $!"#;
    let mut cmd = crate::exec::command_in(netns, node, "sh").map_err(|e| io::Error::other(e.to_string()))?;
    cmd.env("LOG", &log)
        .args(["-c", script, "sh", "teamd", "-o", "-u", "-t", ifname, "-c", config, "-p"])
        .arg(&own_pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("sh: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("no pid from the teamd launcher: {:?}", String::from_utf8_lossy(&out.stdout))))?;
    std::fs::write(d.join(format!("{b}.pid")), pid.to_string())?;
    // teamd fails fast (missing binary, no team driver, bad config): give it a moment.
    let deadline = Instant::now() + Duration::from_millis(400);
    while Instant::now() < deadline {
        if !alive(pid) {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            let _ = std::fs::remove_file(d.join(format!("{b}.pid")));
            let why = text.lines().last().unwrap_or("").trim().to_string();
            let why = if why.is_empty() { "it exited at once (is teamd installed? Debian package libteam-utils)".to_string() } else { why };
            return Err(io::Error::other(format!("teamd for {node}:{ifname} stopped: {why}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Ready once the team device runs the runner's mode: ports may join from then on.
    let want = serde_json::from_str::<serde_json::Value>(config).ok().and_then(|v| v["runner"]["name"].as_str().map(str::to_string)).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mode = crate::exec::command_in(netns, node, "teamnl")
            .ok()
            .and_then(|mut c| c.args([ifname, "getoption", "mode"]).output().ok())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if mode == want {
            break;
        }
        if !alive(pid) || Instant::now() > deadline {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            let _ = stop(pid);
            let _ = std::fs::remove_file(d.join(format!("{b}.pid")));
            return Err(io::Error::other(format!(
                "teamd for {node}:{ifname} did not set mode {want} (mode now {mode:?}): {}",
                text.lines().last().unwrap_or("").trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

/// `config` with the team's own address as teamd's `hwaddr`, unless it names one already.
///
/// Without `hwaddr`, teamd gives the team the original address of the first port it takes.
/// libteam records a device's original address only while the device has no master, that is
/// only if teamd saw the port before it was enslaved. `up` creates each port after teamd started
/// and enslaves it at once: when teamd did not run in between (a loaded machine), it refused the
/// port ("Port original hardware address has different length (0) than team device has (6)"),
/// and again at every later port event, so it kept no port, never chose an active port, and the
/// team dropped all traffic for good while its carrier (which the kernel derives from the
/// ports) said up. With `hwaddr` teamd skips that step, and the team keeps the address it was
/// created with (the topology's `mac`, or the kernel's random one), whatever the timing.
pub fn pin_hwaddr(config: &str, mac: [u8; 6]) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(config) else { return config.to_string() };
    if !map.contains_key("hwaddr") {
        let text = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        map.insert("hwaddr".into(), serde_json::Value::String(text));
    }
    serde_json::Value::Object(map).to_string()
}

/// Whether `pid` is a running (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

fn is_teamd(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == "teamd").unwrap_or(false)
}

/// Stops one teamd (TERM, then KILL after 3 s). Only a process named teamd is signalled.
pub fn stop(pid: u32) -> io::Result<()> {
    if !alive(pid) || !is_teamd(pid) {
        return Ok(());
    }
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let p = Pid::from_raw(pid as i32);
    let _ = kill(p, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) && Instant::now() < deadline {
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        let _ = kill(p, Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        return Err(io::Error::other(format!("teamd {pid} does not stop")));
    }
    Ok(())
}

/// teamd processes of a lab, from its directory: "node:ifname" -> pid.
pub fn running(lab: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir(lab)) else { return out };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(b) = name.strip_suffix(".pid").filter(|b| !b.ends_with(".teamd")) else { continue };
        let Some((node, ifname)) = b.split_once('.') else { continue };
        if let Some(pid) = std::fs::read_to_string(e.path()).ok().and_then(|s| s.trim().parse().ok()) {
            out.insert(format!("{node}:{ifname}"), pid);
        }
    }
    out
}

/// Stops every teamd of a lab (recorded or found in its directory); returns problems.
pub fn stop_lab(lab: &str, recorded: &BTreeMap<String, u32>) -> Vec<String> {
    let mut all = running(lab);
    for (k, v) in recorded {
        all.entry(k.clone()).or_insert(*v);
    }
    let mut problems = Vec::new();
    for (what, pid) in all {
        if let Err(e) = stop(pid) {
            problems.push(format!("teamd of {what}: {e}"));
        }
    }
    let _ = std::fs::remove_dir_all(dir(lab));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_address_is_pinned_unless_the_configuration_names_one() {
        let mac = [0x02, 0, 0, 0, 0xab, 0x01];
        let cfg = crate::model::kind::TeamSpec::default().teamd_config("team0");
        let v: serde_json::Value = serde_json::from_str(&pin_hwaddr(&cfg, mac)).unwrap();
        assert_eq!(v["hwaddr"], "02:00:00:00:ab:01");
        assert_eq!(v["device"], "team0", "the rest is kept");
        assert_eq!(v["runner"]["name"], "roundrobin");
        let named = r#"{"device":"team0","hwaddr":"02:00:00:00:00:09"}"#;
        let v: serde_json::Value = serde_json::from_str(&pin_hwaddr(named, mac)).unwrap();
        assert_eq!(v["hwaddr"], "02:00:00:00:00:09");
    }
}
