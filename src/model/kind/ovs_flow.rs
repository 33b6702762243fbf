//! OpenFlow flows in ovs-ofctl's syntax (ovs-ofctl(8) "Flow Syntax", ovs-actions(7)), checked
//! before anything runs: the shape (`key=value` match fields, then `actions=` last), table and
//! priority ranges, field and action names, balanced parentheses, and the ports the flow names
//! (returned, so that the lab-wide check can insist they are ports of the bridge). ovs-ofctl
//! remains the final judge of each value when the flow is installed.

/// A flow reduced to what identifies it and what installs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    /// Match fields and flags, comma-separated, without table, priority and actions.
    pub matches: String,
    pub actions: String,
    /// Port names (not numbers, not reserved ports) the flow refers to.
    pub ports: Vec<String>,
}

/// OpenFlow's default priority.
pub const DEFAULT_PRIORITY: u16 = 32768;
/// Tables 0..=254 (255 means "all tables").
pub const MAX_TABLE: u32 = 254;

impl Flow {
    /// The flow as ovs-ofctl reads it (without a cookie).
    pub fn line(&self) -> String {
        let mut s = format!("table={},priority={}", self.table, self.priority);
        if !self.matches.is_empty() {
            s.push(',');
            s.push_str(&self.matches);
        }
        s.push_str(",actions=");
        s.push_str(&self.actions);
        s
    }
}

/// Reserved OpenFlow port names (ovs-ofctl accepts them in any case).
const RESERVED_PORTS: &[&str] = &["in_port", "table", "normal", "flood", "all", "controller", "local", "none", "any", "unset"];

/// Match field names (ovs-fields(7)), beside the numbered families handled in `known_field`.
const FIELDS: &[&str] = &[
    "in_port",
    "in_port_oxm",
    "dl_src",
    "dl_dst",
    "dl_type",
    "dl_vlan",
    "dl_vlan_pcp",
    "vlan_tci",
    "vlan_vid",
    "vlan_pcp",
    "eth_src",
    "eth_dst",
    "eth_type",
    "nw_src",
    "nw_dst",
    "nw_proto",
    "nw_tos",
    "nw_ecn",
    "nw_ttl",
    "nw_frag",
    "ip_src",
    "ip_dst",
    "ip_proto",
    "ip_dscp",
    "ip_ecn",
    "ip_ttl",
    "ip_frag",
    "ipv6_src",
    "ipv6_dst",
    "ipv6_label",
    "tp_src",
    "tp_dst",
    "tcp_src",
    "tcp_dst",
    "tcp_flags",
    "udp_src",
    "udp_dst",
    "sctp_src",
    "sctp_dst",
    "icmp_type",
    "icmp_code",
    "icmpv4_type",
    "icmpv4_code",
    "icmpv6_type",
    "icmpv6_code",
    "nd_target",
    "nd_sll",
    "nd_tll",
    "nd_reserved",
    "nd_options_type",
    "arp_op",
    "arp_spa",
    "arp_tpa",
    "arp_sha",
    "arp_tha",
    "metadata",
    "tun_id",
    "tunnel_id",
    "tun_src",
    "tun_dst",
    "tun_ipv6_src",
    "tun_ipv6_dst",
    "tun_flags",
    "tun_gbp_id",
    "tun_gbp_flags",
    "tun_erspan_ver",
    "tun_erspan_idx",
    "tun_erspan_dir",
    "tun_erspan_hwid",
    "tun_gtpu_flags",
    "tun_gtpu_msgtype",
    "tun_tos",
    "tun_ttl",
    "mpls_label",
    "mpls_tc",
    "mpls_bos",
    "mpls_ttl",
    "ct_state",
    "ct_zone",
    "ct_mark",
    "ct_label",
    "ct_nw_src",
    "ct_nw_dst",
    "ct_ipv6_src",
    "ct_ipv6_dst",
    "ct_nw_proto",
    "ct_tp_src",
    "ct_tp_dst",
    "pkt_mark",
    "skb_priority",
    "recirc_id",
    "dp_hash",
    "conj_id",
    "actset_output",
    "packet_type",
    "dl_type",
    "ipv6_exthdr",
    "ip_dscp",
];

