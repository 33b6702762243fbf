//! Every run directory (`VNET_RUN_DIR`) labs were recorded in on this machine, in one
//! machine-wide list (`/run/lock/vnet-run-dirs`). `gc` judges a marked namespace or device by
//! the records of its own run directory; without this list, a `gc` run with another run
//! directory (a test suite's) took every lab of the default one for abandoned and removed it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The list's file: beside the machine-wide neighbour-limits record.
fn list_path() -> PathBuf {
    let dir = if Path::new("/run/lock").is_dir() { PathBuf::from("/run/lock") } else { std::env::temp_dir() };
    dir.join("vnet-run-dirs")
}

/// This process's run directory, as an absolute path (what the list holds).
fn own() -> PathBuf {
    let d = super::run_dir();
    std::fs::canonicalize(&d).unwrap_or(d)
}

/// Adds this process's run directory to the list (once per process), dropping directories
/// that no longer exist. Called before a lab's first record is written.
pub fn register() -> io::Result<()> {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let own = own();
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(list_path())?;
    // Held while the list is rewritten; released when dropped.
    let mut held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
    rewrite(&mut held, &own)?;
    let _ = DONE.set(());
    Ok(())
}

fn rewrite(f: &mut File, own: &Path) -> io::Result<()> {
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let kept = keep(&text, own, |p| p.is_dir());
    if kept == text {
        return Ok(());
    }
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(kept.as_bytes())
}

/// The list's new text: the existing directories, then `own` if missing.
fn keep(text: &str, own: &Path, exists: impl Fn(&Path) -> bool) -> String {
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty() && exists(Path::new(l))).collect();
    lines.dedup();
    let own = own.to_string_lossy();
    if !lines.iter().any(|l| *l == own) {
        lines.push(&own);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Whether a lab of this name is recorded (or being built) in another run directory: its
/// objects are not this `gc`'s to judge.
pub fn claimed_elsewhere(lab: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(list_path()) else { return false };
    let own = own();
    text.lines().map(Path::new).filter(|d| !d.as_os_str().is_empty() && *d != own).any(|d| d.join(lab).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keeps_existing_directories_once_and_adds_its_own() {
        let exists = |p: &Path| p != Path::new("/gone");
        assert_eq!(keep("", Path::new("/run/vnet"), exists), "/run/vnet\n");
        assert_eq!(keep("/run/vnet\n/gone\n/tmp/t1\n", Path::new("/tmp/t2"), exists), "/run/vnet\n/tmp/t1\n/tmp/t2\n");
        assert_eq!(keep("/run/vnet\n/tmp/t1\n", Path::new("/run/vnet"), exists), "/run/vnet\n/tmp/t1\n");
    }
}
