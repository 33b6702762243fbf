//! BPF programs on devices. The ELF object is parsed, relocated and loaded by aya; the loaded
//! program is attached over netlink (a cls_bpf filter in direct-action mode on the clsact
//! qdisc, or IFLA_XDP), so the attachment lives in the kernel after vnet exits and goes away
//! with the device (or the namespace) at `down`.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use aya::programs::{SchedClassifier, Xdp};
use aya::Ebpf;

use crate::kernel::nl::KernelError;
use crate::model::netfeat::spec::{BpfHookSpec, XdpMode};
use crate::observed::netfeat::ObservedBpf;

use super::rawnl::{self, attrs, get_u32, put_attr, put_str, put_u32, RawNl, NLA_F_NESTED, NLM_F_CREATE, NLM_F_REPLACE};
use super::tc::{tcmsg, RTM_NEWQDISC};

const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const IFLA_IFNAME: u16 = 3;
const IFLA_XDP: u16 = 43;
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const TC_H_INGRESS: u32 = 0xFFFF_FFF2;
const TC_H_EGRESS: u32 = 0xFFFF_FFF3;
/// Priority of vnet's tc filters (with handle 1): how vnet finds its own.
pub const VNET_PRIO: u16 = crate::observed::netfeat::VNET_BPF_PRIO;
/// htons(ETH_P_ALL): the filter sees every protocol.
const ETH_P_ALL_BE: u32 = 0x0300;

/// A program loaded into the kernel (kept open until it is attached).
pub struct Loaded {
    _ebpf: Ebpf,
    fd: i32,
    pub id: u32,
    pub name: String,
}

/// Loads one program of an object for a hook.
pub fn load(object: &Path, program: &str, hook: BpfHookSpec) -> Result<Loaded, String> {
    let mut ebpf = Ebpf::load_file(object).map_err(|e| format!("cannot load BPF object {}: {e}", object.display()))?;
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    let prog = ebpf.program_mut(program).ok_or_else(|| format!("BPF object {} has no program `{program}` (it has: {})", object.display(), names.join(", ")))?;
    let (fd, id) = match hook {
        BpfHookSpec::Xdp => {
            let p: &mut Xdp = prog.try_into().map_err(|e| format!("program `{program}` is not an XDP program (section `xdp`): {e}"))?;
            p.load().map_err(|e| verifier(program, e))?;
            (p.fd().map_err(|e| e.to_string())?.as_fd().as_raw_fd(), p.info().map_err(|e| e.to_string())?.id())
        }
        _ => {
            let p: &mut SchedClassifier = prog.try_into().map_err(|e| format!("program `{program}` is not a tc classifier (section `classifier`): {e}"))?;
            p.load().map_err(|e| verifier(program, e))?;
            (p.fd().map_err(|e| e.to_string())?.as_fd().as_raw_fd(), p.info().map_err(|e| e.to_string())?.id())
        }
    };
    Ok(Loaded { _ebpf: ebpf, fd, id, name: program.to_string() })
}

fn verifier(program: &str, e: aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError { io_error, verifier_log } => {
            let log: String = verifier_log.to_string().lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            format!("the kernel refused program `{program}`: {io_error}\n{log}")
        }
        other => format!("cannot load program `{program}`: {other}"),
    }
}

fn parent(hook: BpfHookSpec) -> u32 {
    if hook == BpfHookSpec::TcEgress {
        TC_H_EGRESS
    } else {
        TC_H_INGRESS
    }
}

/// RTM_NEWTFILTER attaching a loaded program as vnet's filter (direct action).
pub fn filter_request(ifindex: u32, hook: BpfHookSpec, fd: i32, name: &str) -> Vec<u8> {
    let mut p = tcmsg(ifindex, 1, parent(hook), (u32::from(VNET_PRIO) << 16) | ETH_P_ALL_BE);
    put_str(&mut p, 1, "bpf"); // TCA_KIND
    let mut o = Vec::new();
    put_u32(&mut o, 6, fd as u32); // TCA_BPF_FD
    put_str(&mut o, 7, name); // TCA_BPF_NAME
    put_u32(&mut o, 8, 1); // TCA_BPF_FLAGS: TCA_BPF_FLAG_ACT_DIRECT
    put_attr(&mut p, 2 | NLA_F_NESTED, &o); // TCA_OPTIONS
    p
}

/// IFLA_XDP attaching (`fd`) or detaching (-1) a program.
pub fn xdp_request(ifindex: u32, fd: i32, mode: XdpMode) -> Vec<u8> {
    let mut p = vec![0u8; 16]; // struct ifinfomsg
    p[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let mut x = Vec::new();
    put_attr(&mut x, 1, &fd.to_ne_bytes()); // IFLA_XDP_FD
    let flags: u32 = match mode {
        XdpMode::Generic => 1 << 1, // XDP_FLAGS_SKB_MODE
        XdpMode::Native => 1 << 2,  // XDP_FLAGS_DRV_MODE
    };
    put_u32(&mut x, 3, flags); // IFLA_XDP_FLAGS
    put_attr(&mut p, IFLA_XDP | NLA_F_NESTED, &x);
    p
}

/// The name vnet gives its tc filters.
pub fn filter_name(program: &str) -> String {
    format!("vnet:{program}")
}

/// Attaches a loaded program; the kernel keeps its own reference.
pub fn attach(nl: &mut RawNl, ifindex: u32, hook: BpfHookSpec, mode: Option<XdpMode>, prog: &Loaded) -> Result<(), KernelError> {
    match hook {
        BpfHookSpec::Xdp => nl.request(RTM_SETLINK, 0, &xdp_request(ifindex, prog.fd, mode.unwrap_or(XdpMode::Generic))).map(drop),
        _ => {
            let mut q = tcmsg(ifindex, 0xFFFF_0000, TC_H_CLSACT, 0);
            put_str(&mut q, 1, "clsact");
            match nl.request(RTM_NEWQDISC, NLM_F_CREATE, &q) {
                Ok(_) => {}
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => return Err(e),
            }
            nl.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE, &filter_request(ifindex, hook, prog.fd, &filter_name(&prog.name))).map(drop)
        }
    }
}