/// Protocol shorthands (`ip` = `dl_type=0x0800`, ...) and flow flags that stand alone.
const KEYWORDS: &[&str] = &[
    "eth",
    "ip",
    "ipv6",
    "icmp",
    "icmp6",
    "tcp",
    "tcp6",
    "udp",
    "udp6",
    "sctp",
    "sctp6",
    "arp",
    "rarp",
    "mpls",
    "mplsm",
    "nsh",
    "send_flow_rem",
    "check_overlap",
    "reset_counts",
    "no_packet_counts",
    "no_byte_counts",
];

/// Flow settings that are not match fields.
const SETTINGS: &[&str] = &["idle_timeout", "hard_timeout", "importance"];

/// Action names (ovs-actions(7)); anything else is read as a port to output to.
const ACTIONS: &[&str] = &[
    "output",
    "enqueue",
    "normal",
    "flood",
    "all",
    "local",
    "in_port",
    "controller",
    "drop",
    "mod_vlan_vid",
    "mod_vlan_pcp",
    "strip_vlan",
    "push_vlan",
    "pop_vlan",
    "push_mpls",
    "pop_mpls",
    "mod_dl_src",
    "mod_dl_dst",
    "mod_nw_src",
    "mod_nw_dst",
    "mod_nw_tos",
    "mod_nw_ecn",
    "mod_nw_ttl",
    "mod_tp_src",
    "mod_tp_dst",
    "set_field",
    "load",
    "move",
    "push",
    "pop",
    "set_queue",
    "pop_queue",
    "dec_ttl",
    "dec_mpls_ttl",
    "dec_nsh_ttl",
    "set_mpls_label",
    "set_mpls_tc",
    "set_mpls_ttl",
    "set_tunnel",
    "set_tunnel64",
    "resubmit",
    "goto_table",
    "write_metadata",
    "write_actions",
    "clear_actions",
    "meter",
    "group",
    "ct",
    "ct_clear",
    "learn",
    "note",
    "multipath",
    "bundle",
    "bundle_load",
    "fin_timeout",
    "sample",
    "exit",
    "conjunction",
    "clone",
    "check_pkt_larger",
    "encap",
    "decap",
    "output_trunc",
    "delete_field",
    "set_nsh_ttl",
];

fn known_field(name: &str) -> bool {
    let numbered = |prefix: &str, max: u32| name.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n <= max);
    FIELDS.contains(&name)
        || numbered("reg", 15)
        || numbered("xreg", 7)
        || numbered("xxreg", 3)
        || numbered("tun_metadata", 63)
        || name.starts_with("nsh_")
        || name.starts_with("NXM_")
        || name.starts_with("OXM_")
}

/// Splits at commas outside parentheses and brackets.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth: i32 = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced `{c}` in `{s}`"));
                }
            }
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in `{s}`"));
    }
    out.push(s[start..].trim());
    Ok(out)
}

