//! Values that may differ per environment (reference §3.1 "multi-account per-stage values").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One value for every environment, or one per environment name. Serialises as the request
/// does: the value itself, or an object keyed by environment name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PerStage<T> {
    All(T),
    Each(BTreeMap<String, T>),
}

impl<T> PerStage<T> {
    /// The value for `environment`; `None` only when the environment has no entry.
    pub fn get(&self, environment: &str) -> Option<&T> {
        match self {
            Self::All(value) => Some(value),
            Self::Each(values) => values.get(environment),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_round_trips() {
        let all: PerStage<u32> = serde_json::from_str("20").unwrap();
        assert_eq!(all, PerStage::All(20));
        assert_eq!(all.get("anything"), Some(&20));

        let each: PerStage<Option<String>> = serde_json::from_str(r#"{"dev": null, "prod": "k"}"#).unwrap();
        assert_eq!(each.get("dev"), Some(&None));
        assert_eq!(each.get("prod"), Some(&Some("k".to_string())));
        assert_eq!(each.get("staging"), None);
        assert_eq!(serde_json::to_string(&each).unwrap(), r#"{"dev":null,"prod":"k"}"#);
    }
}