/// Removes vnet's program from a hook.
pub fn detach(nl: &mut RawNl, ifindex: u32, hook: BpfHookSpec, mode: Option<XdpMode>) -> Result<(), KernelError> {
    let r = match hook {
        BpfHookSpec::Xdp => nl.request(RTM_SETLINK, 0, &xdp_request(ifindex, -1, mode.unwrap_or(XdpMode::Generic))),
        _ => {
            let mut p = tcmsg(ifindex, 1, parent(hook), (u32::from(VNET_PRIO) << 16) | ETH_P_ALL_BE);
            put_str(&mut p, 1, "bpf");
            nl.request(RTM_DELTFILTER, 0, &p)
        }
    };
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::ENODEV => Ok(()),
        Err(e) => Err(e),
    }
}

/// BPF programs on the given devices: vnet's tc filters (both directions) and XDP programs.
pub fn observe(nl: &mut RawNl, devices: &[(String, u32)]) -> Result<Vec<ObservedBpf>, KernelError> {
    let mut out = Vec::new();
    for (name, ifindex) in devices {
        for hook in [BpfHookSpec::TcIngress, BpfHookSpec::TcEgress] {
            let msgs = match nl.dump(RTM_GETTFILTER, &tcmsg(*ifindex, 0, parent(hook), 0)) {
                Ok(m) => m,
                // No clsact qdisc: no filters.
                Err(e) if e.errno == libc::EINVAL || e.errno == libc::ENOENT => continue,
                Err(e) => return Err(e),
            };
            for (ty, p) in msgs {
                if ty != RTM_NEWTFILTER || p.len() < 20 {
                    continue;
                }
                let info = get_u32(&p[16..20]).unwrap_or(0);
                let prio = (info >> 16) as u16;
                let mut kind = String::new();
                let mut fname = String::new();
                let mut id = 0;
                for (t, v) in attrs(&p[20..]) {
                    match t {
                        1 => kind = rawnl::get_str(v),
                        2 => {
                            for (ot, ov) in attrs(v) {
                                match ot {
                                    7 => fname = rawnl::get_str(ov),
                                    11 => id = get_u32(ov).unwrap_or(0),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if kind == "bpf" && id != 0 {
                    out.push(ObservedBpf { ifname: name.clone(), hook, prog_id: id, name: fname, prio, xdp_mode: 0 });
                }
            }
        }
    }
    for (ty, p) in nl.dump(RTM_GETLINK, &[0u8; 16])? {
        if ty != RTM_NEWLINK || p.len() < 16 {
            continue;
        }
        let mut name = String::new();
        let (mut mode, mut id) = (0u8, 0u32);
        for (t, v) in attrs(&p[16..]) {
            match t {
                IFLA_IFNAME => name = rawnl::get_str(v),
                IFLA_XDP => {
                    for (xt, xv) in attrs(v) {
                        match xt {
                            2 => mode = xv.first().copied().unwrap_or(0), // IFLA_XDP_ATTACHED
                            4 => id = get_u32(xv).unwrap_or(0),           // IFLA_XDP_PROG_ID
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if id != 0 && devices.iter().any(|(n, _)| *n == name) {
            out.push(ObservedBpf { ifname: name, hook: BpfHookSpec::Xdp, prog_id: id, name: String::new(), prio: 0, xdp_mode: mode });
        }
    }
    Ok(out)
}

/// Content hash of an object file (FNV-1a 64 over its bytes): decides whether an attached
/// program is still the one the file names.
pub fn object_hash(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read BPF object {}: {e}", path.display()))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_and_xdp_requests_are_laid_out_as_the_kernel_expects() {
        let p = filter_request(5, BpfHookSpec::TcEgress, 9, "vnet:x");
        // tcmsg: ifindex 5, handle 1, parent ffff:fff3, info prio<<16 | htons(ETH_P_ALL)
        assert_eq!(&p[4..8], &5i32.to_ne_bytes());
        assert_eq!(&p[8..12], &1u32.to_ne_bytes());
        assert_eq!(&p[12..16], &0xFFFF_FFF3u32.to_ne_bytes());
        assert_eq!(&p[16..20], &0x7654_0300u32.to_ne_bytes());
        let a = attrs(&p[20..]);
        assert_eq!(a[0], (1, &b"bpf\0"[..]));
        let opts = attrs(a[1].1);
        assert_eq!(opts, vec![(6, &9u32.to_ne_bytes()[..]), (7, &b"vnet:x\0"[..]), (8, &1u32.to_ne_bytes()[..])]);
        let x = xdp_request(3, -1, XdpMode::Generic);
        let a = attrs(&x[16..]);
        assert_eq!(a[0].0, IFLA_XDP);
        assert_eq!(attrs(a[0].1), vec![(1, &(-1i32).to_ne_bytes()[..]), (3, &2u32.to_ne_bytes()[..])]);
    }
}
