//! macvlan and macvtap on this machine's kernel: two macvlans on one lower device in two
//! nodes, behind it an "external switch" (a bridge in node `sw`) and an external node `ext`.
//! Each mode is shown with real traffic, checked through vnet's observer and `ip -j`.

mod common;

use std::time::Duration;

use common::*;
use vnet::Lab;

/// a:mv and b:mv sit on host:eth0, whose cable leads to port p0 of bridge sw:br0; ext:eth0
/// hangs off the same bridge.
fn lab(mode: &str, hairpin: bool) -> Lab {
    let yaml = format!(
        r#"
name: mv-{mode}
nodes:
  host:
    interfaces:
      eth0: {{}}
  sw:
    interfaces:
      br0: {{ kind: bridge }}
      p0: {{ master: br0, hairpin: {hairpin} }}
      p1: {{ master: br0 }}
  ext:
    interfaces:
      eth0: {{ addresses: [10.0.0.100/24] }}
  a:
    interfaces:
      mv: {{ kind: macvlan, link: "host:eth0", mode: {mode}, addresses: [10.0.0.1/24] }}
  b:
    interfaces:
      mv: {{ kind: macvlan, link: "host:eth0", mode: {mode}, addresses: [10.0.0.2/24] }}
links:
  - endpoints: [host:eth0, sw:p0]
  - endpoints: [sw:p1, ext:eth0]
"#
    );
    Lab::from_file(temp_topology(&format!("mv-{mode}-{hairpin}"), "yaml", &yaml)).unwrap()
}

