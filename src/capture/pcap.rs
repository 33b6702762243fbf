//! The classic pcap file format (what tcpdump -w writes and Wireshark reads): a 24-byte global
//! header, then per packet a 16-byte record header and the captured bytes. Microsecond
//! timestamps, native byte order (readers detect it from the magic number).

use std::io::{self, Write};
use std::time::Duration;

/// Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IP packets (tun devices and other devices without a link-layer header).
pub const LINKTYPE_RAW: u32 = 101;

const MAGIC_USEC: u32 = 0xa1b2_c3d4;

/// Writes pcap to any `Write`.
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut out: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_USEC.to_ne_bytes());
        h.extend_from_slice(&2u16.to_ne_bytes()); // version 2.4
        h.extend_from_slice(&4u16.to_ne_bytes());
        h.extend_from_slice(&0i32.to_ne_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
        h.extend_from_slice(&snaplen.to_ne_bytes());
        h.extend_from_slice(&linktype.to_ne_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Writes one packet; `ts` is the time since the Unix epoch, `orig_len` its length on the wire.
    pub fn packet(&mut self, ts: Duration, data: &[u8], orig_len: usize) -> io::Result<()> {
        let caplen = data.len().min(self.snaplen as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(ts.as_secs() as u32).to_ne_bytes());
        h[4..8].copy_from_slice(&ts.subsec_micros().to_ne_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_ne_bytes());
        h[12..16].copy_from_slice(&(orig_len as u32).to_ne_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..caplen])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_are_laid_out_as_libpcap_expects() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET, 65535).unwrap();
        w.packet(Duration::new(1_700_000_000, 123_456_789), &[1, 2, 3, 4], 60).unwrap();
        let b = w.into_inner();
        assert_eq!(b.len(), 24 + 16 + 4);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 0xa1b2c3d4);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 2);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 4);
        assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 65535);
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(b[24..28].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_ne_bytes(b[28..32].try_into().unwrap()), 123_456, "microseconds");
        assert_eq!(u32::from_ne_bytes(b[32..36].try_into().unwrap()), 4, "captured length");
        assert_eq!(u32::from_ne_bytes(b[36..40].try_into().unwrap()), 60, "length on the wire");
        assert_eq!(&b[40..], &[1, 2, 3, 4]);
    }

    #[test]
    fn snaplen_truncates() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_RAW, 2).unwrap();
        w.packet(Duration::ZERO, &[9, 8, 7], 3).unwrap();
        let b = w.into_inner();
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 101);
        assert_eq!(u32::from_ne_bytes(b[32..36].try_into().unwrap()), 2);
        assert_eq!(&b[40..], &[9, 8]);
    }
}
