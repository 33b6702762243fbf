//! dummy: a device that drops everything sent to it; a stable place for addresses (router ids,
//! service addresses) that does not depend on any link being up.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of a dummy device (none beyond the common ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DummySpec {}

/// Options of an ifb (intermediate functional block) device: a target for traffic redirected
/// by tc (`mirred ... redirect dev ifb0`), so ingress traffic can be shaped like egress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IfbSpec {}
