//! vnet-cni driven exactly as a container runtime drives a CNI plugin (CNI_* variables, the
//! configuration on stdin, the plugin started in the runtime's namespace — a scratch namespace
//! here — and containers as namespaces the test makes), and side by side with the reference
//! plugins of Debian's containernetworking-plugins on the same configurations: the same kernel
//! objects (`ip -j`), the same result shape, the same traffic behaviour.
//! ipvlan and vlan need a kernel this machine lacks: tests/stock_cni.rs.

#[path = "common/cni.rs"]
mod cni;
mod common;

use cni::*;
use common::*;
use serde_json::{json, Value};

fn bridge_conf(rt: &Runtime, plugin: &str, version: &str) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "tnet",
        "type": plugin,
        "bridge": "cni0",
        "isGateway": true,
        "isDefaultGateway": true,
        "hairpinMode": true,
        "mtu": 1400,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": "10.88.0.0/24" }], [{ "subnet": "fd88::/64" }]],
            "routes": [{ "dst": "192.0.2.0/24" }]
        },
        "dns": { "nameservers": ["10.88.0.1"], "search": ["lab.example"] }
    });
    if plugin == "vnet-cni" {
        c["kind"] = "bridge".into();
    }
    rt.conf(c)
}

fn records(rt: &Runtime, network: &str) -> Vec<String> {
    std::fs::read_dir(rt.dir.join("state").join(network))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.ends_with(".json")).collect())
        .unwrap_or_default()
}

/// host-local's reservations: one file per reserved address in dataDir/NETWORK.
fn reservations(rt: &Runtime, network: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(rt.dir.join("ipam").join(network))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    v.retain(|n| !n.starts_with("last_reserved_ip") && n != "lock");
    v.sort();
    v
}

#[test]
fn version_lists_every_supported_spec_version() {
    require_root();
    let rt = Runtime::new("cni-ver");
    for stdin in [&b""[..], &br#"{"cniVersion":"1.1.0"}"#[..]] {
        let v = invoke_raw("vnet-cni", &rt.host.name, &[("CNI_COMMAND", "VERSION")], stdin).ok();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["supportedVersions"], json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    }
}

