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

/// Sets a sysctl and returns the value it had (`None` for a write-only one), opening it once:
/// looking a /proc/sys/net path up costs more the more namespaces have looked it up (one
/// dentry per namespace on the same hash chain), so a big lab pays for every open. Writes only
/// when the value differs.
pub fn swap(key: &str, value: &str) -> io::Result<Option<String>> {
    use std::io::{Read, Seek, Write};
    let p = path(key);
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return write(key, value).map(|()| None),
        Err(e) => return Err(ctx(e)),
    };
    let mut previous = String::new();
    f.read_to_string(&mut previous).map_err(ctx)?;
    let previous = previous.trim_end_matches('\n').to_string();
    if same_value(&previous, value) {
        return Ok(Some(previous));
    }
    f.rewind().map_err(ctx)?;
    f.write_all(value.as_bytes()).map_err(ctx)?;
    Ok(Some(previous))
}

/// Whether two sysctl values are the same (the kernel prints vectors tab-separated).
fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

#[cfg(test)]
mod tests {
    use super::same_value;

    /// A value equal but for whitespace (the kernel prints vectors tab-separated) is not
    /// written again.
    #[test]
    fn equal_values_compare_by_words() {
        assert!(same_value("4096\t87380\t6291456", "4096 87380 6291456"));
        assert!(same_value("1\n", "1"));
        assert!(!same_value("1", "0"));
        assert!(!same_value("4096 87380", "4096 87380 6291456"));
    }
}
