//! The kernel's neighbour (ARP/NDP) table limits. One table serves every namespace; its limits
//! (net.ipv4.neigh.default.gc_thresh1/2/3) exist only in the root namespace.

use std::io;

use super::sysctl;

pub const KEYS: [&str; 3] = ["net.ipv4.neigh.default.gc_thresh1", "net.ipv4.neigh.default.gc_thresh2", "net.ipv4.neigh.default.gc_thresh3"];

/// Current gc_thresh1/2/3, when readable (only from the root namespace).
pub fn read() -> Option<[u64; 3]> {
    let mut out = [0u64; 3];
    for (i, k) in KEYS.iter().enumerate() {
        out[i] = sysctl::read(k).ok()?.trim().parse().ok()?;
    }
    Some(out)
}

/// Writes all three in an order the kernel accepts (thresh3 first when raising).
pub fn write(v: [u64; 3]) -> io::Result<()> {
    let cur = read().unwrap_or([0; 3]);
    let order: [usize; 3] = if v[2] >= cur[2] { [2, 1, 0] } else { [0, 1, 2] };
    for i in order {
        sysctl::write(KEYS[i], &v[i].to_string())?;
    }
    Ok(())
}

/// Limits under which `entries` fit with room to spare (thresh3 = 2 × entries, rounded up).
pub fn sized_for(entries: usize) -> [u64; 3] {
    let t3 = ((entries as u64) * 2).next_power_of_two().max(1024);
    [t3 / 4, t3 / 2, t3]
}
