//! The network configuration on stdin. Field names follow the reference plugins (`bridge`,
//! `isGateway`, `master`, `mode`, `vlanId`, `mtu`, `ipam`, ...) so a configuration written for
//! them works with vnet-cni by changing `type` and adding `kind`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::error::{code, CniError};
use super::result::Dns;
use super::version::{self, Version};
use crate::model::kind::{IpvlanMode, MacvlanMode};

/// Where attachment records live unless the configuration says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/vnet";
/// The bridge used when `bridge` is not given (the reference plugin's default).
pub const DEFAULT_BRIDGE: &str = "cni0";

/// The device kind an attachment is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A veth pair: one end in the container, the other a port of a bridge on the host.
    Bridge,
    Macvlan(MacvlanMode),
    Ipvlan(IpvlanMode),
    Vlan(u16),
    /// A tap device in the container (optionally a port of a bridge there).
    Tap,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Macvlan(_) => "macvlan",
            Kind::Ipvlan(_) => "ipvlan",
            Kind::Vlan(_) => "vlan",
            Kind::Tap => "tap",
        }
    }
    pub const NAMES: &'static [&'static str] = &["bridge", "macvlan", "ipvlan", "vlan", "tap"];
}

/// One attachment the runtime still uses (GC input).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// Capabilities passed by the runtime.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// The fields as written (everything optional; `NetConf::parse` checks them).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    kind: Option<String>,
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default)]
    ip_masq: bool,
    vlan: Option<u16>,
    master: Option<String>,
    mode: Option<String>,
    vlan_id: Option<u32>,
    mtu: Option<u32>,
    mac: Option<String>,
    #[serde(default)]
    multi_queue: bool,
    owner: Option<u32>,
    group: Option<u32>,
    ipam: Option<Value>,
    dns: Option<Dns>,
    runtime_config: Option<RuntimeConfig>,
    args: Option<Value>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
    /// The name an earlier draft of the spec used; libcni sends both.
    #[serde(rename = "cni.dev/attachments")]
    attachments: Option<Vec<Attachment>>,
    state_dir: Option<PathBuf>,
}

/// A checked network configuration.
#[derive(Clone, Debug)]
pub struct NetConf {
    pub cni_version: String,
    pub version: Version,
    pub name: String,
    pub type_: String,
    pub kind: Kind,
    /// Host bridge (bridge kind) or container bridge (tap kind).
    pub bridge: Option<String>,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    pub master: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub multi_queue: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    /// The `ipam` object, with its `type`.
    pub ipam: Option<(String, Value)>,
    pub dns: Dns,
    pub runtime: RuntimeConfig,
    pub args: Option<Value>,
    pub prev_result: Option<Value>,
    pub valid_attachments: Option<Vec<Attachment>>,
    pub state_dir: PathBuf,
    /// The configuration exactly as received (delegated plugins get the same bytes).
    pub raw: Vec<u8>,
}

/// Why a network name breaks the specification's rule, if it does.
pub fn network_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some("the network `name` is empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => Some(format!("network name `{name}` must start with a letter or digit")),
        _ => chars
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .map(|c| format!("network name `{name}` contains `{c}`; only letters, digits, `_`, `.` and `-` are allowed")),
    }
}

/// Reads just the version of a configuration (for errors and VERSION, before anything else
/// is known to be right).
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

