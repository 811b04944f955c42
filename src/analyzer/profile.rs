//! One pass over rows into mergeable per-column summaries: counts, types, the moments and the
//! KLL sketch of the numbers, the value counts of small-cardinality columns and an approximate
//! distinct count. Memory is bounded by the columns, not the rows: a sketch holds at most a few
//! thousand numbers, value counts stop at [`MAX_TRACKED_VALUES`] distinct values.

use super::kll::KllSketch;
use super::values::{Kind, classify_number};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use rayon::prelude::*;
use std::collections::HashMap;

/// Distinct values counted exactly per column; a column with more keeps no value counts (its
/// categorical distribution and domain are not reported) and only the approximate distinct count.
pub const MAX_TRACKED_VALUES: usize = 1000;

/// Deequ's HyperLogLog++ precision for distinct counts (relative error about 5 %).
const HLL_PRECISION: u8 = 9;

/// foldhash: several times faster than the standard SipHash on short fields, hashed once per
/// field of every row. Fixed seeds keep the estimates the same from run to run (and let sketches
/// of one column merge); the counts keep a random seed, as a map of untrusted keys should.
type Hll = HyperLogLogPlus<String, foldhash::fast::FixedState>;

/// Exact value counts of a column.
pub type ValueCounts = HashMap<String, u64, foldhash::fast::RandomState>;

/// Running moments of the numbers (Welford), merged with Chan's formula as Deequ's
/// `StandardDeviation` state merges.
#[derive(Debug, Clone, Default)]
pub struct Moments {
    pub count: u64,
    pub sum: f64,
    pub mean: f64,
    m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.sum += x;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        let n = n1 + n2;
        self.mean += delta * n2 / n;
        self.m2 += other.m2 + delta * delta * n1 * n2 / n;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The population standard deviation (Deequ's).
    pub fn std_dev(&self) -> f64 {
        if self.count == 0 { 0.0 } else { (self.m2 / self.count as f64).sqrt() }
    }
}

/// What one column held.
#[derive(Clone)]
pub struct ColumnProfile {
    pub name: String,
    pub present: u64,
    pub missing: u64,
    pub integral: u64,
    pub fractional: u64,
    pub boolean: u64,
    pub string: u64,
    pub moments: Moments,
    pub sketch: KllSketch,
    /// Exact value counts while the column has at most [`MAX_TRACKED_VALUES`] distinct values.
    pub values: Option<ValueCounts>,
    distinct: Hll,
}

impl std::fmt::Debug for ColumnProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnProfile")
            .field("name", &self.name)
            .field("present", &self.present)
            .finish_non_exhaustive()
    }
}

/// The type a column is inferred to have (Deequ's decision order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferredType {
    Unknown,
    Integral,
    Fractional,
    Boolean,
    String,
}

impl InferredType {
    /// As `statistics.json` and `constraints.json` name it. Boolean columns are reported as
    /// String (the files have no Boolean type; docs/MONITORING.md).
    pub fn as_str(self) -> &'static str {
        match self {
            InferredType::Unknown => "Unknown",
            InferredType::Integral => "Integral",
            InferredType::Fractional => "Fractional",
            InferredType::Boolean | InferredType::String => "String",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Unknown" => InferredType::Unknown,
            "Integral" => InferredType::Integral,
            "Fractional" => InferredType::Fractional,
            "String" => InferredType::String,
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, InferredType::Integral | InferredType::Fractional)
    }
}

