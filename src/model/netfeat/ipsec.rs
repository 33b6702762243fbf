//! IPsec connections between two nodes, checked: ends, addresses, subnets, algorithms, key
//! lengths, SPIs and reqids. Keys the file does not give are generated per lab at `up` (and
//! kept in the lab record), so the file never has to hold secrets.

use std::collections::HashMap;
use std::net::IpAddr;

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Serialize;

use super::spec::{IpsecMode, IpsecSpec, SpiValue, Text};
use crate::model::file::Topology;
use crate::model::lab::{Node, HOST};
use crate::model::source::{Path, Seg};
use crate::model::validate::Ctx;

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TunnelEnd {
    pub node: String,
    pub address: IpAddr,
    /// The traffic this end protects: its subnet (tunnel) or its address (transport).
    pub subnet: IpNet,
}

/// Where a key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// Hex bytes from the file.
    Given(#[serde(skip)] Vec<u8>),
    /// Generated per lab (the lab record keeps it under `name`): this many bytes.
    Generated { name: String, bytes: usize },
}

/// The ESP transform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Crypto {
    Aead { algo: String, key: KeySource, icv_bits: u32 },
    EncAuth { enc: String, enc_key: KeySource, auth: String, auth_key: KeySource, trunc_bits: u32 },
}

/// A checked connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    pub name: String,
    pub mode: IpsecMode,
    pub ends: [TunnelEnd; 2],
    pub crypto: Crypto,
    /// SPI of first→second, second→first.
    pub spi: [u32; 2],
    pub reqid: u32,
}

/// Key lengths vnet knows (bytes), for checking given keys and generating missing ones.
fn key_bytes(algo: &str) -> Option<&'static [usize]> {
    Some(match algo {
        "rfc4106(gcm(aes))" => &[36, 28, 20],
        "rfc4309(ccm(aes))" => &[35, 27, 19],
        "rfc7539esp(chacha20,poly1305)" => &[36],
        "cbc(aes)" | "ctr(aes)" => &[32, 24, 16],
        "cbc(des3_ede)" => &[24],
        "hmac(sha1)" => &[20],
        "hmac(sha256)" => &[32],
        "hmac(sha384)" => &[48],
        "hmac(sha512)" => &[64],
        "hmac(md5)" => &[16],
        _ => return None,
    })
}

fn is_aead(algo: &str) -> bool {
    algo.starts_with("rfc4106") || algo.starts_with("rfc4309") || algo.starts_with("rfc7539esp")
}

/// Parses `0x0102...` (or plain hex).
pub fn parse_hex(raw: &str) -> Result<Vec<u8>, String> {
    let s = raw.trim();
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if s.is_empty() || s.len() % 2 != 0 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("a key is an even number of hex digits, e.g. `0x0123...`".into());
    }
    Ok((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect())
}

pub(crate) fn check(ctx: &mut Ctx, topo: &Topology, nodes: &IndexMap<String, Node>) -> Vec<Tunnel> {
    let mut out = Vec::new();
    let mut names: HashMap<String, Path> = HashMap::new();
    let mut spis: HashMap<(IpAddr, u32), Path> = HashMap::new();
    for (i, t) in topo.ipsec.iter().enumerate() {
        let p: Path = vec![Seg::Key("ipsec".into()), Seg::Index(i)];
        if let Some(t) = check_one(ctx, topo, nodes, i, t, &p) {
            if let Some(prev) = names.get(&t.name) {
                let (s, ps) = (ctx.span(&p), ctx.span(prev));
                ctx.push(crate::model::Diag::error(format!("two IPsec connections are named `{}`", t.name)).maybe_label(s, "second").maybe_label(ps, "first"));
                continue;
            }
            names.insert(t.name.clone(), p.clone());
            let mut dup = false;
            for (k, dst) in [(0, t.ends[1].address), (1, t.ends[0].address)] {
                if let Some(prev) = spis.get(&(dst, t.spi[k])) {
                    let (s, ps) = (ctx.span(&ctx.sub(&p, "spi")).or(ctx.span(&p)), ctx.span(prev));
                    ctx.push(
                        crate::model::Diag::error(format!("SPI {:#x} towards {dst} is used by two IPsec connections", t.spi[k]))
                            .maybe_label(s, "used again")
                            .maybe_label(ps, "first used"),
                    );
                    dup = true;
                }
                spis.insert((dst, t.spi[k]), p.clone());
            }
            if !dup {
                out.push(t);
            }
        }
    }
    out
}

