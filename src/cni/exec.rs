//! Running another CNI plugin as a runtime does (and as the spec's delegation rules say: the
//! same environment, a configuration on stdin, the answer or an error result on stdout):
//! vnet-cni delegates IPAM this way, and tests and benchmarks drive plugins with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::error::{code, CniError};

/// Finds plugin `name` in the CNI_PATH directories.
pub fn find(name: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    for dir in path {
        let p = dir.join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    Err(CniError::with(code::IO_FAILURE, format!("cannot find plugin `{name}`"), format!("not in CNI_PATH [{}]", dirs.join(":"))))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// What a plugin answered.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The JSON on stdout (None when the plugin printed nothing, as DEL/CHECK/GC/STATUS may).
    pub output: Option<Value>,
    pub stderr: String,
}

/// Runs `plugin` with exactly `env` as its environment and `stdin` as its input, optionally
/// inside the network namespace `netns` (entered between fork and exec, so no helper process
/// sits in between). A failing plugin's error result becomes the error.
pub fn invoke(plugin: &Path, env: &BTreeMap<String, String>, stdin: &[u8], netns: Option<BorrowedFd<'_>>) -> Result<Answer, CniError> {
    let mut cmd = Command::new(plugin);
    cmd.env_clear().envs(env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(fd) = netns {
        let raw = fd.as_raw_fd();
        // SAFETY: setns is async-signal-safe; the fd stays open until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let name = plugin.display().to_string();
    let mut child = cmd.spawn().map_err(|e| CniError::io(format!("cannot run plugin {name}"), &e))?;
    if let Some(mut i) = child.stdin.take() {
        // A plugin that exits without reading (VERSION) closes the pipe: not an error.
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(|e| CniError::io(format!("cannot run plugin {name}"), &e))?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    if out.status.success() {
        if text.is_empty() {
            return Ok(Answer { output: None, stderr });
        }
        let v = serde_json::from_str(text)
            .map_err(|e| CniError::with(code::DECODE_FAILURE, format!("cannot decode the answer of plugin {name}"), format!("{e}: {text}")))?;
        return Ok(Answer { output: Some(v), stderr });
    }
    match serde_json::from_str::<CniError>(text) {
        Ok(e) => Err(e),
        Err(_) => Err(CniError::with(code::IO_FAILURE, format!("plugin {name} failed ({})", out.status), format!("stdout: {text}; stderr: {}", stderr.trim()))),
    }
}

/// The spec versions a plugin says it supports (VERSION).
pub fn supported_versions(plugin: &Path, env: &BTreeMap<String, String>, cni_version: &str) -> Result<Vec<String>, CniError> {
    let mut env = env.clone();
    env.insert("CNI_COMMAND".into(), "VERSION".into());
    let stdin = serde_json::json!({ "cniVersion": cni_version }).to_string();
    let a = invoke(plugin, &env, stdin.as_bytes(), None)?;
    Ok(a.output.and_then(|v| v.get("supportedVersions").cloned()).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
}
