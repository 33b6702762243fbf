//! VXLAN, tun/tap and ifb on this machine's kernel, with real traffic.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::*;
use vnet::Lab;

/// Two "hosts" h1 and h2 joined by an underlay cable; on each, a bridge joins a VXLAN to an
/// overlay node (o1 behind h1, o2 and o3 behind h2). VNI 42 carries o1 <-> o2; o3 sits on
/// VNI 43 with an address in the same subnet, and must stay unreachable from o1.
const VXLAN: &str = r#"
name: vx
nodes:
  h1:
    interfaces:
      eth0: { addresses: [192.168.100.1/24] }
      vx42: { kind: vxlan, vni: 42, remote: 192.168.100.2, dev: eth0 }
      vx43: { kind: vxlan, vni: 43, dev: eth0, learning: false, fdb: [{ dst: 192.168.100.2 }], dstport: 4789 }
      br42: { kind: bridge }
      br43: { kind: bridge }
      p1: { master: br42 }
      vxp: { master: br43 }
  h2:
    interfaces:
      eth0: { addresses: [192.168.100.2/24] }
      vx42: { kind: vxlan, vni: 42, dev: eth0, fdb: [{ dst: 192.168.100.1 }] }
      vx43: { kind: vxlan, vni: 43, remote: 192.168.100.1, dev: eth0 }
      br42: { kind: bridge }
      br43: { kind: bridge }
      p2: { master: br42 }
      p3: { master: br43 }
  o1: { interfaces: { eth0: { addresses: [10.42.0.1/24] } } }
  o2: { interfaces: { eth0: { addresses: [10.42.0.2/24] } } }
  o3: { interfaces: { eth0: { addresses: [10.42.0.3/24] } } }
  x: { interfaces: { eth0: {} } }
links:
  - endpoints: [h1:eth0, h2:eth0]
  - endpoints: [h1:p1, o1:eth0]
  - endpoints: [h2:p2, o2:eth0]
  - endpoints: [h2:p3, o3:eth0]
  - endpoints: [h1:vxp, x:eth0]
"#;

