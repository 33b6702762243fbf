//! Turns a parsed document into `Topology`, piece by piece (top level, each node, each
//! interface, each route, each link), so that one bad piece does not hide the errors in the
//! others, and every serde error is located at the exact key or value it concerns. Within a
//! piece, a field that fails is reported and left out, and the rest is decoded again: every bad
//! field of a piece is reported, and the good ones stay for validation to check.

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
    let expect = top.remove("expect");
    // `name` is required: without it (or with a non-string) the rest is still decoded.
    match top.get("name") {
        Some(Value::String(_)) => {}
        None => {
            let span = doc.value_span(&[]).map(|s| s.start..s.start);
            diags.push(
                Diag::error("the lab has no `name`")
                    .maybe_label(span, "add `name: <lab>`")
                    .help("a lab's name names its namespaces and its record under /run/vnet"),
            );
            top.insert("name".into(), Value::String(String::new()));
        }
        Some(other) => {
            diags.push(
                Diag::error(format!("`name` must be a string, not {}", type_name(other)))
                    .maybe_label(doc.value_span(&[Seg::Key("name".into())]), "expected a string"),
            );
            top.insert("name".into(), Value::String(String::new()));
        }
    }
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
                for (i, mut l) in items.into_iter().enumerate() {
                    let p = vec![Seg::Key("links".into()), Seg::Index(i)];
                    spaced_endpoints(doc, &mut diags, &p, &mut l);
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
    topo.expect = super::expect::decode(doc, &mut diags, expect);
    if let Some(v) = ipsec {
        topo.ipsec = crate::model::netfeat::spec_decode::list(doc, &mut diags, &[Seg::Key("ipsec".into())], v);
    }
    (topo, diags)
}

/// `endpoints: [a: eth1]`: YAML reads `a: eth1` (a space after the colon) as a one-entry
/// mapping. Said so, and the endpoint is taken as `a:eth1` so the rest of the lab is checked as
/// meant.
fn spaced_endpoints(doc: &Document, diags: &mut Diagnostics, p: &Path, link: &mut Value) {
    let Some(Value::Array(eps)) = link.as_object_mut().and_then(|m| m.get_mut("endpoints")) else { return };
    for (j, ep) in eps.iter_mut().enumerate() {
        let Value::Object(m) = ep else { continue };
        let Some((node, Value::String(ifname))) = m.iter().next().filter(|_| m.len() == 1) else { continue };
        let joined = format!("{node}:{}", ifname.trim());
        let ep_path: Path = [p.as_slice(), &[Seg::Key("endpoints".into()), Seg::Index(j)]].concat();
        diags.push(
            Diag::error(format!("endpoint `{node}: {ifname}` is a mapping, not `node:ifname`"))
                .maybe_label(doc.value_span(&ep_path), "read as a mapping")
                .help(format!("write `{joined}` without a space after the colon (YAML reads `{node}: {ifname}` as a mapping)")),
        );
        *ep = Value::String(joined);
    }
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
        Some(other) => diags.push(Diag::error(format!("`routes` is a list, not {}", type_name(&other))).maybe_label(doc.value_span(&rp), "expected a list")),
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
    let explicit_kind = kind.contains_key("kind");
    if !explicit_kind {
        let default = if ifname == "lo" { "loopback" } else { "veth" };
        kind.insert("kind".into(), Value::String(default.into()));
    }
    let c: Option<Common> = piece(doc, diags, p, Value::Object(common));
    let k = decode_kind(doc, diags, p, kind, explicit_kind);
    let (c, k) = (c?, k?);
    Some(InterfaceSpec { kind: k, up: c.up, mtu: c.mtu, mac: c.mac, addresses: c.addresses, master: c.master, hairpin: c.hairpin })
}

