//! Validated string values from request bodies: S3 locations, asset keys, instance types and
//! ARNs. Each is a newtype that can only hold a valid value; it serialises as the plain string
//! and deserialises through the same check, so a stored spec reads back exactly as it was written.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a string is not a valid value of its type. The message says what was expected, without
/// naming the field (the caller knows the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl InvalidValue {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The trait impls every validated string newtype needs; `$name::parse(&str)` does the checking.
macro_rules! string_value {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = $crate::domain::values::InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use string_value;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern compiles")
}

/// A `<bucket>/<prefix>` location (no `s3://`), e.g. `my-bucket/datacapture/churn`. The prefix
/// may be empty (the whole bucket). Trailing `/` are stripped, as the solution's `clean_param`
/// does for most such fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct S3Location(String);
string_value!(S3Location);

impl S3Location {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue::new("must not be empty: expected `bucket/prefix`, e.g. `my-bucket/data`"));
        }
        if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://")) {
            return Err(InvalidValue::new(format!(
                "drop the s3:// prefix: expected `bucket/prefix`, e.g. `{}`",
                &s[5..]
            )));
        }
        if s.contains("://") {
            return Err(InvalidValue::new("expected `bucket/prefix` without a URL scheme, e.g. `my-bucket/data`"));
        }
        let trimmed = s.trim_end_matches('/');
        let (bucket, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        check_bucket_name(bucket)?;
        if !prefix.is_empty() {
            check_key_segments(prefix)?;
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn bucket(&self) -> &str {
        self.0.split_once('/').map_or(self.0.as_str(), |(b, _)| b)
    }

    /// The key prefix inside the bucket, without leading or trailing `/`; empty for the bucket root.
    pub fn prefix(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, p)| p)
    }

    /// `s3://bucket/prefix`, the form SageMaker and CloudFormation resources take.
    pub fn uri(&self) -> String {
        format!("s3://{}", self.0)
    }
}

/// S3 general-purpose bucket naming rules.
fn check_bucket_name(bucket: &str) -> Result<(), InvalidValue> {
    static IP_ADDRESS: LazyLock<Regex> = LazyLock::new(|| regex(r"^\d+\.\d+\.\d+\.\d+$"));
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

    let bad = |why: &str| Err(InvalidValue::new(format!("bucket name `{bucket}` {why}; expected `bucket/prefix`")));
    if !(3..=63).contains(&bucket.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return bad("may contain only lowercase letters, digits, dots and hyphens");
    }
    let edges_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edges_ok(bucket.bytes().next()) || !edges_ok(bucket.bytes().last()) {
        return bad("must start and end with a letter or digit");
    }
    if bucket.contains("..") {
        return bad("must not contain two adjacent dots");
    }
    if IP_ADDRESS.is_match(bucket) {
        return bad("must not be formatted as an IP address");
    }
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| bucket.starts_with(*p)) {
        return bad(&format!("must not start with the reserved prefix `{p}`"));
    }
    if let Some(s) = RESERVED_SUFFIXES.iter().find(|s| bucket.ends_with(*s)) {
        return bad(&format!("must not end with the reserved suffix `{s}`"));
    }
    Ok(())
}