fn check_one(ctx: &mut Ctx, topo: &Topology, nodes: &IndexMap<String, Node>, i: usize, t: &IpsecSpec, p: &Path) -> Option<Tunnel> {
    let name = t.name.clone().unwrap_or_else(|| format!("ipsec{i}"));
    if name.is_empty() || name.len() > 32 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        ctx.error_at(&ctx.sub(p, "name"), format!("IPsec connection name `{name}` may hold only letters, digits, `-`, `_` (at most 32)"), "invalid name");
        return None;
    }
    let mode = t.mode.unwrap_or(IpsecMode::Tunnel);
    let ep = ctx.sub(p, "ends");
    if t.ends.len() != 2 {
        ctx.error_at(&ep, format!("an IPsec connection has exactly two ends, got {}", t.ends.len()), "expected two ends");
        return None;
    }
    let mut ends = Vec::new();
    for (k, e) in t.ends.iter().enumerate() {
        let q = ctx.idx(&ep, k);
        let Some(node) = nodes.get(&e.node) else {
            if ctx.failed_node(&e.node) {
                return None;
            }
            ctx.error_at(&ctx.sub(&q, "node"), format!("unknown node `{}` in IPsec connection `{name}`", e.node), format!("no node named `{}`", e.node));
            return None;
        };
        if e.node == HOST && !topo.isolated_host {
            ctx.error_at(
                &ctx.sub(&q, "node"),
                "IPsec ends must be nodes with their own namespace; the real root namespace's xfrm tables are not the lab's (set `isolated_host: true`)",
                "real root namespace",
            );
            return None;
        }
        let address: IpAddr = match e.address.trim().parse() {
            Ok(a) => a,
            Err(_) => {
                ctx.error_at(&ctx.sub(&q, "address"), format!("`{}` is not an IP address", e.address), "bad address");
                return None;
            }
        };
        if !node.interfaces.values().any(|i| i.addresses.iter().any(|a| a.addr() == address)) {
            ctx.error_at(&ctx.sub(&q, "address"), format!("{address} is not an address of node `{}`", e.node), "not the node's address");
            return None;
        }
        let host = IpNet::from(address);
        let subnet = match (&e.subnet, mode) {
            (None, _) => host,
            (Some(s), IpsecMode::Transport) => {
                ctx.error_at(
                    &ctx.sub(&q, "subnet"),
                    format!("transport mode protects the ends' own traffic; `subnet: {s}` needs `mode: tunnel`"),
                    "transport mode",
                );
                return None;
            }
            (Some(s), IpsecMode::Tunnel) => match s.trim().parse::<IpNet>() {
                Ok(n) if n.trunc() == n => n,
                Ok(n) => {
                    ctx.error_at(&ctx.sub(&q, "subnet"), format!("`{s}` has host bits set; did you mean `{}`?", n.trunc()), "host bits set");
                    return None;
                }
                Err(_) => {
                    ctx.error_at(&ctx.sub(&q, "subnet"), format!("`{s}` is not a prefix"), "bad prefix");
                    return None;
                }
            },
        };
        if subnet.addr().is_ipv4() != address.is_ipv4() {
            ctx.error_at(&ctx.sub(&q, "subnet"), "subnet and address of an end must be of one IP family", "family mismatch");
            return None;
        }
        ends.push(TunnelEnd { node: e.node.clone(), address, subnet });
    }
    if ends[0].node == ends[1].node {
        ctx.error_at(&ep, format!("both ends of IPsec connection `{name}` are node `{}`", ends[0].node), "same node");
        return None;
    }
    if ends[0].address.is_ipv4() != ends[1].address.is_ipv4() {
        ctx.error_at(&ep, "the two ends' addresses are of different IP families", "family mismatch");
        return None;
    }
    let crypto = check_crypto(ctx, t, p, &name)?;
    let spi = match &t.spi {
        None => [0x1000 + 2 * i as u32, 0x1001 + 2 * i as u32],
        Some(list) => {
            let sp = ctx.sub(p, "spi");
            if list.len() != 2 {
                ctx.error_at(&sp, "`spi` lists two SPIs: first→second and second→first", "expected two SPIs");
                return None;
            }
            let mut v = [0u32; 2];
            for (k, s) in list.iter().enumerate() {
                let n = match s {
                    SpiValue::Num(n) => Some(*n),
                    SpiValue::Str(x) => {
                        let x = x.trim();
                        match x.strip_prefix("0x").or_else(|| x.strip_prefix("0X")) {
                            Some(h) => u32::from_str_radix(h, 16).ok(),
                            None => x.parse().ok(),
                        }
                    }
                };
                match n {
                    Some(n) if n >= 256 => v[k] = n,
                    Some(n) => {
                        ctx.error_at(&ctx.idx(&sp, k), format!("SPI {n} is reserved (0-255); use 256 or more"), "reserved SPI");
                        return None;
                    }
                    None => {
                        ctx.error_at(&ctx.idx(&sp, k), "an SPI is a 32-bit number (decimal or `0x` hex)", "bad SPI");
                        return None;
                    }
                }
            }
            if v[0] == v[1] {
                ctx.error_at(&sp, "the two directions need different SPIs", "same SPI twice");
                return None;
            }
            v
        }
    };
    let reqid = t.reqid.unwrap_or(i as u32 + 1);
    Some(Tunnel { name, mode, ends: [ends[0].clone(), ends[1].clone()], crypto, spi, reqid })
}

