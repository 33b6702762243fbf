//! Traffic control of a device, checked: delays in nanoseconds, probabilities as fractions,
//! rates in bytes per second. Shared by the topology file and `vnet impair`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::check_dev;
use super::spec::{TcSpec, Text};
use super::units::{format_duration, format_percent, format_rate, parse_duration_ns, parse_percent, parse_rate_bytes, parse_size};
use crate::model::lab::Node;
use crate::model::source::Path;
use crate::model::validate::Ctx;

/// What a device's root qdisc should do. Probabilities are fractions (0.01 = 1%).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<f64>,
    /// Bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// Queue length in packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// tbf bucket in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl Impairment {
    /// Whether netem is needed (anything beyond a plain rate limit).
    pub fn needs_netem(&self) -> bool {
        self.delay_ns.is_some()
            || self.jitter_ns.is_some()
            || self.loss.is_some()
            || self.duplicate.is_some()
            || self.reorder.is_some()
            || self.corrupt.is_some()
    }

    /// tbf bucket: as given, else 10 ms worth of `rate`, at least four full-size frames.
    pub fn tbf_burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| (self.rate.unwrap_or(0) / 100).clamp(4 * 1514, u32::MAX as u64 / 2) as u32)
    }

    /// tbf queue in bytes: `limit` packets of 1514 bytes, else the bucket plus 50 ms of `rate`.
    pub fn tbf_limit(&self) -> u32 {
        match self.limit {
            Some(p) => (p as u64 * 1514).min(u32::MAX as u64) as u32,
            None => (self.tbf_burst() as u64 + self.rate.unwrap_or(0) / 20).min(u32::MAX as u64) as u32,
        }
    }

    /// The qdisc kind that carries this impairment.
    pub fn qdisc_kind(&self) -> &'static str {
        if self.needs_netem() {
            "netem"
        } else {
            "tbf"
        }
    }

    /// Parses and checks a spec; errors are (field, message).
    pub fn from_spec(s: &TcSpec) -> Result<Impairment, Vec<(&'static str, String)>> {
        let mut errs = Vec::new();
        let mut dur = |f: &'static str, v: &Option<Text>| v.as_ref().and_then(|x| parse_duration_ns(&x.as_text()).map_err(|e| errs.push((f, e))).ok());
        let delay_ns = dur("delay", &s.delay);
        let jitter_ns = dur("jitter", &s.jitter);
        let mut pct = |f: &'static str, v: &Option<Text>| v.as_ref().and_then(|x| parse_percent(&x.as_text()).map_err(|e| errs.push((f, e))).ok());
        let loss = pct("loss", &s.loss);
        let duplicate = pct("duplicate", &s.duplicate);
        let reorder = pct("reorder", &s.reorder);
        let corrupt = pct("corrupt", &s.corrupt);
        let rate = s.rate.as_ref().and_then(|x| parse_rate_bytes(&x.as_text()).map_err(|e| errs.push(("rate", e))).ok());
        let burst = s.burst.as_ref().and_then(|x| parse_size(&x.as_text()).map_err(|e| errs.push(("burst", e))).ok()).map(|b| b as u32);
        let i = Impairment { delay_ns, jitter_ns, loss, duplicate, reorder, corrupt, rate, limit: s.limit, burst };
        for (f, v) in [("delay", i.delay_ns), ("jitter", i.jitter_ns)] {
            if v.unwrap_or(0) > 60_000_000_000 {
                errs.push((f, format!("{f} {} is over 60s", format_duration(v.unwrap_or(0)))));
            }
        }
        if s.jitter.is_some() && s.delay.is_none() {
            errs.push(("jitter", "`jitter` varies the delay: it needs `delay`".into()));
        }
        if let (Some(j), Some(d)) = (i.jitter_ns, i.delay_ns) {
            if j > d {
                errs.push((
                    "jitter",
                    format!("jitter {} is larger than the delay {}: packets would need negative delays", format_duration(j), format_duration(d)),
                ));
            }
        }
        if s.reorder.is_some() && s.delay.is_none() {
            errs.push(("reorder", "`reorder` sends some packets at once while the others wait `delay`: it needs `delay`".into()));
        }
        if s.burst.is_some() && (i.needs_netem() || s.rate.is_none()) {
            errs.push(("burst", "`burst` is the bucket of a plain rate limit (tbf): it needs `rate` and no netem impairment".into()));
        }
        if s.limit == Some(0) {
            errs.push(("limit", "a queue limit of 0 packets drops everything".into()));
        }
        if s == &TcSpec::default() {
            errs.push(("", "empty traffic control: give at least one of delay, loss, duplicate, reorder, corrupt, rate".into()));
        }
        if errs.is_empty() {
            Ok(i)
        } else {
            Err(errs)
        }
    }

    /// Parses `vnet impair` words: `delay 20ms jitter 5ms loss 1% rate 10mbit ...`.
    pub fn from_words(words: &[String]) -> Result<Impairment, String> {
        if words.is_empty() {
            return Err("nothing to impair: give settings such as `delay 20ms loss 1% rate 10mbit`, or `--clear`".into());
        }
        let mut spec = TcSpec::default();
        let mut it = words.iter();
        while let Some(k) = it.next() {
            let v = it.next().ok_or_else(|| format!("`{k}` needs a value"))?.clone();
            match k.as_str() {
                "delay" => spec.delay = Some(Text::Str(v)),
                "jitter" => spec.jitter = Some(Text::Str(v)),
                "loss" => spec.loss = Some(Text::Str(v)),
                "duplicate" => spec.duplicate = Some(Text::Str(v)),
                "reorder" => spec.reorder = Some(Text::Str(v)),
                "corrupt" => spec.corrupt = Some(Text::Str(v)),
                "rate" => spec.rate = Some(Text::Str(v)),
                "burst" => spec.burst = Some(Text::Str(v)),
                "limit" => spec.limit = Some(v.parse().map_err(|_| format!("limit `{v}` is not a number of packets"))?),
                other => return Err(format!("unknown setting `{other}`; use delay, jitter, loss, duplicate, reorder, corrupt, rate, burst, limit")),
            }
        }
        Impairment::from_spec(&spec).map_err(|e| e.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "))
    }

    /// The file form (for `vnet impair`, which edits the lab's recorded topology).
    pub fn to_spec(&self) -> TcSpec {
        TcSpec {
            delay: self.delay_ns.map(format_duration).map(Text::Str),
            jitter: self.jitter_ns.map(format_duration).map(Text::Str),
            loss: self.loss.map(format_percent).map(Text::Str),
            duplicate: self.duplicate.map(format_percent).map(Text::Str),
            reorder: self.reorder.map(format_percent).map(Text::Str),
            corrupt: self.corrupt.map(format_percent).map(Text::Str),
            rate: self.rate.map(format_rate).map(Text::Str),
            limit: self.limit,
            burst: self.burst.map(|b| Text::Str(format!("{b}b"))),
        }
    }
}