/// Rules for an object key or key prefix. They keep keys portable to the local object store,
/// where a key becomes a file path: no traversal, no empty segments, no backslashes.
fn check_key_segments(key: &str) -> Result<(), InvalidValue> {
    if key.len() > 1024 {
        return Err(InvalidValue::new(format!("is {} bytes long; S3 keys are at most 1024 bytes", key.len())));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(InvalidValue::new(format!("must not contain control characters (found U+{:04X})", c as u32)));
    }
    if key.contains('\\') {
        return Err(InvalidValue::new("must not contain `\\`; separate folders with `/`"));
    }
    for segment in key.split('/') {
        match segment {
            "" => {
                return Err(InvalidValue::new(format!("`{key}` has an empty path segment (`//` or a leading `/`)")));
            }
            "." | ".." => {
                return Err(InvalidValue::new(format!("`{key}` must not contain `.` or `..` path segments")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// An object key inside the solution's assets bucket, e.g. `models/churn/model.tar.gz`.
/// Trailing `/` are stripped (the solution does so for folder-like keys such as `training_data`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct AssetKey(String);
string_value!(AssetKey);

impl AssetKey {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://")) {
            return Err(InvalidValue::new(
                "drop `s3://<bucket>/`: expected a key inside the assets bucket, e.g. `models/model.tar.gz`",
            ));
        }
        if s.starts_with('/') {
            return Err(InvalidValue::new(
                "must not start with `/`: expected a key inside the assets bucket, e.g. `models/model.tar.gz`",
            ));
        }
        let trimmed = s.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(InvalidValue::new(
                "must not be empty: expected a key inside the assets bucket, e.g. `models/model.tar.gz`",
            ));
        }
        check_key_segments(trimmed)?;
        Ok(Self(trimmed.to_string()))
    }
}

/// A SageMaker instance type `ml.<family>.<size>`, e.g. `ml.m5.large`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceType(String);
string_value!(InstanceType);

impl InstanceType {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        static PATTERN: LazyLock<Regex> =
            LazyLock::new(|| regex(r"^ml\.[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*$"));
        if PATTERN.is_match(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new(format!(
                "`{s}` is not a SageMaker instance type: expected `ml.<family>.<size>`, e.g. `ml.m5.large`"
            )))
        }
    }
}

/// Region and account parts shared by the ARN patterns below.
const ARN_REGION_ACCOUNT: &str = r"[a-z]{2}(-[a-z]+)+-\d+:\d{12}";

/// A KMS key (or alias) ARN. "No key" is `None` where this is used: the request's empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct KmsKeyArn(String);
string_value!(KmsKeyArn);

impl KmsKeyArn {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
            regex(&format!(r"^arn:aws(-[a-z]+)*:kms:{ARN_REGION_ACCOUNT}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)$"))
        });
        if PATTERN.is_match(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new(
                "expected a KMS key ARN `arn:aws:kms:<region>:<account>:key/<key-id>` (or `alias/<name>`), or an empty string for no key",
            ))
        }
    }
}

/// A container image reference, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag`.
/// Not restricted to ECR: the local target can run images from any registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct ImageUri(String);
string_value!(ImageUri);

impl ImageUri {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        // Docker's reference grammar: optional registry host[:port], lower-case path
        // components, optional tag, optional digest.
        static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
            let host_label = r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?";
            let component = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*";
            regex(&format!(
                r"^({host_label}(\.{host_label})*(:[0-9]+)?/)?{component}(/{component})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(@sha256:[a-f0-9]{{64}})?$"
            ))
        });
        if s.len() <= 255 && PATTERN.is_match(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new(
                "expected a container image URI (at most 255 characters), e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/my-algorithm:1.0`",
            ))
        }
    }
}

/// A SageMaker model-package *version* ARN:
/// `arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct ModelPackageArn(String);
string_value!(ModelPackageArn);

