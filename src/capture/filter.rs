//! The capture filter: a small expression language in tcpdump's spirit, evaluated in vnet on
//! each decoded frame (no BPF program is loaded into the kernel).
//!
//! ```text
//! expr   := term ( ("or" | "||") term )*
//! term   := factor ( ["and" | "&&"] factor )*       adjacent factors mean "and": `tcp port 80`
//! factor := ("not" | "!") factor | "(" expr ")" | prim
//! prim   := [src | dst] host ADDR                     IPv4 or IPv6 (ARP sender/target too)
//!         | [src | dst] net PREFIX                    e.g. 10.1.0.0/24
//!         | [src | dst] port N                        TCP or UDP
//!         | icmp | icmp6 | tcp | udp | arp | ip | ip6
//!         | proto N                                   IP protocol number
//!         | vlan [N]                                  802.1Q tagged (with id N)
//! ```
//! Examples: `icmp`, `host 10.0.0.2 and not arp`, `tcp port 8080`, `src net 10.1.0.0/24 or icmp6`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::decode::Decoded;

/// Which address or port a primitive looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    Either,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Host(Dir, IpAddr),
    Net(Dir, IpNet),
    Port(Dir, u16),
    /// Ethertype (ARP, IPv4, IPv6).
    Ether(u16),
    /// IP protocol number (ICMP 1 is IPv4-only, ICMPv6 58 IPv6-only).
    Proto(u8),
    Vlan(Option<u16>),
}

/// A filter that does not parse, with the position (in words) where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad filter: {}", self.message)
    }
}

impl std::error::Error for FilterError {}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c == '(' || c == ')' || c == '!' || c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // `&&` and `||` arrive as words.
    out
}