impl ColumnProfile {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            present: 0,
            missing: 0,
            integral: 0,
            fractional: 0,
            boolean: 0,
            string: 0,
            moments: Moments::default(),
            sketch: KllSketch::new(),
            values: Some(ValueCounts::default()),
            distinct: HyperLogLogPlus::new(HLL_PRECISION, foldhash::fast::FixedState::default())
                .expect("precision 9 is valid"),
        }
    }

    /// Adds one field; `None` or an empty field is missing.
    pub fn add(&mut self, field: Option<&str>) {
        let field = match field {
            Some(f) if !f.is_empty() => f,
            _ => {
                self.missing += 1;
                return;
            }
        };
        self.present += 1;
        let (kind, value) = classify_number(field);
        match kind {
            Kind::Integral => self.integral += 1,
            Kind::Fractional => self.fractional += 1,
            Kind::Boolean => self.boolean += 1,
            Kind::String => self.string += 1,
        }
        // A number too large for a double ("1e400") is counted by type, not in the moments.
        if let Some(x) = value {
            self.moments.add(x);
            self.sketch.update(x);
        }
        // Exact counts while the column has few values; past that a HyperLogLog sketch, seeded
        // with the values counted so far (it is not fed while the counts are exact).
        match &mut self.values {
            Some(values) => {
                if let Some(count) = values.get_mut(field) {
                    *count += 1;
                } else if values.len() < MAX_TRACKED_VALUES {
                    values.insert(field.to_string(), 1);
                } else {
                    self.overflow();
                    self.distinct.insert(field);
                }
            }
            None => self.distinct.insert(field),
        }
    }

    pub fn merge(&mut self, other: &ColumnProfile) {
        self.present += other.present;
        self.missing += other.missing;
        self.integral += other.integral;
        self.fractional += other.fractional;
        self.boolean += other.boolean;
        self.string += other.string;
        self.moments.merge(&other.moments);
        self.sketch.merge(&other.sketch);
        match (&mut self.values, &other.values) {
            (Some(mine), Some(theirs)) => {
                for (value, count) in theirs {
                    *mine.entry(value.clone()).or_insert(0) += count;
                }
                if mine.len() > MAX_TRACKED_VALUES {
                    self.overflow();
                }
            }
            (Some(_), None) => {
                self.overflow();
                self.distinct.merge(&other.distinct).expect("same precision and hasher");
            }
            (None, Some(theirs)) => {
                for value in theirs.keys() {
                    self.distinct.insert(value);
                }
            }
            (None, None) => self.distinct.merge(&other.distinct).expect("same precision and hasher"),
        }
    }

    /// Stops counting values exactly: the sketch takes over, seeded with the values seen.
    fn overflow(&mut self) {
        if let Some(values) = self.values.take() {
            for value in values.keys() {
                self.distinct.insert(value);
            }
        }
    }

    /// Deequ's order: all missing → Unknown; any String, or Booleans mixed with numbers →
    /// String; any Boolean → Boolean; any Fractional → Fractional; else Integral.
    pub fn inferred_type(&self) -> InferredType {
        let numbers = self.integral + self.fractional;
        if self.present == 0 {
            InferredType::Unknown
        } else if self.string > 0 || (self.boolean > 0 && numbers > 0) {
            InferredType::String
        } else if self.boolean > 0 {
            InferredType::Boolean
        } else if self.fractional > 0 {
            InferredType::Fractional
        } else {
            InferredType::Integral
        }
    }

    /// The fraction of present values that fit `expected` (an Integral value fits Fractional;
    /// anything fits String). 1 when nothing is present.
    pub fn type_match(&self, expected: InferredType) -> f64 {
        if self.present == 0 {
            return 1.0;
        }
        let matching = match expected {
            InferredType::Integral => self.integral,
            InferredType::Fractional => self.integral + self.fractional,
            InferredType::Boolean => self.boolean,
            InferredType::String | InferredType::Unknown => self.present,
        };
        matching as f64 / self.present as f64
    }

    /// present / (present + missing); 1 for an empty column.
    pub fn completeness(&self) -> f64 {
        let total = self.present + self.missing;
        if total == 0 { 1.0 } else { self.present as f64 / total as f64 }
    }

    /// The distinct values: exact while counted, else the HyperLogLog++ estimate.
    pub fn distinct_count(&mut self) -> f64 {
        match &self.values {
            Some(values) => values.len() as f64,
            None => self.distinct.count().round(),
        }
    }
}

