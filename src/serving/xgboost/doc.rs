//! The model document as read from JSON or UBJSON: like a JSON value, except that arrays of
//! numbers are kept as typed vectors (`Vec<f32>` for UBJSON's `$d` arrays, and so on) instead
//! of one 32-byte value per number, so a model takes memory close to its file size.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// An array holding anything but numbers only.
    List(Vec<Doc>),
    /// Arrays of numbers, by the narrowest type that holds them as written.
    Bytes(Vec<u8>),
    I32s(Vec<i32>),
    I64s(Vec<i64>),
    F32s(Vec<f32>),
    F64s(Vec<f64>),
    /// Keys in document order; a repeated key's last value wins (as in a JSON map).
    Object(Vec<(String, Doc)>),
}

impl Doc {
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Doc::Object(_))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Doc::Int(i) => Some(*i as f64),
            Doc::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Doc::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of elements of any kind of array.
    pub fn len(&self) -> Option<usize> {
        Some(match self {
            Doc::List(v) => v.len(),
            Doc::Bytes(v) => v.len(),
            Doc::I32s(v) => v.len(),
            Doc::I64s(v) => v.len(),
            Doc::F32s(v) => v.len(),
            Doc::F64s(v) => v.len(),
            _ => return None,
        })
    }

    /// The elements of an array that is not a typed one (typed arrays hold numbers only).
    pub fn as_list(&self) -> Option<&[Doc]> {
        match self {
            Doc::List(v) => Some(v),
            _ if self.len() == Some(0) => Some(&[]),
            _ => None,
        }
    }

    /// Every element of a numeric array as `f64`, with the index of the first that is not a
    /// number as the error.
    pub fn numbers(&self) -> Option<Result<Vec<f64>, usize>> {
        Some(match self {
            Doc::Bytes(v) => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            Doc::I32s(v) => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            Doc::I64s(v) => Ok(v.iter().map(|&x| x as f64).collect()),
            Doc::F32s(v) => match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(i),
                None => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            },
            Doc::F64s(v) => match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(i),
                None => Ok(v.clone()),
            },
            Doc::List(v) => v.iter().enumerate().map(|(i, d)| d.as_f64().ok_or(i)).collect(),
            _ => return None,
        })
    }

    /// Every element of an integer array, with the index of the first that is not an integer.
    pub fn integers(&self) -> Option<Result<Vec<i64>, usize>> {
        Some(match self {
            Doc::Bytes(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Doc::I32s(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Doc::I64s(v) => Ok(v.clone()),
            Doc::F32s(v) if v.is_empty() => Ok(Vec::new()),
            Doc::F64s(v) if v.is_empty() => Ok(Vec::new()),
            Doc::F32s(_) | Doc::F64s(_) => Err(0),
            Doc::List(v) => v.iter().enumerate().map(|(i, d)| d.as_i64().ok_or(i)).collect(),
            _ => return None,
        })
    }

    /// `f32` elements, straight from a typed `f32` array (the common case: no conversion).
    pub fn f32s(&self) -> Option<Result<Vec<f32>, usize>> {
        match self {
            Doc::F32s(v) => Some(match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(i),
                None => Ok(v.clone()),
            }),
            other => other.numbers().map(|r| r.map(|v| v.into_iter().map(|x| x as f32).collect())),
        }
    }
}