fn check_built(lab: &Lab, mode: &str) {
    for n in lab.model().nodes.keys().filter(|n| *n == "a" || *n == "b") {
        let ns = lab.node(n).netns().unwrap().to_string();
        let l = ip_link(Some(&ns), "mv").expect("macvlan exists in its node");
        assert_eq!(l["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(l["linkinfo"]["info_data"]["mode"], mode);
        let st = lab.status().unwrap();
        let d = st.nodes.iter().find(|x| &x.node == n).unwrap().devices.iter().find(|d| d.name == "mv").unwrap().clone();
        assert_eq!(d.kind, "macvlan");
        assert!(d.up);
    }
}

#[test]
fn bridge_mode_siblings_reach_each_other_and_the_outside() {
    require_root();
    let lab = lab("bridge", false);
    check_built(&lab, "bridge");
    assert!(reach(&lab, "a", "10.0.0.2"), "bridge mode: siblings talk directly");
    assert!(reach(&lab, "a", "10.0.0.100"));
    assert!(reach(&lab, "b", "10.0.0.100"));
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn private_mode_isolates_siblings_even_with_hairpin() {
    require_root();
    let lab = lab("private", true);
    check_built(&lab, "private");
    let sw = lab.node("sw").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&sw), "p0").unwrap()["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert!(reach(&lab, "a", "10.0.0.100"));
    assert!(reach(&lab, "b", "10.0.0.100"));
    assert!(!reach(&lab, "a", "10.0.0.2"), "private mode: no traffic between siblings, hairpin or not");
    assert!(!reach(&lab, "b", "10.0.0.1"));
}

#[test]
fn vepa_mode_needs_a_hairpin_on_the_switch_port() {
    require_root();
    let lab = lab("vepa", false);
    check_built(&lab, "vepa");
    assert!(reach(&lab, "a", "10.0.0.100"));
    assert!(!reach(&lab, "a", "10.0.0.2"), "vepa without hairpin: the switch does not send frames back");
    drop(lab);
    let lab = lab_hairpin("vepa");
    assert!(reach(&lab, "a", "10.0.0.2"), "vepa with hairpin: siblings reach each other through the switch");
    assert!(reach(&lab, "b", "10.0.0.100"));
}

fn lab_hairpin(mode: &str) -> Lab {
    lab(mode, true)
}

#[test]
fn passthru_owns_its_lower_and_reaches_the_outside() {
    require_root();
    let yaml = r#"
name: mv-pt
nodes:
  host: { interfaces: { eth0: {} } }
  ext: { interfaces: { eth0: { addresses: [10.0.0.100/24] } } }
  a:
    interfaces:
      mv: { kind: macvlan, link: "host:eth0", mode: passthru, addresses: [10.0.0.1/24] }
links:
  - endpoints: [host:eth0, ext:eth0]
"#;
    let lab = Lab::from_file(temp_topology("mv-pt", "yaml", yaml)).unwrap();
    check_built(&lab, "passthru");
    assert!(reach(&lab, "a", "10.0.0.100"));
    drop(lab);
    // A second macvlan on the same lower is refused before anything is built.
    let bad = yaml.replace("links:", "  b:\n    interfaces:\n      mv: { kind: macvlan, link: \"host:eth0\", mode: bridge }\nlinks:");
    let p = temp_topology("mv-pt2", "yaml", &bad);
    let out = std::process::Command::new(vnet_bin()).args(["up", "--isolated-host"]).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("passthru mode: it takes over its lower device `host:eth0`, which therefore cannot carry `b:mv` too"), "{err}");
    assert!(err.contains("mv-pt2.yaml:"), "located in the file: {err}");
    assert!(namespaces_with_prefix("mv-pt-").is_empty());
}

/// An Ethernet frame: dst, src, ethertype 0x88b5 (local experimental), payload.
fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// Sends a raw frame out of `ifname` from inside the calling thread's namespace.
fn send_raw(ifname: &str, f: &[u8]) {
    unsafe {
        let s = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(s >= 0);
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = nix::net::if_::if_nametoindex(ifname).unwrap() as i32;
        sa.sll_halen = 6;
        let r = libc::sendto(s, f.as_ptr().cast(), f.len(), 0, (&sa as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32);
        libc::close(s);
        assert_eq!(r as usize, f.len());
    }
}

/// Receives frames of ethertype 0x88b5 on `ifname` until one carries `payload`.
fn recv_raw(ifname: &str, payload: &[u8]) -> bool {
    unsafe {
        let s = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (0x88b5u16).to_be() as i32);
        assert!(s >= 0);
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = (0x88b5u16).to_be();
        sa.sll_ifindex = nix::net::if_::if_nametoindex(ifname).unwrap() as i32;
        libc::bind(s, (&sa as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32);
        let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
        libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), std::mem::size_of::<libc::timeval>() as u32);
        let mut buf = [0u8; 2048];
        let mut found = false;
        for _ in 0..20 {
            let n = libc::recv(s, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 {
                break;
            }
            if buf[..n as usize].windows(payload.len()).any(|w| w == payload) {
                found = true;
                break;
            }
        }
        libc::close(s);
        found
    }
}

#[test]
fn macvtap_frames_are_read_and_written_through_its_character_device() {
    require_root();
    let yaml = r#"
name: mvtap
nodes:
  host: { interfaces: { eth0: {} } }
  ext: { interfaces: { eth0: { mac: "02:00:00:00:00:e1" } } }
  a:
    interfaces:
      tap0: { kind: macvtap, link: "host:eth0", mode: bridge, mac: "02:00:00:00:00:a1" }
links:
  - endpoints: [host:eth0, ext:eth0]
"#;
    let lab = Lab::from_file(temp_topology("mvtap", "yaml", yaml)).unwrap();
    let ns = lab.node("a").netns().unwrap().to_string();
    let l = ip_link(Some(&ns), "tap0").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "macvtap");
    let ifindex = l["ifindex"].as_u64().unwrap();
    // status shows the character device.
    let st = lab.status().unwrap();
    let d = st.nodes.iter().find(|n| n.node == "a").unwrap().devices.iter().find(|d| d.name == "tap0").unwrap().clone();
    assert_eq!(d.details.get("char_device").map(String::as_str), Some(format!("/dev/tap{ifindex}").as_str()));

    let mut h = lab.node("a").open_macvtap("tap0").unwrap();
    assert_eq!(h.path, format!("/dev/tap{ifindex}"));
    let me = [2, 0, 0, 0, 0, 0xa1];
    let ext = [2, 0, 0, 0, 0, 0xe1];
    // ext -> macvtap: read from the character device.
    lab.node("ext").run(|| send_raw("eth0", &frame(me, ext, b"to-the-macvtap")));
    let mut buf = [0u8; 2048];
    let mut got = false;
    for _ in 0..10 {
        match h.read_timeout(&mut buf, Duration::from_secs(2)) {
            Ok(n) if buf[..n].windows(14).any(|w| w == b"to-the-macvtap") => {
                assert_eq!(&buf[0..6], &me);
                got = true;
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("no frame on the macvtap: {e}"),
        }
    }
    assert!(got, "the frame sent to the macvtap's MAC was read from its character device");
    // macvtap -> ext: written to the character device, received on ext's interface.
    let f = frame(ext, me, b"from-the-macvtap");
    let rx = std::thread::scope(|s| {
        let r = s.spawn(|| lab.node("ext").run(|| recv_raw("eth0", b"from-the-macvtap")));
        std::thread::sleep(Duration::from_millis(300));
        use std::io::Write;
        h.write_all(&f).unwrap();
        r.join().unwrap()
    });
    assert!(rx, "a frame written to the macvtap arrived at ext");
    let name = lab.name().to_string();
    drop(h);
    lab.down().unwrap();
    assert_gone(&name);
}
