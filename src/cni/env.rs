//! The CNI environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS,
//! CNI_PATH, read and checked per command as the specification requires them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::{code, CniError};

/// The operations of CNI 1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// Variables the specification requires for the command (beside CNI_COMMAND).
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc => &["CNI_PATH"],
            Command::Version | Command::Status => &[],
        }
    }
}

/// The checked environment of one invocation.
#[derive(Clone, Debug)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// Path of the container's network namespace (empty when not given, e.g. DEL after reboot).
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS as key/value pairs.
    pub args: BTreeMap<String, String>,
    pub path: Vec<PathBuf>,
    /// Every variable as received, passed on unchanged to delegated plugins.
    pub vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads the variables; `vars` is usually `std::env::vars()`.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Env, CniError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let raw = get("CNI_COMMAND");
        if raw.is_empty() {
            return Err(CniError::env("required env variables [CNI_COMMAND] missing"));
        }
        let command = Command::parse(&raw).ok_or_else(|| CniError::env(format!("unknown CNI_COMMAND: {raw}")))?;
        let missing: Vec<&str> = command.required().iter().copied().filter(|k| get(k).is_empty()).collect();
        if !missing.is_empty() {
            return Err(CniError::env(format!("required env variables [{}] missing", missing.join(","))));
        }
        let container_id = get("CNI_CONTAINERID");
        if !container_id.is_empty() {
            if let Some(why) = container_id_problem(&container_id) {
                return Err(CniError::with(code::INVALID_ENV, "invalid characters in containerID", why));
            }
        }
        let ifname = get("CNI_IFNAME");
        if !ifname.is_empty() {
            if let Some(why) = crate::model::validate::ifname_problem(&ifname) {
                return Err(CniError::with(code::INVALID_ENV, "invalid CNI_IFNAME", why));
            }
        }
        let args = parse_args(&get("CNI_ARGS"))?;
        let path = get("CNI_PATH").split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
        Ok(Env { command, container_id, netns: get("CNI_NETNS"), ifname, args, path, vars })
    }

    /// Whether this invocation names a network namespace.
    pub fn has_netns(&self) -> bool {
        !self.netns.is_empty()
    }
}

/// Why a container ID breaks the specification's rule (alphanumeric first, then alphanumerics,
/// `_`, `.`, `-`), if it does.
pub fn container_id_problem(id: &str) -> Option<String> {
    let mut chars = id.chars();
    match chars.next() {
        None => Some("the container ID is empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => Some(format!("container ID `{id}` must start with a letter or digit")),
        _ => chars
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .map(|c| format!("container ID `{id}` contains `{c}`; only letters, digits, `_`, `.` and `-` are allowed")),
    }
}

/// `K1=V1;K2=V2`.
pub fn parse_args(raw: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in raw.split(';').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CniError::with(code::INVALID_ENV, "invalid CNI_ARGS", format!("`{pair}` is not KEY=VALUE")));
        };
        if k.is_empty() {
            return Err(CniError::with(code::INVALID_ENV, "invalid CNI_ARGS", format!("`{pair}` has an empty key")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, CniError> {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn commands_need_their_variables() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(e.code, 4);
        assert_eq!(e.msg, "required env variables [CNI_CONTAINERID,CNI_NETNS] missing");
        let e = env(&[]).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "required env variables [CNI_COMMAND] missing"));
        assert_eq!(env(&[("CNI_COMMAND", "FROB")]).unwrap_err().msg, "unknown CNI_COMMAND: FROB");
        // DEL without a namespace is valid (the container may be gone).
        let d = env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]).unwrap();
        assert!(!d.has_netns());
        assert_eq!(env(&[("CNI_COMMAND", "GC")]).unwrap_err().msg, "required env variables [CNI_PATH] missing");
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn ids_names_and_args_are_checked() {
        let base = [("CNI_COMMAND", "DEL"), ("CNI_IFNAME", "eth0")];
        let with = |id: &str| {
            let mut v = base.to_vec();
            v.push(("CNI_CONTAINERID", id));
            env(&v)
        };
        assert!(with("abc-1.2_x").is_ok());
        assert_eq!(with("-abc").unwrap_err().msg, "invalid characters in containerID");
        assert_eq!(with("a/b").unwrap_err().code, 4);
        let e = env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "a-very-long-interface")]).unwrap_err();
        assert_eq!(e.msg, "invalid CNI_IFNAME");
        assert!(e.details.contains("at most 15"), "{e:?}");
        let a = parse_args("IgnoreUnknown=1;IP=10.0.0.2/24").unwrap();
        assert_eq!(a["IP"], "10.0.0.2/24");
        assert_eq!(parse_args("foo").unwrap_err().code, 4);
    }
}
