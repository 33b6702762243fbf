//! Expectations: what a lab should do, declared beside what it is (`expect:` in the topology
//! file) and verified by `vnet check`. Pure: the file form, its located decoding and validation,
//! and the checked form the prober runs.
//!
//! ```yaml
//! expect:
//!   - reach:      { from: ns1, to: ns2 }                 # ICMP echo to every address of ns2
//!   - no-reach:   { from: ns1, to: 203.0.113.9 }
//!   - tcp-open:   { from: ns1, to: ns2, port: 8080 }    # vnet listens on ns2 unless listen: false
//!   - udp-closed: { from: ns1, to: 192.168.1.12, port: 53 }
//!   - pmtu:       { from: ns1, to: ns2, size: 1500 }    # a 1500-byte DF probe passes (pass: false: fails)
//!   - route:      { from: ns1, to: 8.8.8.8, via: 192.168.1.10, dev: eth0 }
//! ```

use std::fmt;
use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decode::piece;
use super::diag::{Diag, Diagnostics};
use super::lab::Node;
use super::source::{Document, Path, Seg};
use super::validate::Ctx;
use indexmap::IndexMap;

/// IP family filter for a node target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn matches(self, a: &IpAddr) -> bool {
        match self {
            Family::Ipv4 => a.is_ipv4(),
            Family::Ipv6 => a.is_ipv6(),
        }
    }
}

/// An ICMP reachability expectation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReachSpec {
    /// Source node.
    pub from: String,
    /// A node (every address it declares) or an IP address.
    pub to: String,
    /// With a node target: only its IPv4 or only its IPv6 addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// A TCP or UDP port expectation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub from: String,
    /// A node (every address it declares) or an IP address.
    pub to: String,
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Start a listener on the destination for the check (default true) unless something already
    /// listens there; `false` tests whatever really runs on the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<bool>,
}

/// A path MTU expectation: an ICMP echo of `size` bytes (the whole IP packet) with
/// fragmentation forbidden.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PmtuSpec {
    pub from: String,
    pub to: String,
    /// IP packet size in bytes, headers included (like `ping -M do -s SIZE-28`).
    pub size: u32,
    /// Whether the probe should get through (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// A route expectation: the kernel's own lookup (like `ip route get`) in `from` for `to`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteExpectSpec {
    pub from: String,
    /// Destination address.
    pub to: String,
    /// Expected gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Expected output device (in `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Expected source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
}

/// One expectation as written: a one-key mapping naming what is expected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectSpec {
    /// ICMP echo from a node gets answered by each target address.
    Reach(ReachSpec),
    /// ICMP echo from a node gets no answer from any target address.
    NoReach(ReachSpec),
    TcpOpen(PortSpec),
    TcpClosed(PortSpec),
    UdpOpen(PortSpec),
    UdpClosed(PortSpec),
    Pmtu(PmtuSpec),
    Route(RouteExpectSpec),
}

impl ExpectSpec {
    /// `reach: {from, to}` (to: a node or an address).
    pub fn reach(from: &str, to: &str) -> ExpectSpec {
        ExpectSpec::Reach(ReachSpec { from: from.into(), to: to.into(), family: None })
    }
    /// `no-reach: {from, to}`.
    pub fn no_reach(from: &str, to: &str) -> ExpectSpec {
        ExpectSpec::NoReach(ReachSpec { from: from.into(), to: to.into(), family: None })
    }
    /// `tcp-open` / `tcp-closed` with a listener started by the check.
    pub fn tcp(from: &str, to: &str, port: u16, open: bool) -> ExpectSpec {
        let s = PortSpec { from: from.into(), to: to.into(), port: port.into(), family: None, listen: None };
        if open {
            ExpectSpec::TcpOpen(s)
        } else {
            ExpectSpec::TcpClosed(s)
        }
    }
    /// `udp-open` / `udp-closed` with a listener started by the check.
    pub fn udp(from: &str, to: &str, port: u16, open: bool) -> ExpectSpec {
        let s = PortSpec { from: from.into(), to: to.into(), port: port.into(), family: None, listen: None };
        if open {
            ExpectSpec::UdpOpen(s)
        } else {
            ExpectSpec::UdpClosed(s)
        }
    }
    /// `pmtu: {from, to, size, pass}`.
    pub fn pmtu(from: &str, to: &str, size: u32, pass: bool) -> ExpectSpec {
        ExpectSpec::Pmtu(PmtuSpec { from: from.into(), to: to.into(), size, pass: Some(pass), family: None })
    }

