//! The commands on a lab, as library functions: `up`, `plan`, `down`, `status`, `gc`. The CLI
//! is a thin layer over these.

pub mod continuity;
pub mod devinfo;
pub mod down;
pub mod gc;
pub mod impair;
pub mod netfeat;
pub mod ovs;
pub mod preflight;
mod root_teardown;
pub mod session;
pub mod settle;
pub mod status;
pub mod teardown;
pub mod up;

pub use down::{down, DownReport};
pub use gc::{gc, GcReport};
pub use status::{status, LabStatus};
pub use up::{plan, up, Ownership, UpOptions, UpReport};
