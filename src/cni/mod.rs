//! vnet-cni: a CNI plugin (specification 1.1, and every earlier version back to 0.1.0) whose
//! devices are made by vnet's kernel layer: netlink messages, kind encodings and namespace
//! handles, no `ip` processes. The network configuration's `kind` selects what an attachment
//! is: `bridge` (veth pair, host end on a bridge), `macvlan`, `ipvlan`, `vlan` (on a host
//! `master`) or `tap`. IPAM is delegated to the plugin named by `ipam.type` (host-local,
//! static, dhcp, ...) or served by the built-in `vnet-static`.
//!
//! Every device an attachment makes in the container carries the alias
//! `vnet-cni:NETWORK:CONTAINERID:IFNAME` (the host end of a veth pair too), and a record under
//! the state directory (`stateDir`, default /var/lib/cni/vnet) remembers each attachment: DEL
//! removes only marked devices and works without the namespace; GC deletes recorded
//! attachments the runtime no longer lists.

pub mod cmd;
pub mod conf;
pub mod env;
pub mod error;
pub mod exec;
pub mod ipam;
pub mod kinds;
pub mod netops;
pub mod result;
pub mod store;
pub mod version;

use env::{Command, Env};
use error::CniError;

/// What the plugin prints and how it exits.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// JSON for stdout (a result, a version report, or an error), if any.
    pub stdout: Option<serde_json::Value>,
    pub exit_code: i32,
}

/// One invocation: environment variables and stdin in, stdout and exit code out.
pub fn run(vars: impl IntoIterator<Item = (String, String)>, stdin: &[u8]) -> Outcome {
    let version = conf::peek_version(stdin).filter(|v| version::SUPPORTED.contains(&v.as_str())).unwrap_or_else(|| version::CURRENT.to_string());
    match dispatch(vars, stdin) {
        Ok(out) => Outcome { stdout: out, exit_code: 0 },
        Err(e) => Outcome { stdout: Some(e.to_json(&version)), exit_code: 1 },
    }
}

fn dispatch(vars: impl IntoIterator<Item = (String, String)>, stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    let env = Env::from_vars(vars)?;
    if env.command == Command::Version {
        return Ok(Some(version::report()));
    }
    let conf = conf::NetConf::parse(stdin, env.command.name())?;
    match env.command {
        Command::Add => cmd::add(&conf, &env).map(Some),
        Command::Del => cmd::del(&conf, &env).map(|()| None),
        Command::Check => cmd::check(&conf, &env).map(|()| None),
        Command::Status => cmd::status(&conf, &env).map(|()| None),
        Command::Gc => cmd::gc(&conf, &env).map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}