    /// The kind names, as written in files.
    pub const NAMES: &'static [&'static str] = &["reach", "no-reach", "tcp-open", "tcp-closed", "udp-open", "udp-closed", "pmtu", "route"];

    pub fn name(&self) -> &'static str {
        match self {
            ExpectSpec::Reach(_) => "reach",
            ExpectSpec::NoReach(_) => "no-reach",
            ExpectSpec::TcpOpen(_) => "tcp-open",
            ExpectSpec::TcpClosed(_) => "tcp-closed",
            ExpectSpec::UdpOpen(_) => "udp-open",
            ExpectSpec::UdpClosed(_) => "udp-closed",
            ExpectSpec::Pmtu(_) => "pmtu",
            ExpectSpec::Route(_) => "route",
        }
    }
}

/// Transport protocol of a port expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// What is expected, checked and typed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Expected {
    /// `reach: true` for reach, false for no-reach.
    Reach {
        reach: bool,
    },
    Port {
        proto: Proto,
        port: u16,
        open: bool,
        listen: bool,
    },
    Pmtu {
        size: u32,
        pass: bool,
    },
    Route {
        via: Option<IpAddr>,
        dev: Option<String>,
        src: Option<IpAddr>,
    },
}

/// One destination address of an expectation, with the lab node that holds it (if any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetAddr {
    pub addr: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A checked expectation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expect {
    pub expected: Expected,
    pub from: String,
    /// The destination as written (node name or address).
    pub to: String,
    /// The addresses it stands for.
    pub targets: Vec<TargetAddr>,
    /// Where it is written (for messages pointing at the file).
    #[serde(skip)]
    pub path: Path,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expected {
            Expected::Reach { reach: true } => write!(f, "reach {} -> {}", self.from, self.to),
            Expected::Reach { reach: false } => write!(f, "no-reach {} -> {}", self.from, self.to),
            Expected::Port { proto, port, open, .. } => {
                write!(f, "{proto} {} -> {} port {port} {}", self.from, self.to, if *open { "open" } else { "closed" })
            }
            Expected::Pmtu { size, pass } => {
                write!(f, "pmtu {} -> {} size {size} {}", self.from, self.to, if *pass { "passes" } else { "fails" })
            }
            Expected::Route { via, dev, src } => {
                write!(f, "route {} -> {}", self.from, self.to)?;
                if let Some(v) = via {
                    write!(f, " via {v}")?;
                }
                if let Some(d) = dev {
                    write!(f, " dev {d}")?;
                }
                if let Some(s) = src {
                    write!(f, " src {s}")?;
                }
                Ok(())
            }
        }
    }
}

