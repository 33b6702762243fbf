//! CNI errors: the spec's well-known codes, and the JSON a plugin prints on stdout when it
//! fails (`{"cniVersion", "code", "msg", "details"}`).

use serde::{Deserialize, Serialize};

/// Well-known error codes of the CNI specification (1.1), and vnet-cni's own (100 and up).
pub mod code {
    /// The configuration's cniVersion is not one the plugin supports (or the command needs a
    /// later one).
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// A field of the network configuration is not supported.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container (its network namespace) is unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// A required environment variable is missing or invalid.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (state directory, plugin executable, ...).
    pub const IO_FAILURE: u32 = 5;
    /// stdin could not be decoded.
    pub const DECODE_FAILURE: u32 = 6;
    /// The network configuration is invalid.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const NOT_AVAILABLE_LIMITED: u32 = 51;
    /// The kernel refused a request (the kernel's text is in `details`).
    pub const KERNEL: u32 = 100;
    /// What the plugin would create is held by an object it does not own.
    pub const CONFLICT: u32 = 101;
    /// CHECK found the attachment differing from what ADD made.
    pub const CHECK_FAILED: u32 = 102;
}

/// An error as the spec's error result carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: String::new() }
    }
    pub fn with(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: details.into() }
    }
    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, msg)
    }
    pub fn env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, msg)
    }
    pub fn io(msg: impl Into<String>, e: &std::io::Error) -> Self {
        Self::with(code::IO_FAILURE, msg, e.to_string())
    }
    pub fn kernel(msg: impl Into<String>, e: &crate::kernel::nl::KernelError) -> Self {
        Self::with(code::KERNEL, msg, e.to_string())
    }
    pub fn check(msg: impl Into<String>) -> Self {
        Self::new(code::CHECK_FAILED, msg)
    }

    /// The error result printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}

pub type CniResult<T> = Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = CniError::with(code::INVALID_ENV, "required env variables [CNI_NETNS] missing", "");
        assert_eq!(e.to_json("1.1.0"), serde_json::json!({"cniVersion": "1.1.0", "code": 4, "msg": "required env variables [CNI_NETNS] missing"}));
        let e = CniError::with(code::KERNEL, "create veth", "File exists");
        assert_eq!(e.to_json("1.0.0")["details"], "File exists");
        assert_eq!(e.to_string(), "create veth: File exists");
    }
}
