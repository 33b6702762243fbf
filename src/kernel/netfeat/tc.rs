//! Root qdiscs by hand: netem and tbf options are C structs (plus attributes) that the route
//! crate does not model, so they are encoded here byte for byte as iproute2's `tc` does (the
//! unit tests compare with requests captured from `tc`, in `tc_fixtures.txt`), and decoded
//! back from dumps into `QdiscParams`.

use crate::kernel::nl::KernelError;
use crate::model::netfeat::Impairment;
use crate::observed::netfeat::{ObservedQdisc, QdiscParams};

use super::rawnl::{self, attrs, get_u32, get_u64, put_attr, put_str, put_u32, RawNl, NLM_F_CREATE, NLM_F_REPLACE};

pub const RTM_NEWQDISC: u16 = 36;
pub const RTM_DELQDISC: u16 = 37;
pub const RTM_GETQDISC: u16 = 38;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
/// The root of a device's egress.
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// Handle of the root qdiscs vnet installs (`7654:`): how vnet recognises its own.
pub const VNET_HANDLE: u32 = crate::observed::netfeat::VNET_QDISC_HANDLE;

/// Ticks per microsecond of the packet scheduler clock (/proc/net/psched: 1000/64; the same on
/// every kernel since 2.6.29).
const TICKS_PER_USEC: f64 = 15.625;

/// struct tcmsg.
pub fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&[0u8; 4]); // family + padding
    b.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    b.extend_from_slice(&handle.to_ne_bytes());
    b.extend_from_slice(&parent.to_ne_bytes());
    b.extend_from_slice(&info.to_ne_bytes());
    b
}

/// A probability as the kernel wants it (fraction of u32::MAX, rounded like C's rint).
pub fn prob(f: f64) -> u32 {
    (f * u32::MAX as f64).round_ties_even() as u32
}

/// tc_core_time2tick: microseconds (an integer, as in tc) to scheduler ticks.
fn time2tick(us: u64) -> u32 {
    (us as f64 * TICKS_PER_USEC) as u32
}

/// tc_calc_xmittime: ticks to send `size` bytes at `rate` bytes/s (tc truncates to whole µs).
fn xmittime(rate: u32, size: u32) -> u32 {
    let us = (1_000_000.0 * size as f64 / rate as f64) as u32;
    time2tick(us as u64)
}

/// TCA_KIND + TCA_OPTIONS of the root qdisc for an impairment.
pub fn qdisc_attrs(imp: &Impairment) -> Vec<u8> {
    if imp.needs_netem() {
        netem_attrs(imp)
    } else {
        tbf_attrs(imp.rate.unwrap_or(0), imp.tbf_burst(), imp.tbf_limit())
    }
}

fn netem_attrs(imp: &Impairment) -> Vec<u8> {
    let mut o = Vec::new();
    let reorder = imp.reorder.map(prob).unwrap_or(0);
    // struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter (ticks / u32 probabilities).
    o.extend_from_slice(&time2tick(imp.delay_ns.unwrap_or(0) / 1000).to_ne_bytes());
    o.extend_from_slice(&imp.limit.unwrap_or(1000).to_ne_bytes());
    o.extend_from_slice(&imp.loss.map(prob).unwrap_or(0).to_ne_bytes());
    o.extend_from_slice(&u32::from(reorder != 0).to_ne_bytes());
    o.extend_from_slice(&imp.duplicate.map(prob).unwrap_or(0).to_ne_bytes());
    o.extend_from_slice(&time2tick(imp.jitter_ns.unwrap_or(0) / 1000).to_ne_bytes());
    if reorder != 0 {
        put_attr(&mut o, 3, &[reorder.to_ne_bytes(), 0u32.to_ne_bytes()].concat());
        // TCA_NETEM_REORDER
    }
    if let Some(c) = imp.corrupt {
        put_attr(&mut o, 4, &[prob(c).to_ne_bytes(), 0u32.to_ne_bytes()].concat());
        // TCA_NETEM_CORRUPT
    }
    if let Some(r) = imp.rate {
        if r >= 1 << 32 {
            put_attr(&mut o, 8, &r.to_ne_bytes()); // TCA_NETEM_RATE64
        }
        let r32 = r.min(u32::MAX as u64) as u32;
        // struct tc_netem_rate: rate, packet_overhead, cell_size, cell_overhead.
        put_attr(&mut o, 6, &[r32.to_ne_bytes(), [0; 4], [0; 4], [0; 4]].concat());
        // TCA_NETEM_RATE
    }
    let mut b = Vec::new();
    put_str(&mut b, TCA_KIND, "netem");
    put_attr(&mut b, TCA_OPTIONS, &o);
    b
}