fn port_name(p: &str) -> Option<String> {
    let p = p.trim();
    if p.is_empty() || p.parse::<u32>().is_ok() || p.starts_with("0x") || RESERVED_PORTS.contains(&p.to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(p.to_string())
}

/// Parses a flow written in one string: `[table=N,][priority=N,]MATCH...,actions=ACTIONS`.
pub fn parse(text: &str) -> Result<Flow, String> {
    let text = text.trim();
    let Some(at) = find_actions(text) else {
        return Err(format!("flow `{text}` has no `actions=` (write e.g. `in_port=p1,actions=drop`)"));
    };
    let head = text[..at].trim().trim_end_matches([',', ' ']);
    let actions = text[at..].trim_start_matches("actions").trim_start().trim_start_matches('=').trim();
    parse_parts(head, actions, None, None)
}

/// Where `actions=` starts at the top level (it must come last).
fn find_actions(text: &str) -> Option<usize> {
    let mut depth = 0;
    let b = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            'a' if depth == 0 && text[i..].starts_with("actions") => {
                let before_ok = i == 0 || matches!(b[i - 1], b',' | b' ' | b'\t');
                let rest = text[i + "actions".len()..].trim_start();
                if before_ok && rest.starts_with('=') {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Checks a flow given as its parts; `table`/`priority` from separate fields win over none.
pub fn parse_parts(matches: &str, actions: &str, table: Option<u32>, priority: Option<u32>) -> Result<Flow, String> {
    let mut flow = Flow { table: 0, priority: DEFAULT_PRIORITY, matches: String::new(), actions: String::new(), ports: Vec::new() };
    let mut table = table;
    let mut priority = priority;
    let mut kept: Vec<String> = Vec::new();
    let items = split_top(matches)?;
    for item in items.into_iter().flat_map(|i| i.split_whitespace()) {
        if item.is_empty() {
            continue;
        }
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => match item.split_once(':') {
                // `in_port:1` is accepted by ovs-ofctl as well.
                Some((k, v)) if known_field(k.trim()) => (k.trim(), Some(v.trim())),
                _ => (item, None),
            },
        };
        match (key, value) {
            ("table", Some(v)) => {
                let t: u32 = v.parse().map_err(|_| format!("table `{v}` is not a number"))?;
                if table.is_some() {
                    return Err("the table is given twice".into());
                }
                table = Some(t);
            }
            ("priority", Some(v)) => {
                let p: u32 = v.parse().map_err(|_| format!("priority `{v}` is not a number"))?;
                if priority.is_some() {
                    return Err("the priority is given twice".into());
                }
                priority = Some(p);
            }
            ("cookie", _) => return Err("flows must not set a cookie: vnet marks the lab's flows with its own".into()),
            ("actions", _) => return Err("`actions=` must come last".into()),
            (k, Some(v)) if SETTINGS.contains(&k) => {
                v.parse::<u32>().map_err(|_| format!("{k} `{v}` is not a number"))?;
                kept.push(format!("{k}={v}"));
            }
            (k, Some(v)) if known_field(k) => {
                if v.is_empty() {
                    return Err(format!("match field `{k}` has no value"));
                }
                if k == "in_port" {
                    flow.ports.extend(port_name(v));
                }
                kept.push(format!("{k}={v}"));
            }
            (k, None) if KEYWORDS.contains(&k) => kept.push(k.to_string()),
            (k, _) => {
                let hint = closest_name(k, FIELDS.iter().chain(KEYWORDS).copied());
                return Err(match hint {
                    Some(h) => format!("unknown match field `{k}` (did you mean `{h}`?)"),
                    None => format!("unknown match field `{k}`"),
                });
            }
        }
    }
    if let Some(t) = table {
        if t > MAX_TABLE {
            return Err(format!("table {t} is out of range (0..={MAX_TABLE})"));
        }
        flow.table = t as u8;
    }
    if let Some(p) = priority {
        if p > u32::from(u16::MAX) {
            return Err(format!("priority {p} is out of range (0..=65535)"));
        }
        flow.priority = p as u16;
    }
    flow.matches = kept.join(",");
    flow.actions = check_actions(actions, &mut flow.ports)?;
    flow.ports.sort();
    flow.ports.dedup();
    Ok(flow)
}

fn check_actions(actions: &str, ports: &mut Vec<String>) -> Result<String, String> {
    let actions = actions.trim();
    if actions.is_empty() {
        return Err("the flow has no actions (write `actions=drop` to drop)".into());
    }
    let list = split_top(actions)?;
    if list.iter().any(|a| a.is_empty()) {
        return Err(format!("empty action in `{actions}`"));
    }
    if list.len() > 1 && list.iter().any(|a| a.eq_ignore_ascii_case("drop")) {
        return Err("`drop` must be the only action".into());
    }
    for a in &list {
        let name_end = a.find([':', '(', '=']).unwrap_or(a.len());
        let name = a[..name_end].trim();
        let arg = a[name_end..].trim();
        let lower = name.to_ascii_lowercase();
        if ACTIONS.contains(&lower.as_str()) {
            match lower.as_str() {
                "output" | "enqueue" | "resubmit" => {
                    if let Some(rest) = arg.strip_prefix(':') {
                        // output:PORT, enqueue:PORT:QUEUE, resubmit:PORT
                        let port = rest.split(':').next().unwrap_or("");
                        if lower == "output" && port.is_empty() {
                            return Err("`output:` needs a port".into());
                        }
                        if !port.contains('[') {
                            ports.extend(port_name(port));
                        }
                    } else if let Some(inner) = arg.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
                        // output(port=P,max_len=N), enqueue(P,Q), resubmit(P,T)
                        let args: Vec<&str> = inner.split(',').map(str::trim).collect();
                        let port = args.iter().find_map(|a| a.strip_prefix("port=")).or_else(|| args.first().copied().filter(|a| !a.contains('=')));
                        if let Some(p) = port.filter(|p| !p.contains('[')) {
                            ports.extend(port_name(p));
                        }
                    } else if lower == "output" && arg.is_empty() {
                        return Err("`output` needs a port: `output:PORT`".into());
                    }
                }
                _ => {}
            }
            continue;
        }
        if !arg.is_empty() {
            let hint = closest_name(&lower, ACTIONS.iter().copied());
            return Err(match hint {
                Some(h) => format!("unknown action `{name}` (did you mean `{h}`?)"),
                None => format!("unknown action `{name}`"),
            });
        }
        // A bare word is a port to output to (ovs-ofctl reads `actions=2` or `actions=p2`).
        ports.extend(port_name(name));
    }
    Ok(list.join(","))
}

fn closest_name<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    crate::model::decode::closest(wrong, names)
}

/// A stable 32-bit hash of a flow's line (FNV-1a), the low half of its cookie.
pub fn flow_hash(line: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in line.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_and_common_flows_parse() {
        let f = parse("in_port=1,actions=drop").unwrap();
        assert_eq!((f.table, f.priority), (0, DEFAULT_PRIORITY));
        assert_eq!(f.line(), "table=0,priority=32768,in_port=1,actions=drop");
        assert!(f.ports.is_empty());

        let f = parse("table=1, priority=100, ip,nw_dst=10.0.0.2 actions=output:p2,mod_dl_src:02:00:00:00:00:01").unwrap();
        assert_eq!((f.table, f.priority), (1, 100));
        assert_eq!(f.matches, "ip,nw_dst=10.0.0.2");
        assert_eq!(f.actions, "output:p2,mod_dl_src:02:00:00:00:00:01");
        assert_eq!(f.ports, vec!["p2"]);

        let f = parse("priority=10,in_port=p1,tcp,tp_dst=80,actions=p3,NORMAL,controller(max_len=64)").unwrap();
        assert_eq!(f.ports, vec!["p1", "p3"]);
        let f = parse("arp,actions=FLOOD").unwrap();
        assert!(f.ports.is_empty());
        let f = parse("reg0=5,tun_metadata3=1,actions=resubmit(,2),ct(commit,zone=1,exec(load:1->NXM_NX_CT_MARK[])),output(port=p4,max_len=100)").unwrap();
        assert_eq!(f.ports, vec!["p4"]);
        let f = parse("in_port=LOCAL,actions=in_port").unwrap();
        assert!(f.ports.is_empty(), "reserved ports are not port names: {:?}", f.ports);
        let f = parse("dl_vlan=10,actions=strip_vlan,enqueue:p2:1").unwrap();
        assert_eq!(f.ports, vec!["p2"]);
    }

    #[test]
    fn parts_form_gives_table_and_priority_separately() {
        let f = parse_parts("ip,nw_src=10.0.0.1", "drop", Some(3), Some(200)).unwrap();
        assert_eq!(f.line(), "table=3,priority=200,ip,nw_src=10.0.0.1,actions=drop");
        assert_eq!(parse_parts("", "normal", None, None).unwrap().line(), "table=0,priority=32768,actions=normal");
        assert!(parse_parts("table=1", "drop", Some(3), None).unwrap_err().contains("twice"));
    }

    #[test]
    fn bad_flows_say_why() {
        let e = |t: &str| parse(t).unwrap_err();
        assert!(e("in_port=1").contains("no `actions=`"));
        assert!(e("priority=70000,actions=drop").contains("priority 70000 is out of range"));
        assert!(e("table=255,actions=drop").contains("table 255 is out of range"));
        assert!(e("table=x,actions=drop").contains("not a number"));
        assert!(e("in_prot=1,actions=drop").contains("unknown match field `in_prot` (did you mean `in_port`?)"));
        assert!(e("cookie=0x5,actions=drop").contains("cookie"));
        assert!(e("in_port=1,actions=drop,output:2").contains("`drop` must be the only action"));
        assert!(e("in_port=1,actions=").contains("no actions"));
        assert!(e("actions=outptu:2").contains("unknown action `outptu` (did you mean `output`?)"));
        assert!(e("actions=output:").contains("needs a port"));
        assert!(e("actions=ct(commit").contains("unbalanced"));
        assert!(e("in_port=,actions=drop").contains("has no value"));
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(flow_hash(""), 0x811c_9dc5);
        assert_ne!(flow_hash("a"), flow_hash("b"));
        assert_eq!(flow_hash("table=0,priority=1,actions=drop"), flow_hash("table=0,priority=1,actions=drop"));
    }
}