/// The spec's error cases, each with its code, and nothing left behind by any of them.
#[test]
fn spec_error_cases_get_their_codes_and_leave_nothing() {
    require_root();
    let rt = Runtime::new("cni-err");
    let c = container("cni-err-c");
    let conf = bridge_conf(&rt, "vnet-cni", "1.1.0");
    let text = conf.to_string();
    let path = cni_path();
    let ns = format!("/run/netns/{}", c.name);
    let call = |vars: &[(&str, &str)], stdin: &str| invoke_raw("vnet-cni", &rt.host.name, vars, stdin.as_bytes());
    let full = |cmd: &'static str| {
        vec![("CNI_COMMAND", cmd), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", ns.as_str()), ("CNI_IFNAME", "eth0"), ("CNI_PATH", path.as_str())]
    };

    // Environment (4).
    let e = call(&[], &text).err(4);
    assert_eq!(e["msg"], "required env variables [CNI_COMMAND] missing");
    let e = call(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")], &text).err(4);
    assert_eq!(e["msg"], "required env variables [CNI_CONTAINERID,CNI_NETNS] missing");
    assert_eq!(e["cniVersion"], "1.1.0", "the error speaks the configuration's version");
    assert_eq!(call(&[("CNI_COMMAND", "ATTACH")], &text).err(4)["msg"], "unknown CNI_COMMAND: ATTACH");
    let mut v = full("ADD");
    v[1] = ("CNI_CONTAINERID", "../etc");
    assert_eq!(call(&v, &text).err(4)["msg"], "invalid characters in containerID");
    let mut v = full("ADD");
    v[3] = ("CNI_IFNAME", "eth0:1");
    assert_eq!(call(&v, &text).err(4)["msg"], "invalid CNI_IFNAME");
    let mut v = full("ADD");
    v.push(("CNI_ARGS", "IgnoreUnknown"));
    assert_eq!(call(&v, &text).err(4)["msg"], "invalid CNI_ARGS");
    let not_ns = rt.dir.join("plain-file");
    std::fs::write(&not_ns, "x").unwrap();
    let mut v = full("ADD");
    let p = not_ns.display().to_string();
    v[2] = ("CNI_NETNS", p.as_str());
    assert_eq!(call(&v, &text).err(4)["msg"], "CNI_NETNS is not a network namespace");
    assert_eq!(call(&[("CNI_COMMAND", "GC")], &text).err(4)["msg"], "required env variables [CNI_PATH] missing");

    // The container (3).
    let mut v = full("ADD");
    v[2] = ("CNI_NETNS", "/run/netns/no-such-container-ns");
    assert_eq!(call(&v, &text).err(3)["msg"], "the container's network namespace does not exist");

    // Decoding (6) and configuration (7, 2).
    assert_eq!(call(&full("ADD"), "{\"cniVersion\":").err(6)["msg"], "cannot decode the network configuration");
    let mut bad = conf.clone();
    bad.as_object_mut().unwrap().remove("kind");
    assert_eq!(call(&full("ADD"), &bad.to_string()).err(7)["msg"], "the network configuration has no `kind`");
    let mut bad = conf.clone();
    bad["kind"] = "macvlan".into();
    bad["mode"] = "l3".into();
    call(&full("ADD"), &bad.to_string()).err(7);
    let mut bad = conf.clone();
    bad["mtu"] = "jumbo".into();
    call(&full("ADD"), &bad.to_string()).err(7);
    let mut bad = conf.clone();
    bad["ipam"]["type"] = "no-such-ipam".into();
    let e = call(&full("ADD"), &bad.to_string()).err(5);
    assert_eq!(e["msg"], "cannot find plugin `no-such-ipam`");
    let mut bad = conf.clone();
    bad["ipMasq"] = true.into();
    assert_eq!(call(&full("ADD"), &bad.to_string()).err(2)["msg"], "unsupported field `ipMasq`");
    // An IPAM failure after the devices were made (host-local refuses the range): they are
    // removed again, and the IPAM plugin's own error comes back.
    let mut bad_range = conf.clone();
    bad_range["ipam"]["ranges"] = json!([[{ "subnet": "not-a-subnet" }]]);
    let e = call(&full("ADD"), &bad_range.to_string());
    assert_ne!(e.code, 0);
    assert!(e.out["code"].as_u64().is_some_and(|c| c != 0), "{}", e.out);

    // Versions (1).
    let mut bad = conf.clone();
    bad["cniVersion"] = "2.0.0".into();
    let e = call(&full("ADD"), &bad.to_string()).err(1);
    assert_eq!(e["msg"], "incompatible CNI versions");
    assert_eq!(e["cniVersion"], "1.1.0", "an unsupported version is not echoed back");
    let mut old = conf.clone();
    old["cniVersion"] = "1.0.0".into();
    assert_eq!(call(&full("GC"), &old.to_string()).err(1)["msg"], "config version does not allow GC");
    assert_eq!(call(&full("STATUS"), &old.to_string()).err(1)["msg"], "config version does not allow STATUS");
    old["cniVersion"] = "0.3.1".into();
    assert_eq!(call(&full("CHECK"), &old.to_string()).err(1)["msg"], "config version does not allow CHECK");

    // CHECK needs the previous result.
    assert_eq!(call(&full("CHECK"), &text).err(7)["msg"], "CHECK needs `prevResult`, the result of the ADD to check");

    // A failure after IPAM answered (the kernel refuses a route through a gateway that is on
    // no connected network): the address is released and the devices are removed again.
    let mut bad_route = conf.clone();
    bad_route["ipam"]["routes"] = json!([{ "dst": "198.51.100.0/24", "gw": "172.31.9.9" }]);
    let e = call(&full("ADD"), &bad_route.to_string()).err(100);
    assert_eq!(e["msg"], "configure addresses and routes in the container");

    // A name already taken in the container: refused, and the refusal undoes the rest.
    c.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "other0"]);
    let e = call(&full("ADD"), &text).err(101);
    assert_eq!(e["msg"], "device eth0 already exists in the container");
    c.ip(&["link", "del", "eth0"]);

    // Nothing of any of these is left: no devices but lo (and the bridge, made by the attempt
    // that reached the kernel), no container device, no record, no reservation.
    let devs = rt.devices();
    assert!(devs.iter().all(|d| d == "lo" || d == "cni0"), "left in the runtime's namespace: {devs:?}");
    assert_eq!(names(&ip_json(Some(&c.name), &["link", "show"])), vec!["lo".to_string()]);
    assert!(records(&rt, "tnet").is_empty());
    assert!(reservations(&rt, "tnet").is_empty(), "{:?}", reservations(&rt, "tnet"));
}

