//! Raising the machine's neighbour limits, and putting them back once nothing needs them — also
//! after whatever raised them was killed. Everything that raises them shares one record for the
//! machine: labs (`neighbour_limits` in the file, `vnet up --raise-neigh-limits`) for as long as
//! they exist, and benchmark runs for as long as they run.
//!
//! The record (`/run/lock/vnet-neigh-limits.json`) is read and written under a machine-wide lock
//! (`vnet-neigh-limits.lock` beside it) taken only for the change. It holds each limit's value
//! before vnet first raised it (`original`) and the value vnet last wrote (`set`), and the
//! holders: what each wants and how to tell whether it still lives (a lab: its record directory
//! exists; a run: it holds the lock on a file of its own, which the kernel releases when the
//! process dies, whatever PID namespace it ran in). Each limit is the largest of its original
//! and what the live holders want. Whoever takes the lock (a lab's `up` or `down`, a run, `vnet
//! gc`) first drops holders that are gone; once no holder is left, the originals go back and the
//! record is removed. A limit found at another value than vnet last wrote was changed by
//! someone else: that value becomes the machine's own, and is what stays in the end.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{limits, stats, Limits, Table};

/// Limits raised for a run; dropping it releases them (the previous values come back unless
/// another holder still needs them), also when the run fails or panics.
pub struct Raised {
    id: String,
    /// The limits this raise changed, with their values before it.
    saved: Vec<(String, String)>,
    /// Locked while the run lives (its liveness for the others); removed at release.
    holder_file: Option<(std::fs::File, PathBuf)>,
    journal: PathBuf,
}

/// The machine's record of raised limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Registry {
    /// By sysctl file.
    limits: BTreeMap<PathBuf, Limit>,
    /// By holder id.
    holders: BTreeMap<String, Holder>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Limit {
    /// The sysctl key, for messages.
    key: String,
    /// The value before vnet raised it (or the value someone else set since).
    original: u64,
    /// The value vnet last wrote.
    set: u64,
    /// A value about to be written (noted before writing: a writer killed between the two
    /// leaves a value the next one still recognises as vnet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<u64>,
}

/// Something that holds limits raised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Holder {
    /// For people: `lab NAME`, `vnet bench (pid N)`.
    what: String,
    pid: u32,
    live: Liveness,
    /// Sysctl file -> (key, the value it needs at least).
    want: BTreeMap<PathBuf, (String, u64)>,
}

/// How to tell whether a holder still lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Liveness {
    /// A lab: while its record directory exists.
    Dir(PathBuf),
    /// A process: while it holds the lock on this file.
    Lock(PathBuf),
}