/// Decodes the kind and its options. serde loses the path inside an internally tagged enum,
/// so when the whole fails, each option is decoded alone as the kind's own settings (which keeps
/// the path) to find the bad ones and the place of each error.
fn decode_kind(doc: &Document, diags: &mut Diagnostics, p: &Path, map: Map<String, Value>, explicit: bool) -> Option<KindSpec> {
    let kp: Path = [p.as_slice(), &[Seg::Key("kind".into())]].concat();
    let name = match map.get("kind") {
        Some(Value::String(s)) => s.clone(),
        other => {
            let found = other.map(type_name).unwrap_or("nothing");
            diags.push(
                Diag::error(format!("`kind` must be the name of a device kind, not {found}"))
                    .maybe_label(doc.value_span(&kp), "expected a kind name")
                    .help(format!("kinds: {}", KindSpec::NAMES.join(", "))),
            );
            return None;
        }
    };
    if !KindSpec::NAMES.contains(&name.as_str()) {
        let mut d = Diag::error(format!("unknown device kind `{name}`"))
            .maybe_label(doc.value_span(&kp), "unknown kind")
            .help(format!("kinds: {}", KindSpec::NAMES.join(", ")));
        if let Some(best) = closest(&name, KindSpec::NAMES.iter().copied()) {
            d = d.help(format!("did you mean `{best}`? kinds: {}", KindSpec::NAMES.join(", ")));
        }
        diags.push(d);
        return None;
    }
    let alone = |field: &str, value: Value| {
        let one = Value::Object(Map::from_iter([(field.to_string(), value)]));
        let r = KindSpec::decode_options_located(&name, &one).expect("a known kind");
        (one, r)
    };
    let mut options = map;
    options.remove("kind");
    // A null where an option (or a part of one) is a list or a mapping means an empty one.
    for (field, value) in options.iter_mut() {
        loop {
            let (mut one, r) = alone(field, value.take());
            let fixed = matches!(&r, Err(e) if null_means_empty(&mut one, e));
            *value = one.as_object_mut().and_then(|m| m.remove(field.as_str())).unwrap_or_default();
            if !fixed {
                break;
            }
        }
    }
    let with_kind = |options: &Map<String, Value>| {
        let mut m = Map::new();
        m.insert("kind".into(), Value::String(name.clone()));
        m.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
        Value::Object(m)
    };
    let err = match serde_path_to_error::deserialize::<_, KindSpec>(&with_kind(&options)) {
        Ok(k) => return Some(k),
        Err(e) => e,
    };
    // Blame each option that fails on its own.
    let mut good = Map::new();
    // Whether an option belongs to other kinds.
    let mut foreign = false;
    let mut blamed = false;
    for (field, value) in &options {
        let e = match alone(field, value.clone()).1 {
            Ok(()) => {
                good.insert(field.clone(), value.clone());
                continue;
            }
            Err(e) => e,
        };
        let msg = e.inner().to_string();
        // Alone, an option misses the kind's other required options: not its fault.
        let depth = e.path().iter().count();
        if depth == 0 && msg.starts_with("missing field") {
            good.insert(field.clone(), value.clone());
            continue;
        }
        blamed = true;
        // An unknown option (the path holds at most its own name).
        if depth <= 1 && msg.starts_with("unknown field") {
            let fp: Path = [p.as_slice(), &[Seg::Key(field.clone())]].concat();
            // An option of other kinds (`stp` on a veth, `link` on a dummy): name them, rather
            // than a did-you-mean to some unrelated option of this kind.
            if let Some(d) = option_of_other_kinds(doc, p, &fp, field, value, &name, explicit) {
                diags.push(d);
                foreign = true;
                continue;
            }
            let d = unknown_field(doc, p, &fp, field, &msg);
            let mut accepted: Vec<String> = COMMON_INTERFACE_FIELDS.iter().map(|s| s.to_string()).collect();
            accepted.extend(expected_names(&msg));
            let hint = if explicit { String::new() } else { " (an interface without `kind` is a veth end)".to_string() };
            let mean = closest(field, accepted.iter().map(String::as_str)).map(|b| format!("did you mean `{b}`? ")).unwrap_or_default();
            diags.push(d.help(format!("{mean}a {name} interface accepts {}{hint}", accepted.join(", "))));
        } else {
            diags.push(located(doc, p, &e));
        }
    }
    if !blamed {
        // Not one option's fault (e.g. a required option is missing): report the whole.
        diags.push(humanized(doc, p, &err.inner().to_string()));
        return None;
    }
    if !explicit && foreign {
        // No `kind`, with options of another: the interface may well not be the veth end it
        // defaults to (`br0: { stp: true }`). It is left out, as one that failed to decode, so
        // that its ports and its (missing) peer raise nothing more.
        return None;
    }
    serde_path_to_error::deserialize::<_, KindSpec>(with_kind(&good)).ok()
}

