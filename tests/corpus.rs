//! The corpus of bad topology files (tests/corpus/bad): each file sits next to the findings it
//! must produce (`NAME.expected`, the compact `file:line:col: error: message [text]` form).
//! Files under tests/corpus/warn only raise warnings and must be valid.
//!
//! `VNET_BLESS=1 cargo test --test corpus` rewrites the .expected files from the current output
//! (review the diff before committing).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Source files of a corpus directory, relative to the repository root (tests run there), so
/// that locations in the expected output read `tests/corpus/bad/x.yaml:3:5`.
fn corpus(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "toml" | "json")))
        .map(|p| Path::new(dir).join(p.file_name().unwrap()))
        .collect();
    files.sort();
    files
}

fn expected_path(file: &Path) -> PathBuf {
    repo(&file.with_extension("expected").to_string_lossy())
}

fn bless() -> bool {
    std::env::var_os("VNET_BLESS").is_some_and(|v| v == "1")
}

/// Compares (or, blessing, rewrites) one expectation; returns a description of a mismatch.
fn check_expected(file: &Path, got: &str) -> Option<String> {
    let exp = expected_path(file);
    if bless() {
        std::fs::write(&exp, got).unwrap();
        return None;
    }
    match std::fs::read_to_string(&exp) {
        Ok(want) if want == got => None,
        Ok(want) => Some(format!("{}:\n--- expected\n{want}--- got\n{got}", file.display())),
        Err(_) => Some(format!("{}: no {} (run with VNET_BLESS=1 to create it)\n{got}", file.display(), exp.display())),
    }
}

/// The compact form, each finding followed by its help (`did you mean ...`) when it has one.
fn expectation(d: &vnet::model::Diagnostics) -> String {
    let compact = d.compact();
    let mut out = String::new();
    for (line, diag) in compact.lines().zip(d.iter()) {
        out.push_str(line);
        out.push('\n');
        if let Some(h) = &diag.help {
            out.push_str(&format!("    help: {h}\n"));
        }
    }
    out
}

/// Every line of compact output is `FILE:LINE:COL: error|warning: message`.
fn assert_located(file: &Path, compact: &str) {
    let prefix = format!("{}:", file.display());
    for line in compact.lines() {
        let rest = line.strip_prefix(&prefix).unwrap_or_else(|| panic!("{}: finding without its file: {line}", file.display()));
        let mut parts = rest.splitn(3, ':');
        let (l, c) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        assert!(l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(), "{}: finding without line:col: {line}", file.display());
    }
}

#[test]
fn bad_files_report_exactly_their_expected_findings() {
    let files = corpus("tests/corpus/bad");
    assert!(files.len() >= 30, "the corpus has {} bad files, want at least 30", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let d = match vnet::model::load_file(f) {
            Ok(_) => {
                failures.push(format!("{}: accepted, but it is in the bad corpus", f.display()));
                continue;
            }
            Err(d) => d,
        };
        assert!(d.has_errors(), "{}: rejected without an error", f.display());
        assert_located(f, &d.compact());
        failures.extend(check_expected(f, &expectation(&d)));
    }
    // No expectation without its file.
    for e in std::fs::read_dir(repo("tests/corpus/bad")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) == Some("expected") {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            assert!(files.iter().any(|f| f.file_stem().unwrap().to_string_lossy() == stem), "{} has no topology file", p.display());
        }
    }
    assert!(failures.is_empty(), "{} of {} corpus files differ:\n\n{}", failures.len(), files.len(), failures.join("\n"));
}