/// ADD, traffic, CHECK (good and broken), DEL twice: what a runtime does over a container's
/// life, with every kernel object checked through `ip -j`.
#[test]
fn bridge_attachment_lifecycle() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-br");
    let (c1, c2) = (container("cni-br-a"), container("cni-br-b"));
    let conf = bridge_conf(&rt, "vnet-cni", "1.1.0");
    let r1 = rt.add(&conf, "ctr-a", &c1.name, "eth0");
    let r2 = rt.add(&conf, "ctr-b", &c2.name, "eth0");

    // The result: 1.1.0 shape, interfaces bridge / host end / container end.
    assert_eq!(r1["cniVersion"], "1.1.0");
    let ifs = r1["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3);
    assert_eq!(ifs[0]["name"], "cni0");
    assert!(ifs[1]["name"].as_str().unwrap().starts_with("veth"));
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], format!("/run/netns/{}", c1.name));
    assert_eq!(ifs[2]["mtu"], 1400, "1.1 results carry the MTU");
    assert_eq!(r1["ips"][0], json!({"interface": 2, "address": "10.88.0.2/24", "gateway": "10.88.0.1"}));
    assert_eq!(r1["ips"][1]["address"], "fd88::2/64");
    assert_eq!(r2["ips"][0]["address"], "10.88.0.3/24");
    assert!(r1["routes"].as_array().unwrap().contains(&json!({"dst": "0.0.0.0/0", "gw": "10.88.0.1"})));
    assert!(r1["routes"].as_array().unwrap().contains(&json!({"dst": "192.0.2.0/24"})));
    assert_eq!(r1["dns"], json!({"nameservers": ["10.88.0.1"], "search": ["lab.example"]}));

    // The kernel: the container end is a veth with the attachment's mark, the address, MTU
    // and routes; the host end is a hairpin port of cni0, which holds the gateways.
    let e = ip_link(Some(&c1.name), "eth0").unwrap();
    assert_eq!(e["linkinfo"]["info_kind"], "veth");
    assert_eq!(e["ifalias"], "vnet-cni:tnet:ctr-a:eth0");
    assert_eq!(e["mtu"], 1400);
    assert_eq!(e["address"], ifs[2]["mac"]);
    assert_eq!(global_addrs(&c1.name, "eth0"), vec!["10.88.0.2/24", "fd88::2/64"]);
    let rs = routes(&c1.name);
    assert!(rs.iter().any(|r| r["dst"] == "default" && r["gateway"] == "10.88.0.1" && r["dev"] == "eth0"), "{rs:?}");
    assert!(rs.iter().any(|r| r["dst"] == "192.0.2.0/24" && r["gateway"] == "10.88.0.1"), "{rs:?}");
    let host_end = ifs[1]["name"].as_str().unwrap();
    let h = ip_link(Some(&rt.host.name), host_end).unwrap();
    assert_eq!(h["master"], "cni0");
    assert_eq!(h["ifalias"], "vnet-cni:tnet:ctr-a:eth0");
    assert_eq!(h["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert_eq!(global_addrs(&rt.host.name, "cni0"), vec!["10.88.0.1/24", "fd88::1/64"]);
    let fwd = std::process::Command::new("ip").args(["netns", "exec", &rt.host.name, "sysctl", "-n", "net.ipv4.ip_forward"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1", "a gateway bridge forwards");

    // Traffic: container to gateway, container to container (both families).
    assert!(ping_ns(&c1.name, "10.88.0.1"));
    assert!(ping_ns(&c1.name, "10.88.0.3"));
    assert!(ping_ns(&c2.name, "fd88::2"));

    // CHECK: fine as made; a missing route, then a missing address, are reported.
    rt.check(&conf, &r1, "ctr-a", &c1.name, "eth0").ok();
    c1.ip(&["route", "del", "192.0.2.0/24"]);
    let e = rt.check(&conf, &r1, "ctr-a", &c1.name, "eth0").err(102);
    assert_eq!(e["msg"], "route to 192.0.2.0/24 is missing from the container");
    c1.ip(&["addr", "del", "10.88.0.2/24", "dev", "eth0"]);
    assert_eq!(rt.check(&conf, &r1, "ctr-a", &c1.name, "eth0").err(102)["msg"], "address 10.88.0.2/24 is missing from eth0");
    // CHECK of the other container is unaffected; with a foreign prevResult it fails.
    rt.check(&conf, &r2, "ctr-b", &c2.name, "eth0").ok();
    rt.check(&conf, &r1, "ctr-b", &c2.name, "eth0").err(102);

    // DEL, twice: devices, record and reservation gone; the bridge stays (shared).
    assert_eq!(records(&rt, "tnet").len(), 2);
    rt.del(&conf, "ctr-a", Some(&c1.name), "eth0");
    rt.del(&conf, "ctr-a", Some(&c1.name), "eth0");
    assert!(ip_link(Some(&c1.name), "eth0").is_none());
    assert!(ip_link(Some(&rt.host.name), host_end).is_none());
    assert_eq!(records(&rt, "tnet").len(), 1);
    assert_eq!(reservations(&rt, "tnet"), vec!["10.88.0.3", "fd88::3"]);
    assert!(ping_ns(&c2.name, "10.88.0.1"), "the other attachment keeps working");
    rt.del(&conf, "ctr-b", Some(&c2.name), "eth0");
    assert!(reservations(&rt, "tnet").is_empty());
    assert!(records(&rt, "tnet").is_empty());
    assert_eq!(rt.devices(), vec!["lo", "cni0"]);
}

/// DEL must succeed when the container is gone: its namespace deleted (devices with it), or
/// after a reboot (namespace, bridge, everything gone; only the record on disk), with or
/// without CNI_NETNS. The IPAM reservation is released in every case.
#[test]
fn del_is_idempotent_after_the_container_or_the_machine_is_gone() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-reboot");
    let conf = bridge_conf(&rt, "vnet-cni", "1.0.0");
    let c = container("cni-reboot-c");
    let r = rt.add(&conf, "gone-1", &c.name, "eth0");
    let host_end = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let name = c.name.clone();
    // ip netns del: the container's end goes with the namespace (asynchronously), its peer too.
    drop(c);
    rt.del(&conf, "gone-1", Some(&name), "eth0");
    assert!(ip_link(Some(&rt.host.name), &host_end).is_none());
    rt.del(&conf, "gone-1", None, "eth0");
    assert!(records(&rt, "tnet").is_empty());
    assert!(reservations(&rt, "tnet").is_empty());

    // "Reboot": the namespace and the bridge vanish, the state directories survive.
    let c = container("cni-reboot-d");
    rt.add(&conf, "gone-2", &c.name, "eth0");
    let name = c.name.clone();
    drop(c);
    rt.host.ip(&["link", "del", "cni0"]);
    assert_eq!(records(&rt, "tnet").len(), 1);
    rt.del(&conf, "gone-2", None, "eth0");
    assert!(records(&rt, "tnet").is_empty());
    assert!(reservations(&rt, "tnet").is_empty());
    rt.del(&conf, "gone-2", Some(&name), "eth0");
    assert_eq!(rt.devices(), vec!["lo"]);
}

/// GC: attachments the runtime no longer lists go (devices, reservation, record); listed ones
/// stay and keep working; marked host devices of the network without a record go too; devices
/// of another network or unmarked ones are not touched.
#[test]
fn gc_removes_attachments_the_runtime_no_longer_lists() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-gc");
    let conf = bridge_conf(&rt, "vnet-cni", "1.1.0");
    let cs: Vec<_> = (0..3).map(|i| container(&format!("cni-gc-{i}"))).collect();
    // ADDs of several containers at once, as a runtime may run them.
    let results: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (rt, conf) = (&rt, &conf);
                s.spawn(move || rt.add(conf, &format!("gc-{i}"), &c.name, "eth0"))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addrs: Vec<&str> = results.iter().map(|r| r["ips"][0]["address"].as_str().unwrap()).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "parallel ADDs got distinct addresses");
    // A leaked host device of this network, one of another network, one unmarked.
    rt.host.ip(&["link", "add", "leak0", "type", "veth", "peer", "name", "leak1"]);
    rt.host.ip(&["link", "set", "leak0", "alias", "vnet-cni:tnet:ghost:eth0"]);
    rt.host.ip(&["link", "add", "other0", "type", "veth", "peer", "name", "other1"]);
    rt.host.ip(&["link", "set", "other0", "alias", "vnet-cni:othernet:ghost:eth0"]);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-0", "ifname": "eth0"}, {"containerID": "gc-2", "ifname": "eth0"}]);
    let path = cni_path();
    invoke_raw("vnet-cni", &rt.host.name, &[("CNI_COMMAND", "GC"), ("CNI_PATH", &path)], gc.to_string().as_bytes()).ok();

    assert!(ip_link(Some(&cs[1].name), "eth0").is_none(), "gc-1's container device is gone");
    let gone = results[1]["interfaces"][1]["name"].as_str().unwrap();
    assert!(ip_link(Some(&rt.host.name), gone).is_none(), "gc-1's host end is gone");
    let mut left = records(&rt, "tnet");
    left.sort();
    assert_eq!(left, vec!["gc-0:eth0.json", "gc-2:eth0.json"]);
    let res = reservations(&rt, "tnet");
    assert!(!res.iter().any(|r| results[1]["ips"][0]["address"].as_str().unwrap().starts_with(&format!("{r}/"))), "gc-1's address released: {res:?}");
    assert_eq!(res.len(), 4, "two attachments, two families: {res:?}");
    let devs = rt.devices();
    assert!(!devs.contains(&"leak0".to_string()) && !devs.contains(&"leak1".to_string()), "{devs:?}");
    assert!(devs.contains(&"other0".to_string()), "another network's device stays: {devs:?}");
    for i in [0, 2] {
        assert!(ip_link(Some(&cs[i].name), "eth0").is_some());
        assert!(ping_ns(&cs[i].name, "10.88.0.1"));
    }
    // GC with everything listed changes nothing.
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-0", "ifname": "eth0"}, {"containerID": "gc-2", "ifname": "eth0"}]);
    invoke_raw("vnet-cni", &rt.host.name, &[("CNI_COMMAND", "GC"), ("CNI_PATH", &path)], gc.to_string().as_bytes()).ok();
    assert_eq!(records(&rt, "tnet").len(), 2);
    for i in [0, 2] {
        rt.del(&conf, &format!("gc-{i}"), Some(&cs[i].name), "eth0");
    }
    assert!(reservations(&rt, "tnet").is_empty());
}