fn key(ctx: &mut Ctx, algo: &str, raw: &Option<Text>, path: &Path, gen_name: String) -> Option<KeySource> {
    let lens = key_bytes(algo);
    if let Some(t) = raw {
        if t.is_number() {
            ctx.error_at(path, "a key is a quoted hex string (YAML reads an unquoted 0x... as a number): write `\"0x...\"`", "quote the key");
            return None;
        }
    }
    let raw = raw.as_ref().map(Text::as_text);
    match raw {
        Some(k) => match parse_hex(&k) {
            Err(e) => {
                ctx.error_at(path, format!("bad key for {algo}: {e}"), "bad key");
                None
            }
            Ok(bytes) => {
                if let Some(l) = lens {
                    if !l.contains(&bytes.len()) {
                        let want = l.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
                        ctx.error_at(path, format!("a {algo} key has {want} bytes; this one has {}", bytes.len()), "wrong length");
                        return None;
                    }
                }
                Some(KeySource::Given(bytes))
            }
        },
        None => match lens {
            Some(l) => Some(KeySource::Generated { name: gen_name, bytes: l[0] }),
            None => {
                ctx.error_at(path, format!("vnet cannot generate a key for `{algo}` (it does not know its length); give the key in hex"), "key needed");
                None
            }
        },
    }
}

fn check_crypto(ctx: &mut Ctx, t: &IpsecSpec, p: &Path, name: &str) -> Option<Crypto> {
    if t.enc.is_some() || t.auth.is_some() || t.enc_key.is_some() || t.auth_key.is_some() || t.auth_trunc.is_some() {
        if t.aead.is_some() || t.key.is_some() || t.icv.is_some() {
            ctx.error_at(p, "give either `aead` (with `key`, `icv`) or `enc` + `auth` (with their keys), not both", "both AEAD and enc/auth");
            return None;
        }
        let (Some(enc), Some(auth)) = (&t.enc, &t.auth) else {
            ctx.error_at(p, "encryption without AEAD needs both `enc` (e.g. `cbc(aes)`) and `auth` (e.g. `hmac(sha256)`)", "incomplete");
            return None;
        };
        if is_aead(enc) {
            ctx.error_at(&ctx.sub(p, "enc"), format!("`{enc}` is an AEAD algorithm: write `aead: {enc}`"), "AEAD algorithm");
            return None;
        }
        let enc_key = key(ctx, enc, &t.enc_key, &ctx.sub(p, if t.enc_key.is_some() { "enc_key" } else { "enc" }), format!("{name}/enc"))?;
        let auth_key = key(ctx, auth, &t.auth_key, &ctx.sub(p, if t.auth_key.is_some() { "auth_key" } else { "auth" }), format!("{name}/auth"))?;
        let full = key_bytes(auth).map(|l| l[0] as u32 * 8);
        let trunc = t.auth_trunc.or(full.map(|f| f / 2)).unwrap_or(96);
        if let Some(f) = full {
            if trunc > f || trunc < 32 || trunc % 8 != 0 {
                ctx.error_at(&ctx.sub(p, "auth_trunc"), format!("auth_trunc {trunc} is not a multiple of 8 between 32 and {f}"), "out of range");
                return None;
            }
        }
        return Some(Crypto::EncAuth { enc: enc.clone(), enc_key, auth: auth.clone(), auth_key, trunc_bits: trunc });
    }
    let algo = t.aead.clone().unwrap_or_else(|| "rfc4106(gcm(aes))".to_string());
    if !is_aead(&algo) {
        ctx.error_at(&ctx.sub(p, "aead"), format!("`{algo}` is not an AEAD algorithm; use e.g. `rfc4106(gcm(aes))`, or `enc` + `auth`"), "not AEAD");
        return None;
    }
    let icv = t.icv.unwrap_or(128);
    if ![64, 96, 128].contains(&icv) {
        ctx.error_at(&ctx.sub(p, "icv"), format!("ICV length {icv} is not 64, 96 or 128 bits"), "bad ICV length");
        return None;
    }
    let key = key(ctx, &algo, &t.key, &ctx.sub(p, if t.key.is_some() { "key" } else { "aead" }), format!("{name}/aead"))?;
    Some(Crypto::Aead { algo, key, icv_bits: icv })
}
