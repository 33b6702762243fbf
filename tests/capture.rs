//! `vnet capture` inside a node: pcap that tcpdump reads back, one-line summaries, filters, and
//! clear errors for bad filters and unknown devices.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vnet::capture::{pcap::PcapWriter, Capture, CaptureOptions, Filter};
use vnet::Lab;

fn tcpdump_read(path: &std::path::Path) -> Vec<String> {
    let out = Command::new("tcpdump").args(["-n", "-r"]).arg(path).output().expect("tcpdump installed by scripts/setup");
    assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn library_capture_writes_pcap_that_tcpdump_reads() {
    require_root();
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let rl = lab.running().unwrap();
    // Open first, then make traffic: nothing is missed.
    let mut cap = Capture::open(&rl, "ns2", "eth0").unwrap();
    let pinger = {
        let mut c = lab.node("ns1").command("ping");
        c.args(["-c", "3", "-i", "0.2", "192.168.1.12"]).stdout(Stdio::null());
        c.spawn().unwrap()
    };
    let path = std::env::temp_dir().join(format!("vnet-cap-{}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap(), cap.linktype, 65535).unwrap();
    let opts = CaptureOptions { count: Some(6), filter: Some(Filter::parse("icmp").unwrap()), duration: Some(Duration::from_secs(10)) };
    let mut lines = Vec::new();
    let st = cap
        .run(&opts, |p, d| {
            lines.push(vnet::capture::summary("eth0", p, d));
            w.packet(p.ts, &p.data, p.len)
        })
        .unwrap();
    w.flush().unwrap();
    let _ = pinger.wait_with_output();
    assert_eq!(st.matched, 6, "3 requests in, 3 replies out: {lines:#?}");
    assert!(lines[0].contains("eth0 In  IP 192.168.1.11 > 192.168.1.12: ICMP echo request"), "{lines:#?}");
    assert!(lines[1].contains("eth0 Out IP 192.168.1.12 > 192.168.1.11: ICMP echo reply"), "{lines:#?}");
    let read = tcpdump_read(&path);
    assert_eq!(read.len(), 6, "{read:#?}");
    assert!(read[0].contains("IP 192.168.1.11 > 192.168.1.12: ICMP echo request"), "{read:#?}");
    assert!(read[1].contains("IP 192.168.1.12 > 192.168.1.11: ICMP echo reply"), "{read:#?}");
    let _ = std::fs::remove_file(&path);
}

/// Starts `vnet capture ...`, waits until it listens, runs `traffic`, returns stdout and the status.
fn cli_capture(args: &[&str], traffic: impl FnOnce()) -> (Option<i32>, String, String) {
    let mut child = Command::new(vnet_bin()).arg("capture").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("capturing on"), "{first}");
    traffic();
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), rest)
}

#[test]
fn cli_summaries_filters_and_pcap() {
    require_root();
    let lab = Lab::from_file(repo("examples/bridge.yaml")).unwrap();
    let name = lab.name().to_string();
    // ARP only, on the bridge port in the host: the ping's neighbour resolution crosses it.
    let (code, out, err) = cli_capture(&[&name, "host:veth1", "--count", "2", "--filter", "arp", "--duration", "10"], || {
        assert!(ping(&lab, "ns1", "192.168.1.12"));
    });
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("veth1 In  ARP, Request who-has 192.168.1.12 tell 192.168.1.11"), "{out}");
    assert!(lines[1].contains("veth1 Out ARP, Reply 192.168.1.12 is-at"), "{out}");
    assert!(err.contains("2 packets captured"), "{err}");

    // TCP to a port, pcap to a file, read back by tcpdump.
    let path = std::env::temp_dir().join(format!("vnet-cli-{}.pcap", std::process::id()));
    let p = path.display().to_string();
    let (code, _, err) = cli_capture(&[&name, "ns2:eth0", "-w", &p, "--count", "1", "--filter", "tcp and dst port 7777", "--duration", "10"], || {
        let _ = lab.node("ns1").run(|| std::net::TcpStream::connect_timeout(&"192.168.1.12:7777".parse().unwrap(), Duration::from_secs(2)));
    });
    assert_eq!(code, Some(0), "{err}");
    let read = tcpdump_read(&path);
    assert_eq!(read.len(), 1);
    assert!(read[0].contains("IP 192.168.1.11.") && read[0].contains("> 192.168.1.12.7777: Flags [S]"), "{read:?}");
    let _ = std::fs::remove_file(&path);

    // Mistakes are explained: a malformed argument is a usage error (2), a device the lab does
    // not have is a failed lookup (1), as in every other command.
    let out = Command::new(vnet_bin()).args(["capture", &name, "ns1:eth0", "--filter", "tcp prot 80"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad filter: unknown word `prot`"));
    for target in ["ns1eth0", ":eth0", "ns1:"] {
        let out = Command::new(vnet_bin()).args(["capture", &name, target, "--count", "1"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{target}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("`{target}` is not NODE:IFACE (e.g. `a:eth0`)")),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(vnet_bin()).args(["capture", &name, "ns1:eth9", "--count", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node ns1 has no device eth9"), "{}", String::from_utf8_lossy(&out.stderr));
}