impl NetConf {
    /// Decodes and checks a configuration. `command` decides what must be present: GC and
    /// STATUS concern the network, not one container's device, and DEL must work with a
    /// configuration as the runtime kept it.
    pub fn parse(stdin: &[u8], command: &str) -> Result<NetConf, CniError> {
        let value: Value =
            serde_json::from_slice(stdin).map_err(|e| CniError::with(code::DECODE_FAILURE, "cannot decode the network configuration", e.to_string()))?;
        if !value.is_object() {
            return Err(CniError::with(code::DECODE_FAILURE, "cannot decode the network configuration", "expected a JSON object"));
        }
        let raw: Raw =
            serde_json::from_value(value.clone()).map_err(|e| CniError::with(code::INVALID_CONFIG, "invalid network configuration", e.to_string()))?;
        let (cni_version, version) = version::check(raw.cni_version.as_deref())?;
        version::allows(command, version, &cni_version)?;
        let name = raw.name.clone().unwrap_or_default();
        if let Some(p) = network_name_problem(&name) {
            return Err(CniError::with(code::INVALID_CONFIG, "invalid network name", p));
        }
        let type_ = raw.type_.clone().unwrap_or_default();
        if type_.is_empty() {
            return Err(CniError::config("the network configuration has no `type`"));
        }
        let kind = kind(&raw)?;
        if raw.ip_masq {
            return Err(CniError::with(
                code::UNSUPPORTED_FIELD,
                "unsupported field `ipMasq`",
                "vnet-cni does not set up NAT; masquerade on the host or chain a plugin that does",
            ));
        }
        if raw.vlan.is_some() && kind == Kind::Bridge {
            return Err(CniError::with(
                code::UNSUPPORTED_FIELD,
                "unsupported field `vlan`",
                "bridge VLAN filtering on the host bridge is not provided by vnet-cni; use kind `vlan`",
            ));
        }
        if let Some(m) = raw.mtu {
            if !(68..=65535).contains(&m) {
                return Err(CniError::with(code::INVALID_CONFIG, "invalid `mtu`", format!("{m} is outside 68..=65535")));
            }
        }
        let mac_text = raw.runtime_config.as_ref().and_then(|r| r.mac.clone()).or_else(|| cni_arg_mac(&raw.args)).or(raw.mac.clone());
        let mac = match mac_text {
            None => None,
            Some(m) => Some(crate::model::lab::parse_mac(&m).map_err(|why| CniError::with(code::INVALID_CONFIG, format!("invalid MAC address `{m}`"), why))?),
        };
        let ipam = match &raw.ipam {
            None => None,
            Some(Value::Object(o)) if o.is_empty() => None,
            Some(v @ Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && !t.contains('/') => Some((t.to_string(), v.clone())),
                Some(t) => return Err(CniError::with(code::INVALID_CONFIG, "invalid IPAM type", format!("`{t}` is not a plugin name"))),
                None => return Err(CniError::config("the `ipam` object has no `type`")),
            },
            Some(other) => return Err(CniError::with(code::INVALID_CONFIG, "invalid `ipam`", format!("expected an object, got {other}"))),
        };
        let bridge = match (&kind, raw.bridge.clone()) {
            (Kind::Bridge, b) => Some(b.unwrap_or_else(|| DEFAULT_BRIDGE.to_string())),
            (_, b) => b,
        };
        if let Some(b) = &bridge {
            if let Some(p) = crate::model::validate::ifname_problem(b) {
                return Err(CniError::with(code::INVALID_CONFIG, "invalid `bridge`", p));
            }
        }
        if let Some(m) = &raw.master {
            if let Some(p) = crate::model::validate::ifname_problem(m) {
                return Err(CniError::with(code::INVALID_CONFIG, "invalid `master`", p));
            }
        }
        Ok(NetConf {
            cni_version,
            version,
            name,
            type_,
            kind,
            bridge,
            // A default gateway on the bridge needs the gateway address there.
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            hairpin_mode: raw.hairpin_mode,
            promisc_mode: raw.promisc_mode,
            master: raw.master.clone(),
            mtu: raw.runtime_config.as_ref().and_then(|r| r.mtu).or(raw.mtu),
            mac,
            multi_queue: raw.multi_queue,
            owner: raw.owner,
            group: raw.group,
            ipam,
            dns: raw.dns.clone().unwrap_or_default(),
            runtime: raw.runtime_config.clone().unwrap_or_default(),
            args: raw.args.clone(),
            prev_result: raw.prev_result.clone().filter(|v| !v.is_null()),
            valid_attachments: raw.valid_attachments.clone().or(raw.attachments.clone()),
            state_dir: raw.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            raw: stdin.to_vec(),
        })
    }

    /// The ownership mark of one attachment's devices (their alias).
    pub fn mark(&self, container_id: &str, ifname: &str) -> String {
        mark(&self.name, container_id, ifname)
    }
}

/// `vnet-cni:NETWORK:CONTAINERID:IFNAME` — none of the three may contain `:`.
pub fn mark(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{MARK_PREFIX}{network}:{container_id}:{ifname}")
}

pub const MARK_PREFIX: &str = "vnet-cni:";

/// Splits a mark into (network, container id, ifname).
pub fn parse_mark(alias: &str) -> Option<(&str, &str, &str)> {
    let rest = alias.strip_prefix(MARK_PREFIX)?;
    let mut it = rest.splitn(3, ':');
    Some((it.next()?, it.next()?, it.next()?))
}

/// `args.cni.mac` (the "mac" convention of CNI args).
fn cni_arg_mac(args: &Option<Value>) -> Option<String> {
    args.as_ref()?.get("cni")?.get("mac")?.as_str().map(str::to_string)
}