/// Decodes the `expect:` list piece by piece, each error located in the file.
pub(crate) fn decode(doc: &Document, diags: &mut Diagnostics, v: Option<Value>) -> Vec<ExpectSpec> {
    let base: Path = vec![Seg::Key("expect".into())];
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            diags.push(Diag::error("`expect` is a list of expectations (`- reach: {from: a, to: b}`)").maybe_label(doc.value_span(&base), "expected a list"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let p: Path = vec![Seg::Key("expect".into()), Seg::Index(i)];
        let map = match item {
            Value::Object(m) if m.len() == 1 => m,
            _ => {
                diags.push(
                    Diag::error(format!("an expectation is a mapping with one key, one of: {}", ExpectSpec::NAMES.join(", ")))
                        .maybe_label(doc.value_span(&p), "expected e.g. `reach: {from: a, to: b}`"),
                );
                continue;
            }
        };
        let (kind, body) = map.into_iter().next().expect("one key");
        let mut kp = p.clone();
        kp.push(Seg::Key(kind.clone()));
        let spec = match kind.as_str() {
            "reach" => piece(doc, diags, &kp, body).map(ExpectSpec::Reach),
            "no-reach" => piece(doc, diags, &kp, body).map(ExpectSpec::NoReach),
            "tcp-open" => piece(doc, diags, &kp, body).map(ExpectSpec::TcpOpen),
            "tcp-closed" => piece(doc, diags, &kp, body).map(ExpectSpec::TcpClosed),
            "udp-open" => piece(doc, diags, &kp, body).map(ExpectSpec::UdpOpen),
            "udp-closed" => piece(doc, diags, &kp, body).map(ExpectSpec::UdpClosed),
            "pmtu" => piece(doc, diags, &kp, body).map(ExpectSpec::Pmtu),
            "route" => piece(doc, diags, &kp, body).map(ExpectSpec::Route),
            other => {
                let mut d = Diag::error(format!("unknown expectation `{other}`")).maybe_label(doc.key_span(&kp), "unknown expectation");
                d = match super::validate::did_you_mean(other, ExpectSpec::NAMES.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("expectations: {}", ExpectSpec::NAMES.join(", "))),
                };
                diags.push(d);
                None
            }
        };
        if let Some(s) = spec {
            out.push(s);
        }
    }
    out
}

/// Checks every expectation against the lab's nodes; findings go to `ctx`.
pub(crate) fn check(ctx: &mut Ctx, specs: &[ExpectSpec], nodes: &IndexMap<String, Node>) -> Vec<Expect> {
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let mut p: Path = vec![Seg::Key("expect".into()), Seg::Index(i)];
        p.push(Seg::Key(spec.name().into()));
        if let Some(e) = check_one(ctx, spec, &p, nodes) {
            out.push(e);
        }
    }
    out
}