#[test]
fn files_with_only_warnings_are_valid() {
    let files = corpus("tests/corpus/warn");
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        let loaded = vnet::model::load_file(f).unwrap_or_else(|d| panic!("{} must be valid:\n{}", f.display(), d.compact()));
        assert!(!loaded.warnings.is_empty() && !loaded.warnings.has_errors(), "{}: expected warnings only", f.display());
        let compact = loaded.warnings.compact();
        assert_located(f, &compact);
        failures.extend(check_expected(f, &expectation(&loaded.warnings)));

        // The CLI accepts it, and shows the warnings rendered with their location.
        let out = Command::new(vnet_bin()).arg("validate").arg(f).env("NO_COLOR", "1").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: vnet validate failed:\n{stderr}", f.display());
        for line in compact.lines() {
            let loc = line.split(": warning: ").next().unwrap();
            assert!(stderr.contains(&format!("[{loc}]")), "{}: stderr lacks [{loc}]:\n{stderr}", f.display());
        }
        let n = loaded.warnings.len();
        if n > 1 {
            assert!(stderr.trim_end().ends_with(&format!("{n} warnings")), "{}: stderr does not end with the count:\n{stderr}", f.display());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The lab name a corpus file declares, when it can be read at all.
fn declared_name(text: &str) -> Option<String> {
    for line in text.lines() {
        let l = line.trim().trim_end_matches(',');
        for prefix in ["name:", "name =", "\"name\":"] {
            if let Some(v) = l.strip_prefix(prefix) {
                return Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

/// Root: `vnet up FILE --isolated-host` refuses every bad file with exit code 2 and the miette
/// rendering of each finding, and changes nothing in the kernel.
#[test]
fn vnet_up_refuses_bad_files_and_changes_nothing() {
    require_root();
    let files = corpus("tests/corpus/bad");
    for f in &files {
        let text = std::fs::read_to_string(repo(&f.to_string_lossy())).unwrap();
        let out = Command::new(vnet_bin()).arg("up").arg(f).arg("--isolated-host").env("NO_COLOR", "1").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: exit code {:?}, stderr:\n{stderr}", f.display(), out.status.code());
        let expected = std::fs::read_to_string(expected_path(f)).unwrap_or_default();
        assert!(!expected.is_empty(), "{}: no expectation", f.display());
        for line in expected.lines().filter(|l| !l.starts_with("    help: ")) {
            // `file:line:col: error: message [text]`: the rendering shows `[file:line:col]`
            // and the message.
            let (loc, rest) = line.split_once(": error: ").or_else(|| line.split_once(": warning: ")).unwrap();
            let message = rest.rsplit_once(" [").map(|(m, _)| m).unwrap_or(rest);
            assert!(stderr.contains(&format!("[{loc}]")), "{}: stderr lacks [{loc}]:\n{stderr}", f.display());
            let first_words: String = message.chars().take(30).collect();
            assert!(stderr.contains(&first_words), "{}: stderr lacks `{first_words}`:\n{stderr}", f.display());
        }
        assert!(stderr.contains("×"), "{}: not the miette rendering:\n{stderr}", f.display());
        // More than one finding: the report ends with their count.
        let (errors, warnings) = (expected.matches(": error: ").count(), expected.matches(": warning: ").count());
        if errors + warnings > 1 {
            let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            let mut want = count(errors, "error");
            if warnings > 0 {
                want = format!("{want}, {}", count(warnings, "warning"));
            }
            assert!(stderr.trim_end().ends_with(&want), "{}: stderr does not end with `{want}`:\n{stderr}", f.display());
        }

        // Nothing of the lab exists: no namespace, no record, no marked device.
        if let Some(name) = declared_name(&text).filter(|n| !n.is_empty()) {
            let left = namespaces_with_prefix(&name);
            assert!(left.is_empty(), "{}: namespaces appeared: {left:?}", f.display());
            assert!(!Path::new("/run/vnet").join(&name).exists(), "{}: a lab record appeared", f.display());
        }
        let corpus_ns = namespaces_with_prefix("corpus-");
        assert!(corpus_ns.is_empty(), "{}: namespaces appeared: {corpus_ns:?}", f.display());
        let records: Vec<String> = std::fs::read_dir("/run/vnet")
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with("corpus-")).collect())
            .unwrap_or_default();
        assert!(records.is_empty(), "{}: lab records appeared: {records:?}", f.display());
        let marked = Command::new("ip").args(["-d", "-o", "link", "show"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&marked.stdout).contains("alias vnet:corpus-"), "{}: a marked device appeared", f.display());
    }
}