/// tbf with a rate (bytes/s), bucket (bytes) and queue limit (bytes).
pub fn tbf_attrs(rate: u64, burst: u32, limit: u32) -> Vec<u8> {
    let r32 = rate.min(u32::MAX as u64) as u32;
    let cell_log: u8 = 3; // tc_calc_rtable with the default mtu 2047: 2047 >> 3 <= 255
                          // struct tc_ratespec: cell_log, linklayer (ethernet), overhead, cell_align (-1), mpu, rate.
    let mut spec = vec![cell_log, 1];
    spec.extend_from_slice(&0u16.to_ne_bytes());
    spec.extend_from_slice(&(-1i16).to_ne_bytes());
    spec.extend_from_slice(&0u16.to_ne_bytes());
    spec.extend_from_slice(&r32.to_ne_bytes());
    // struct tc_tbf_qopt: rate, peakrate, limit, buffer (ticks), mtu.
    let mut q = spec;
    q.extend_from_slice(&[0u8; 12]);
    q.extend_from_slice(&limit.to_ne_bytes());
    q.extend_from_slice(&xmittime(r32, burst).to_ne_bytes());
    q.extend_from_slice(&0u32.to_ne_bytes());
    let mut o = Vec::new();
    put_attr(&mut o, 1, &q); // TCA_TBF_PARMS
    put_u32(&mut o, 6, burst); // TCA_TBF_BURST
    if rate >= 1 << 32 {
        put_attr(&mut o, 4, &rate.to_ne_bytes()); // TCA_TBF_RATE64
    }
    let rtab: Vec<u8> = (0..256u32).flat_map(|i| xmittime(r32, (i + 1) << cell_log).to_ne_bytes()).collect();
    put_attr(&mut o, 2, &rtab); // TCA_TBF_RTAB
    let mut b = Vec::new();
    put_str(&mut b, TCA_KIND, "tbf");
    put_attr(&mut b, TCA_OPTIONS, &o);
    b
}

/// A root qdisc from a dump: (ifindex, parent, qdisc).
pub fn decode_qdisc(payload: &[u8]) -> Option<(u32, u32, ObservedQdisc)> {
    if payload.len() < 20 {
        return None;
    }
    let ifindex = i32::from_ne_bytes(payload[4..8].try_into().ok()?) as u32;
    let handle = get_u32(&payload[8..12])?;
    let parent = get_u32(&payload[12..16])?;
    let mut q = ObservedQdisc { handle, ..Default::default() };
    for (ty, v) in attrs(&payload[20..]) {
        match ty {
            TCA_KIND => q.kind = rawnl::get_str(v),
            TCA_OPTIONS => q.options = v.to_vec(),
            _ => {}
        }
    }
    q.params = match q.kind.as_str() {
        "netem" => decode_netem(&q.options),
        "tbf" => decode_tbf(&q.options),
        _ => QdiscParams::default(),
    };
    Some((ifindex, parent, q))
}

fn decode_netem(o: &[u8]) -> QdiscParams {
    let mut p = QdiscParams::default();
    if o.len() < 24 {
        return p;
    }
    let w = |i: usize| u32::from_ne_bytes(o[i * 4..i * 4 + 4].try_into().unwrap());
    let ticks_ns = |t: u32| (t as f64 / TICKS_PER_USEC * 1000.0).round() as u64;
    p.delay_ns = ticks_ns(w(0));
    p.limit = w(1);
    p.loss = w(2);
    p.duplicate = w(4);
    p.jitter_ns = ticks_ns(w(5));
    for (ty, v) in attrs(&o[24..]) {
        match ty {
            3 => p.reorder = get_u32(v).unwrap_or(0),
            4 => p.corrupt = get_u32(v).unwrap_or(0),
            6 if p.rate == 0 => p.rate = get_u32(v).unwrap_or(0) as u64,
            8 => p.rate = get_u64(v).unwrap_or(0),
            10 => p.delay_ns = get_u64(v).unwrap_or(0),
            11 => p.jitter_ns = get_u64(v).unwrap_or(0),
            _ => {}
        }
    }
    p
}

fn decode_tbf(o: &[u8]) -> QdiscParams {
    let mut p = QdiscParams::default();
    let mut buffer = 0u32;
    for (ty, v) in attrs(o) {
        match ty {
            1 if v.len() >= 36 => {
                if p.rate == 0 {
                    p.rate = get_u32(&v[8..12]).unwrap_or(0) as u64;
                }
                p.limit = get_u32(&v[24..28]).unwrap_or(0);
                buffer = get_u32(&v[28..32]).unwrap_or(0);
            }
            4 => p.rate = get_u64(v).unwrap_or(0),
            _ => {}
        }
    }
    let rate32 = p.rate.min(u32::MAX as u64) as f64;
    p.burst = (buffer as f64 / TICKS_PER_USEC * rate32 / 1e6).round() as u32;
    p
}