#[cfg(test)]
impl Doc {
    /// The same document as a JSON value, for tests.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let floats = |v: Vec<f64>| Value::Array(v.into_iter().map(|x| json!(x)).collect());
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => json!(b),
            Doc::Int(i) => json!(i),
            Doc::Float(f) => json!(f),
            Doc::Str(s) => json!(s),
            Doc::List(v) => Value::Array(v.iter().map(Doc::to_json).collect()),
            Doc::Bytes(v) => json!(v),
            Doc::I32s(v) => json!(v),
            Doc::I64s(v) => json!(v),
            Doc::F32s(v) => floats(v.iter().map(|&x| f64::from(x)).collect()),
            Doc::F64s(v) => floats(v.clone()),
            Doc::Object(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

/// An array being read element by element: stays typed while every element is a number.
pub(crate) enum ArrayBuilder {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Mixed(Vec<Doc>),
}

impl ArrayBuilder {
    pub fn new() -> Self {
        ArrayBuilder::Ints(Vec::new())
    }

    pub fn push(&mut self, value: Doc) {
        match (&mut *self, value) {
            (ArrayBuilder::Ints(v), Doc::Int(i)) => v.push(i),
            (ArrayBuilder::Ints(v), Doc::Float(f)) => {
                let mut floats: Vec<f64> = v.iter().map(|&i| i as f64).collect();
                floats.push(f);
                *self = ArrayBuilder::Floats(floats);
            }
            (ArrayBuilder::Floats(v), Doc::Int(i)) => v.push(i as f64),
            (ArrayBuilder::Floats(v), Doc::Float(f)) => v.push(f),
            (ArrayBuilder::Mixed(v), other) => v.push(other),
            (_, other) => {
                let mut mixed: Vec<Doc> = match std::mem::replace(self, ArrayBuilder::Mixed(Vec::new())) {
                    ArrayBuilder::Ints(v) => v.into_iter().map(Doc::Int).collect(),
                    ArrayBuilder::Floats(v) => v.into_iter().map(Doc::Float).collect(),
                    ArrayBuilder::Mixed(v) => v,
                };
                mixed.push(other);
                *self = ArrayBuilder::Mixed(mixed);
            }
        }
    }

    pub fn finish(self) -> Doc {
        match self {
            ArrayBuilder::Ints(v) => Doc::I64s(v),
            // XGBoost's float arrays are float32; JSON writes them with float32 precision.
            ArrayBuilder::Floats(v) => Doc::F64s(v),
            ArrayBuilder::Mixed(v) => Doc::List(v),
        }
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Doc, D::Error> {
        deserializer.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Doc, E> {
        Ok(Doc::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Doc, E> {
        Ok(i64::try_from(v).map(Doc::Int).unwrap_or(Doc::Float(v as f64)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Doc, E> {
        Ok(Doc::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Doc, E> {
        Ok(Doc::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Doc, E> {
        Ok(Doc::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut array = ArrayBuilder::new();
        while let Some(value) = seq.next_element::<Doc>()? {
            array.push(value);
        }
        Ok(array.finish())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Doc>()? {
            entries.push((key, value));
        }
        Ok(Doc::Object(entries))
    }
}

/// At most how many values a JSON text of these bytes can hold: every value after the first
/// follows a `,`, `:`, `[` or `{`. Checked before parsing, so a document that would not fit the
/// memory budget is refused without building it.
pub(crate) fn json_value_bound(bytes: &[u8]) -> usize {
    1 + bytes.iter().filter(|&&b| matches!(b, b',' | b':' | b'[' | b'{')).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_json_arrays_become_typed_vectors() {
        let doc: Doc =
            serde_json::from_str(r#"{"a": [1, 2, 3], "b": [1, 2.5], "c": [1, "x"], "d": [], "a": [9]}"#).unwrap();
        assert_eq!(doc.get("a"), Some(&Doc::I64s(vec![9])), "the last of a repeated key wins");
        assert_eq!(doc.get("b"), Some(&Doc::F64s(vec![1.0, 2.5])));
        assert_eq!(doc.get("c"), Some(&Doc::List(vec![Doc::Int(1), Doc::Str("x".into())])));
        assert_eq!(doc.get("d").unwrap().as_list(), Some(&[][..]));
        assert_eq!(doc.get("c").unwrap().integers(), Some(Err(1)));
        assert_eq!(doc.get("b").unwrap().f32s(), Some(Ok(vec![1.0, 2.5])));
        assert!(doc.get("zzz").is_none());
    }

    #[test]
    fn the_json_value_bound_is_an_upper_bound() {
        for text in [r#"{"a": [1, 2, [3, {"b": 4}]]}"#, "[]", "1", r#"{"k": "a,b:c"}"#] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            fn count(v: &serde_json::Value) -> usize {
                1 + match v {
                    serde_json::Value::Array(a) => a.iter().map(count).sum(),
                    serde_json::Value::Object(o) => o.values().map(count).sum(),
                    _ => 0,
                }
            }
            assert!(count(&value) <= json_value_bound(text.as_bytes()), "{text}");
        }
    }
}