/// The same bridge configuration through the reference `bridge` plugin and through vnet-cni,
/// each in its own runtime namespace: the same result (shape and values, host end names
/// aside), the same kernel objects, the same routes.
#[test]
fn bridge_matches_the_reference_plugin() {
    require_root();
    require_reference();
    for version in ["1.0.0", "0.4.0", "0.3.1", "0.2.0"] {
        let (rr, rv) = (Runtime::new("cni-ref-br"), Runtime::new("cni-vnet-br"));
        let (cr, cv) = (container("cni-ref-brc"), container("cni-vnet-brc"));
        let (mut conf_r, mut conf_v) = (bridge_conf(&rr, "bridge", version), bridge_conf(&rv, "vnet-cni", version));
        // The reference plugin's CHECK looks for a route without `gw` as a route without a
        // gateway, while its ADD installs it through the subnet's gateway (it fails its own
        // CHECK); give the extra route a gateway so both CHECKs can run.
        for c in [&mut conf_r, &mut conf_v] {
            c["ipam"]["routes"] = json!([{ "dst": "192.0.2.0/24", "gw": "10.88.0.254" }]);
        }
        let a = rr.add(&conf_r, "same-1", &cr.name, "eth0");
        let b = rv.add(&conf_v, "same-1", &cv.name, "eth0");
        assert_eq!(shape(&a), shape(&b), "result shapes differ ({version}):\n{a}\n{b}");
        let norm = |mut r: Value| {
            // 0.1.0/0.2.0 results have no interfaces (ip4/ip6 only).
            for i in r["interfaces"].as_array_mut().into_iter().flatten() {
                i.as_object_mut().unwrap().remove("mac");
                if i["name"].as_str().unwrap().starts_with("veth") {
                    i["name"] = "veth*".into();
                }
                if let Some(s) = i.get_mut("sandbox") {
                    *s = "sandbox".into();
                }
            }
            r
        };
        assert_eq!(norm(a.clone()), norm(b.clone()), "results differ ({version})");
        // Kernel objects.
        let (le_r, le_v) = (ip_link(Some(&cr.name), "eth0").unwrap(), ip_link(Some(&cv.name), "eth0").unwrap());
        assert_eq!(link_essentials(&le_r), link_essentials(&le_v), "container ends differ ({version})");
        assert_eq!(global_addrs(&cr.name, "eth0"), global_addrs(&cv.name, "eth0"));
        assert_eq!(routes(&cr.name), routes(&cv.name), "container routes differ ({version})");
        let (br_r, br_v) = (ip_link(Some(&rr.host.name), "cni0").unwrap(), ip_link(Some(&rv.host.name), "cni0").unwrap());
        assert_eq!(link_essentials(&br_r), link_essentials(&br_v), "bridges differ ({version})");
        assert_eq!(global_addrs(&rr.host.name, "cni0"), global_addrs(&rv.host.name, "cni0"));
        if version != "0.2.0" {
            assert_eq!(br_r["address"], a["interfaces"][0]["mac"], "the reference reports the bridge's MAC");
            assert_eq!(br_v["address"], b["interfaces"][0]["mac"], "vnet-cni reports the bridge's MAC");
        }
        // The host end: the bridge's one port.
        let host_end = |rt: &Runtime| {
            let ports: Vec<String> =
                rt.ip(&["link", "show", "master", "cni0"]).as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_string()).collect();
            assert_eq!(ports.len(), 1, "{ports:?}");
            ports[0].clone()
        };
        if version != "0.2.0" {
            assert_eq!(a["interfaces"][1]["name"].as_str().unwrap(), host_end(&rr));
            assert_eq!(b["interfaces"][1]["name"].as_str().unwrap(), host_end(&rv));
        }
        let (h_r, h_v) = (ip_link(Some(&rr.host.name), &host_end(&rr)).unwrap(), ip_link(Some(&rv.host.name), &host_end(&rv)).unwrap());
        assert_eq!(link_essentials(&h_r), link_essentials(&h_v), "host ends differ ({version})");
        assert_eq!(routes(&rr.host.name), routes(&rv.host.name), "host routes differ ({version})");
        assert!(ping_ns(&cr.name, "10.88.0.1") && ping_ns(&cv.name, "10.88.0.1"));
        // CHECK (0.4.0 and later) passes for both, DEL leaves the same.
        if !matches!(version, "0.3.1" | "0.2.0") {
            rr.check(&conf_r, &a, "same-1", &cr.name, "eth0").ok();
            rv.check(&conf_v, &b, "same-1", &cv.name, "eth0").ok();
        }
        rr.del(&conf_r, "same-1", Some(&cr.name), "eth0");
        rv.del(&conf_v, "same-1", Some(&cv.name), "eth0");
        assert_eq!(rr.devices(), rv.devices());
        assert_eq!(names(&ip_json(Some(&cr.name), &["link", "show"])), names(&ip_json(Some(&cv.name), &["link", "show"])));
    }
}