#[test]
fn vxlan_overlay_joins_vni_42_and_isolates_another_vni() {
    require_root();
    let yaml = VXLAN
        .replace(
            "      vx42: { kind: vxlan, vni: 42, remote: 192.168.100.2, dev: eth0 }\n",
            "      vx42: { kind: vxlan, vni: 42, remote: 192.168.100.2, dev: eth0, master: br42 }\n",
        )
        .replace(
            "      vx43: { kind: vxlan, vni: 43, dev: eth0, learning: false, fdb: [{ dst: 192.168.100.2 }], dstport: 4789 }\n",
            "      vx43: { kind: vxlan, vni: 43, dev: eth0, learning: false, fdb: [{ dst: 192.168.100.2 }], dstport: 4789, master: br43 }\n",
        )
        .replace(
            "      vx42: { kind: vxlan, vni: 42, dev: eth0, fdb: [{ dst: 192.168.100.1 }] }\n",
            "      vx42: { kind: vxlan, vni: 42, dev: eth0, fdb: [{ dst: 192.168.100.1 }], master: br42 }\n",
        )
        .replace(
            "      vx43: { kind: vxlan, vni: 43, remote: 192.168.100.1, dev: eth0 }\n",
            "      vx43: { kind: vxlan, vni: 43, remote: 192.168.100.1, dev: eth0, master: br43 }\n",
        );
    let lab = Lab::from_file(temp_topology("vx", "yaml", &yaml)).unwrap();
    let h1 = lab.node("h1").netns().unwrap().to_string();
    let h2 = lab.node("h2").netns().unwrap().to_string();

    // Built as declared: ip -j and vnet's status agree.
    let v = ip_link(Some(&h1), "vx42").unwrap();
    assert_eq!(v["linkinfo"]["info_kind"], "vxlan");
    assert_eq!(v["linkinfo"]["info_data"]["id"], 42);
    assert_eq!(v["linkinfo"]["info_data"]["remote"], "192.168.100.2");
    assert_eq!(v["linkinfo"]["info_data"]["port"], 4789);
    assert_eq!(v["mtu"], 1450, "MTU leaves room for the 50 bytes of VXLAN over IPv4");
    assert_eq!(ip_link(Some(&h1), "vx43").unwrap()["linkinfo"]["info_data"]["learning"], false);
    let fdb = std::process::Command::new("bridge").args(["-n", &h2, "-j", "fdb", "show", "dev", "vx42"]).output().unwrap();
    let fdb: serde_json::Value = serde_json::from_slice(&fdb.stdout).unwrap();
    assert!(fdb.as_array().unwrap().iter().any(|e| e["mac"] == "00:00:00:00:00:00" && e["dst"] == "192.168.100.1"), "static remote entry: {fdb}");
    let st = lab.status().unwrap();
    let d = st.nodes.iter().find(|n| n.node == "h1").unwrap().devices.iter().find(|d| d.name == "vx42").unwrap().clone();
    assert_eq!(d.details["vni"], "42");
    assert_eq!(d.details["remote"], "192.168.100.2");
    assert_eq!(d.details["dev"], "eth0");
    assert_eq!(d.mtu, 1450);

    // Overlay traffic over VNI 42, in both directions, and TCP-sized packets fit.
    assert!(reach(&lab, "o1", "10.42.0.2"));
    assert!(reach(&lab, "o2", "10.42.0.1"));
    let big = lab.node("o1").command("ping").args(["-c", "2", "-W", "2", "-M", "do", "-s", "1422", "10.42.0.2"]).output().unwrap();
    assert!(big.status.success(), "a 1450-byte packet crosses the overlay unfragmented");
    let rx = |ns: &str, dev: &str| ip_json(Some(ns), &["-s", "link", "show", dev])[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
    assert!(rx(&h2, "vx42") > 0, "the traffic came in on VNI 42");
    // VNI 43 is another segment: o3 shares the subnet but not the VNI.
    assert!(!reach(&lab, "o1", "10.42.0.3"), "another VNI is isolated");
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4/UDP packet (UDP checksum 0: none).
fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let ulen = 8 + payload.len();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(ulen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

#[test]
fn tun_packets_routed_to_it_are_read_and_written_packets_arrive() {
    require_root();
    let yaml = r#"
name: tun
nodes:
  a:
    interfaces:
      eth0: { addresses: [10.0.0.1/24] }
      tun0: { kind: tun, multi_queue: true }
    routes:
      - { to: 10.1.1.0/24, dev: tun0 }
    sysctls:
      net.ipv4.conf.all.rp_filter: 0
      net.ipv4.conf.tun0.rp_filter: 0
  b: { interfaces: { eth0: { addresses: [10.0.0.2/24] } } }
links: [{ endpoints: [a:eth0, b:eth0] }]
"#;
    let lab = Lab::from_file(temp_topology("tun", "yaml", yaml)).unwrap();
    let ns = lab.node("a").netns().unwrap().to_string();
    let l = ip_link(Some(&ns), "tun0").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "tun");
    assert_eq!(l["linkinfo"]["info_data"]["type"], "tun");
    assert_eq!(l["linkinfo"]["info_data"]["multi_queue"], true);
    let routes = ip_json(Some(&ns), &["route", "show", "10.1.1.0/24"]);
    assert_eq!(routes[0]["dev"], "tun0");
    let st = lab.status().unwrap();
    let d = st.nodes.iter().find(|n| n.node == "a").unwrap().devices.iter().find(|d| d.name == "tun0").unwrap().clone();
    assert_eq!(d.kind, "tun");
    assert_eq!(d.details["type"], "tun");

    let mut q = lab.node("a").open_tap("tun0").unwrap();
    let q2 = lab.node("a").open_tap("tun0").expect("multi_queue: a second queue");
    // With two queues the kernel spreads flows over both; read from one only.
    drop(q2);
    // A packet routed to the tun device is read from the queue.
    lab.node("a").run(|| UdpSocket::bind("10.0.0.1:0").unwrap().send_to(b"into-the-tunnel", "10.1.1.5:9000").unwrap());
    let mut buf = [0u8; 2048];
    let mut seen = false;
    for _ in 0..10 {
        let n = q.read_timeout(&mut buf, Duration::from_secs(2)).expect("a packet on the tun queue");
        let p = &buf[..n];
        if p[0] >> 4 == 4 && p[16..20] == [10, 1, 1, 5] && p.windows(15).any(|w| w == b"into-the-tunnel") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the UDP packet to 10.1.1.5 was read from tun0");
    // A packet the test writes arrives at node b (forwarded by a).
    let sock = lab.node("b").run(|| UdpSocket::bind("10.0.0.2:9001").unwrap());
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    lab.node("b").command("ip").args(["route", "add", "10.1.1.0/24", "via", "10.0.0.1"]).status().unwrap();
    lab.node("a").command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]).status().unwrap();
    q.write_all(&udp4(Ipv4Addr::new(10, 1, 1, 5), Ipv4Addr::new(10, 0, 0, 2), 9000, 9001, b"out-of-the-tunnel")).unwrap();
    let mut r = [0u8; 64];
    let (n, from) = sock.recv_from(&mut r).expect("the written packet arrives at b");
    assert_eq!(&r[..n], b"out-of-the-tunnel");
    assert_eq!(from.ip().to_string(), "10.1.1.5");
    let name = lab.name().to_string();
    drop(q);
    lab.down().unwrap();
    assert_gone(&name);
}

/// The first queue brings the tun device's carrier; the kernel starts its transmit queues in
/// its link-watch work, later. `open_tap` returns after that, so a packet routed into the
/// device at once is read, every time (the device loses its carrier with its last queue).
#[test]
fn a_packet_sent_right_after_open_tap_is_not_lost() {
    require_root();
    let yaml = "name: tunfirst\nnodes:\n  a:\n    interfaces:\n      tun0: { kind: tun, addresses: [10.3.3.1/24] }\n";
    let lab = Lab::from_file(temp_topology("tunfirst", "yaml", yaml)).unwrap();
    let sock = lab.node("a").run(|| UdpSocket::bind("10.3.3.1:0").unwrap());
    let mut buf = [0u8; 2048];
    for round in 0..40 {
        let mut q = lab.node("a").open_tap("tun0").unwrap();
        let payload = format!("round-{round}");
        sock.send_to(payload.as_bytes(), "10.3.3.9:9000").unwrap();
        let mut seen = false;
        while let Ok(n) = q.read_timeout(&mut buf, Duration::from_secs(2)) {
            if buf[..n].ends_with(payload.as_bytes()) {
                seen = true;
                break;
            }
        }
        assert!(seen, "round {round}: the packet sent right after open_tap was lost");
    }
}

/// A tun without multi_queue takes one queue: a second open while the first is held says who
/// holds it; once the first is closed the device opens again at once, even while other threads
/// spawn processes (which hold copies of every descriptor until their exec).
#[test]
fn a_single_queue_tun_held_open_is_refused_and_reopens_after_close() {
    require_root();
    let yaml = "name: tunbusy\nnodes:\n  a:\n    interfaces:\n      tun0: { kind: tun }\n";
    let lab = Lab::from_file(temp_topology("tunbusy", "yaml", yaml)).unwrap();
    let first = lab.node("a").open_tap("tun0").unwrap();
    let Err(e) = lab.node("a").open_tap("tun0") else { panic!("a second queue on a single-queue tun") };
    assert_eq!(e.kind(), std::io::ErrorKind::ResourceBusy);
    assert_eq!(e.to_string(), "tun0 is held open by another program (a device without multi_queue takes one queue)");
    drop(first);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
            }
        })
    };
    for round in 0..50 {
        let q = lab.node("a").open_tap("tun0").unwrap_or_else(|e| panic!("round {round}: {e}"));
        drop(q);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spawner.join().unwrap();
}

