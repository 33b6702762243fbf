//! vnet: declarative Linux network labs (network namespaces, veth pairs, bridges, addresses,
//! routes, sysctls), from a topology file or from Rust code.
//!
//! # In Rust tests
//!
//! Each test gets a throwaway [`Lab`]: a unique name, an isolated `host` (the machine's own
//! root namespace is never touched), removed on drop, also when the test panics. Labs need
//! root (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`).
//!
//! ```
//! use vnet::Lab;
//!
//! let lab = Lab::builder("pair")
//!     .link("a:eth0", "b:eth0")
//!     .address("a:eth0", "10.0.0.1/24")
//!     .address("b:eth0", "10.0.0.2/24")
//!     .up()
//!     .unwrap();
//! assert!(lab.check().unwrap().ok); // the full reachability matrix, probed in-process
//! // A command in a node, or a closure on a thread inside its namespace:
//! let out = lab.node("a").command("ip").args(["-br", "addr"]).output().unwrap();
//! assert!(String::from_utf8_lossy(&out.stdout).contains("10.0.0.1/24"));
//! let listening = lab.node("b").run(|| std::net::TcpListener::bind("10.0.0.2:80").is_ok());
//! assert!(listening);
//! ```
//!
//! A lab also comes from a file ([`Lab::from_file`]) or from text ([`Lab::from_str`]);
//! [`Lab::topology`] and [`Lab::update`] change a running one; [`Lab::check`] runs its
//! expectations ([`ExpectSpec`]); [`Lab::warnings`] says what validation warned about. An
//! [`Error`] is a [`miette::Diagnostic`]: an invalid topology renders with its text underlined.
//!
//! # How it works
//!
//! A topology (`model::Topology`) is validated (`model`), compared with what the kernel has
//! (`kernel::observe`), turned into a list of operations (`plan`) and executed over netlink
//! (`apply`) with a journal that undoes everything on failure. `lifecycle` ties the steps
//! together for the CLI and for `Lab`.

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

pub use check::{CheckOptions, CheckReport};
pub use error::{Error, Result};
pub use lab::{Lab, LabBuilder, LabOptions, NodeRef};
pub use lifecycle::{DownReport, LabStatus, UpReport};
pub use model::expect::ExpectSpec;
pub use model::file::{InterfaceSpec, LinkSpec, NodeSpec, RouteSpec, SysctlValue, Topology};
pub use model::kind::KindSpec;
pub use model::{Diag, Diagnostics, Format, Severity};