/// macvlan in each mode both plugins offer, side by side: same device options and addresses,
/// and the same traffic behaviour between two containers on one master (bridge: they talk;
/// private and vepa without a hairpinning switch: they do not).
#[test]
fn macvlan_modes_match_the_reference_plugin() {
    require_root();
    require_reference();
    for mode in ["bridge", "private", "vepa"] {
        let mut seen = Vec::new();
        for plugin in ["macvlan", "vnet-cni"] {
            let rt = Runtime::new(&format!("cni-mv-{}", &plugin[..4]));
            // The master: a veth end in the runtime's namespace (the other end stays there).
            rt.host.ip(&["link", "add", "lan0", "type", "veth", "peer", "name", "lan0p"]);
            rt.host.ip(&["link", "set", "lan0", "up"]);
            rt.host.ip(&["link", "set", "lan0p", "up"]);
            let mut conf = json!({
                "cniVersion": "1.0.0", "name": "mvnet", "type": plugin, "master": "lan0", "mode": mode, "mtu": 1450,
                "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.77.0.0/24", "gateway": "10.77.0.254" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
            });
            if plugin == "vnet-cni" {
                conf["kind"] = "macvlan".into();
            }
            let conf = rt.conf(conf);
            let (c1, c2) = (container("cni-mv-a"), container("cni-mv-b"));
            let r1 = rt.add(&conf, "mv-1", &c1.name, "eth0");
            let r2 = rt.add(&conf, "mv-2", &c2.name, "eth0");
            let l = ip_link(Some(&c1.name), "eth0").unwrap();
            assert_eq!(l["linkinfo"]["info_kind"], "macvlan");
            assert_eq!(l["linkinfo"]["info_data"]["mode"], mode);
            let talk = ping_ns(&c1.name, "10.77.0.2") && ping_ns(&c2.name, "10.77.0.1");
            assert_eq!(talk, mode == "bridge", "{plugin} {mode}: siblings talk = {talk}");
            seen.push((shape(&r1), r1["ips"].clone(), r1["routes"].clone(), link_essentials(&l), global_addrs(&c1.name, "eth0"), routes(&c1.name), talk));
            if plugin == "vnet-cni" {
                assert_eq!(l["ifalias"], "vnet-cni:mvnet:mv-1:eth0");
                rt.check(&conf, &r1, "mv-1", &c1.name, "eth0").ok();
            }
            let _ = r2;
            rt.del(&conf, "mv-1", Some(&c1.name), "eth0");
            rt.del(&conf, "mv-2", Some(&c2.name), "eth0");
            rt.del(&conf, "mv-2", Some(&c2.name), "eth0");
            assert!(ip_link(Some(&c1.name), "eth0").is_none() && ip_link(Some(&c2.name), "eth0").is_none());
        }
        assert_eq!(seen[0], seen[1], "macvlan mode {mode}: reference and vnet-cni differ");
    }
}

