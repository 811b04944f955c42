//! Deequ's KLL quantile sketch (`QuantileNonSample` with `NonSampleCompactor`), the sketch Model
//! Monitor writes into `statistics.json` and computes drift from. Deequ's variant is
//! deterministic (no random offsets: a level's offset flips on every odd-numbered compaction),
//! so it is ported rather than taken from a KLL crate, whose randomised compactions and other
//! capacities give other ranks (reference sagemaker-formats.md B.11).
//!
//! Level h holds up to `2·(⌈k·c^h / 2⌉ + 1)` items of weight 2^h (k = 2048, c = 0.64): level 0
//! holds 2,050, so below that many values the sketch is exact. The total weight is always the
//! number of values added.

use serde::{Deserialize, Serialize};

pub const SKETCH_SIZE: usize = 2048;
pub const SHRINKING_FACTOR: f64 = 0.64;

#[derive(Debug, Clone, Default, PartialEq)]
struct Compactor {
    buffer: Vec<f64>,
    compactions: u64,
    offset: usize,
}

impl Compactor {
    /// Sorts the even-length front of the buffer and hands every other item up, starting at the
    /// offset; an odd item left at the end stays.
    fn compact(&mut self, height: usize) -> Vec<f64> {
        let items = self.buffer.len();
        let even = items - items % 2;
        if self.compactions % 2 == 1 {
            self.offset = 1 - self.offset;
        }
        let mut sorted: Vec<i64> = self.buffer[..even].iter().map(|v| order_key(*v)).collect();
        // Stable and unstable give the same order here (equal keys are the same bits). Level 0
        // holds values as they came: unstable is faster on those. Higher levels hold sorted runs
        // (earlier compactions' outputs), which the stable sort merges instead of re-sorting.
        if height == 0 {
            sorted.sort_unstable();
        } else {
            sorted.sort();
        }
        let output: Vec<f64> = sorted.into_iter().skip(self.offset).step_by(2).map(from_order_key).collect();
        let tail = (items % 2 == 1).then(|| self.buffer[items - 1]);
        self.buffer.clear();
        self.buffer.extend(tail);
        self.compactions += 1;
        output
    }
}

/// An integer that orders as `f64::total_cmp` orders the value (the sign-magnitude bits turned
/// into two's complement): integers sort several times faster than `total_cmp` compares, and
/// sorting is most of a sketch's work.
fn order_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

fn from_order_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

/// The sketch as `statistics.json` stores it: `{"parameters": {"c": 0.64, "k": 2048.0}, "data":
/// [[level 0], [level 1], ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SketchJson {
    pub parameters: SketchParameters,
    pub data: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SketchParameters {
    pub c: f64,
    pub k: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KllSketch {
    sketch_size: usize,
    shrinking_factor: f64,
    compactors: Vec<Compactor>,
    /// Items held over all levels.
    held: usize,
    /// Capacity over all levels.
    capacity_total: usize,
}

impl Default for KllSketch {
    fn default() -> Self {
        Self::new()
    }
}

/// Sorted (value, cumulative weight) pairs of a sketch: rank queries by binary search.
pub struct Ranks {
    values: Vec<f64>,
    /// `cumulative[i]` = total weight of values[..=i].
    cumulative: Vec<u64>,
}

impl Ranks {
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Weight of the items ≤ x.
    pub fn rank(&self, x: f64) -> u64 {
        let n = self.values.partition_point(|v| v.total_cmp(&x).is_le());
        if n == 0 { 0 } else { self.cumulative[n - 1] }
    }

    /// Weight of the items < x.
    pub fn rank_exclusive(&self, x: f64) -> u64 {
        let n = self.values.partition_point(|v| v.total_cmp(&x).is_lt());
        if n == 0 { 0 } else { self.cumulative[n - 1] }
    }

    /// The distinct values held, in order.
    pub fn keys(&self) -> impl Iterator<Item = f64> + '_ {
        let mut last: Option<f64> = None;
        self.values.iter().copied().filter(move |v| {
            let new = last.is_none_or(|l| l.total_cmp(v).is_ne());
            last = Some(*v);
            new
        })
    }
}

impl KllSketch {
    pub fn new() -> Self {
        let mut sketch = Self {
            sketch_size: SKETCH_SIZE,
            shrinking_factor: SHRINKING_FACTOR,
            compactors: Vec::new(),
            held: 0,
            capacity_total: 0,
        };
        sketch.expand();
        sketch
    }

    fn capacity(&self, height: usize) -> usize {
        let scaled = self.sketch_size as f64 * self.shrinking_factor.powi(height as i32);
        2 * ((scaled / 2.0).ceil() as usize + 1)
    }

    fn expand(&mut self) {
        self.compactors.push(Compactor::default());
        self.capacity_total = (0..self.compactors.len()).map(|h| self.capacity(h)).sum();
    }

    fn count_held(&self) -> usize {
        self.compactors.iter().map(|c| c.buffer.len()).sum()
    }