impl std::fmt::Display for Impairment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![self.qdisc_kind().to_string()];
        if let Some(d) = self.delay_ns {
            parts.push(format!("delay {}", format_duration(d)));
        }
        if let Some(j) = self.jitter_ns {
            parts.push(format!("jitter {}", format_duration(j)));
        }
        for (n, v) in [("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder), ("corrupt", self.corrupt)] {
            if let Some(v) = v {
                parts.push(format!("{n} {}", format_percent(v)));
            }
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate {}", format_rate(r)));
        }
        if let Some(l) = self.limit {
            parts.push(format!("limit {l}"));
        }
        if let Some(b) = self.burst {
            parts.push(format!("burst {b}b"));
        }
        f.write_str(&parts.join(" "))
    }
}

pub(crate) fn check_map(ctx: &mut Ctx, nname: &str, map: &IndexMap<String, TcSpec>, node: &Node, base: &Path) -> IndexMap<String, Impairment> {
    let mut out = IndexMap::new();
    for (dev, spec) in map {
        let p = ctx.sub(base, dev);
        if !node.interfaces.contains_key(dev) {
            if ctx.failed_iface(nname, dev) {
                continue;
            }
            ctx.error_at_key(&p, format!("unknown device `{dev}` in node `{nname}`"), format!("no device `{dev}` in node `{nname}`"));
            let _ = check_dev; // same wording as other device references
            continue;
        }
        if dev == "lo" {
            ctx.error_at_key(&p, "traffic control on `lo` is not supported: impair the devices between nodes", "loopback");
            continue;
        }
        match Impairment::from_spec(spec) {
            Ok(i) => {
                out.insert(dev.clone(), i);
            }
            Err(errs) => {
                for (field, msg) in errs {
                    let fp = if field.is_empty() { p.clone() } else { ctx.sub(&p, field) };
                    ctx.error_at(&fp, format!("traffic control of `{nname}:{dev}`: {msg}"), "invalid");
                }
            }
        }
    }
    out
}