/// IPAM through the reference `static` plugin (delegated as the spec says) and through the
/// built-in `vnet-static` give the same result and the same addresses; CNI_ARGS reach both.
#[test]
fn static_ipam_delegated_and_builtin_agree() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-static");
    let mut out = Vec::new();
    for (i, t) in ["static", "vnet-static"].iter().enumerate() {
        let c = container("cni-static-c");
        let conf = rt.conf(json!({
            "cniVersion": "1.1.0", "name": format!("st{i}"), "type": "vnet-cni", "kind": "bridge", "bridge": format!("br-st{i}"),
            "ipam": {
                "type": t,
                "addresses": [{ "address": "10.66.0.5/24", "gateway": "10.66.0.1" }],
                "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "198.51.100.0/24", "gw": "10.66.0.9" }],
                "dns": { "nameservers": ["10.66.0.1"] }
            }
        }));
        let path = cni_path();
        let ns = format!("/run/netns/{}", c.name);
        let vars = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "st"),
            ("CNI_NETNS", &ns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &path),
            ("CNI_ARGS", "IgnoreUnknown=1;IP=fd66::5/64"),
        ];
        let r = invoke_raw("vnet-cni", &rt.host.name, &vars, conf.to_string().as_bytes()).ok();
        assert_eq!(global_addrs(&c.name, "eth0"), vec!["10.66.0.5/24", "fd66::5/64"], "{t}");
        out.push((r["ips"].clone(), r["routes"].clone(), r["dns"].clone(), routes(&c.name)));
        rt.del(&conf, "st", Some(&c.name), "eth0");
    }
    assert_eq!(out[0], out[1]);
}

