//! Generic netlink families: a module-backed feature whose family is missing is missing. The
//! kernel loads the module behind a family on the first lookup by name (the module alias
//! `net-pf-16-proto-16-family-NAME`), as it would when the feature is first used.

use std::io;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_generic::ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

/// The Open vSwitch kernel datapath's family (net/openvswitch).
pub const OVS_DATAPATH_FAMILY: &str = "ovs_datapath";

/// The CTRL_CMD_GETFAMILY request for `name`.
pub fn getfamily_request(name: &str) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())] });
    genl.finalize();
    let mut msg = NetlinkMessage::from(genl);
    msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Whether the running kernel (in the calling thread's namespace) has the family `name`.
pub fn has_family(name: &str) -> io::Result<bool> {
    let mut sock = Socket::new(NETLINK_GENERIC)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.send(&getfamily_request(name), 0)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock.recv(&mut &mut buf[..], 0)?;
        let mut off = 0;
        while off < n {
            let msg =
                NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&buf[off..n]).map_err(|e| io::Error::other(format!("generic netlink reply: {e}")))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(m) if m.payload.cmd == GenlCtrlCmd::NewFamily => return Ok(true),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(true),
                        Some(c) if -c.get() == libc::ENOENT => Ok(false),
                        Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getfamily_bytes_are_what_genl_ctrl_expects() {
        let b = getfamily_request("ovs_datapath");
        // nlmsghdr: length, type GENL_ID_CTRL (0x10), flags REQUEST|ACK (5), seq 1, pid 0
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, b.len());
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x10);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x5);
        // genlmsghdr: cmd CTRL_CMD_GETFAMILY (3), version 2 (as the kernel's `genl` and iproute2 send)
        assert_eq!(b[16], 3);
        assert_eq!(b[17], 2);
        // one attribute: CTRL_ATTR_FAMILY_NAME (2), NUL-terminated, padded to 4
        let alen = u16::from_ne_bytes(b[20..22].try_into().unwrap()) as usize;
        assert_eq!(u16::from_ne_bytes(b[22..24].try_into().unwrap()), 2);
        assert_eq!(&b[24..24 + alen - 4], b"ovs_datapath\0");
    }

    #[test]
    fn a_family_every_kernel_has_is_found_and_a_made_up_one_is_not() {
        // nlctrl itself is always there; lookups need no privilege.
        assert!(has_family("nlctrl").unwrap());
        // (Family names have at most 15 bytes; longer ones are refused with EINVAL.)
        assert!(!has_family("vnet_nofamily").unwrap());
    }
}