#[test]
fn tap_frames_are_read_and_written() {
    require_root();
    let yaml = r#"
name: tap
nodes:
  a:
    interfaces:
      tap0: { kind: tap, mac: "02:00:00:00:0a:01", addresses: [10.2.2.1/24] }
"#;
    let lab = Lab::from_file(temp_topology("tap", "yaml", yaml)).unwrap();
    let ns = lab.node("a").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&ns), "tap0").unwrap()["linkinfo"]["info_data"]["type"], "tap");
    let mut q = lab.node("a").open_tap("tap0").unwrap();
    // A packet to a neighbour on the tap makes the kernel ask for its MAC: an ARP frame.
    lab.node("a").run(|| UdpSocket::bind("10.2.2.1:0").unwrap().send_to(b"x", "10.2.2.9:9000").unwrap());
    let mut buf = [0u8; 2048];
    let mut arp = false;
    for _ in 0..10 {
        let n = q.read_timeout(&mut buf, Duration::from_secs(2)).expect("a frame on the tap");
        let f = &buf[..n];
        if f[12..14] == [0x08, 0x06] && f[38..42] == [10, 2, 2, 9] {
            assert_eq!(&f[6..12], &[2, 0, 0, 0, 0x0a, 1]);
            arp = true;
            break;
        }
    }
    assert!(arp, "an ARP request for 10.2.2.9 was read from tap0");
    // A frame the test writes is delivered to a socket in the node.
    let sock = lab.node("a").run(|| UdpSocket::bind("10.2.2.1:9002").unwrap());
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut f = vec![2, 0, 0, 0, 0x0a, 1, 2, 0, 0, 0, 0x0b, 2, 0x08, 0x00];
    f.extend(udp4(Ipv4Addr::new(10, 2, 2, 9), Ipv4Addr::new(10, 2, 2, 1), 9000, 9002, b"frame-in"));
    q.write_all(&f).unwrap();
    let mut r = [0u8; 64];
    let (n, _) = sock.recv_from(&mut r).expect("the written frame is delivered");
    assert_eq!(&r[..n], b"frame-in");
    let name = lab.name().to_string();
    drop(q);
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn ifb_receives_traffic_redirected_by_tc() {
    require_root();
    let lab = Lab::builder("ifb")
        .link("a:eth0", "b:eth0")
        .address("a:eth0", "10.3.0.1/24")
        .address("b:eth0", "10.3.0.2/24")
        .device("a:ifb0", vnet::model::kind::KindSpec::Ifb(Default::default()))
        .up()
        .unwrap();
    let ns = lab.node("a").netns().unwrap().to_string();
    assert_eq!(ip_link(Some(&ns), "ifb0").unwrap()["linkinfo"]["info_kind"], "ifb");
    let tc = |args: &[&str]| {
        let o = lab.node("a").command("tc").args(args).output().unwrap();
        assert!(o.status.success(), "tc {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    tc(&["qdisc", "add", "dev", "eth0", "handle", "ffff:", "ingress"]);
    tc(&[
        "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
        "ifb0",
    ]);
    let before = ip_json(Some(&ns), &["-s", "link", "show", "ifb0"])[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
    assert!(reach(&lab, "b", "10.3.0.1"), "traffic still flows through the ifb");
    let after = ip_json(Some(&ns), &["-s", "link", "show", "ifb0"])[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
    assert!(after > before, "ifb0 received the redirected packets ({before} -> {after})");
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_gone(&name);
}