/// "`stp` is an option of kind `bridge`; `a:eth0` is a veth": `field` is not an option of the
/// kind `name` but is one of other kinds, which are named with how to get there. `None` when no
/// other kind takes it either (a typo, left to the did-you-mean).
fn option_of_other_kinds(doc: &Document, p: &Path, fp: &Path, field: &str, value: &Value, name: &str, explicit: bool) -> Option<Diag> {
    let one = Value::Object(Map::from_iter([(field.to_string(), value.clone())]));
    let kinds: Vec<&'static str> = KindSpec::NAMES
        .iter()
        .copied()
        .filter(|k| *k != name && *k != "loopback")
        .filter(|k| match KindSpec::decode_options_located(k, &one) {
            Some(Ok(())) => true,
            // A bad value, or another option the kind needs, is not "unknown field".
            Some(Err(e)) => !(e.path().iter().count() <= 1 && e.inner().to_string().starts_with("unknown field")),
            None => false,
        })
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let (node, ifname) = match p.as_slice() {
        [.., Seg::Key(n), Seg::Key(i), Seg::Key(ifname)] if i == "interfaces" => (n.as_str(), ifname.as_str()),
        _ => ("?", "?"),
    };
    let ticked: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
    let listed = match ticked.as_slice() {
        [one] => format!("kind {one}"),
        [rest @ .., last] => format!("kinds {} and {last}", rest.join(", ")),
        [] => unreachable!(),
    };
    let article = |k: &str| if k.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    let mut d = Diag::error(format!("`{field}` is an option of {listed}; `{node}:{ifname}` is {} {name}", article(name)))
        .maybe_label(if doc.has(fp) { doc.key_span(fp) } else { doc.key_span(p) }, format!("not an option of {} {name}", article(name)));
    let to_kind = match kinds.as_slice() {
        [k] => format!("`kind: {k}`"),
        _ => format!("one of {}", kinds.iter().map(|k| format!("`kind: {k}`")).collect::<Vec<_>>().join(", ")),
    };
    let mut help = if explicit {
        format!("`{ifname}` is declared `kind: {name}`; make it {to_kind}, or remove `{field}`")
    } else if name == "loopback" {
        format!("`{ifname}` is the node's loopback device; remove `{field}`, or declare a device of another name with {to_kind}")
    } else {
        format!("an interface without `kind` is a veth end; add {to_kind} to make `{ifname}` that kind, or remove `{field}`")
    };
    match (name, field) {
        (_, "vlans") => help.push_str(&format!("; a port's VLANs are listed on its bridge: `vlans: {{ {ifname}: [10, 20] }}`")),
        ("veth", "link") => {
            help.push_str("; `link` names the lower device of those kinds: a veth end is connected with `peer: <node>:<ifname>` or a `links` entry")
        }
        (_, "link") => help.push_str(" (`link` names the lower device those kinds sit on)"),
        ("bridge", "ports") => help.push_str(&format!("; ports join a bridge with `master: {ifname}` on each port")),
        _ => {}
    }
    d = d.help(help);
    Some(d)
}

/// Deserializes one piece. A field that fails is reported and left out, and the rest is
/// decoded again, so that every bad field is reported and the good ones are kept.
pub(crate) fn piece<T: DeserializeOwned>(doc: &Document, diags: &mut Diagnostics, base: &[Seg], v: Value) -> Option<T> {
    let mut v = v;
    let mut removed: Vec<String> = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(&v) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        if null_means_empty(&mut v, &e) {
            continue;
        }
        let msg = e.inner().to_string();
        // A required field we left out because it was bad: already reported.
        let follow_on = backticked(&msg, "missing field `").map(|f| removed.contains(&f)).unwrap_or(false);
        if !follow_on {
            diags.push(located(doc, base, &e));
        }
        let culprit = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => backticked(&msg, "unknown field `"),
        };
        match (&mut v, culprit) {
            (Value::Object(m), Some(k)) if m.contains_key(&k) => {
                m.remove(&k);
                removed.push(k);
            }
            _ => return None,
        }
    }
}

