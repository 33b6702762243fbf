//! The lab's OpenFlow flows through ovs-ofctl (package openvswitch-common), on the bridge's
//! management socket. Each flow carries a cookie whose high half is the lab's tag, so the
//! lab's flows are read, added and removed by cookie and no one else's is touched. Changes go
//! in one OpenFlow 1.4 bundle: all or nothing.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::plan::ovs::{FlowRow, COOKIE_TAG_MASK};

/// OpenFlow versions offered to the switch (bundles need 1.4).
const PROTOCOLS: &str = "OpenFlow10,OpenFlow11,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15";

fn ofctl() -> Command {
    let mut c = Command::new("ovs-ofctl");
    c.arg("-O").arg(PROTOCOLS).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn run(mut cmd: Command, input: Option<&str>) -> Result<String, String> {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run ovs-ofctl: {e} (Debian package openvswitch-common)"))?;
    if let Some(text) = input {
        if let Some(mut s) = child.stdin.take() {
            s.write_all(text.as_bytes()).map_err(|e| format!("ovs-ofctl: {e}"))?;
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("ovs-ofctl: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.trim().trim_start_matches("ovs-ofctl: ").to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Cookies of the flows tagged `tag` on the switch behind `mgmt` (`unix:DIR/BR.mgmt`).
pub fn cookies(mgmt: &str, tag: u32) -> Result<Vec<u64>, String> {
    let mut cmd = ofctl();
    cmd.args(["--no-stats", "dump-flows", mgmt, &format!("cookie=0x{:016x}/0x{COOKIE_TAG_MASK:016x}", u64::from(tag) << 32)]);
    let text = run(cmd, None)?;
    let mut out: Vec<u64> = text.lines().filter_map(parse_cookie).filter(|c| c & COOKIE_TAG_MASK == u64::from(tag) << 32).collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The cookie of one `dump-flows` line.
fn parse_cookie(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("cookie=0x")?;
    let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).ok()
}

/// The bundle text: deletions by cookie first, then additions.
pub fn bundle_text(add: &[FlowRow], del: &[u64]) -> String {
    let mut s = String::new();
    for c in del {
        s.push_str(&format!("delete cookie=0x{c:016x}/-1\n"));
    }
    for f in add {
        s.push_str(&format!("add cookie=0x{:016x},{}\n", f.cookie, f.line));
    }
    s
}

/// Adds and removes flows in one bundle.
pub fn apply(mgmt: &str, add: &[FlowRow], del: &[u64]) -> Result<(), String> {
    if add.is_empty() && del.is_empty() {
        return Ok(());
    }
    let mut cmd = ofctl();
    cmd.args(["--bundle", "add-flows", mgmt, "-"]);
    run(cmd, Some(&bundle_text(add, del))).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_dump_lines() {
        assert_eq!(parse_cookie(" cookie=0x1234000000000001, table=0, priority=100,in_port=2 actions=drop"), Some(0x1234_0000_0000_0001));
        assert_eq!(parse_cookie("NXST_FLOW reply (xid=0x4):"), None);
        assert_eq!(parse_cookie(" cookie=0x0, priority=0 actions=NORMAL"), Some(0));
    }

    #[test]
    fn bundle_deletes_before_it_adds() {
        let add = vec![FlowRow { cookie: 0xab, line: "table=0,priority=1,actions=drop".into() }];
        assert_eq!(bundle_text(&add, &[0xcd]), "delete cookie=0x00000000000000cd/-1\nadd cookie=0x00000000000000ab,table=0,priority=1,actions=drop\n");
    }
}