/// In a configuration list: after the reference `loopback` (vnet-cni receives its result as
/// prevResult and extends it) and before the reference `tuning` (which reads vnet-cni's
/// result and changes the MAC); CHECK over the chain; DEL in reverse.
#[test]
fn chains_after_and_before_reference_plugins() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-chain");
    let c = container("cni-chain-c");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "chain",
        "plugins": [
            { "type": "loopback" },
            { "type": "vnet-cni", "kind": "bridge", "bridge": "cni-chain", "isGateway": true,
              "ipam": { "type": "host-local", "subnet": "10.55.0.0/24" } },
            { "type": "tuning", "mac": "02:55:00:00:00:42", "sysctl": { "net.ipv4.conf.eth0.rp_filter": "2" } }
        ]
    });
    let r = rt.add_list(&list, "ch-1", &c.name, "eth0");
    let ifs = r["interfaces"].as_array().unwrap();
    let names: Vec<&str> = ifs.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "lo", "loopback's interface stays first: {r}");
    assert_eq!(&names[1..], &["cni-chain", names[2], "eth0"]);
    let lo_ips: Vec<&Value> = r["ips"].as_array().unwrap().iter().filter(|i| i["interface"] == 0).collect();
    assert!(!lo_ips.is_empty(), "loopback's addresses stay: {r}");
    let mine = r["ips"].as_array().unwrap().iter().find(|i| i["address"] == "10.55.0.2/24").expect("vnet-cni's address");
    assert_eq!(mine["interface"], 3, "renumbered after loopback's interface");
    assert_eq!(ifs[3]["mac"], "02:55:00:00:00:42", "tuning changed the MAC vnet-cni reported");
    assert_eq!(ip_link(Some(&c.name), "eth0").unwrap()["address"], "02:55:00:00:00:42");
    assert!(ping_ns(&c.name, "10.55.0.1"));
    for (i, reply) in rt.check_list(&list, &r, "ch-1", &c.name, "eth0").into_iter().enumerate() {
        assert_eq!(reply.code, 0, "CHECK of plugin {i}: {}", reply.out);
    }
    rt.del_list(&list, &r, "ch-1", Some(&c.name), "eth0");
    assert!(ip_link(Some(&c.name), "eth0").is_none());
    rt.del_list(&list, &r, "ch-1", Some(&c.name), "eth0");
}

/// tap: a persistent tap device in the container, a port of a bridge there; a program opens
/// it; CHECK and DEL (which clears persistence: rtnetlink cannot delete it).
#[test]
fn tap_attachment_in_the_container() {
    require_root();
    let rt = Runtime::new("cni-tap");
    let c = container("cni-tap-c");
    let conf = rt.conf(json!({
        "cniVersion": "1.1.0", "name": "tapnet", "type": "vnet-cni", "kind": "tap", "bridge": "br-vm", "mtu": 9000, "multiQueue": true,
        "mac": "02:aa:00:00:00:01",
        "ipam": { "type": "vnet-static", "addresses": [{ "address": "10.44.0.2/24" }] }
    }));
    let r = rt.add(&conf, "vm-1", &c.name, "tap0");
    assert_eq!(r["interfaces"][0]["name"], "tap0");
    assert_eq!(r["interfaces"][0]["mac"], "02:aa:00:00:00:01");
    let l = ip_link(Some(&c.name), "tap0").unwrap();
    assert_eq!(l["linkinfo"]["info_kind"], "tun");
    assert_eq!(l["linkinfo"]["info_data"]["type"], "tap");
    assert_eq!(l["linkinfo"]["info_data"]["multi_queue"], true);
    assert_eq!(l["master"], "br-vm");
    assert_eq!(l["mtu"], 9000);
    assert_eq!(l["ifalias"], "vnet-cni:tapnet:vm-1:tap0");
    assert_eq!(global_addrs(&c.name, "tap0"), vec!["10.44.0.2/24"]);
    assert_eq!(rt.devices(), vec!["lo"], "nothing on the host side");
    rt.check(&conf, &r, "vm-1", &c.name, "tap0").ok();
    rt.del(&conf, "vm-1", Some(&c.name), "tap0");
    rt.del(&conf, "vm-1", Some(&c.name), "tap0");
    assert!(ip_link(Some(&c.name), "tap0").is_none());
}