/// A key written with nothing after it (`sysctls:`) is null. Where a list or a mapping is
/// expected, that means an empty one, as it does for `nodes`, `interfaces` and `routes`: the null
/// the error is about is replaced, and the caller decodes again. False for any other error.
fn null_means_empty(v: &mut Value, e: &serde_path_to_error::Error<serde_json::Error>) -> bool {
    let msg = e.inner().to_string();
    let empty = match msg.split(" at line ").next().unwrap_or(&msg) {
        "invalid type: null, expected a sequence" => Value::Array(Vec::new()),
        "invalid type: null, expected a map" => Value::Object(Map::new()),
        _ => return false,
    };
    let mut at = v;
    for s in e.path().iter() {
        at = match (s, at) {
            (serde_path_to_error::Segment::Map { key }, Value::Object(m)) => match m.get_mut(key) {
                Some(x) => x,
                None => return false,
            },
            (serde_path_to_error::Segment::Seq { index }, Value::Array(a)) => match a.get_mut(*index) {
                Some(x) => x,
                None => return false,
            },
            (serde_path_to_error::Segment::Enum { .. }, x) => x,
            _ => return false,
        };
    }
    if !at.is_null() {
        return false;
    }
    *at = empty;
    true
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
        if path.last() == Some(&Seg::Key(field.clone())) {
            path.pop();
        }
        let mut fp = path.clone();
        fp.push(Seg::Key(field.clone()));
        let mut d = unknown_field(doc, &path, &fp, &field, &msg);
        let expected = expected_names(&msg);
        let mean = closest(&field, expected.iter().map(String::as_str)).map(|b| format!("did you mean `{b}`? ")).unwrap_or_default();
        if !expected.is_empty() {
            d = d.help(format!("{mean}{} accepts {}", where_(&path).trim_start_matches("in "), expected.join(", ")));
        }
        return d;
    }
    if msg.starts_with("missing field") {
        let field = backticked(&msg, "missing field `").unwrap_or_default();
        return Diag::error(format!("`{field}` is required {}", where_(&path))).maybe_label(doc.key_span(&path), format!("`{field}` missing"));
    }
    humanized(doc, &path, &msg)
}

/// "unknown field `x` in node `a`", underlining the key.
fn unknown_field(doc: &Document, container: &[Seg], fp: &[Seg], field: &str, _msg: &str) -> Diag {
    let span = if doc.has(fp) { doc.key_span(fp) } else { doc.key_span(container) };
    Diag::error(format!("unknown field `{field}` {}", where_(container))).maybe_label(span, "unknown field")
}

/// Where a piece sits, for messages: "in node `a`", "in link 2", ...
fn where_(path: &[Seg]) -> String {
    let k = |s: &Seg| match s {
        Seg::Key(k) => k.clone(),
        Seg::Index(i) => i.to_string(),
    };
    match path {
        [] => "in the lab".to_string(),
        [Seg::Key(n), Seg::Index(i)] if n == "links" => format!("in link {}", i + 1),
        [Seg::Key(n), node] if n == "nodes" => format!("in node `{}`", k(node)),
        [Seg::Key(n), node, Seg::Key(r), Seg::Index(i)] if n == "nodes" && r == "routes" => format!("in route {} of node `{}`", i + 1, k(node)),
        [Seg::Key(n), node, Seg::Key(r), ifname] if n == "nodes" && r == "interfaces" => format!("in interface `{}:{}`", k(node), k(ifname)),
        [Seg::Key(n), node, Seg::Key(r), ifname, rest @ ..] if n == "nodes" && r == "interfaces" => {
            let mut inner = String::new();
            for s in rest {
                match s {
                    Seg::Key(key) if inner.is_empty() => inner.push_str(key),
                    Seg::Key(key) => inner.push_str(&format!(".{key}")),
                    Seg::Index(i) => inner.push_str(&format!("[{i}]")),
                }
            }
            format!("in `{inner}` of interface `{}:{}`", k(node), k(ifname))
        }
        other => format!("in `{}`", other.iter().map(k).collect::<Vec<_>>().join(".")),
    }
}