/// The parameters a qdisc built from `imp` reports back (what the planner compares with).
pub fn expected_params(imp: &Impairment) -> QdiscParams {
    let attrs_ = qdisc_attrs(imp);
    let opts = attrs(&attrs_).into_iter().find(|(t, _)| *t == TCA_OPTIONS).map(|(_, v)| v.to_vec()).unwrap_or_default();
    if imp.needs_netem() {
        decode_netem(&opts)
    } else {
        decode_tbf(&opts)
    }
}

/// Root qdiscs of every device: ifindex -> qdisc.
pub fn dump_roots(nl: &mut RawNl) -> Result<Vec<(u32, ObservedQdisc)>, KernelError> {
    let msgs = nl.dump(RTM_GETQDISC, &tcmsg(0, 0, 0, 0))?;
    Ok(msgs
        .into_iter()
        .filter(|(t, _)| *t == RTM_NEWQDISC)
        .filter_map(|(_, p)| decode_qdisc(&p))
        .filter(|(_, parent, _)| *parent == TC_H_ROOT)
        .map(|(i, _, q)| (i, q))
        .collect())
}

/// Installs (or replaces) vnet's root qdisc on a device.
pub fn set_root(nl: &mut RawNl, ifindex: u32, imp: &Impairment) -> Result<(), KernelError> {
    let mut p = tcmsg(ifindex, VNET_HANDLE, TC_H_ROOT, 0);
    p.extend_from_slice(&qdisc_attrs(imp));
    nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, &p).map(drop)
}

