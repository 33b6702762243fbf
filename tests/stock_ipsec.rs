//! IPsec with ESP in a kernel that has it (stock-kernel lane: this repository's host kernel
//! lacks ESP). A capture in the middle node shows only ESP on the wire while traffic arrives
//! decrypted; tunnel mode (generated AEAD keys) and transport mode (enc + auth keys from the
//! file); an unchanged lab plans nothing; removing a connection removes its states/policies.

mod common;
mod netcap;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::*;
use netcap::Capture;
use vnet::lifecycle;
use vnet::Lab;

fn require_esp() {
    require(&["veth", "esp"]);
    // vnet's own probe agrees (it is what `up` uses before changing anything).
    let probe = vnet::observed::netfeat::XfrmState {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        spi: 0x100,
        proto: 50,
        mode: 1,
        reqid: 1,
        aead: Some(vnet::observed::netfeat::XfrmAlg { name: "rfc4106(gcm(aes))".into(), key: vec![1; 20], bits: 128 }),
        enc: None,
        auth: None,
    };
    let r = vnet::kernel::netfeat::xfrm::probe_state(&probe).unwrap();
    assert!(r.is_ok(), "this test needs ESP, which the running kernel lacks ({r:?}); it belongs to the stock-kernel lane");
}

fn xfrm(netns: &str, what: &str) -> String {
    let out = Command::new("ip").args(["netns", "exec", netns, "ip", "xfrm", what]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Sends a datagram and returns (payload received, sender seen by the receiver).
fn udp(lab: &Lab, from: &str, to: &str, dst: &str, msg: &'static [u8]) -> Option<(Vec<u8>, String)> {
    let d = dst.to_string();
    let server = lab.node(to).run(move || UdpSocket::bind(&d).unwrap());
    server.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let d = dst.to_string();
    lab.node(from).run(move || UdpSocket::bind("0.0.0.0:0").unwrap().send_to(msg, &d).unwrap());
    let mut buf = [0u8; 256];
    server.recv_from(&mut buf).ok().map(|(n, peer)| (buf[..n].to_vec(), peer.ip().to_string()))
}

#[test]
fn tunnel_between_two_sites_is_esp_on_the_wire() {
    require_root();
    require_esp();
    let mut lab = Lab::from_file(repo("examples/ipsec.yaml")).unwrap();
    let name = lab.name().to_string();
    let gw1 = lab.node("gw1").netns().unwrap().to_string();
    let states = xfrm(&gw1, "state");
    assert!(states.contains("src 198.51.100.1 dst 203.0.113.2") && states.contains("proto esp spi 0x00001000 reqid 1 mode tunnel"), "{states}");
    assert!(states.contains("rfc4106(gcm(aes))"), "{states}");
    let policies = xfrm(&gw1, "policy");
    for dir in ["dir out", "dir in", "dir fwd"] {
        assert!(policies.contains(dir), "{dir}: {policies}");
    }
    let rec = vnet::state::load(&name).unwrap().unwrap();
    assert_eq!(rec.netfeat.keys.len(), 2, "one generated key per direction: {:?}", rec.netfeat.keys.keys());

    let cap = lab.node("isp").run(Capture::open);
    assert!(ping(&lab, "site1", "10.2.0.10"), "site1 reaches site2 through the tunnel");
    let (got, peer) = udp(&lab, "site1", "site2", "10.2.0.10:9000", b"attack at dawn").expect("datagram arrives");
    assert_eq!(got, b"attack at dawn", "arrives decrypted");
    assert_eq!(peer, "10.1.0.10");
    let seen = cap.collect(Duration::from_millis(500));
    let esp: Vec<_> = seen.iter().filter(|p| p.proto == 50).collect();
    assert!(!esp.is_empty(), "ESP on the wire: {seen:?}");
    assert!(esp.iter().all(|p| ["198.51.100.1", "203.0.113.2"].contains(&p.src.to_string().as_str())));
    assert!(!seen.iter().any(|p| p.src.to_string().starts_with("10.") || p.dst.to_string().starts_with("10.")), "no inner address in clear: {seen:?}");
    assert!(!seen.iter().any(|p| p.payload.windows(14).any(|w| w == b"attack at dawn")), "no plaintext on the wire");

    // Unchanged: nothing to do (same generated keys).
    let loaded = vnet::model::load_topology(&lab.model().topology).unwrap();
    assert!(lifecycle::plan(&loaded).unwrap().is_empty(), "{}", lifecycle::plan(&loaded).unwrap());

    // Without the connection its states and policies go.
    let mut t = lab.model().topology.clone();
    t.ipsec.clear();
    let r = lab.update(t).unwrap();
    assert_eq!(r.plan.len(), 2 * (2 + 3), "2 states and 3 policies in each gateway: {}", r.plan);
    assert!(xfrm(&gw1, "state").trim().is_empty() && xfrm(&gw1, "policy").trim().is_empty());
    assert!(!ping(&lab, "site1", "10.2.0.10"), "no tunnel, no route between the sites");
    lab.down().unwrap();
    assert_gone(&name);
}

#[test]
fn transport_mode_with_keys_from_the_file() {
    require_root();
    require_esp();
    let lab = Lab::builder("esptr")
        .link("a:eth0", "m:e1")
        .link("m:e2", "b:eth0")
        .address("a:eth0", "192.0.2.1/30")
        .address("m:e1", "192.0.2.2/30")
        .address("m:e2", "192.0.2.5/30")
        .address("b:eth0", "192.0.2.6/30")
        .route("a", "default", Some("192.0.2.2"), None)
        .route("b", "default", Some("192.0.2.5"), None)
        .sysctl("m", "net.ipv4.ip_forward", "1")
        .with(|t| {
            t.ipsec = vec![serde_json::from_value(serde_json::json!({
                "name": "hosts", "mode": "transport",
                "ends": [{"node": "a", "address": "192.0.2.1"}, {"node": "b", "address": "192.0.2.6"}],
                "enc": "cbc(aes)", "enc_key": "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "auth": "hmac(sha256)", "auth_key": "0x1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100",
                "spi": ["0x2000", "0x2001"], "reqid": 42
            }))
            .unwrap()];
        })
        .up()
        .unwrap();
    let a = lab.node("a").netns().unwrap().to_string();
    let s = xfrm(&a, "state");
    assert!(s.contains("spi 0x00002000 reqid 42 mode transport") && s.contains("cbc(aes)") && s.contains("hmac(sha256)"), "{s}");
    let cap = lab.node("m").run(Capture::open);
    let (got, peer) = udp(&lab, "a", "b", "192.0.2.6:9100", b"transport secret").expect("arrives");
    assert_eq!((got.as_slice(), peer.as_str()), (&b"transport secret"[..], "192.0.2.1"));
    let seen = cap.collect(Duration::from_millis(500));
    assert!(seen.iter().any(|p| p.proto == 50 && p.src.to_string() == "192.0.2.1"), "ESP between the hosts: {seen:?}");
    assert!(!seen.iter().any(|p| p.proto == 17), "no UDP in clear: {seen:?}");
    assert!(lifecycle::plan(&vnet::model::load_topology(&lab.model().topology).unwrap()).unwrap().is_empty());
}