/// Every column of a data set (or a window of it).
#[derive(Debug, Clone)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        Self { rows: 0, columns: names.iter().map(|n| ColumnProfile::new(n.as_ref())).collect() }
    }

    /// Adds a row; fields beyond the columns are ignored, missing trailing ones are missing.
    pub fn add_row<'a>(&mut self, fields: impl IntoIterator<Item = &'a str>) {
        self.rows += 1;
        let mut fields = fields.into_iter();
        for column in &mut self.columns {
            column.add(fields.next());
        }
    }

    /// Adds whole records at once, the columns spread over the cores (rayon): the same profile
    /// as [`Self::add_row`] record by record, since each column still sees its values in order.
    pub fn add_records(&mut self, records: &[csv::StringRecord]) {
        self.rows += records.len() as u64;
        self.columns.par_iter_mut().enumerate().for_each(|(index, column)| {
            for record in records {
                column.add(record.get(index));
            }
        });
    }

    /// Merges a profile of the same columns (another part of the same data).
    pub fn merge(&mut self, other: &Profile) {
        self.rows += other.rows;
        for (mine, theirs) in self.columns.iter_mut().zip(&other.columns) {
            mine.merge(theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_deequs_order() {
        let mut p = Profile::new(&["i", "f", "s", "b", "mixed", "empty"]);
        for row in [["1", "1.5", "a", "true", "true", ""], ["2", "2", "b", "false", "3", ""]] {
            p.add_row(row);
        }
        let types: Vec<InferredType> = p.columns.iter().map(|c| c.inferred_type()).collect();
        use InferredType::*;
        assert_eq!(types, [Integral, Fractional, String, Boolean, String, Unknown]);
        assert_eq!(p.columns[1].type_match(Fractional), 1.0);
        assert_eq!(p.columns[1].type_match(Integral), 0.5);
        assert_eq!(p.columns[5].completeness(), 0.0);
    }

    #[test]
    fn merged_parts_equal_one_pass() {
        let values: Vec<String> = (0..5000).map(|i| ((i * 7919) % 1000).to_string()).collect();
        let mut whole = Profile::new(&["x"]);
        let (mut a, mut b) = (Profile::new(&["x"]), Profile::new(&["x"]));
        for (i, v) in values.iter().enumerate() {
            whole.add_row([v.as_str()]);
            if i % 2 == 0 { a.add_row([v.as_str()]) } else { b.add_row([v.as_str()]) }
        }
        a.merge(&b);
        let (w, m) = (&whole.columns[0], &a.columns[0]);
        assert_eq!((w.present, m.present), (5000, 5000));
        assert!((w.moments.mean - m.moments.mean).abs() < 1e-9);
        assert!((w.moments.std_dev() - m.moments.std_dev()).abs() < 1e-9);
        assert_eq!(m.sketch.count(), 5000);
        assert_eq!(m.values.as_ref().map(|v| v.len()), Some(1000));
    }

    #[test]
    fn value_counts_stop_past_the_limit() {
        let mut p = Profile::new(&["id"]);
        for i in 0..(MAX_TRACKED_VALUES + 10) {
            p.add_row([i.to_string().as_str()]);
        }
        let column = &mut p.columns[0];
        assert!(column.values.is_none());
        let estimate = column.distinct_count();
        assert!((estimate - 1010.0).abs() / 1010.0 < 0.1, "{estimate}");
    }

    #[test]
    fn distinct_counts_survive_merging_counted_and_sketched_columns() {
        let column = |prefix: &str, n: usize| {
            let mut p = Profile::new(&["x"]);
            for i in 0..n {
                p.add_row([format!("{prefix}{i}").as_str()]);
            }
            p
        };
        let (counted, sketched) = (column("a", 500), column("b", 2000));
        for (mut left, right) in [(counted.clone(), sketched.clone()), (sketched.clone(), counted.clone())] {
            left.merge(&right);
            let estimate = left.columns[0].distinct_count();
            assert!((estimate - 2500.0).abs() / 2500.0 < 0.1, "{estimate}");
        }
        let (mut a, b) = (column("a", 700), column("b", 700));
        a.merge(&b);
        assert!(a.columns[0].values.is_none(), "1400 distinct values are past the exact limit");
        let estimate = a.columns[0].distinct_count();
        assert!((estimate - 1400.0).abs() / 1400.0 < 0.1, "{estimate}");
    }
}