    pub fn update(&mut self, value: f64) {
        self.compactors[0].buffer.push(value);
        self.held += 1;
        if self.held > self.capacity_total {
            self.condense();
        }
    }

    /// Compacts the lowest level that is at capacity (one level per call, as Deequ does).
    fn condense(&mut self) {
        for height in 0..self.compactors.len() {
            if self.compactors[height].buffer.len() >= self.capacity(height) {
                if height + 1 >= self.compactors.len() {
                    self.expand();
                }
                let output = self.compactors[height].compact(height);
                self.compactors[height + 1].buffer.extend(output);
                self.held = self.count_held();
                break;
            }
        }
    }

    /// Adds `other`'s items level by level, then compacts while over capacity.
    pub fn merge(&mut self, other: &KllSketch) {
        while self.compactors.len() < other.compactors.len() {
            self.expand();
        }
        for (mine, theirs) in self.compactors.iter_mut().zip(&other.compactors) {
            mine.buffer.extend_from_slice(&theirs.buffer);
        }
        self.held = self.count_held();
        while self.held >= self.capacity_total {
            let before = self.held;
            self.condense();
            if self.held == before {
                break; // nothing at capacity (cannot happen while held ≥ total; never spin)
            }
        }
    }

    /// The number of values added (the total weight).
    pub fn count(&self) -> u64 {
        self.compactors.iter().enumerate().map(|(h, c)| (c.buffer.len() as u64) << h).sum()
    }

    pub fn ranks(&self) -> Ranks {
        let mut items: Vec<(i64, u64)> = self
            .compactors
            .iter()
            .enumerate()
            .flat_map(|(h, c)| c.buffer.iter().map(move |v| (order_key(*v), 1u64 << h)))
            .collect();
        items.sort_unstable_by_key(|item| item.0);
        let mut total = 0;
        let (values, cumulative) = items
            .into_iter()
            .map(|(key, w)| {
                total += w;
                (from_order_key(key), total)
            })
            .unzip();
        Ranks { values, cumulative }
    }

    pub fn to_json(&self) -> SketchJson {
        SketchJson {
            parameters: SketchParameters { c: self.shrinking_factor, k: self.sketch_size as f64 },
            data: self.compactors.iter().map(|c| c.buffer.clone()).collect(),
        }
    }

    /// Rebuilds a sketch from `statistics.json` (level i weighs 2^i; empty levels kept).
    pub fn from_json(json: &SketchJson) -> Result<Self, String> {
        let k = json.parameters.k;
        let c = json.parameters.c;
        let valid = (2.0..=1e6).contains(&k) && k.fract() == 0.0 && c > 0.0 && c < 1.0;
        if !valid {
            return Err(format!("sketch parameters k = {k}, c = {c} are out of range"));
        }
        if json.data.len() > 63 {
            return Err(format!("the sketch has {} levels", json.data.len()));
        }
        let mut sketch = Self {
            sketch_size: k as usize,
            shrinking_factor: c,
            compactors: json
                .data
                .iter()
                .map(|level| Compactor { buffer: level.clone(), ..Default::default() })
                .collect(),
            held: 0,
            capacity_total: 0,
        };
        if sketch.compactors.is_empty() {
            sketch.compactors.push(Compactor::default());
        }
        if sketch.compactors.iter().flat_map(|c| &c.buffer).any(|v| !v.is_finite()) {
            return Err("the sketch holds a value that is not a finite number".into());
        }
        sketch.held = sketch.count_held();
        sketch.capacity_total = (0..sketch.compactors.len()).map(|h| sketch.capacity(h)).sum();
        Ok(sketch)
    }
}

/// One of the equal-width buckets `statistics.json` shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub count: f64,
}

/// `buckets` equal-width buckets between `min` and `max`, counted off the sketch: `[low, high)`,
/// the last one closed (Deequ's `KLLSketch.computeMetricFrom`).
pub fn buckets(ranks: &Ranks, min: f64, max: f64, buckets: usize) -> Vec<Bucket> {
    (0..buckets)
        .map(|i| {
            let low = min + (max - min) * i as f64 / buckets as f64;
            let high = min + (max - min) * (i + 1) as f64 / buckets as f64;
            let upper = if i + 1 == buckets { ranks.rank(high) } else { ranks.rank_exclusive(high) };
            Bucket { lower_bound: low, upper_bound: high, count: (upper - ranks.rank_exclusive(low)) as f64 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_as_total_cmp_and_round_trip() {
        let mut values = vec![
            3.5,
            -0.0,
            0.0,
            -3.5,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-310,
            -1e-310,
            f64::NAN,
            -f64::NAN,
        ];
        for i in 0..200 {
            values.push((i as f64 * 0.37 - 30.0).powi(3));
        }
        let mut by_key = values.clone();
        by_key.sort_unstable_by_key(|v| order_key(*v));
        values.sort_by(f64::total_cmp);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&by_key), bits(&values));
        for v in &values {
            assert_eq!(from_order_key(order_key(*v)).to_bits(), v.to_bits());
        }
    }
}
