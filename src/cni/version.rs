//! CNI specification versions: which the plugin speaks, and which commands each allows.

use super::error::{code, CniError};

/// Every spec version vnet-cni accepts, oldest first.
pub const SUPPORTED: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The version vnet-cni speaks natively.
pub const CURRENT: &str = "1.1.0";

/// A parsed `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.trim().split('.');
        let a = it.next()?.parse().ok()?;
        let b = it.next()?.parse().ok()?;
        let c = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Version(a, b, c))
    }
}

pub const V0_3_0: Version = Version(0, 3, 0);
pub const V0_4_0: Version = Version(0, 4, 0);
pub const V1_0_0: Version = Version(1, 0, 0);
pub const V1_1_0: Version = Version(1, 1, 0);

/// The configuration's version, checked against what vnet-cni supports. A configuration
/// without `cniVersion` is 0.1.0, as libcni reads it.
pub fn check(raw: Option<&str>) -> Result<(String, Version), CniError> {
    let s = raw.unwrap_or("").trim();
    let s = if s.is_empty() { "0.1.0" } else { s };
    match Version::parse(s) {
        Some(v) if SUPPORTED.contains(&s) => Ok((s.to_string(), v)),
        _ => Err(CniError::with(code::INCOMPATIBLE_VERSION, "incompatible CNI versions", format!("config is \"{s}\", plugin supports {SUPPORTED:?}"))),
    }
}

/// Refuses a command the configuration's version does not have (CHECK came with 0.4.0,
/// STATUS and GC with 1.1.0).
pub fn allows(command: &str, v: Version, s: &str) -> Result<(), CniError> {
    let need = match command {
        "CHECK" => V0_4_0,
        "STATUS" | "GC" => V1_1_0,
        _ => return Ok(()),
    };
    if v < need {
        return Err(CniError::with(
            code::INCOMPATIBLE_VERSION,
            format!("config version does not allow {command}"),
            format!("{command} needs cniVersion {}.{}.{} or later; config is \"{s}\"", need.0, need.1, need.2),
        ));
    }
    Ok(())
}

/// VERSION's answer.
pub fn report() -> serde_json::Value {
    serde_json::json!({ "cniVersion": CURRENT, "supportedVersions": SUPPORTED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert_eq!(check(Some("1.1.0")).unwrap().1, V1_1_0);
        assert_eq!(check(None).unwrap().0, "0.1.0");
        let e = check(Some("2.0.0")).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.details.contains("config is \"2.0.0\""), "{e:?}");
        assert_eq!(check(Some("1.0")).unwrap_err().code, 1);
        assert_eq!(allows("CHECK", Version(0, 3, 1), "0.3.1").unwrap_err().code, 1);
        assert!(allows("GC", V1_1_0, "1.1.0").is_ok());
        assert_eq!(allows("STATUS", V1_0_0, "1.0.0").unwrap_err().msg, "config version does not allow STATUS");
        assert!(Version(0, 10, 0) > Version(0, 4, 0));
    }
}