/// Turns serde's wording ("invalid type: string \"big\", expected u32") into a sentence about
/// the field ("`mtu` must be a whole number, not the string \"big\""), underlining the value.
fn humanized(doc: &Document, path: &[Seg], msg: &str) -> Diag {
    let subject = match path {
        [.., Seg::Key(k), Seg::Index(_)] => format!("every entry of `{k}`"),
        [.., Seg::Key(k)] => format!("`{k}`"),
        _ => "this value".to_string(),
    };
    let span = doc.value_span(path);
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                let expected = expected_words(expected);
                return Diag::error(format!("{subject} must be {expected}, not {}", found_words(found))).maybe_label(span, format!("expected {expected}"));
            }
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (found, _) = rest.split_once('`').unwrap_or((rest, ""));
        let names = expected_names(msg);
        let listed = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let mut d = Diag::error(format!("{subject} must be one of {listed}, not `{found}`")).maybe_label(span, "unknown value");
        if let Some(b) = closest(found, names.iter().map(String::as_str)) {
            d = d.help(format!("did you mean `{b}`?"));
        }
        return d;
    }
    if let Some(name) = msg.strip_prefix("data did not match any variant of untagged enum ") {
        // Forms with a mapping among them decode through `forms::scalar_or_map`, which says
        // what is wrong inside the mapping; these are scalars of several types.
        let expected = match name {
            "SysctlValue" => "a whole number, `true` / `false` or a string",
            "TableRef" => "a table number (0 to 4294967295) or `main` / `local`",
            "SpiValue" => "an SPI (a whole number from 0 to 4294967295, or hex text such as `0x1000`)",
            "Text" => "a string or a number",
            _ => "one of the accepted forms",
        };
        return Diag::error(format!("{subject} must be {expected}, not {}", found_value(doc.get(path)))).maybe_label(span, format!("expected {expected}"));
    }
    Diag::error(msg.to_string()).maybe_label(span, "invalid value")
}

/// What a value written in the file is, for "not ..." in messages: scalars as written (`1.5`,
/// `-3`, the string "x"), containers by their type.
fn found_value(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::String(s)) => format!("the string {s:?}"),
        Some(other) => type_name(other).to_string(),
        None => "something else".to_string(),
    }
}

fn expected_words(e: &str) -> String {
    match e {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" => "a whole number from -128 to 127".into(),
        "i16" => "a whole number from -32768 to 32767".into(),
        "i32" => "a whole number from -2147483648 to 2147483647".into(),
        "i64" | "isize" => "a whole number".into(),
        "a boolean" => "`true` or `false`".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        s if s.starts_with("struct ") => "a mapping".into(),
        s if s.starts_with("enum ") => "one of the accepted names".into(),
        s => s.to_string(),
    }
}

fn found_words(f: &str) -> String {
    if let Some(s) = f.strip_prefix("string ") {
        return format!("the string {s}");
    }
    for p in ["integer `", "floating point `", "boolean `"] {
        if let Some(rest) = f.strip_prefix(p) {
            return rest.trim_end_matches('`').to_string();
        }
    }
    match f {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "null" | "unit value" => "nothing".into(),
        other => other.to_string(),
    }
}

/// The backticked names after "expected" in a serde message.
fn expected_names(msg: &str) -> Vec<String> {
    let Some((_, rest)) = msg.split_once("expected ") else { return Vec::new() };
    rest.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The candidate closest to a misspelled name, if one is close enough to be a likely typo.
pub(crate) fn closest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .filter(|c| *c != wrong)
        .map(|c| (super::validate::edit_distance(wrong, c), c))
        .filter(|(d, c)| {
            *d <= 2.max(wrong.len() / 3) && *d < c.len().max(wrong.len())
                || (wrong.len() >= 3 && (c.starts_with(wrong) || wrong.starts_with(*c)) && c.len().min(wrong.len()) >= 3)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn backticked(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_string())
}

/// How a value's type reads in a message ("a list", "a mapping"...).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
