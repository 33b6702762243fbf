//! Turns a parsed document into `Topology`, piece by piece (top level, each node, each
//! interface, each route, each link), so that one bad piece does not hide the errors in the
//! others, and every serde error is located at the exact key or value it concerns.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::diag::{Diag, Diagnostics};
use super::file::{InterfaceSpec, LinkSpec, NodeSpec, RouteSpec, Topology, COMMON_INTERFACE_FIELDS};
use super::kind::KindSpec;
use super::source::{Document, Path, Seg};

/// The common interface settings alone, so that their errors are located precisely.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    #[serde(default)]
    up: Option<bool>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    hairpin: Option<bool>,
}

/// Decodes the whole document; the topology is returned even when some pieces failed (those
/// pieces are left out), so validation can still report everything else.
pub fn decode(doc: &Document) -> (Topology, Diagnostics) {
    let mut diags = Diagnostics::new(Some(doc.source.clone()));
    let root = match &doc.value {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => {
            diags.push(
                Diag::error(format!("a topology file is a mapping with `name` and `nodes`, not {}", type_name(other)))
                    .maybe_label(doc.value_span(&[]), "expected a mapping"),
            );
            return (Topology::default(), diags);
        }
    };

    let mut top = root.clone();
    let nodes = top.remove("nodes");
    let links = top.remove("links");
    let ipsec = top.remove("ipsec");
    let mut topo: Topology = piece(doc, &mut diags, &[], Value::Object(top)).unwrap_or_default();

    if let Some(nodes) = nodes {
        match nodes {
            Value::Object(nodes) => {
                for (name, node) in nodes {
                    let p = vec![Seg::Key("nodes".into()), Seg::Key(name.clone())];
                    if let Some(n) = decode_node(doc, &mut diags, &p, node) {
                        topo.nodes.insert(name, n);
                    }
                }
            }
            Value::Null => {}
            other => diags.push(
                Diag::error(format!("`nodes` is a mapping from node name to node, not {}", type_name(&other)))
                    .maybe_label(doc.value_span(&[Seg::Key("nodes".into())]), "expected a mapping"),
            ),
        }
    }
    if let Some(links) = links {
        match links {
            Value::Array(items) => {
                for (i, l) in items.into_iter().enumerate() {
                    let p = vec![Seg::Key("links".into()), Seg::Index(i)];
                    if let Some(l) = piece::<LinkSpec>(doc, &mut diags, &p, l) {
                        topo.links.push(l);
                    } else {
                        // Keep indexes aligned with the file for later diagnostics.
                        topo.links.push(LinkSpec { endpoints: Vec::new(), mtu: None });
                    }
                }
            }
            Value::Null => {}
            other => diags.push(
                Diag::error(format!("`links` is a list, not {}", type_name(&other)))
                    .maybe_label(doc.value_span(&[Seg::Key("links".into())]), "expected a list"),
            ),
        }
    }
    if let Some(v) = ipsec {
        topo.ipsec = crate::model::netfeat::spec_decode::list(doc, &mut diags, &[Seg::Key("ipsec".into())], v);
    }
    (topo, diags)
}

