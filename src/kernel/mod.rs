//! Everything that talks to the kernel: namespaces, netlink sockets, message encoding,
//! observation, sysctls. The planner never sees this module.

pub mod handle;
pub mod kinds;
pub mod msg;
pub mod netfeat;
pub mod netns;
pub mod nl;
pub mod observe;
pub mod sysctl;
pub mod tun;
pub mod witness;