fn kind(raw: &Raw) -> Result<Kind, CniError> {
    let Some(k) = raw.kind.as_deref() else {
        return Err(CniError::with(
            code::INVALID_CONFIG,
            "the network configuration has no `kind`",
            format!("vnet-cni needs `kind`: one of {}", Kind::NAMES.join(", ")),
        ));
    };
    let mode = raw.mode.as_deref();
    let bad_mode =
        |allowed: &str| CniError::with(code::INVALID_CONFIG, format!("invalid `mode` `{}` for kind {k}", mode.unwrap_or("")), format!("use one of {allowed}"));
    Ok(match k {
        "bridge" => Kind::Bridge,
        "macvlan" => Kind::Macvlan(match mode.unwrap_or("bridge") {
            "bridge" => MacvlanMode::Bridge,
            "private" => MacvlanMode::Private,
            "vepa" => MacvlanMode::Vepa,
            "passthru" => MacvlanMode::Passthru,
            _ => return Err(bad_mode("bridge, private, vepa, passthru")),
        }),
        "ipvlan" => Kind::Ipvlan(match mode.unwrap_or("l2") {
            "l2" => IpvlanMode::L2,
            "l3" => IpvlanMode::L3,
            "l3s" => IpvlanMode::L3s,
            _ => return Err(bad_mode("l2, l3, l3s")),
        }),
        "vlan" => {
            let id = raw.vlan_id.ok_or_else(|| CniError::config("kind vlan needs `vlanId`"))?;
            if !(1..=4094).contains(&id) {
                return Err(CniError::with(code::INVALID_CONFIG, "invalid `vlanId`", format!("{id} is outside 1..=4094")));
            }
            if raw.master.is_none() {
                return Err(CniError::config("kind vlan needs `master`, the trunk device on the host"));
            }
            Kind::Vlan(id as u16)
        }
        "tap" => Kind::Tap,
        other => return Err(CniError::with(code::INVALID_CONFIG, format!("unknown kind `{other}`"), format!("use one of {}", Kind::NAMES.join(", ")))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NetConf, CniError> {
        NetConf::parse(s.as_bytes(), "ADD")
    }

    #[test]
    fn reads_a_bridge_configuration() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n1","type":"vnet-cni","kind":"bridge","isDefaultGateway":true,
            "ipam":{"type":"host-local","subnet":"10.1.0.0/24"},"runtimeConfig":{"mac":"02:00:00:00:00:09"}}"#,
        )
        .unwrap();
        assert_eq!(c.kind, Kind::Bridge);
        assert_eq!(c.bridge.as_deref(), Some("cni0"));
        assert!(c.is_gateway, "a default gateway implies the gateway address on the bridge");
        assert_eq!(c.ipam.as_ref().unwrap().0, "host-local");
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(c.mark("abc", "eth0"), "vnet-cni:n1:abc:eth0");
        assert_eq!(parse_mark("vnet-cni:n1:abc:eth0"), Some(("n1", "abc", "eth0")));
    }

    #[test]
    fn bad_configurations_get_the_spec_codes() {
        assert_eq!(parse("{not json").unwrap_err().code, 6);
        assert_eq!(parse("[1]").unwrap_err().code, 6);
        assert_eq!(parse(r#"{"cniVersion":"9.9.9","name":"n","type":"t","kind":"bridge"}"#).unwrap_err().code, 1);
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (7, "the network configuration has no `kind`"));
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"frob"}"#).unwrap_err();
        assert_eq!(e.msg, "unknown kind `frob`");
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"macvlan","mode":"l2"}"#).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.details.contains("bridge, private, vepa, passthru"));
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"bridge","ipMasq":true}"#).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (2, "unsupported field `ipMasq`"));
        let e = parse(r#"{"cniVersion":"1.0.0","name":"bad name","type":"t","kind":"bridge"}"#).unwrap_err();
        assert_eq!(e.code, 7);
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"bridge","mtu":"big"}"#).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (7, "invalid network configuration"));
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"vlan","master":"eth0","vlanId":5000}"#).unwrap_err();
        assert_eq!(e.msg, "invalid `vlanId`");
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"bridge","ipam":{"subnet":"10.0.0.0/8"}}"#).unwrap_err();
        assert_eq!(e.msg, "the `ipam` object has no `type`");
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t","kind":"bridge"}"#, "GC").unwrap_err();
        assert_eq!(e.code, 1);
    }
}