fn decode_node(doc: &Document, diags: &mut Diagnostics, p: &Path, node: Value) -> Option<NodeSpec> {
    let mut obj = match node {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            diags.push(
                Diag::error(format!("a node is a mapping (interfaces, routes, sysctls), not {}", type_name(&other)))
                    .maybe_label(doc.value_span(p), "expected a mapping"),
            );
            return None;
        }
    };
    let interfaces = obj.remove("interfaces");
    let routes = obj.remove("routes");
    let features = crate::model::netfeat::spec_decode::take_node_sections(&mut obj);
    let mut spec: NodeSpec = piece(doc, diags, p, Value::Object(obj))?;
    crate::model::netfeat::spec_decode::node_sections(doc, diags, p, features, &mut spec);

    let mut ip = p.clone();
    ip.push(Seg::Key("interfaces".into()));
    match interfaces {
        Some(Value::Object(ifs)) => {
            for (ifname, iface) in ifs {
                let mut q = ip.clone();
                q.push(Seg::Key(ifname.clone()));
                if let Some(i) = decode_interface(doc, diags, &q, &ifname, iface) {
                    spec.interfaces.insert(ifname, i);
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => diags.push(
            Diag::error(format!("`interfaces` is a mapping from interface name to settings, not {}", type_name(&other)))
                .maybe_label(doc.value_span(&ip), "expected a mapping"),
        ),
    }

    let mut rp = p.clone();
    rp.push(Seg::Key("routes".into()));
    match routes {
        Some(Value::Array(items)) => {
            for (i, r) in items.into_iter().enumerate() {
                let mut q = rp.clone();
                q.push(Seg::Index(i));
                if let Some(r) = piece::<RouteSpec>(doc, diags, &q, r) {
                    spec.routes.push(r);
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => diags.push(
            Diag::error(format!("`routes` is a list, not {}", type_name(&other)))
                .maybe_label(doc.value_span(&rp), "expected a list"),
        ),
    }
    Some(spec)
}

fn decode_interface(doc: &Document, diags: &mut Diagnostics, p: &Path, ifname: &str, v: Value) -> Option<InterfaceSpec> {
    let obj = match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            diags.push(
                Diag::error(format!("interface `{ifname}` must be a mapping of settings, not {}", type_name(&other)))
                    .maybe_label(doc.value_span(p), "expected a mapping"),
            );
            return None;
        }
    };
    let mut common = Map::new();
    let mut kind = Map::new();
    for (k, v) in obj {
        if COMMON_INTERFACE_FIELDS.contains(&k.as_str()) && k != "kind" {
            common.insert(k, v);
        } else {
            kind.insert(k, v);
        }
    }
    if !kind.contains_key("kind") {
        let default = if ifname == "lo" { "loopback" } else { "veth" };
        kind.insert("kind".into(), Value::String(default.into()));
    }
    let explicit_kind = doc.has(&[p.as_slice(), &[Seg::Key("kind".into())]].concat());
    let c: Option<Common> = piece(doc, diags, p, Value::Object(common));
    let k: Option<KindSpec> = match serde_path_to_error::deserialize::<_, KindSpec>(Value::Object(kind)) {
        Ok(k) => Some(k),
        Err(e) => {
            let mut d = located(doc, p, &e);
            if d.message.starts_with("unknown field") {
                let hint = if explicit_kind { "" } else { " (an interface without `kind` is a veth end)" };
                d = d.help(format!(
                    "every interface accepts {}; the rest depends on its kind{hint}",
                    COMMON_INTERFACE_FIELDS.join(", ")
                ));
            }
            if d.message.starts_with("unknown variant") {
                d = d.help(format!("kinds: {}", KindSpec::NAMES.join(", ")));
            }
            diags.push(d);
            None
        }
    };
    let (c, k) = (c?, k?);
    Some(InterfaceSpec { kind: k, up: c.up, mtu: c.mtu, mac: c.mac, addresses: c.addresses, master: c.master, hairpin: c.hairpin })
}

/// Deserializes one piece, reporting a located error on failure.
pub(crate) fn piece<T: DeserializeOwned>(doc: &Document, diags: &mut Diagnostics, base: &[Seg], v: Value) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(located(doc, base, &e));
            None
        }
    }
}

/// Builds a diagnostic from a serde error, pointing at the key or value it is about.
fn located(doc: &Document, base: &[Seg], e: &serde_path_to_error::Error<serde_json::Error>) -> Diag {
    let mut path: Path = base.to_vec();
    for s in e.path().iter() {
        match s {
            serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
            serde_path_to_error::Segment::Enum { .. } => {}
            serde_path_to_error::Segment::Unknown => break,
        }
    }
    let msg = e.inner().to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if let Some(field) = backticked(&msg, "unknown field `") {
        let mut fp = path.clone();
        fp.push(Seg::Key(field.clone()));
        let span = if doc.has(&fp) { doc.key_span(&fp) } else { doc.key_span(&path) };
        return Diag::error(msg).maybe_label(span, format!("unknown field `{field}`"));
    }
    if let Some(variant) = backticked(&msg, "unknown variant `") {
        let mut kp = path.clone();
        kp.push(Seg::Key("kind".into()));
        let span = if doc.has(&kp) { doc.value_span(&kp) } else { doc.value_span(&path) };
        return Diag::error(msg).maybe_label(span, format!("unknown `{variant}`"));
    }
    if msg.starts_with("missing field") {
        return Diag::error(msg).maybe_label(doc.key_span(&path), "required here");
    }
    Diag::error(msg).maybe_label(doc.value_span(&path), "invalid value")
}

fn backticked(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_string())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