impl Liveness {
    fn alive(&self) -> bool {
        match self {
            Liveness::Dir(d) => d.is_dir(),
            Liveness::Lock(p) => {
                let Ok(f) = std::fs::File::open(p) else { return false };
                loop {
                    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
                        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
                        return false;
                    }
                    match io::Error::last_os_error().kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => return true,
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// What an older vnet wrote while it had the limits raised (one run at a time).
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    pid: u32,
    changes: Vec<Change>,
}

/// One limit an older vnet's run changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    path: PathBuf,
    key: String,
    before: u64,
    set: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OnDisk {
    Registry(Registry),
    Legacy(Journal),
}

/// What one change of the record did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Limits written: (key, value before, value now).
    pub written: Vec<(String, u64, u64)>,
    /// Holders found gone and released, and older records put back (for `gc`).
    pub released: Vec<String>,
    pub problems: Vec<String>,
}

impl Outcome {
    /// `key=value` of each limit written.
    pub fn written_values(&self) -> Vec<String> {
        self.written.iter().map(|(k, _, v)| format!("{k}={v}")).collect()
    }
}

impl Raised {
    /// The (key, previous value) pairs of the limits this raise changed.
    pub fn previous(&self) -> Vec<(String, String)> {
        self.saved.clone()
    }

    /// Releases now and reports what went wrong.
    pub fn restore(mut self) -> Vec<String> {
        self.release()
    }

    fn release(&mut self) -> Vec<String> {
        let Some((file, path)) = self.holder_file.take() else { return Vec::new() };
        let id = self.id.clone();
        let out = update(&self.journal, false, |h| {
            h.remove(&id);
        });
        let _ = std::fs::remove_file(&path);
        drop(file);
        out.problems
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        for p in self.release() {
            eprintln!("vnet: {p}");
        }
    }
}

/// Where the lock and record live: outside the labs' run directory, which must be empty
/// when no lab exists.
fn lock_dir() -> PathBuf {
    if Path::new("/run/lock").is_dir() {
        PathBuf::from("/run/lock")
    } else {
        std::env::temp_dir()
    }
}

fn journal_path() -> PathBuf {
    lock_dir().join("vnet-neigh-limits.json")
}

/// Takes the machine-wide lock of the record (beside it), waiting for whoever changes it now.
fn lock(journal: &Path) -> io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(journal.with_extension("lock"))?;
    loop {
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Raises the limits of `t` so that `needed` more entries fit (never lowers them), for as long
/// as the returned value lives (or this process does).
pub fn raise(t: Table, needed: u64) -> io::Result<Raised> {
    let journal = journal_path();
    let cur = limits(t)?;
    let st = stats(t)?;
    let target = st.entries + needed + needed / 4 + 1024;
    let want = Limits { gc_thresh1: cur.gc_thresh1.max(target / 2), gc_thresh2: cur.gc_thresh2.max(target), gc_thresh3: cur.gc_thresh3.max(target) };
    let pid = std::process::id();
    let id = format!("run {pid} {:08x}", crate::state::random_u32());
    let path = lock_dir().join(format!("vnet-neigh-limits.{}.holder", id.replace(' ', "-")));
    let file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let holder = Holder { what: format!("vnet (pid {pid})"), pid, live: Liveness::Lock(path.clone()), want: wants(t, want) };
    let out = update(&journal, false, |h| {
        h.insert(id.clone(), holder);
    });
    for p in &out.problems {
        eprintln!("vnet: {p}");
    }
    for r in &out.released {
        eprintln!("vnet: {r}");
    }
    let saved = out.written.iter().map(|(k, before, _)| (k.clone(), before.to_string())).collect();
    Ok(Raised { id, saved, holder_file: Some((file, path)), journal })
}

fn wants(t: Table, l: Limits) -> BTreeMap<PathBuf, (String, u64)> {
    [(1u8, l.gc_thresh1), (2, l.gc_thresh2), (3, l.gc_thresh3)]
        .into_iter()
        .map(|(n, v)| (Path::new(t.sysctl_dir()).join(format!("gc_thresh{n}")), (t.key(n), v)))
        .collect()
}

fn lab_holder_id(dir: &Path) -> String {
    format!("lab {}", dir.display())
}

/// Holds the limits of `t` at `want` at least for the lab whose record directory is `dir`, for
/// as long as that directory exists (or until `release_lab`). Holding again replaces what the
/// lab wanted before.
pub fn hold_for_lab(lab: &str, dir: &Path, t: Table, want: Limits) -> Outcome {
    let holder = Holder { what: format!("lab {lab}"), pid: std::process::id(), live: Liveness::Dir(dir.to_path_buf()), want: wants(t, want) };
    let id = lab_holder_id(dir);
    update(&journal_path(), false, |h| {
        h.insert(id, holder);
    })
}

/// Releases what the lab whose record directory is `dir` held (nothing if it held nothing):
/// the limits go down to what the other holders need, or back to the machine's own values.
pub fn release_lab(dir: &Path) -> Outcome {
    let journal = journal_path();
    if !journal.exists() {
        return Outcome::default();
    }
    let id = lab_holder_id(dir);
    update(&journal, false, |h| {
        h.remove(&id);
    })
}

/// The machine's own limits of `t`: as they were before vnet raised them, else as they are.
pub fn machine_limits(t: Table) -> io::Result<Limits> {
    let cur = limits(t)?;
    let Ok(b) = std::fs::read(journal_path()) else { return Ok(cur) };
    let Ok(OnDisk::Registry(r)) = serde_json::from_slice::<OnDisk>(&b) else { return Ok(cur) };
    let original = |n: u8, now: u64| r.limits.get(&Path::new(t.sysctl_dir()).join(format!("gc_thresh{n}"))).map(|l| l.original).unwrap_or(now);
    Ok(Limits { gc_thresh1: original(1, cur.gc_thresh1), gc_thresh2: original(2, cur.gc_thresh2), gc_thresh3: original(3, cur.gc_thresh3) })
}

/// Releases what holders that are gone (a killed run, a lab whose record vanished) held, and
/// puts back what an older vnet's killed run left raised. Does nothing from a namespace that
/// cannot see the limits (not the machine's first). Returns what was (or, with `dry_run`,
/// would be) done, and problems.
pub fn recover(dry_run: bool) -> (Vec<String>, Vec<String>) {
    if !super::limits_visible() {
        return (Vec::new(), Vec::new());
    }
    let journal = journal_path();
    if !journal.exists() {
        return (Vec::new(), Vec::new());
    }
    let out = update(&journal, dry_run, |_| {});
    let mut done = out.released;
    done.extend(out.written.iter().map(|(k, _, v)| format!("{k} back to {v}")));
    (done, out.problems)
}

fn read_value(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Under the record's lock: applies `change` to the holders, drops those that are gone, and
/// writes each limit as the live holders need it (the originals once none is left).
fn update(journal: &Path, dry_run: bool, change: impl FnOnce(&mut BTreeMap<String, Holder>)) -> Outcome {
    let mut out = Outcome::default();
    let _lock = match lock(journal) {
        Ok(l) => l,
        Err(e) => {
            out.problems.push(format!("take the lock of the neighbour limits' record: {e}"));
            return out;
        }
    };
    let mut reg = match std::fs::read(journal) {
        Ok(b) => match serde_json::from_slice::<OnDisk>(&b) {
            Ok(OnDisk::Registry(r)) => r,
            Ok(OnDisk::Legacy(j)) => {
                let (done, problems) = put_back(j.changes, dry_run);
                out.released.extend(done.into_iter().map(|d| format!("neighbour limits raised by killed run (pid {}): {d}", j.pid)));
                out.problems.extend(problems);
                Registry::default()
            }
            Err(e) => {
                out.problems.push(format!("{}: unreadable ({e}); replaced", journal.display()));
                Registry::default()
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Registry::default(),
        Err(e) => {
            out.problems.push(format!("read {}: {e}", journal.display()));
            return out;
        }
    };
    let had_record = journal.exists();
    change(&mut reg.holders);
    let gone: Vec<String> = reg.holders.iter().filter(|(_, h)| !h.live.alive()).map(|(id, _)| id.clone()).collect();
    for id in gone {
        let h = reg.holders.remove(&id).expect("listed");
        out.released.push(format!("neighbour limits held by {}, which is gone: released", h.what));
        if let (Liveness::Lock(p), false) = (&h.live, dry_run) {
            let _ = std::fs::remove_file(p);
        }
    }

    // Each limit as it is now; a value someone else wrote becomes the machine's own.
    let mut paths: BTreeMap<PathBuf, String> = reg.limits.iter().map(|(p, l)| (p.clone(), l.key.clone())).collect();
    for h in reg.holders.values() {
        paths.extend(h.want.iter().map(|(p, (k, _))| (p.clone(), k.clone())));
    }
    let mut unreadable = false;
    for (path, key) in &paths {
        let Some(cur) = read_value(path) else {
            unreadable = true;
            continue;
        };
        let l = reg.limits.entry(path.clone()).or_insert(Limit { key: key.clone(), original: cur, set: cur, pending: None });
        if l.pending.take() == Some(cur) {
            l.set = cur;
        }
        if cur != l.set {
            out.problems.push(format!("{} is {cur}, not the {} vnet set: someone changed it meanwhile; that is now the value it goes back to", l.key, l.set));
            l.original = cur;
            l.set = cur;
        }
    }
    if unreadable {
        // Not the machine's first namespace (or no such limits): the holders are noted, the
        // limits left to a run that sees them.
        if !dry_run && (had_record || !reg.holders.is_empty()) {
            if let Err(e) = save(journal, &reg) {
                out.problems.push(format!("write {}: {e}", journal.display()));
            }
        }
        return out;
    }

    // What each limit must be: the largest of its original and what the holders want.
    let mut target: BTreeMap<PathBuf, u64> = reg.limits.iter().map(|(p, l)| (p.clone(), l.original)).collect();
    for h in reg.holders.values() {
        for (p, (_, v)) in &h.want {
            let t = target.entry(p.clone()).or_default();
            *t = (*t).max(*v);
        }
    }
    // Raises highest first, then lowerings lowest first: 1 <= 2 <= 3 holds at every step.
    let mut raises: Vec<(PathBuf, u64)> = target.iter().filter(|(p, v)| **v > reg.limits[*p].set).map(|(p, v)| (p.clone(), *v)).collect();
    raises.reverse();
    let lowers: Vec<(PathBuf, u64)> = target.iter().filter(|(p, v)| **v < reg.limits[*p].set).map(|(p, v)| (p.clone(), *v)).collect();
    let writes: Vec<(PathBuf, u64)> = raises.into_iter().chain(lowers).collect();
    if dry_run {
        out.written = writes.iter().map(|(p, v)| (reg.limits[p].key.clone(), reg.limits[p].set, *v)).collect();
        return out;
    }
    for (p, v) in &writes {
        reg.limits.get_mut(p).expect("listed").pending = Some(*v);
    }
    if !writes.is_empty() {
        if let Err(e) = save(journal, &reg) {
            out.problems.push(format!("write {}: {e}; the limits were left as they are", journal.display()));
            return out;
        }
    }
    let mut failed = false;
    for (p, v) in &writes {
        let l = reg.limits.get_mut(p).expect("listed");
        l.pending = None;
        match std::fs::write(p, v.to_string()) {
            Ok(()) => {
                out.written.push((l.key.clone(), l.set, *v));
                l.set = *v;
            }
            Err(e) => {
                failed = true;
                out.problems.push(format!("write {} = {v}: {e}", l.key));
            }
        }
    }
    let result = if reg.holders.is_empty() && !failed {
        // Nothing holds them any more: every limit is its original again.
        match std::fs::remove_file(journal) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        save(journal, &reg)
    };
    if let Err(e) = result {
        out.problems.push(format!("write {}: {e}", journal.display()));
    }
    out
}

/// Writes back each `before` where the value is still the one `set` (an older vnet's journal).
/// Lowest first, so that 1 <= 2 <= 3 holds at every step.
fn put_back(mut changes: Vec<Change>, dry_run: bool) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut problems = Vec::new();
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    for c in changes {
        match read_value(&c.path) {
            Some(cur) if cur == c.set && dry_run => done.push(format!("{} back to {}", c.key, c.before)),
            Some(cur) if cur == c.set => match std::fs::write(&c.path, c.before.to_string()) {
                Ok(()) => done.push(format!("{} back to {}", c.key, c.before)),
                Err(e) => problems.push(format!("restore {}: {e}", c.key)),
            },
            Some(cur) if cur == c.before => {}
            Some(cur) => problems.push(format!("{} is {cur}, not the {} the run set: someone changed it meanwhile; left as is", c.key, c.set)),
            None => problems.push(format!("cannot read {} to restore it", c.path.display())),
        }
    }
    (done, problems)
}

fn save(path: &Path, reg: &Registry) -> io::Result<()> {
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(reg).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files standing in for the three sysctls, and the record beside them.
    struct Fake {
        dir: PathBuf,
    }

    impl Fake {
        fn new(tag: &str, values: [u64; 3]) -> Fake {
            let dir = std::env::temp_dir().join(format!("vnet-neigh-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (n, v) in values.iter().enumerate() {
                std::fs::write(dir.join(format!("gc_thresh{}", n + 1)), format!("{v}\n")).unwrap();
            }
            Fake { dir }
        }
        fn journal(&self) -> PathBuf {
            self.dir.join("record.json")
        }
        fn values(&self) -> [u64; 3] {
            [1, 2, 3].map(|n| read_value(&self.dir.join(format!("gc_thresh{n}"))).unwrap())
        }
        fn want(&self, v: [u64; 3]) -> BTreeMap<PathBuf, (String, u64)> {
            (1..=3).map(|n| (self.dir.join(format!("gc_thresh{n}")), (format!("k{n}"), v[n - 1]))).collect()
        }
        /// A lab holder that lives while `lab_dir` exists.
        fn lab(&self, name: &str, v: [u64; 3]) -> (String, Holder) {
            let d = self.dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            (name.to_string(), Holder { what: format!("lab {name}"), pid: 1, live: Liveness::Dir(d), want: self.want(v) })
        }
        fn hold(&self, (id, h): (String, Holder)) -> Outcome {
            update(&self.journal(), false, |hs| {
                hs.insert(id, h);
            })
        }
        fn release(&self, id: &str) -> Outcome {
            update(&self.journal(), false, |hs| {
                hs.remove(id);
            })
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Two holders: each limit is the larger want; whichever leaves first, the other's values
    /// stay, and the last one out puts the originals back and removes the record.
    #[test]
    fn the_last_holder_out_puts_the_originals_back_whatever_the_order() {
        for first_out in ["a", "b"] {
            let f = Fake::new(&format!("order-{first_out}"), [128, 512, 1024]);
            let o = f.hold(f.lab("a", [1024, 2048, 4096]));
            assert_eq!(o.problems, Vec::<String>::new());
            assert_eq!(o.written_values(), ["k3=4096", "k2=2048", "k1=1024"], "highest first");
            assert_eq!(f.values(), [1024, 2048, 4096]);
            f.hold(f.lab("b", [512, 8192, 8192]));
            assert_eq!(f.values(), [1024, 8192, 8192]);
            let second_out = if first_out == "a" { "b" } else { "a" };
            let o = f.release(first_out);
            assert_eq!(o.problems, Vec::<String>::new());
            let left = if first_out == "a" { [512, 8192, 8192] } else { [1024, 2048, 4096] };
            assert_eq!(f.values(), left, "the other holder's values stay");
            assert!(f.journal().exists());
            let o = f.release(second_out);
            assert_eq!(o.problems, Vec::<String>::new());
            assert_eq!(f.values(), [128, 512, 1024], "the originals are back");
            assert!(!f.journal().exists(), "the record goes with the last holder");
        }
    }

    /// A holder that is gone (a lab's directory removed, a process that no longer holds its
    /// lock) is released by whoever takes the lock next; a limit someone else changed meanwhile
    /// becomes the machine's own value and stays.
    #[test]
    fn gone_holders_are_released_and_values_changed_by_hand_stay() {
        let f = Fake::new("gone", [128, 512, 1024]);
        let (id, h) = f.lab("a", [256, 2048, 2048]);
        f.hold((id, h));
        // A run holding its lock file.
        let lock_path = f.dir.join("run.holder");
        let file = std::fs::File::create(&lock_path).unwrap();
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        let run = Holder { what: "vnet (pid 7)".into(), pid: 7, live: Liveness::Lock(lock_path.clone()), want: f.want([128, 512, 3000]) };
        f.hold(("run".into(), run));
        assert_eq!(f.values(), [256, 2048, 3000]);
        // The run dies: its lock is released.
        drop(file);
        let o = update(&f.journal(), true, |_| {});
        assert_eq!(o.released, ["neighbour limits held by vnet (pid 7), which is gone: released"]);
        assert_eq!(o.written, [("k3".to_string(), 3000, 2048)], "a dry run says what it would write");
        assert_eq!(f.values(), [256, 2048, 3000], "and writes nothing");
        let o = update(&f.journal(), false, |_| {});
        assert_eq!(o.written, [("k3".to_string(), 3000, 2048)]);
        assert!(!lock_path.exists(), "the gone run's lock file is removed");
        // Someone sets k2 by hand; then the lab's record directory vanishes.
        std::fs::write(f.dir.join("gc_thresh2"), "4000").unwrap();
        std::fs::remove_dir_all(f.dir.join("a")).unwrap();
        let o = update(&f.journal(), false, |_| {});
        assert_eq!(o.released, ["neighbour limits held by lab a, which is gone: released"]);
        assert_eq!(o.problems, ["k2 is 4000, not the 2048 vnet set: someone changed it meanwhile; that is now the value it goes back to"]);
        assert_eq!(f.values(), [128, 4000, 1024]);
        assert!(!f.journal().exists());
    }

    /// The journal of an older vnet's killed run is replayed: values still as the run set them
    /// go back; values someone changed since stay.
    #[test]
    fn an_older_killed_runs_journal_puts_back_only_what_still_holds_its_values() {
        let f = Fake::new("journal", [662, 4096, 1324]);
        let c = |n: u8, before: u64, set: u64| Change { path: f.dir.join(format!("gc_thresh{n}")), key: format!("k{n}"), before, set };
        let j = Journal { pid: 4242, changes: vec![c(3, 1024, 1324), c(2, 512, 1324), c(1, 128, 662)] };
        std::fs::write(f.journal(), serde_json::to_vec(&j).unwrap()).unwrap();
        let o = update(&f.journal(), true, |_| {});
        assert_eq!(o.released.len(), 2, "{o:?}");
        assert_eq!(f.values(), [662, 4096, 1324], "a dry run changes nothing");
        let o = update(&f.journal(), false, |_| {});
        assert_eq!(f.values(), [128, 4096, 1024]);
        assert!(o.released[0].contains("pid 4242") && o.released[0].contains("k1 back to 128"), "{o:?}");
        assert_eq!(o.problems, ["k2 is 4096, not the 1324 the run set: someone changed it meanwhile; left as is"]);
        assert!(!f.journal().exists(), "the journal is consumed");
    }

    /// A writer killed between noting a value and writing it: the next one knows the value
    /// as vnet's (written) or as before (not written), never as someone else's.
    #[test]
    fn a_value_noted_but_not_yet_written_is_still_vnets() {
        let f = Fake::new("pending", [128, 512, 1024]);
        f.hold(f.lab("a", [128, 512, 2048]));
        let mut reg: Registry = serde_json::from_slice(&std::fs::read(f.journal()).unwrap()).unwrap();
        let p3 = f.dir.join("gc_thresh3");
        reg.limits.get_mut(&p3).unwrap().pending = Some(4096);
        save(&f.journal(), &reg).unwrap();
        std::fs::write(&p3, "4096").unwrap();
        let o = f.release("a");
        assert_eq!(o.problems, Vec::<String>::new());
        assert_eq!(f.values(), [128, 512, 1024]);
    }
}
