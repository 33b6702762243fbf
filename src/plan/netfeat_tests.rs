//! The feature planner against hand-made kernel states: fresh, up to date, drifted, removed.

use std::collections::BTreeMap;

use super::*;
use crate::model::{load_str, Format};
use crate::observed::netfeat::{NftContent, NftTable, ObservedBpf, ObservedQdisc};
use crate::observed::{ObservedLink, ObservedNs};
use crate::state::netfeat::BpfRecord;

const LAB: &str = "name: p
nodes:
  gw1:
    interfaces:
      lan0: { addresses: [10.1.0.1/24] }
      wan0: { addresses: [198.51.100.1/24] }
    nat:
      masquerade: [{ source: 10.1.0.0/24, out: wan0 }]
    tc:
      wan0: { delay: 20ms, loss: 1% }
      lan0: { rate: 10mbit }
    bpf:
      - { dev: lan0, hook: tc-egress, object: /x.o, program: p }
  gw2:
    interfaces:
      wan0: { addresses: [198.51.100.2/24] }
  h:
    interfaces:
      eth0: { addresses: [10.1.0.2/24] }
links:
  - endpoints: [gw1:wan0, gw2:wan0]
  - endpoints: [h:eth0, gw1:lan0]
ipsec:
  - name: t
    ends:
      - { node: gw1, address: 198.51.100.1, subnet: 10.1.0.0/24 }
      - { node: gw2, address: 198.51.100.2 }
    key: \"0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\"
";

fn lab(text: &str) -> Lab {
    load_str("p.yaml", text, Format::Yaml).unwrap_or_else(|d| panic!("{}", d.compact())).lab
}

