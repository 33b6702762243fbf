//! vnet: declarative Linux network virtualization.
//!
//! A lab (network namespaces, devices, addresses, routes, sysctls) is described in a topology
//! file, validated (`model`), compared with what the kernel has (`kernel::observe`), turned into
//! a list of operations (`plan`) and executed over netlink (`apply`) with a journal that undoes
//! everything on failure. `lifecycle` ties the steps together for the CLI and for Rust tests.

pub mod apply;
pub mod bench;
pub mod capture;
pub mod check;
pub mod cni;
pub mod devices;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod graph;
pub mod inspect;
pub mod kernel;
pub mod lab;
pub mod lifecycle;
pub mod model;
pub mod observed;
pub mod ovs;
pub mod plan;
pub mod probe;
pub mod state;
pub mod trace;

pub use error::{Error, Result};
pub use lab::{Lab, LabBuilder, NodeRef};
