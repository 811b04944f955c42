//! `statistics.json` of the data-quality monitor (reference sagemaker-formats.md B.1, B.11):
//! written from a [`Profile`], read back as a baseline.

use super::kll::{Bucket, KllSketch, SketchJson, buckets};
use super::profile::{InferredType, Profile};
use serde::{Deserialize, Serialize};

/// Model Monitor's bucket count: "10 buckets. This is not currently configurable".
pub const BUCKETS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    pub version: f64,
    pub dataset: Dataset,
    pub features: Vec<FeatureStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub item_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStatistics {
    pub name: String,
    pub inferred_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical_statistics: Option<NumericalStatistics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_statistics: Option<StringStatistics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Common {
    pub num_present: u64,
    pub num_missing: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericalStatistics {
    pub common: Common,
    pub mean: f64,
    pub sum: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub distribution: NumericalDistribution,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericalDistribution {
    pub kll: Kll,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kll {
    pub buckets: Vec<Bucket>,
    pub sketch: SketchJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringStatistics {
    pub common: Common,
    pub distinct_count: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<StringDistribution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringDistribution {
    pub categorical: Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorical {
    pub buckets: Vec<CategoricalBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalBucket {
    pub value: String,
    pub count: f64,
}

impl FeatureStatistics {
    pub fn inferred(&self) -> InferredType {
        InferredType::parse(&self.inferred_type).unwrap_or(InferredType::Unknown)
    }

    /// The baseline's sketch, for drift.
    pub fn sketch(&self) -> Option<Result<KllSketch, String>> {
        self.numerical_statistics.as_ref().map(|n| KllSketch::from_json(&n.distribution.kll.sketch))
    }

    /// The baseline's value counts, for categorical drift.
    pub fn categories(&self) -> Option<std::collections::BTreeMap<String, f64>> {
        let distribution = self.string_statistics.as_ref()?.distribution.as_ref()?;
        Some(distribution.categorical.buckets.iter().map(|b| (b.value.clone(), b.count)).collect())
    }
}

/// Counts sorted by descending count, then value (a stable order for files and tests).
pub fn by_popularity(values: &super::profile::ValueCounts) -> Vec<(String, u64)> {
    let mut sorted: Vec<(String, u64)> = values.iter().map(|(v, c)| (v.clone(), *c)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// The statistics of a profile. Numeric columns (Integral, Fractional) get the numerical block;
/// every other column the string block, its categorical distribution only while its values were
/// counted (at most [`super::profile::MAX_TRACKED_VALUES`] distinct).
pub fn statistics(profile: &mut Profile) -> Statistics {
    let features = profile
        .columns
        .iter_mut()
        .map(|column| {
            let inferred = column.inferred_type();
            let common = Common { num_present: column.present, num_missing: column.missing };
            let numeric = inferred.is_numeric() && column.moments.count > 0;
            let numerical_statistics = numeric.then(|| {
                let m = &column.moments;
                let ranks = column.sketch.ranks();
                NumericalStatistics {
                    common,
                    mean: m.mean,
                    sum: m.sum,
                    std_dev: m.std_dev(),
                    min: m.min,
                    max: m.max,
                    distribution: NumericalDistribution {
                        kll: Kll { buckets: buckets(&ranks, m.min, m.max, BUCKETS), sketch: column.sketch.to_json() },
                    },
                }
            });
            let string_statistics = (!numeric).then(|| {
                let distribution = column.values.as_ref().map(|values| StringDistribution {
                    categorical: Categorical {
                        buckets: by_popularity(values)
                            .into_iter()
                            .map(|(value, count)| CategoricalBucket { value, count: count as f64 })
                            .collect(),
                    },
                });
                StringStatistics { common, distinct_count: column.distinct_count(), distribution }
            });
            FeatureStatistics {
                name: column.name.clone(),
                inferred_type: inferred.as_str().to_string(),
                numerical_statistics,
                string_statistics,
            }
        })
        .collect();
    Statistics { version: 0.0, dataset: Dataset { item_count: profile.rows }, features }
}
