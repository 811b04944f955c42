//! Container image URIs of SageMaker's own images, resolved as the SageMaker Python SDK's
//! `image_uris.retrieve(framework, region, version)` does: the built-in algorithms (`xgboost`),
//! the Model Monitor analyzer and the Clarify processor.
//!
//! The registry account per region comes from `image_uris.json` next to this file, a trimmed copy
//! of the SDK's `image_uri_config/{xgboost,model-monitor,clarify}.json` (its `_source` names the
//! files and commits). Refresh it from there when AWS publishes a new version or region.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// A framework, version or region we have no image for. The message lists what is supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageUriError {
    #[error("`{framework}` is not a supported built-in algorithm; supported: {supported}")]
    UnknownFramework { framework: String, supported: String },
    #[error("{framework} version `{version}` is not known; supported versions: {supported}")]
    UnknownVersion { framework: String, version: String, supported: String },
    #[error("the {image} image is not published in region `{region}`; regions with it: {supported}")]
    UnknownRegion { image: String, region: String, supported: String },
}

#[derive(Debug, Deserialize)]
struct ImageData {
    /// Registry account by region, per account set.
    registries: BTreeMap<String, BTreeMap<String, String>>,
    frameworks: BTreeMap<String, Framework>,
    #[serde(rename = "model-monitor")]
    model_monitor: Image,
    clarify: Image,
}

#[derive(Debug, Deserialize)]
struct Framework {
    /// e.g. `latest` → `1`, as the SDK's `version_aliases`.
    aliases: BTreeMap<String, String>,
    versions: BTreeMap<String, Image>,
}

#[derive(Debug, Deserialize)]
struct Image {
    repository: String,
    /// Key into [`ImageData::registries`].
    registries: String,
    /// `None`: the URI has no tag (the SDK's empty version).
    tag: Option<String>,
}

static DATA: LazyLock<ImageData> = LazyLock::new(|| {
    serde_json::from_str(include_str!("image_uris.json")).expect("image_uris.json is valid (a test parses it)")
});

/// The image of a built-in algorithm, e.g. `("xgboost", "1.2-2", "us-east-1")` →
/// `683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.2-2`. The same image serves
/// training and inference.
pub fn builtin_image_uri(framework: &str, version: &str, region: &str) -> Result<String, ImageUriError> {
    let Some(config) = DATA.frameworks.get(framework) else {
        return Err(ImageUriError::UnknownFramework {
            framework: framework.to_string(),
            supported: listing(DATA.frameworks.keys()),
        });
    };
    let resolved = config.aliases.get(version).map_or(version, String::as_str);
    let Some(image) = config.versions.get(resolved) else {
        return Err(ImageUriError::UnknownVersion {
            framework: framework.to_string(),
            version: version.to_string(),
            supported: listing(config.versions.keys().chain(config.aliases.keys())),
        });
    };
    uri(image, &format!("{framework} {resolved}"), region)
}

/// The Model Monitor analyzer (data quality and model quality monitors, and their baselines).
pub fn model_monitor_image_uri(region: &str) -> Result<String, ImageUriError> {
    uri(&DATA.model_monitor, "Model Monitor analyzer", region)
}

/// The Clarify processor (model bias and model explainability monitors, and their baselines).
pub fn clarify_image_uri(region: &str) -> Result<String, ImageUriError> {
    uri(&DATA.clarify, "Clarify processing", region)
}

fn uri(image: &Image, what: &str, region: &str) -> Result<String, ImageUriError> {
    let accounts = &DATA.registries[&image.registries];
    let Some(account) = accounts.get(region) else {
        return Err(ImageUriError::UnknownRegion {
            image: what.to_string(),
            region: region.to_string(),
            supported: listing(accounts.keys()),
        });
    };
    let host = format!("{account}.dkr.ecr.{region}.{}", dns_suffix(region));
    Ok(match &image.tag {
        Some(tag) => format!("{host}/{}:{tag}", image.repository),
        None => format!("{host}/{}", image.repository),
    })
}

/// The partition's DNS suffix: China's regions have their own.
fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" }
}

fn listing<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every image names an account set that exists, so `uri` cannot panic.
    #[test]
    fn data_parses_and_every_account_set_exists() {
        let images = DATA.frameworks.values().flat_map(|f| f.versions.values());
        for image in images.chain([&DATA.model_monitor, &DATA.clarify]) {
            let set = DATA.registries.get(&image.registries);
            assert!(set.is_some_and(|s| !s.is_empty()), "{} has no accounts", image.registries);
        }
        for framework in DATA.frameworks.values() {
            for target in framework.aliases.values() {
                assert!(framework.versions.contains_key(target), "alias to unknown version {target}");
            }
        }
    }
}
