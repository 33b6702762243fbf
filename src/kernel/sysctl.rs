//! Network sysctls through /proc/sys, which shows the calling thread's namespace: call these
//! from a thread that has entered the node's namespace.

use std::io;
use std::path::PathBuf;

use crate::model::validate::sysctl_components;

/// /proc/sys path of a sysctl key (`net.ipv4.ip_forward` or `net/ipv4/conf/eth0.10/forwarding`).
pub fn path(key: &str) -> PathBuf {
    let mut p = PathBuf::from("/proc/sys");
    for c in sysctl_components(key) {
        p.push(c);
    }
    p
}

pub fn read(key: &str) -> io::Result<String> {
    std::fs::read_to_string(path(key)).map(|s| s.trim_end_matches('\n').to_string())
}

pub fn write(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(path(key), value.as_bytes()).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path(key).display())))
}
