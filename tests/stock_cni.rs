//! vnet-cni's ipvlan and vlan kinds, side by side with the reference `ipvlan` and `vlan`
//! plugins, on a kernel that has them (the stock-kernel lane): the same result, the same kernel
//! objects, the same traffic behaviour.

#[path = "common/cni.rs"]
mod cni;
mod common;

use cni::*;
use common::*;
use serde_json::{json, Value};

/// A runtime namespace with a veth pair `lan0`/`lan0p`, both up (the master and its far end).
fn runtime_with_lan(base: &str) -> Runtime {
    let rt = Runtime::new(base);
    rt.host.ip(&["link", "add", "lan0", "type", "veth", "peer", "name", "lan0p"]);
    rt.host.ip(&["link", "set", "lan0", "up"]);
    rt.host.ip(&["link", "set", "lan0p", "up"]);
    rt
}

#[test]
fn ipvlan_modes_match_the_reference_plugin() {
    require_root();
    require(&["ipvlan"]);
    require_reference();
    for mode in ["l2", "l3", "l3s"] {
        let mut seen = Vec::new();
        for plugin in ["ipvlan", "vnet-cni"] {
            let rt = runtime_with_lan(&format!("cni-iv-{}", &plugin[..4]));
            let mut conf = json!({
                "cniVersion": "1.0.0", "name": "ivnet", "type": plugin, "master": "lan0", "mode": mode, "mtu": 1400,
                "ipam": { "type": "host-local", "subnet": "10.78.0.0/24" }
            });
            if plugin == "vnet-cni" {
                conf["kind"] = "ipvlan".into();
            }
            let conf = rt.conf(conf);
            let (c1, c2) = (container("cni-iv-a"), container("cni-iv-b"));
            let r1 = rt.add(&conf, "iv-1", &c1.name, "eth0");
            rt.add(&conf, "iv-2", &c2.name, "eth0");
            let l = ip_link(Some(&c1.name), "eth0").unwrap();
            assert_eq!(l["linkinfo"]["info_kind"], "ipvlan");
            assert_eq!(l["linkinfo"]["info_data"]["mode"], mode);
            let master_mac = ip_link(Some(&rt.host.name), "lan0").unwrap()["address"].clone();
            assert_eq!(r1["interfaces"][0]["mac"], master_mac, "an ipvlan shares its master's MAC");
            let talk = ping_ns(&c1.name, "10.78.0.3");
            seen.push((shape(&r1), r1["ips"].clone(), link_essentials(&l), global_addrs(&c1.name, "eth0"), routes(&c1.name), talk));
            if plugin == "vnet-cni" {
                assert_eq!(l["ifalias"], "vnet-cni:ivnet:iv-1:eth0");
                rt.check(&conf, &r1, "iv-1", &c1.name, "eth0").ok();
            }
            rt.del(&conf, "iv-1", Some(&c1.name), "eth0");
            rt.del(&conf, "iv-2", Some(&c2.name), "eth0");
            rt.del(&conf, "iv-2", Some(&c2.name), "eth0");
            assert!(ip_link(Some(&c1.name), "eth0").is_none() && ip_link(Some(&c2.name), "eth0").is_none());
        }
        assert_eq!(seen[0], seen[1], "ipvlan {mode}: reference and vnet-cni differ");
    }
}

#[test]
fn vlan_matches_the_reference_plugin() {
    require_root();
    require(&["vlan"]);
    require_reference();
    let mut seen: Vec<Value> = Vec::new();
    for plugin in ["vlan", "vnet-cni"] {
        let rt = runtime_with_lan(&format!("cni-vl-{}", &plugin[..4]));
        // The far end carries VLAN 100 too, with the gateway.
        rt.host.ip(&["link", "add", "link", "lan0p", "name", "lan0p.100", "type", "vlan", "id", "100"]);
        rt.host.ip(&["addr", "add", "10.100.0.1/24", "dev", "lan0p.100"]);
        rt.host.ip(&["link", "set", "lan0p.100", "up"]);
        let mut conf = json!({
            "cniVersion": "1.0.0", "name": "vlnet", "type": plugin, "master": "lan0", "vlanId": 100, "mtu": 1400,
            "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.100.0.0/24", "rangeStart": "10.100.0.10", "gateway": "10.100.0.1" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
        });
        if plugin == "vnet-cni" {
            conf["kind"] = "vlan".into();
        }
        let conf = rt.conf(conf);
        let c = container("cni-vl-c");
        let r = rt.add(&conf, "vl-1", &c.name, "eth0");
        let l = ip_link(Some(&c.name), "eth0").unwrap();
        assert_eq!(l["linkinfo"]["info_kind"], "vlan");
        assert_eq!(l["linkinfo"]["info_data"]["id"], 100);
        assert!(ping_ns(&c.name, "10.100.0.1"), "{plugin}: tagged traffic reaches the far end");
        // The reference plugin makes the VLAN in the runtime's namespace and moves it, after
        // which the kernel reports its operational state as UNKNOWN; vnet-cni's is born in the
        // container and reports UP. Both carry traffic (checked above).
        let mut ess = link_essentials(&l);
        let oper = ess["operstate"].as_str().unwrap_or("").to_string();
        assert!(oper == "UP" || oper == "UNKNOWN", "{plugin}: operstate {oper}");
        ess.as_object_mut().unwrap().remove("operstate");
        seen.push(json!([shape(&r), r["ips"], r["routes"], ess, global_addrs(&c.name, "eth0"), routes(&c.name)]));
        if plugin == "vnet-cni" {
            assert_eq!(l["ifalias"], "vnet-cni:vlnet:vl-1:eth0");
            rt.check(&conf, &r, "vl-1", &c.name, "eth0").ok();
        }
        rt.del(&conf, "vl-1", Some(&c.name), "eth0");
        rt.del(&conf, "vl-1", Some(&c.name), "eth0");
        assert!(ip_link(Some(&c.name), "eth0").is_none());
    }
    assert_eq!(seen[0], seen[1], "vlan: reference and vnet-cni differ");
}

/// STATUS on a kernel with ipvlan: ready.
#[test]
fn status_is_ready_for_ipvlan_on_a_kernel_with_it() {
    require_root();
    require(&["ipvlan"]);
    let rt = runtime_with_lan("cni-iv-status");
    let conf = rt.conf(json!({"cniVersion": "1.1.0", "name": "i", "type": "vnet-cni", "kind": "ipvlan", "master": "lan0"}));
    let path = cni_path();
    invoke_raw("vnet-cni", &rt.host.name, &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", &path)], conf.to_string().as_bytes()).ok();
}