fn check_one(ctx: &mut Ctx, spec: &ExpectSpec, p: &Path, nodes: &IndexMap<String, Node>) -> Option<Expect> {
    let (from, to, family) = match spec {
        ExpectSpec::Reach(s) | ExpectSpec::NoReach(s) => (&s.from, &s.to, s.family),
        ExpectSpec::TcpOpen(s) | ExpectSpec::TcpClosed(s) | ExpectSpec::UdpOpen(s) | ExpectSpec::UdpClosed(s) => (&s.from, &s.to, s.family),
        ExpectSpec::Pmtu(s) => (&s.from, &s.to, s.family),
        ExpectSpec::Route(s) => (&s.from, &s.to, None),
    };
    let mut ok = true;
    if !nodes.contains_key(from) && ctx.failed_node(from) {
        ok = false;
    } else if !nodes.contains_key(from) {
        let fp = ctx.sub(p, "from");
        ctx.error_at(&fp, format!("unknown node `{from}` in `from` of a {} expectation", spec.name()), format!("no node named `{from}`"));
        add_did_you_mean(ctx, from, nodes.keys().map(String::as_str));
        ok = false;
    }
    let tp = ctx.sub(p, "to");
    let route = matches!(spec, ExpectSpec::Route(_));
    let targets = resolve_target(ctx, &tp, to, family, route, nodes);
    if targets.is_none() {
        ok = false;
    }
    if family.is_some() && to.parse::<IpAddr>().is_ok() {
        ctx.warn_at(&ctx.sub(p, "family"), "`family` only filters the addresses of a node target; the target here is an address", "ignored");
    }
    let expected = match spec {
        ExpectSpec::Reach(_) => Expected::Reach { reach: true },
        ExpectSpec::NoReach(_) => Expected::Reach { reach: false },
        ExpectSpec::TcpOpen(s) | ExpectSpec::TcpClosed(s) | ExpectSpec::UdpOpen(s) | ExpectSpec::UdpClosed(s) => {
            let proto = if matches!(spec, ExpectSpec::TcpOpen(_) | ExpectSpec::TcpClosed(_)) { Proto::Tcp } else { Proto::Udp };
            let open = matches!(spec, ExpectSpec::TcpOpen(_) | ExpectSpec::UdpOpen(_));
            if s.port == 0 || s.port > 65535 {
                ctx.error_at(&ctx.sub(p, "port"), format!("port {} is out of range (1..=65535)", s.port), "out of range");
                ok = false;
            }
            let listen = s.listen.unwrap_or(true);
            if listen {
                if let Some(t) = &targets {
                    if let Some(outside) = t.iter().find(|t| t.node.is_none()) {
                        ctx.error_at(&tp, format!("{} is not an address of any node, so the check cannot listen on it", outside.addr), "outside the lab");
                        if let Some(d) = ctx.diags.last_mut() {
                            d.help = Some("set `listen: false` to test what really answers there".into());
                        }
                        ok = false;
                    }
                }
            }
            Expected::Port { proto, port: s.port.min(65535) as u16, open, listen }
        }
        ExpectSpec::Pmtu(s) => {
            let v6 = targets.as_ref().map(|t| t.iter().all(|a| a.addr.is_ipv6())).unwrap_or(false);
            let v4 = targets.as_ref().map(|t| t.iter().any(|a| a.addr.is_ipv4())).unwrap_or(true);
            // Smallest packet that holds the IP and ICMP headers; IPv6 links carry at least 1280.
            let min = if v4 { 28 } else { 48 };
            if s.size < min || s.size > 65535 {
                ctx.error_at(&ctx.sub(p, "size"), format!("size {} is out of range ({min}..=65535 bytes, IP headers included)", s.size), "out of range");
                ok = false;
            } else if v6 && s.size < 1280 {
                ctx.warn_at(&ctx.sub(p, "size"), format!("size {} is below the IPv6 minimum MTU (1280): every IPv6 path passes it", s.size), "below 1280");
            }
            Expected::Pmtu { size: s.size, pass: s.pass.unwrap_or(true) }
        }
        ExpectSpec::Route(s) => {
            let mut parse = |key: &str, v: &Option<String>| -> Option<IpAddr> {
                let v = v.as_ref()?;
                match v.trim().parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        ctx.error_at(&ctx.sub(p, key), format!("`{v}` is not an IP address"), "bad address");
                        ok = false;
                        None
                    }
                }
            };
            let via = parse("via", &s.via);
            let src = parse("src", &s.src);
            if s.via.is_none() && s.dev.is_none() && s.src.is_none() {
                ctx.error_at(p, "a route expectation needs `via`, `dev` or `src` to compare with the kernel's answer", "nothing to compare");
                ok = false;
            }
            if let (Some(dev), Some(node)) = (&s.dev, nodes.get(from)) {
                if !node.interfaces.contains_key(dev) {
                    if !ctx.failed_iface(from, dev) {
                        ctx.error_at(&ctx.sub(p, "dev"), format!("unknown device `{dev}` in node `{from}`"), format!("no device `{dev}` in node `{from}`"));
                        add_did_you_mean(ctx, dev, node.interfaces.keys().map(String::as_str));
                    }
                    ok = false;
                }
            }
            if let Some(t) = targets.as_ref().and_then(|t| t.first()) {
                for (key, a) in [("via", via), ("src", src)] {
                    if let Some(a) = a {
                        if a.is_ipv4() != t.addr.is_ipv4() {
                            ctx.error_at(&ctx.sub(p, key), format!("{a} and the destination {} are of different IP families", t.addr), "family mismatch");
                            ok = false;
                        }
                    }
                }
            }
            Expected::Route { via, dev: s.dev.clone(), src }
        }
    };
    if !ok {
        return None;
    }
    Some(Expect { expected, from: from.clone(), to: to.clone(), targets: targets.unwrap_or_default(), path: p.clone() })
}

