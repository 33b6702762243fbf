//! Kernel side of NAT/firewall (nftables through `nft -j`), traffic control (hand-encoded
//! qdiscs), BPF (loaded with aya, attached over netlink) and IPsec (xfrm netlink).

pub mod bpf;
pub mod nft;
pub mod observe;
pub mod rawnl;
pub mod tc;
pub mod xfrm;
