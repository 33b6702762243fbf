//! team: like a bond, with the logic (the "runner") in a user-space daemon, teamd. vnet starts
//! one teamd per team device inside the node's namespace and stops it at `down`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Drift;
use crate::model::validate::Ctx;

/// teamd runners vnet configures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TeamRunner {
    /// teamd's default.
    #[default]
    Roundrobin,
    Activebackup,
    Loadbalance,
    Broadcast,
}

impl TeamRunner {
    pub fn name(self) -> &'static str {
        match self {
            TeamRunner::Roundrobin => "roundrobin",
            TeamRunner::Activebackup => "activebackup",
            TeamRunner::Loadbalance => "loadbalance",
            TeamRunner::Broadcast => "broadcast",
        }
    }
}

/// Options of a team device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// activebackup, roundrobin (default), loadbalance or broadcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<TeamRunner>,
    /// Ports in this node (alternative to `master:` on each port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

impl TeamSpec {
    pub const FIELDS: &'static [&'static str] = &["runner", "ports"];

    pub fn runner(&self) -> TeamRunner {
        self.runner.unwrap_or_default()
    }

    /// teamd's configuration (JSON): the runner and an ethtool (carrier) link watch. `up` adds
    /// the team's own address as `hwaddr` when it starts teamd (`apply::team::pin_hwaddr`).
    pub fn teamd_config(&self, device: &str) -> String {
        serde_json::json!({
            "device": device,
            "runner": { "name": self.runner().name() },
            "link_watch": { "name": "ethtool" },
        })
        .to_string()
    }

    /// The kernel does not report the runner; teamd is restarted by `down`/`up` only.
    pub fn drift(&self, _have: &TeamSpec) -> Drift {
        Drift::Same
    }

    pub(crate) fn check(&self, _ctx: &mut Ctx, _node: &str, _ifname: &str) {}
}