/// A node name (its declared addresses, optionally one family) or an address.
fn resolve_target(ctx: &mut Ctx, tp: &Path, to: &str, family: Option<Family>, route: bool, nodes: &IndexMap<String, Node>) -> Option<Vec<TargetAddr>> {
    let to = to.trim();
    if let Ok(a) = to.parse::<IpAddr>() {
        if a.is_unspecified() || a.is_multicast() {
            ctx.error_at(tp, format!("{a} cannot be probed: use a unicast address"), "not unicast");
            return None;
        }
        return Some(vec![TargetAddr { addr: a, node: owner_of(nodes, a) }]);
    }
    if route {
        ctx.error_at(tp, format!("`{to}` is not an IP address: a route expectation looks up one destination address"), "expected an address");
        return None;
    }
    let Some(node) = nodes.get(to) else {
        if ctx.failed_node(to) {
            return None;
        }
        if let Some((msg, label)) = crate::model::validate::address_like_problem(to).filter(|_| !to.contains('/')) {
            ctx.error_at(tp, msg, label);
            return None;
        }
        ctx.error_at(tp, format!("`{to}` is neither a node nor an IP address"), "unknown target");
        add_did_you_mean(ctx, to, nodes.keys().map(String::as_str));
        return None;
    };
    let addrs: Vec<TargetAddr> = node
        .interfaces
        .values()
        .flat_map(|i| i.addresses.iter())
        .map(|n| n.addr())
        .filter(|a| family.is_none_or(|f| f.matches(a)))
        .map(|a| TargetAddr { addr: a, node: Some(node.name.clone()) })
        .collect();
    if addrs.is_empty() {
        let what = match family {
            Some(Family::Ipv4) => "IPv4 addresses",
            Some(Family::Ipv6) => "IPv6 addresses",
            None => "addresses",
        };
        ctx.error_at(tp, format!("node `{to}` declares no {what} to probe"), format!("no {what}"));
        return None;
    }
    Some(addrs)
}

/// The node that declares `a`, if any.
pub fn owner_of(nodes: &IndexMap<String, Node>, a: IpAddr) -> Option<String> {
    nodes.values().find(|n| n.interfaces.values().any(|i| i.addresses.iter().any(|x| x.addr() == a))).map(|n| n.name.clone())
}