fn ops(steps: &[Step]) -> Vec<String> {
    steps.iter().map(|s| s.op.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// The kernel state that `lab` declares, as the observer would report it.
fn converged(lab: &Lab, rec: &Record) -> Observed {
    let xw = xfrm_desired(lab, rec);
    let mut o = Observed::default();
    for (n, node) in &lab.nodes {
        let mut ns = ObservedNs::default();
        for (i, name) in node.interfaces.keys().enumerate() {
            ns.links.push(ObservedLink { ifindex: i as u32 + 1, name: name.clone(), ..Default::default() });
        }
        let f = &mut ns.features;
        f.nft = node.features.nft.as_ref().map(|s| {
            let content = NftContent { rules: 1, digest: format!("as-written-{}", s.fingerprint()) };
            NftTable { name: table_name(&lab.name), fingerprint: Some(s.fingerprint()), written: Some(content.clone()), content }
        });
        for (dev, imp) in &node.features.tc {
            f.qdiscs.insert(
                dev.clone(),
                ObservedQdisc {
                    kind: imp.qdisc_kind().into(),
                    handle: VNET_QDISC_HANDLE,
                    params: crate::kernel::netfeat::tc::expected_params(imp),
                    options: vec![],
                },
            );
        }
        for a in &node.features.bpf {
            f.bpf.push(ObservedBpf { ifname: a.dev.clone(), hook: a.hook, prog_id: 42, name: "vnet:p".into(), prio: VNET_BPF_PRIO, xdp_mode: 0 });
            f.object_hashes.insert(a.object.clone(), Ok("h1".into()));
        }
        if let Some((s, p)) = xw.get(n.as_str()) {
            f.xfrm_states = s.clone();
            f.xfrm_policies = p.clone();
        }
        o.nodes.insert(n.clone(), NsState::Owned(ns));
    }
    o
}

fn record() -> LabState {
    let mut st = LabState::new("p", false);
    st.netfeat.bpf.insert(
        "gw1".into(),
        vec![BpfRecord {
            dev: "lan0".into(),
            hook: crate::model::netfeat::spec::BpfHookSpec::TcEgress,
            object: "/x.o".into(),
            program: "p".into(),
            mode: None,
            hash: "h1".into(),
            prog_id: 42,
        }],
    );
    st
}

#[test]
fn a_fresh_lab_plans_every_feature() {
    let l = lab(LAB);
    let steps = plan(&l, &Observed::default(), None, &Default::default());
    let o = ops(&steps);
    assert!(o.contains(&"~ nft gw1: table inet vnet_p (1 masquerade)".to_string()), "{o:#?}");
    assert!(o.contains(&"~ qdisc gw1:wan0 netem delay 20ms loss 1%".to_string()), "{o:#?}");
    assert!(o.contains(&"~ qdisc gw1:lan0 tbf rate 10mbit".to_string()), "{o:#?}");
    assert!(o.contains(&"+ bpf gw1:lan0 tc-egress p from /x.o".to_string()), "{o:#?}");
    // 2 SAs in each end; gw1 has out/in/fwd policies (a subnet behind it), gw2 out/in (itself).
    assert_eq!(o.iter().filter(|x| x.contains("state")).count(), 4, "{o:#?}");
    assert_eq!(o.iter().filter(|x| x.starts_with("+ xfrm gw1: policy")).count(), 3, "{o:#?}");
    assert_eq!(o.iter().filter(|x| x.starts_with("+ xfrm gw2: policy")).count(), 2, "{o:#?}");
    assert!(o.contains(&"+ xfrm gw1: policy 10.1.0.0/24 -> 198.51.100.2/32 dir out".to_string()), "{o:#?}");
    assert!(o.contains(&"+ xfrm gw1: policy 198.51.100.2/32 -> 10.1.0.0/24 dir fwd".to_string()), "{o:#?}");
    assert!(steps.iter().all(|s| s.stage == stage::FEATURES));
}

#[test]
fn a_converged_lab_plans_nothing() {
    let l = lab(LAB);
    let st = record();
    let o = converged(&l, &st.netfeat);
    assert!(plan(&l, &o, Some(&st), &Default::default()).is_empty());
}

#[test]
fn drift_plans_only_the_difference() {
    let l = lab(LAB);
    let st = record();
    let mut o = converged(&l, &st.netfeat);
    let NsState::Owned(gw1) = o.nodes.get_mut("gw1").unwrap() else { unreachable!() };
    // Someone changed the delay, the program was replaced, a policy vanished, a key changed.
    gw1.features.qdiscs.get_mut("wan0").unwrap().params.delay_ns = 50_000_000;
    gw1.features.bpf[0].prog_id = 43;
    gw1.features.xfrm_policies.retain(|p| p.dir != 2);
    gw1.features.xfrm_states[0].aead.as_mut().unwrap().key[0] ^= 1;
    let o2 = ops(&plan(&l, &o, Some(&st), &Default::default()));
    let spi = l.ipsec[0].spi[0];
    assert_eq!(
        o2,
        vec![
            format!("- xfrm gw1: state 198.51.100.1 -> 198.51.100.2 spi {spi:#x}"),
            "~ qdisc gw1:wan0 netem delay 20ms loss 1%".to_string(),
            "+ bpf gw1:lan0 tc-egress p from /x.o".to_string(),
            format!("+ xfrm gw1: state 198.51.100.1 -> 198.51.100.2 spi {spi:#x} reqid 1"),
            "+ xfrm gw1: policy 198.51.100.2/32 -> 10.1.0.0/24 dir fwd".to_string(),
        ]
    );
}

/// A table whose rules were changed by hand inside it (its content no longer what nft listed
/// when vnet wrote it) is rewritten whole; so is one an older vnet wrote without recording its
/// content, once; one of another ruleset or gone is written as for a new node.
#[test]
fn a_table_changed_by_hand_is_rewritten() {
    let l = lab(LAB);
    let st = record();
    let o = converged(&l, &st.netfeat);
    let with_table = |f: &dyn Fn(&mut Option<NftTable>)| {
        let mut o = o.clone();
        let NsState::Owned(gw1) = o.nodes.get_mut("gw1").unwrap() else { unreachable!() };
        f(&mut gw1.features.nft);
        let steps = plan(&l, &o, Some(&st), &Default::default());
        let nft: Vec<&Step> =
            steps.iter().filter(|s| matches!(&s.op, Op::Feature { change: FeatureOp::SetNft { .. } | FeatureOp::DeleteNft { .. }, .. })).collect();
        assert_eq!(steps.len(), nft.len(), "only the table: {:#?}", ops(&steps));
        ops(&steps)
    };
    let edited = with_table(&|t| {
        let t = t.as_mut().unwrap();
        t.content = NftContent { rules: 0, digest: "after-nft-flush-chain".into() };
    });
    assert_eq!(edited, ["~ nft gw1: table inet vnet_p (1 masquerade) rewritten: changed outside vnet (0 rules where vnet wrote 1)"]);
    let old = with_table(&|t| t.as_mut().unwrap().written = None);
    assert_eq!(old, ["~ nft gw1: table inet vnet_p (1 masquerade) rewritten: written by an older vnet, which kept no record of its rules"]);
    assert_eq!(with_table(&|t| *t = None), ["~ nft gw1: table inet vnet_p (1 masquerade)"]);
    assert_eq!(with_table(&|t| t.as_mut().unwrap().fingerprint = Some("0".into())), ["~ nft gw1: table inet vnet_p (1 masquerade)"]);
    let drift = |o: &Observed| {
        plan(&l, o, Some(&st), &Default::default()).into_iter().find_map(|s| match s.op {
            Op::Feature { change: FeatureOp::SetNft { drift, .. }, .. } => Some(drift),
            _ => None,
        })
    };
    assert_eq!(drift(&o), None);
    let mut gone = o.clone();
    if let Some(NsState::Owned(gw1)) = gone.nodes.get_mut("gw1") {
        gw1.features.nft = None;
    }
    assert_eq!(drift(&gone), Some(NftDrift::Absent));
}

#[test]
fn removed_declarations_are_undone_and_foreign_qdiscs_left_alone() {
    let full = lab(LAB);
    let mut st = record();
    let o = converged(&full, &st.netfeat);
    let mut prev = BTreeMap::new();
    prev.insert("lan0".to_string(), Some(ObservedQdisc { kind: "fq_codel".into(), handle: 0x8001_0000, ..Default::default() }));
    st.netfeat.qdiscs.insert("gw1".into(), prev);
    // The same lab without any feature section.
    let bare_text: String = LAB
        .lines()
        .filter(|l| {
            !l.contains("nat:")
                && !l.contains("masquerade")
                && !l.contains("tc:")
                && !l.contains("wan0: { delay")
                && !l.contains("lan0: { rate")
                && !l.contains("bpf:")
                && !l.contains("hook: tc-egress")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bare_text = bare_text.split("ipsec:").next().unwrap().to_string();
    let bare = lab(&bare_text);
    let mut o = o;
    // A qdisc vnet did not install stays.
    let NsState::Owned(h) = o.nodes.get_mut("h").unwrap() else { unreachable!() };
    h.features.qdiscs.insert("eth0".into(), ObservedQdisc { kind: "fq".into(), handle: 0x1_0000, ..Default::default() });
    let steps = plan(&bare, &o, Some(&st), &Default::default());
    let o2 = ops(&steps);
    assert!(o2.contains(&"- nft gw1: table inet vnet_p".to_string()), "{o2:#?}");
    assert!(o2.contains(&"~ qdisc gw1:lan0 restore fq_codel".to_string()), "{o2:#?}");
    assert!(o2.contains(&"- qdisc gw1:wan0 (back to the default)".to_string()), "{o2:#?}");
    assert!(o2.contains(&"- bpf gw1:lan0 tc-egress".to_string()), "{o2:#?}");
    assert_eq!(o2.iter().filter(|x| x.starts_with("- xfrm")).count(), 4 + 5, "{o2:#?}");
    assert!(!o2.iter().any(|x| x.contains("h:eth0")), "{o2:#?}");
    assert!(steps.iter().all(|s| matches!(&s.op, Op::Feature { change, .. } if change.is_removal())));
}

#[test]
fn generated_keys_come_from_the_record() {
    let text = LAB.replace("    key: \"0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\"\n", "");
    let l = lab(&text);
    let mut rec = Record::default();
    let missing = missing_keys(&l, &rec);
    assert_eq!(missing, vec![("t/aead/0".to_string(), 36), ("t/aead/1".to_string(), 36)]);
    rec.keys.insert("t/aead/0".into(), format!("0x{}", "11".repeat(36)));
    rec.keys.insert("t/aead/1".into(), format!("0x{}", "22".repeat(36)));
    assert!(missing_keys(&l, &rec).is_empty());
    let w = xfrm_desired(&l, &rec);
    let (states, _) = &w["gw2"];
    assert_eq!(states[0].aead.as_ref().unwrap().key, vec![0x11; 36]);
    assert_eq!(states[1].aead.as_ref().unwrap().key, vec![0x22; 36]);
}