/// Puts back what was there before: the kernel default (delete the root qdisc) or a
/// recorded foreign qdisc.
pub fn restore_root(nl: &mut RawNl, ifindex: u32, previous: Option<&ObservedQdisc>) -> Result<(), KernelError> {
    match previous {
        Some(q) if q.handle != 0 && !q.kind.is_empty() => {
            let mut p = tcmsg(ifindex, q.handle, TC_H_ROOT, 0);
            put_str(&mut p, TCA_KIND, &q.kind);
            if !q.options.is_empty() {
                put_attr(&mut p, TCA_OPTIONS, &q.options);
            }
            nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, &p).map(drop)
        }
        _ => match nl.request(RTM_DELQDISC, 0, &tcmsg(ifindex, 0, TC_H_ROOT, 0)) {
            Ok(_) => Ok(()),
            // Nothing of ours there any more.
            Err(e) if e.errno == libc::ENOENT || e.errno == libc::EINVAL => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// Which of the qdisc kinds the running kernel lacks, probed on `lo` of a scratch namespace
/// that dies with its thread: a request carrying only the kind fails with ENOENT exactly when
/// the kernel has no such qdisc (after trying to load its module).
pub fn missing_qdiscs(kinds: &[&str]) -> std::io::Result<Vec<String>> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    std::thread::spawn(move || -> std::io::Result<Vec<String>> {
        crate::kernel::netns::unshare_thread()?;
        let mut nl = RawNl::open(netlink_sys::protocols::NETLINK_ROUTE)?;
        let mut out = Vec::new();
        for k in kinds {
            let mut p = tcmsg(1, VNET_HANDLE, TC_H_ROOT, 0);
            put_str(&mut p, TCA_KIND, &k);
            if let Err(e) = nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, &p) {
                if e.errno == libc::ENOENT {
                    out.push(k);
                }
            }
        }
        Ok(out)
    })
    .join()
    .map_err(|_| std::io::Error::other("qdisc probe panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::netfeat::spec::TcSpec;

    fn fixture(name: &str) -> (String, Vec<u8>) {
        let text = include_str!("tc_fixtures.txt");
        let line = text.lines().find(|l| l.starts_with(&format!("{name} |"))).unwrap_or_else(|| panic!("no fixture {name}"));
        let parts: Vec<&str> = line.split(" | ").collect();
        let hex = parts[2].trim();
        let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        (parts[1].to_string(), bytes)
    }

    fn imp(words: &str) -> Impairment {
        let w: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        Impairment::from_words(&w).unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn netem_matches_tc_byte_for_byte() {
        for (name, words) in [
            ("netem_full", "delay 20ms jitter 5ms loss 1% duplicate 0.5% reorder 25% corrupt 0.1% rate 10mbit limit 1000"),
            ("netem_delay", "delay 100ms"),
            ("netem_loss", "loss 10%"),
            ("netem_delay_rate", "delay 50ms rate 1mbit limit 500"),
        ] {
            let (args, want) = fixture(name);
            assert_eq!(hex(&qdisc_attrs(&imp(words))), hex(&want), "{name}: tc qdisc add ... {args}");
        }
    }

    #[test]
    fn tbf_matches_tc_byte_for_byte() {
        for (name, rate, burst, limit) in [
            ("tbf_10mbit", 1_250_000u64, 12_500u32, 125_000u32),
            ("tbf_1gbit", 125_000_000, 1_250_000, 7_500_000),
            ("tbf_100gbit", 12_500_000_000, 1 << 20, 10 << 20),
        ] {
            let (args, want) = fixture(name);
            assert_eq!(hex(&tbf_attrs(rate, burst, limit)), hex(&want), "{name}: tc qdisc add ... {args}");
        }
    }

    #[test]
    fn decoding_gives_back_what_was_encoded() {
        let i = imp("delay 20ms jitter 5ms loss 1% duplicate 0.5% reorder 25% corrupt 0.1% rate 10mbit");
        let p = expected_params(&i);
        assert_eq!(p.delay_ns, 20_000_000);
        assert_eq!(p.jitter_ns, 5_000_000);
        assert_eq!(p.loss, prob(0.01));
        assert_eq!(p.reorder, 1 << 30);
        assert_eq!(p.rate, 1_250_000);
        assert_eq!(p.limit, 1000);
        let t = Impairment::from_spec(&TcSpec { rate: Some("10mbit".into()), burst: Some("12500b".into()), ..Default::default() }).unwrap();
        let p = expected_params(&t);
        assert_eq!((p.rate, p.burst), (1_250_000, 12_500));
        assert_eq!(p.limit, t.tbf_limit());
    }

    #[test]
    fn a_decoded_qdisc_says_what_it_does_and_how_it_compares_with_the_declared() {
        use crate::plan::{qdisc_drift, QdiscDrift};
        let dumped = |handle: u32, i: &Impairment| {
            let mut payload = tcmsg(7, handle, TC_H_ROOT, 1);
            payload.extend_from_slice(&qdisc_attrs(i));
            decode_qdisc(&payload).unwrap().2
        };
        let netem = imp("delay 20ms jitter 5ms loss 1% rate 10mbit");
        let q = dumped(VNET_HANDLE, &netem);
        assert_eq!(q.describe(), "netem 7654: delay 20ms jitter 5ms loss 1% rate 10mbit");
        assert_eq!(netem.to_string(), "netem delay 20ms jitter 5ms loss 1% rate 10mbit");
        let tbf = imp("rate 10mbit");
        assert_eq!(dumped(VNET_HANDLE, &tbf).describe(), "tbf 7654: rate 10mbit burst 12500b");
        let noqueue = ObservedQdisc { kind: "noqueue".into(), ..Default::default() };
        assert_eq!(noqueue.describe(), "noqueue 0:");
        // Declared and observed, each way.
        assert_eq!(qdisc_drift(Some(&netem), Some(&q)), QdiscDrift::AsDeclared);
        assert_eq!(qdisc_drift(Some(&tbf), Some(&q)), QdiscDrift::Differs);
        assert_eq!(qdisc_drift(Some(&netem), Some(&dumped(0x8001_0000, &netem))), QdiscDrift::Differs, "the same, but not vnet's");
        assert_eq!(qdisc_drift(Some(&netem), Some(&noqueue)), QdiscDrift::Missing);
        assert_eq!(qdisc_drift(Some(&netem), None), QdiscDrift::Missing);
        assert_eq!(qdisc_drift(None, Some(&noqueue)), QdiscDrift::Clean);
        assert_eq!(qdisc_drift(None, Some(&q)), QdiscDrift::Undeclared);
        assert!(QdiscDrift::Missing.is_drift() && QdiscDrift::Differs.is_drift() && !QdiscDrift::Undeclared.is_drift());
    }

    #[test]
    fn a_dumped_qdisc_decodes() {
        let mut payload = tcmsg(7, VNET_HANDLE, TC_H_ROOT, 1);
        payload.extend_from_slice(&qdisc_attrs(&imp("delay 10ms loss 2%")));
        let (ifindex, parent, q) = decode_qdisc(&payload).unwrap();
        assert_eq!((ifindex, parent, q.handle, q.kind.as_str()), (7, TC_H_ROOT, VNET_HANDLE, "netem"));
        assert_eq!(q.params.delay_ns, 10_000_000);
        assert_eq!(q.params.loss, prob(0.02));
    }
}