struct Parser {
    t: Vec<String>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError { message: msg.into() })
    }

    fn expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.term()?;
        while matches!(self.peek(), Some("or") | Some("||")) {
            self.next();
            let right = self.term()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.factor()?;
        loop {
            match self.peek() {
                Some("and") | Some("&&") => {
                    self.next();
                }
                None | Some("or") | Some("||") | Some(")") => break,
                Some(_) => {} // adjacent: and
            }
            let right = self.factor()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Filter, FilterError> {
        match self.peek() {
            Some("not") | Some("!") => {
                self.next();
                Ok(Filter::Not(Box::new(self.factor()?)))
            }
            Some("(") => {
                self.next();
                let e = self.expr()?;
                if self.next().as_deref() != Some(")") {
                    return self.err("missing `)`");
                }
                Ok(e)
            }
            Some(_) => self.prim(),
            None => self.err("expected a filter term at the end"),
        }
    }

    fn prim(&mut self) -> Result<Filter, FilterError> {
        let w = self.next().unwrap_or_default();
        let (dir, w) = match w.as_str() {
            "src" => (Dir::Src, self.next().unwrap_or_default()),
            "dst" => (Dir::Dst, self.next().unwrap_or_default()),
            _ => (Dir::Either, w),
        };
        let directional = dir != Dir::Either;
        let value = |p: &mut Parser, what: &str| -> Result<String, FilterError> {
            match p.next() {
                Some(v) if v != ")" && v != "(" => Ok(v),
                _ => p.err(format!("`{what}` needs a value")),
            }
        };
        Ok(match w.as_str() {
            "host" => {
                let v = value(self, "host")?;
                Filter::Host(dir, v.parse().map_err(|_| FilterError { message: format!("`{v}` is not an IP address (after `host`)") })?)
            }
            "net" => {
                let v = value(self, "net")?;
                let n: IpNet = v.parse().map_err(|_| FilterError { message: format!("`{v}` is not a prefix like 10.0.0.0/24 (after `net`)") })?;
                Filter::Net(dir, n.trunc())
            }
            "port" => {
                let v = value(self, "port")?;
                Filter::Port(dir, v.parse().map_err(|_| FilterError { message: format!("`{v}` is not a port number") })?)
            }
            _ if directional => return self.err(format!("`{}` must be followed by host, net or port, not `{w}`", if dir == Dir::Src { "src" } else { "dst" })),
            "icmp" => Filter::Proto(1),
            "icmp6" => Filter::Proto(58),
            "tcp" => Filter::Proto(6),
            "udp" => Filter::Proto(17),
            "arp" => Filter::Ether(0x0806),
            "ip" => Filter::Ether(0x0800),
            "ip6" => Filter::Ether(0x86dd),
            "proto" => {
                let v = value(self, "proto")?;
                Filter::Proto(v.parse().map_err(|_| FilterError { message: format!("`{v}` is not a protocol number") })?)
            }
            "vlan" => match self.peek().and_then(|v| v.parse::<u16>().ok()) {
                Some(id) => {
                    self.next();
                    Filter::Vlan(Some(id))
                }
                None => Filter::Vlan(None),
            },
            "" => return self.err("expected a filter term"),
            other => {
                return self
                    .err(format!("unknown word `{other}` (terms: host, net, port, src, dst, icmp, icmp6, tcp, udp, arp, ip, ip6, proto, vlan, and, or, not)"))
            }
        })
    }
}

impl Filter {
    /// Parses a filter expression.
    pub fn parse(s: &str) -> Result<Filter, FilterError> {
        let mut p = Parser { t: tokens(s), i: 0 };
        if p.t.is_empty() {
            return p.err("the filter is empty");
        }
        let e = p.expr()?;
        if let Some(t) = p.peek() {
            return p.err(format!("unexpected `{t}`"));
        }
        Ok(e)
    }

    /// Whether a decoded frame matches.
    pub fn matches(&self, d: &Decoded) -> bool {
        let pick = |dir: Dir, f: &dyn Fn(&IpAddr) -> bool| match dir {
            Dir::Src => d.src.as_ref().is_some_and(f),
            Dir::Dst => d.dst.as_ref().is_some_and(f),
            Dir::Either => d.src.as_ref().is_some_and(f) || d.dst.as_ref().is_some_and(f),
        };
        match self {
            Filter::And(a, b) => a.matches(d) && b.matches(d),
            Filter::Or(a, b) => a.matches(d) || b.matches(d),
            Filter::Not(a) => !a.matches(d),
            Filter::Host(dir, a) => pick(*dir, &|x| x == a),
            Filter::Net(dir, n) => pick(*dir, &|x| n.contains(x)),
            Filter::Port(dir, p) => match dir {
                Dir::Src => d.sport == Some(*p),
                Dir::Dst => d.dport == Some(*p),
                Dir::Either => d.sport == Some(*p) || d.dport == Some(*p),
            },
            Filter::Ether(t) => d.ethertype == *t,
            Filter::Proto(p) => d.proto == Some(*p) && matches!(d.ethertype, 0x0800 | 0x86dd),
            Filter::Vlan(id) => match id {
                Some(i) => d.vlan == Some(*i),
                None => d.vlan.is_some(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::{decode, tests::icmp_frame, tests::tcp_frame};
    use super::*;

    #[test]
    fn parses_precedence_and_implicit_and() {
        let f = Filter::parse("tcp port 80 or icmp and not host 10.0.0.9").unwrap();
        assert_eq!(
            f,
            Filter::Or(
                Box::new(Filter::And(Box::new(Filter::Proto(6)), Box::new(Filter::Port(Dir::Either, 80)))),
                Box::new(Filter::And(Box::new(Filter::Proto(1)), Box::new(Filter::Not(Box::new(Filter::Host(Dir::Either, "10.0.0.9".parse().unwrap()))))))
            )
        );
        assert_eq!(Filter::parse("!(arp || ip6)").unwrap(), Filter::Not(Box::new(Filter::Or(Box::new(Filter::Ether(0x806)), Box::new(Filter::Ether(0x86dd))))));
    }

    #[test]
    fn matches_decoded_frames() {
        let icmp = decode(1, &icmp_frame([10, 0, 0, 1], [10, 0, 0, 2]));
        let tcp = decode(1, &tcp_frame([10, 0, 0, 1], [10, 1, 0, 2], 40000, 80));
        let m = |f: &str, d: &Decoded| Filter::parse(f).unwrap().matches(d);
        assert!(m("icmp", &icmp) && !m("icmp", &tcp));
        assert!(m("tcp port 80", &tcp) && m("dst port 80", &tcp) && !m("src port 80", &tcp));
        assert!(m("src host 10.0.0.1", &icmp) && !m("dst host 10.0.0.1", &icmp));
        assert!(m("net 10.1.0.0/16", &tcp) && !m("net 10.1.0.0/16", &icmp));
        assert!(m("ip and not arp", &icmp) && !m("ip6", &icmp) && !m("icmp6", &icmp));
        assert!(m("(udp or tcp) and dst net 10.1.0.0/24", &tcp));
        assert!(!m("vlan", &icmp));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |f: &str| Filter::parse(f).unwrap_err().to_string();
        assert_eq!(e("host"), "bad filter: `host` needs a value");
        assert_eq!(e("host 10.0.0.300"), "bad filter: `10.0.0.300` is not an IP address (after `host`)");
        assert_eq!(e("src icmp"), "bad filter: `src` must be followed by host, net or port, not `icmp`");
        assert!(e("tcp prt 80").starts_with("bad filter: unknown word `prt`"));
        assert_eq!(e("(icmp"), "bad filter: missing `)`");
        assert_eq!(e("icmp )"), "bad filter: unexpected `)`");
        assert_eq!(e(""), "bad filter: the filter is empty");
        assert_eq!(e("icmp and"), "bad filter: expected a filter term at the end");
    }
}
