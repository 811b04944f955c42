//! Pipeline and stage state machines (DESIGN §3). The store enforces these transitions with
//! guarded updates; this module is the single list of what is allowed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    Pending,
    Provisioning,
    AwaitingApproval,
    Active,
    Failed,
    Rejected,
    Deleting,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Pending,
    Deploying,
    Deployed,
    AwaitingApproval,
    Failed,
    Rejected,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

macro_rules! string_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),+ }
            }
        }
        impl FromStr for $ty {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($text => Ok(<$ty>::$variant),)+ other => Err(UnknownState(other.to_string())) }
            }
        }
        impl TryFrom<String> for $ty {
            type Error = UnknownState;
            fn try_from(s: String) -> Result<Self, Self::Error> { s.parse() }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(PipelineState {
    Pending => "pending",
    Provisioning => "provisioning",
    AwaitingApproval => "awaiting_approval",
    Active => "active",
    Failed => "failed",
    Rejected => "rejected",
    Deleting => "deleting",
    Deleted => "deleted",
});

string_enum!(StageState {
    Pending => "pending",
    Deploying => "deploying",
    Deployed => "deployed",
    AwaitingApproval => "awaiting_approval",
    Failed => "failed",
    Rejected => "rejected",
});

impl PipelineState {
    /// Final states: nothing happens to the pipeline until someone provisions or deletes it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Active | Self::Failed | Self::Rejected | Self::Deleted)
    }

    /// A re-provision (same type and name) is accepted in every state but these: a pipeline being
    /// torn down must finish first.
    pub fn accepts_update(self) -> bool {
        !matches!(self, Self::Deleting | Self::Deleted)
    }

    pub fn can_transition_to(self, to: PipelineState) -> bool {
        use PipelineState::*;
        match (self, to) {
            // Any live pipeline can be re-provisioned (back to pending) or deleted.
            (Deleting | Deleted, Pending) => false,
            (_, Pending) => true,
            (Deleting, Deleted) => true,
            (Deleted, _) => false,
            (Deleting, Failed) => true,
            (Deleting, _) => false,
            (_, Deleting) => true,
            (Pending | AwaitingApproval, Provisioning) => true,
            (Provisioning, AwaitingApproval | Active | Failed) => true,
            (Pending, Failed) => true,
            (AwaitingApproval, Rejected) => true,
            _ => false,
        }
    }
}

impl StageState {
    pub fn can_transition_to(self, to: StageState) -> bool {
        use StageState::*;
        matches!(
            (self, to),
            (Pending, Deploying)
                | (Pending, AwaitingApproval)
                | (AwaitingApproval, Deploying)
                | (AwaitingApproval, Rejected)
                | (Deploying, Deployed)
                | (Deploying, Failed)
                | (Pending, Failed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in PipelineState::ALL {
            assert_eq!(s.as_str().parse::<PipelineState>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in StageState::ALL {
            assert_eq!(s.as_str().parse::<StageState>().unwrap(), *s);
        }
        assert!("nope".parse::<PipelineState>().is_err());
    }

    #[test]
    fn promotion_path_is_allowed_and_shortcuts_are_not() {
        use PipelineState::*;
        let path = [Pending, Provisioning, AwaitingApproval, Provisioning, Active];
        for w in path.windows(2) {
            assert!(w[0].can_transition_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!Pending.can_transition_to(Active));
        assert!(!Deleted.can_transition_to(Provisioning));
        assert!(!Deleting.can_transition_to(Pending));
        assert!(Active.can_transition_to(Deleting));
        assert!(!Active.can_transition_to(Rejected));
        assert!(StageState::AwaitingApproval.can_transition_to(StageState::Rejected));
        assert!(!StageState::Deployed.can_transition_to(StageState::Deploying));
    }
}