impl ModelPackageArn {
    /// The group and version it names (`…:model-package/<group>/<version>`).
    pub fn group_and_version(&self) -> (&str, i64) {
        let tail = self.0.rsplit_once(":model-package/").map_or("", |(_, t)| t);
        let (group, version) = tail.split_once('/').unwrap_or((tail, ""));
        (group, version.parse().unwrap_or(0))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
            regex(&format!(
                r"^arn:aws(-[a-z]+)*:sagemaker:{ARN_REGION_ACCOUNT}:model-package/[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,62}}/[1-9][0-9]*$"
            ))
        });
        if PATTERN.is_match(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new(
                "expected a model package version ARN `arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>`",
            ))
        }
    }

    /// The model package group: the second `/`-separated segment (the template's
    /// `ModelPackageGroupName`).
    pub fn group(&self) -> &str {
        self.0.split('/').nth(1).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_location_splits_bucket_and_prefix() {
        let loc = S3Location::parse("my-bucket/datacapture/churn/").unwrap();
        assert_eq!(loc.as_str(), "my-bucket/datacapture/churn");
        assert_eq!(loc.bucket(), "my-bucket");
        assert_eq!(loc.prefix(), "datacapture/churn");
        assert_eq!(loc.uri(), "s3://my-bucket/datacapture/churn");

        let root = S3Location::parse("my.bucket-1").unwrap();
        assert_eq!((root.bucket(), root.prefix()), ("my.bucket-1", ""));
    }

    #[test]
    fn s3_location_rejects_scheme_and_bad_buckets() {
        let err = S3Location::parse("s3://my-bucket/data").unwrap_err();
        assert!(err.0.contains("drop the s3:// prefix"), "{err}");
        let arn =
            ModelPackageArn::parse("arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn-models/12").unwrap();
        assert_eq!(arn.group_and_version(), ("churn-models", 12));
        assert!(err.0.contains("`my-bucket/data`"), "{err}");
        assert!(S3Location::parse("S3://my-bucket/data").is_err());
        assert!(S3Location::parse("https://my-bucket/data").is_err());
        for bad in [
            "",
            "ab/x",
            "My-Bucket/x",
            "-bucket/x",
            "bucket-/x",
            "my..bucket/x",
            "192.168.1.1/x",
            "xn--bucket/x",
            "sthree-bucket/x",
            "bucket-s3alias/x",
            "bucket--ol-s3/x",
            "bucket.mrap/x",
            "under_score/x",
            &"a".repeat(64),
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn s3_location_rejects_traversal_in_prefix() {
        for bad in
            ["bucket/../etc", "bucket/a/./b", "bucket//a", "bucket/a//b", "bucket/a\\b", "bucket/a\nb", "bucket/.."]
        {
            assert!(S3Location::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(S3Location::parse("bucket/a..b/c.d").is_ok());
    }

    #[test]
    fn asset_keys() {
        assert_eq!(AssetKey::parse("models/churn/model.tar.gz").unwrap().as_str(), "models/churn/model.tar.gz");
        assert_eq!(AssetKey::parse("training/").unwrap().as_str(), "training");
        for bad in
            ["", "/", "/models/x", "s3://assets/models/x", "models/../secret", "..", "a/./b", "a//b", "a\\b", "a\u{0}b"]
        {
            assert!(AssetKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(AssetKey::parse(&"k".repeat(1024)).is_ok());
        assert!(AssetKey::parse(&"k".repeat(1025)).is_err());
        // 1024 bytes, not characters.
        assert!(AssetKey::parse(&"é".repeat(513)).is_err());
    }

    #[test]
    fn instance_types() {
        for ok in ["ml.m5.large", "ml.p4de.24xlarge", "ml.trn1n.32xlarge", "ml.c7i.large"] {
            assert!(InstanceType::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["m5.large", "ml.m5", "ml..large", "ML.M5.LARGE", "ml.m5.large ", ""] {
            assert!(InstanceType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kms_key_arns() {
        for ok in [
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:me-central-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/my-key",
            "arn:aws-cn:kms:cn-north-1:123456789012:key/abc",
        ] {
            assert!(KmsKeyArn::parse(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:us-east-1:1234:key/abc", "arn:aws:s3:::bucket"]
        {
            assert!(KmsKeyArn::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_uris() {
        for ok in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-algo:1.0",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/my_algo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "localhost:5000/algo",
            "custom-image-uri",
        ] {
            assert!(ImageUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Repo/Upper:tag", "repo:", "repo:bad tag", "https://x/y"] {
            assert!(ImageUri::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn model_package_arns() {
        let arn =
            ModelPackageArn::parse("arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-models/3").unwrap();
        assert_eq!(arn.group(), "churn-models");
        for bad in [
            "arn:aws:sagemaker:*:*:model-package/xgboost/1",
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/xgboost",
            "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/xgboost",
        ] {
            assert!(ModelPackageArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_serialise_as_strings_and_revalidate() {
        let loc = S3Location::parse("b-1/p").unwrap();
        assert_eq!(serde_json::to_string(&loc).unwrap(), r#""b-1/p""#);
        assert_eq!(serde_json::from_str::<S3Location>(r#""b-1/p""#).unwrap(), loc);
        assert!(serde_json::from_str::<S3Location>(r#""s3://b-1/p""#).is_err());
        assert!(serde_json::from_str::<AssetKey>(r#""../x""#).is_err());
    }
}