fn add_did_you_mean<'a>(ctx: &mut Ctx, wrong: &str, names: impl Iterator<Item = &'a str>) {
    if let Some(best) = super::validate::did_you_mean(wrong, names) {
        if let Some(last) = ctx.diags.last_mut() {
            if last.help.is_none() {
                last.help = Some(format!("did you mean `{best}`?"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{load_str, Format};

    const BASE: &str = "name: t
nodes:
  a:
    interfaces: { eth0: { addresses: [10.0.0.1/24, fd00::1/64] } }
  b:
    interfaces: { eth0: { addresses: [10.0.0.2/24, fd00::2/64] } }
links:
  - endpoints: [a:eth0, b:eth0]
";

    fn errors(expect: &str) -> String {
        let text = format!("{BASE}expect:\n{expect}");
        match load_str("t.yaml", &text, Format::Yaml) {
            Ok(l) => format!("OK {}", l.warnings.compact()),
            Err(d) => d.compact(),
        }
    }

    #[test]
    fn every_kind_parses_into_typed_expectations() {
        let text = format!(
            "{BASE}expect:
  - reach: {{ from: a, to: b }}
  - no-reach: {{ from: a, to: 203.0.113.9 }}
  - tcp-open: {{ from: a, to: b, port: 8080, family: ipv4 }}
  - udp-closed: {{ from: b, to: 10.0.0.1, port: 53 }}
  - pmtu: {{ from: a, to: b, size: 1500, pass: false, family: ipv6 }}
  - route: {{ from: a, to: 10.0.0.2, dev: eth0 }}
"
        );
        let l = load_str("t.yaml", &text, Format::Yaml).unwrap();
        let e: Vec<String> = l.lab.expect.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            [
                "reach a -> b",
                "no-reach a -> 203.0.113.9",
                "tcp a -> b port 8080 open",
                "udp b -> 10.0.0.1 port 53 closed",
                "pmtu a -> b size 1500 fails",
                "route a -> 10.0.0.2 dev eth0"
            ]
        );
        let t: Vec<String> = l.lab.expect[0].targets.iter().map(|t| t.addr.to_string()).collect();
        assert_eq!(t, ["10.0.0.2", "fd00::2"]);
        assert_eq!(l.lab.expect[2].targets.len(), 1, "family filters the node's addresses");
        assert_eq!(l.lab.expect[3].targets[0].node.as_deref(), Some("a"), "an address target knows its node");
        assert_eq!(l.lab.expect[1].targets[0].node, None);
        // The file form round-trips through the stored topology.
        let back = crate::model::load_topology(&l.lab.topology).unwrap();
        assert_eq!(back.lab.expect, l.lab.expect);
    }

    #[test]
    fn unknown_kind_is_located_with_a_suggestion() {
        let e = errors("  - reachh: { from: a, to: b }\n");
        assert!(e.contains("t.yaml:10:5: error: unknown expectation `reachh` [reachh]"), "{e}");
        let l = load_str("t.yaml", &format!("{BASE}expect:\n  - reachh: {{ from: a, to: b }}\n"), Format::Yaml).unwrap_err();
        assert_eq!(l.iter().next().unwrap().help.as_deref(), Some("did you mean `reach`?"));
    }

    #[test]
    fn bad_values_are_located() {
        let e = errors("  - reach: { from: c, to: b }\n");
        assert!(e.contains("t.yaml:10:20: error: unknown node `c` in `from` of a reach expectation [c]"), "{e}");
        let e = errors("  - reach: { from: a, to: bb }\n");
        assert!(e.contains("error: `bb` is neither a node nor an IP address [bb]"), "{e}");
        let e = errors("  - tcp-open: { from: a, to: b, port: 70000 }\n");
        assert!(e.contains("t.yaml:10:39: error: port 70000 is out of range (1..=65535) [70000]"), "{e}");
        let e = errors("  - tcp-open: { from: a, to: 203.0.113.1, port: 80 }\n");
        assert!(e.contains("error: 203.0.113.1 is not an address of any node, so the check cannot listen on it"), "{e}");
        assert!(errors("  - tcp-open: { from: a, to: 203.0.113.1, port: 80, listen: false }\n").starts_with("OK"));
        let e = errors("  - pmtu: { from: a, to: b, size: 10 }\n");
        assert!(e.contains("error: size 10 is out of range (28..=65535 bytes, IP headers included) [10]"), "{e}");
        let e = errors("  - route: { from: a, to: b, dev: eth0 }\n");
        assert!(e.contains("error: `b` is not an IP address: a route expectation looks up one destination address [b]"), "{e}");
        let e = errors("  - route: { from: a, to: 10.0.0.2, dev: eth1 }\n");
        assert!(e.contains("error: unknown device `eth1` in node `a` [eth1]"), "{e}");
        let e = errors("  - route: { from: a, to: 10.0.0.2 }\n");
        assert!(e.contains("error: a route expectation needs `via`, `dev` or `src`"), "{e}");
        let e = errors("  - route: { from: a, to: 10.0.0.2, via: fd00::9 }\n");
        assert!(e.contains("error: fd00::9 and the destination 10.0.0.2 are of different IP families [fd00::9]"), "{e}");
        let e = errors("  - reach: { from: a, to: b, family: ipv5 }\n");
        assert!(e.contains("error: `family` must be one of `ipv4`, `ipv6`, not `ipv5`"), "{e}");
        let e = errors("  - reach: { from: a, to: b, colour: red }\n");
        assert!(e.contains("error: unknown field `colour`"), "{e}");
        let e = errors("  - reach: { from: a, to: b }\n    no-reach: { from: a, to: b }\n");
        assert!(e.contains("error: an expectation is a mapping with one key"), "{e}");
    }

    #[test]
    fn node_without_addresses_of_the_family_is_an_error() {
        let e = errors("  - reach: { from: a, to: a, family: ipv4 }\n  - reach: { from: b, to: a }\n");
        assert!(e.starts_with("OK"), "{e}");
        let text = "name: t\nnodes:\n  a: {}\n  b: {}\nexpect:\n  - reach: { from: a, to: b }\n";
        let e = load_str("t.yaml", text, Format::Yaml).unwrap_err().compact();
        assert!(e.contains("t.yaml:6:27: error: node `b` declares no addresses to probe [b]"), "{e}");
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let e = errors("  - reach: { from: x, to: y }\n  - udp-open: { from: a, to: b, port: 0 }\n");
        assert_eq!(e.lines().filter(|l| l.contains("error:")).count(), 3, "{e}");
    }
}
