//! Probes run in-process from inside nodes: ICMP echo (many in flight, one raw socket per node
//! and family), TCP and UDP ports (with listeners started for the check), route lookups
//! (RTM_GETROUTE), and the machine's neighbour-table limits that decide whether big labs can
//! talk at all.

pub mod echo;
pub mod neigh;
pub mod ns;
pub mod packet;
pub mod port;
pub mod route;