/// STATUS: ready when ADD can work; code 50 when it cannot (a missing master, an IPAM plugin
/// not on CNI_PATH, a kernel without the kind).
#[test]
fn status_reports_readiness() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-status");
    let path = cni_path();
    let status = |conf: &Value| invoke_raw("vnet-cni", &rt.host.name, &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", &path)], conf.to_string().as_bytes());
    status(&bridge_conf(&rt, "vnet-cni", "1.1.0")).ok();
    let mut c = bridge_conf(&rt, "vnet-cni", "1.1.0");
    c["ipam"]["type"] = "no-such-ipam".into();
    assert_eq!(status(&c).err(50)["msg"], "cannot find plugin `no-such-ipam`");
    let mv = rt.conf(json!({"cniVersion": "1.1.0", "name": "m", "type": "vnet-cni", "kind": "macvlan", "master": "lan9"}));
    assert_eq!(status(&mv).err(50)["msg"], "master device lan9 not found");
    rt.host.ip(&["link", "add", "lan9", "type", "veth", "peer", "name", "lan9p"]);
    status(&mv).ok();
    // ipvlan: ready exactly when the kernel can make ipvlan devices.
    let iv = rt.conf(json!({"cniVersion": "1.1.0", "name": "i", "type": "vnet-cni", "kind": "ipvlan", "master": "lan9"}));
    let kernel_has = vnet::lifecycle::preflight::missing_named(&["ipvlan"]).unwrap().is_empty();
    let r = status(&iv);
    if kernel_has {
        r.ok();
    } else {
        assert_eq!(r.err(50)["msg"], "the kernel cannot make ipvlan devices");
    }
    // A bridge name held by another kind of device.
    rt.host.ip(&["link", "add", "cni0", "type", "veth", "peer", "name", "cni0p"]);
    assert_eq!(status(&bridge_conf(&rt, "vnet-cni", "1.1.0")).err(50)["msg"], "cni0 exists but is not a bridge");
}

/// A child process of the test, killed (by its pid) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// IPAM by DHCP, delegated to the reference `dhcp` plugin (whose daemon runs the client
/// inside the container's namespace) against a DHCP server (busybox udhcpd) on the bridge in
/// the runtime's namespace: the lease, its router and DNS server come back in the result and
/// on the device; DEL releases it.
#[test]
fn dhcp_ipam_is_delegated_to_the_reference_daemon() {
    require_root();
    require_reference();
    let rt = Runtime::new("cni-dhcp");
    rt.host.ip(&["link", "add", "cni-dh", "type", "bridge"]);
    rt.host.ip(&["addr", "add", "10.99.0.1/24", "dev", "cni-dh"]);
    rt.host.ip(&["link", "set", "cni-dh", "up"]);
    let conf_file = rt.dir.join("udhcpd.conf");
    std::fs::write(
        &conf_file,
        format!(
            "start 10.99.0.50\nend 10.99.0.60\ninterface cni-dh\nlease_file {}\npidfile {}\noption subnet 255.255.255.0\noption router 10.99.0.1\noption dns 10.99.0.53\noption lease 600\n",
            rt.dir.join("leases").display(),
            rt.dir.join("udhcpd.pid").display()
        ),
    )
    .unwrap();
    std::fs::write(rt.dir.join("leases"), "").unwrap();
    let spawn = |args: &[&str]| {
        Child(
            std::process::Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", rt.host.name))
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start helper"),
        )
    };
    let _server = spawn(&["busybox", "udhcpd", "-f", conf_file.to_str().unwrap()]);
    let sock = rt.dir.join("dhcp.sock");
    let _daemon = spawn(&["/usr/lib/cni/dhcp", "daemon", "-socketpath", sock.to_str().unwrap()]);
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(sock.exists(), "the dhcp daemon did not start");
    let c = container("cni-dhcp-c");
    let conf = rt.conf(json!({
        "cniVersion": "1.0.0", "name": "dh", "type": "vnet-cni", "kind": "bridge", "bridge": "cni-dh",
        "ipam": { "type": "dhcp", "daemonSocketPath": sock.display().to_string() }
    }));
    let r = rt.add(&conf, "dh-1", &c.name, "eth0");
    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    let host: std::net::Ipv4Addr = addr.split('/').next().unwrap().parse().unwrap();
    assert!((50..=60).contains(&host.octets()[3]) && addr.ends_with("/24"), "leased {addr}");
    assert_eq!(r["ips"][0]["gateway"], "10.99.0.1");
    assert_eq!(r["ips"][0]["interface"], 2);
    assert_eq!(global_addrs(&c.name, "eth0"), vec![addr.clone()]);
    assert!(ping_ns(&c.name, "10.99.0.1"));
    rt.check(&conf, &r, "dh-1", &c.name, "eth0").ok();
    rt.del(&conf, "dh-1", Some(&c.name), "eth0");
    rt.del(&conf, "dh-1", Some(&c.name), "eth0");
    assert!(ip_link(Some(&c.name), "eth0").is_none());
}
