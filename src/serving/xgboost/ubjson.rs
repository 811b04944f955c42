//! A small UBJSON (draft 12) reader producing a [`Doc`], enough for XGBoost's `.ubj` models:
//! big-endian scalars, `S` strings, and the optimized containers XGBoost writes (`[$d#L<count>`
//! typed arrays, decoded straight into typed vectors; `{L<len>key...}` objects).
//!
//! Untrusted input: every count is checked against the bytes left before anything is allocated,
//! everything decoded is charged to a memory budget as it is built, and nesting is bounded, so a
//! hostile file fails with an error instead of exhausting memory.

use super::doc::{ArrayBuilder, Doc};

const MAX_DEPTH: usize = 128;

#[derive(Debug)]
pub(crate) struct UbjsonError {
    pub offset: usize,
    pub reason: String,
}

type Result<T> = std::result::Result<T, UbjsonError>;

/// Decodes `bytes`, using at most about `budget` bytes of memory for the document.
pub(crate) fn parse(bytes: &[u8], budget: usize) -> Result<Doc> {
    let mut reader = Reader { bytes, pos: 0, budget, limit: budget };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(
            reader.error(format!("{} unexpected bytes after the end of the document", bytes.len() - reader.pos))
        );
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Bytes of memory the document may still take.
    budget: usize,
    limit: usize,
}

impl Reader<'_> {
    fn error(&self, reason: impl Into<String>) -> UbjsonError {
        UbjsonError { offset: self.pos, reason: reason.into() }
    }

    /// Charges `bytes` of memory to the budget before they are allocated.
    fn charge(&mut self, bytes: usize) -> Result<()> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(self.error(format!(
                "decoding the model needs more than {} bytes of memory (serving.model_limits.max_memory_bytes)",
                self.limit
            ))),
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let Some(chunk) = self.bytes.get(self.pos..self.pos + N) else {
            return Err(self.error("unexpected end of data"));
        };
        self.pos += N;
        Ok(chunk.try_into().expect("slice has length N"))
    }

    fn take_slice(&mut self, len: usize) -> Result<&[u8]> {
        if len > self.remaining() {
            return Err(
                self.error(format!("length {len} runs past the end of the data ({} bytes left)", self.remaining()))
            );
        }
        let slice = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    fn marker(&mut self) -> Result<u8> {
        // `N` is a no-op marker that may appear wherever a value marker may.
        loop {
            let [m] = self.take::<1>()?;
            if m != b'N' {
                return Ok(m);
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Doc> {
        let marker = self.marker()?;
        self.value_of(marker, depth)
    }

    fn value_of(&mut self, marker: u8, depth: usize) -> Result<Doc> {
        Ok(match marker {
            b'Z' => Doc::Null,
            b'T' => Doc::Bool(true),
            b'F' => Doc::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Doc::Int(self.integer(marker)?),
            b'd' => float(f64::from(f32::from_be_bytes(self.take()?))),
            b'D' => float(f64::from_be_bytes(self.take()?)),
            b'H' => {
                let text = self.string()?;
                match serde_json::from_str::<serde_json::Number>(&text) {
                    Ok(n) => match n.as_i64() {
                        Some(i) => Doc::Int(i),
                        None => float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Err(_) => {
                        return Err(self.error(format!("invalid high-precision number {text:?}")));
                    }
                }
            }
            b'C' => {
                let [c] = self.take::<1>()?;
                if !c.is_ascii() {
                    return Err(self.error("char value is not ASCII"));
                }
                Doc::Str(char::from(c).to_string())
            }
            b'S' => Doc::Str(self.string()?),
            b'[' => self.array(depth + 1)?,
            b'{' => self.object(depth + 1)?,
            other => return Err(self.unknown_marker(other)),
        })
    }

    fn unknown_marker(&self, marker: u8) -> UbjsonError {
        let shown =
            if marker.is_ascii_graphic() { format!("'{}'", char::from(marker)) } else { format!("0x{marker:02x}") };
        UbjsonError { offset: self.pos.saturating_sub(1), reason: format!("unknown type marker {shown}") }
    }

    fn integer(&mut self, marker: u8) -> Result<i64> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.take()?)),
            b'U' => i64::from(u8::from_be_bytes(self.take()?)),
            b'I' => i64::from(i16::from_be_bytes(self.take()?)),
            b'l' => i64::from(i32::from_be_bytes(self.take()?)),
            b'L' => i64::from_be_bytes(self.take()?),
            other => {
                return Err(
                    self.error(format!("expected an integer type marker for a length, found {:?}", char::from(other)))
                );
            }
        })
    }

    fn length(&mut self) -> Result<usize> {
        let marker = self.marker()?;
        let n = self.integer(marker)?;
        usize::try_from(n).map_err(|_| self.error(format!("negative length {n}")))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.length()?;
        let start = self.pos;
        if len > self.remaining() {
            return Err(
                self.error(format!("length {len} runs past the end of the data ({} bytes left)", self.remaining()))
            );
        }
        self.charge(len)?;
        let bytes = self.take_slice(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(UbjsonError { offset: start, reason: "string is not valid UTF-8".into() }),
        }
    }

    /// Reads the optional `$<type>` and `#<count>` that follow `[` or `{`.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>)> {
        let mut element_type = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            let [t] = self.take::<1>()?;
            // Valid UBJSON, but never written by XGBoost, and a count of payload-free
            // elements would not be bounded by the input size.
            if matches!(t, b'Z' | b'T' | b'F' | b'N') {
                return Err(self.error("typed containers of null/true/false are not supported"));
            }
            element_type = Some(t);
            if self.peek() != Some(b'#') {
                return Err(self.error("a typed container ('$') must give a count ('#')"));
            }
        }
        let mut count = None;
        if self.peek() == Some(b'#') {
            self.pos += 1;
            let n = self.length()?;
            // Every element takes at least one byte (a typed one exactly its size), so a
            // larger count cannot be honest.
            let min_size = match element_type {
                Some(b'I') => 2,
                Some(b'l' | b'd') => 4,
                Some(b'L' | b'D') => 8,
                _ => 1,
            };
            if n.checked_mul(min_size).is_none_or(|bytes| bytes > self.remaining()) {
                return Err(
                    self.error(format!("container claims {n} elements but only {} bytes are left", self.remaining()))
                );
            }
            count = Some(n);
        }
        Ok((element_type, count))
    }

    fn element(&mut self, element_type: Option<u8>, depth: usize) -> Result<Doc> {
        match element_type {
            Some(t) => self.value_of(t, depth),
            None => self.value(depth),
        }
    }

    /// A typed array of `n` fixed-size numbers, decoded straight into a typed vector. The count
    /// was checked against the bytes left; the vector is charged to the budget first.
    fn typed_numbers(&mut self, element_type: u8, n: usize) -> Result<Option<Doc>> {
        let size = match element_type {
            b'U' | b'i' => 1,
            b'I' => 2,
            b'l' | b'd' => 4,
            b'L' | b'D' => 8,
            _ => return Ok(None),
        };
        let stored = match element_type {
            b'U' => 1,
            b'i' | b'I' | b'l' | b'd' => 4,
            _ => 8,
        };
        self.charge(n.saturating_mul(stored))?;
        let raw = self.take_slice(n * size)?;
        let doc = match element_type {
            b'U' => Doc::Bytes(raw.to_vec()),
            b'i' => Doc::I32s(raw.iter().map(|&b| i32::from(b as i8)).collect()),
            b'I' => Doc::I32s(raw.chunks_exact(2).map(|c| i32::from(i16::from_be_bytes([c[0], c[1]]))).collect()),
            b'l' => Doc::I32s(raw.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()),
            b'd' => Doc::F32s(raw.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()),
            b'L' => {
                Doc::I64s(raw.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes"))).collect())
            }
            _ => Doc::F64s(raw.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes"))).collect()),
        };
        Ok(Some(doc))
    }

    fn array(&mut self, depth: usize) -> Result<Doc> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let (element_type, count) = self.container_header()?;
        if let (Some(t), Some(n)) = (element_type, count)
            && let Some(typed) = self.typed_numbers(t, n)?
        {
            return Ok(typed);
        }
        let mut items = ArrayBuilder::new();
        match count {
            Some(n) => {
                for _ in 0..n {
                    self.charge(std::mem::size_of::<Doc>())?;
                    items.push(self.element(element_type, depth)?);
                }
            }
            None => loop {
                let marker = self.marker()?;
                if marker == b']' {
                    break;
                }
                self.charge(std::mem::size_of::<Doc>())?;
                items.push(self.value_of(marker, depth)?);
            },
        }
        Ok(items.finish())
    }

    fn object(&mut self, depth: usize) -> Result<Doc> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let (element_type, count) = self.container_header()?;
        let mut entries = Vec::new();
        let entry_size = std::mem::size_of::<(String, Doc)>();
        match count {
            Some(n) => {
                for _ in 0..n {
                    self.charge(entry_size)?;
                    let key = self.string()?;
                    let value = self.element(element_type, depth)?;
                    entries.push((key, value));
                }
            }
            None => loop {
                // Keys carry no 'S' marker, only their length; '}' ends the object.
                while self.peek() == Some(b'N') {
                    self.pos += 1;
                }
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    break;
                }
                self.charge(entry_size)?;
                let key = self.string()?;
                let value = self.value(depth)?;
                entries.push((key, value));
            },
        }
        Ok(Doc::Object(entries))
    }
}

/// A scalar NaN or infinity becomes `null`, as in JSON, and the model reader reports it where a
/// number is required.
fn float(v: f64) -> Doc {
    if v.is_finite() { Doc::Float(v) } else { Doc::Null }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(bytes: &[u8]) -> Result<serde_json::Value> {
        super::parse(bytes, 1 << 20).map(|doc| doc.to_json())
    }

    fn key(s: &str) -> Vec<u8> {
        let mut out = vec![b'i', u8::try_from(s.len()).unwrap()];
        out.extend_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn scalars_are_big_endian() {
        assert_eq!(parse(&[b'i', 0xff]).unwrap(), json!(-1));
        assert_eq!(parse(&[b'U', 0xff]).unwrap(), json!(255));
        assert_eq!(parse(&[b'I', 0x01, 0x00]).unwrap(), json!(256));
        assert_eq!(parse(&[b'l', 0, 1, 0, 0]).unwrap(), json!(65536));
        assert_eq!(parse(&[b'L', 0, 0, 0, 1, 0, 0, 0, 0]).unwrap(), json!(1u64 << 32));
        let mut d = vec![b'd'];
        d.extend_from_slice(&0.1f32.to_be_bytes());
        assert_eq!(super::parse(&d, 64).unwrap(), Doc::Float(f64::from(0.1f32)));
        let mut dd = vec![b'D'];
        dd.extend_from_slice(&(-2.5f64).to_be_bytes());
        assert_eq!(parse(&dd).unwrap(), json!(-2.5));
        assert_eq!(parse(b"T").unwrap(), json!(true));
        assert_eq!(parse(b"F").unwrap(), json!(false));
        assert_eq!(parse(b"Z").unwrap(), json!(null));
        assert_eq!(parse(b"Ca").unwrap(), json!("a"));
        assert_eq!(parse(b"Si\x03abc").unwrap(), json!("abc"));
        assert_eq!(parse(b"Hi\x0512345").unwrap(), json!(12345));
    }

    #[test]
    fn non_finite_floats_become_null() {
        let mut d = vec![b'd'];
        d.extend_from_slice(&f32::NAN.to_be_bytes());
        assert_eq!(parse(&d).unwrap(), json!(null));
    }

    #[test]
    fn typed_and_counted_containers() {
        // [$d#i2 <f32 1.5> <f32 -2>]
        let mut b = b"[$d#i\x02".to_vec();
        b.extend_from_slice(&1.5f32.to_be_bytes());
        b.extend_from_slice(&(-2.0f32).to_be_bytes());
        assert_eq!(parse(&b).unwrap(), json!([1.5, -2.0]));
        // [#i2 i1 U2] (counted, untyped)
        assert_eq!(parse(b"[#i\x02i\x01U\x02").unwrap(), json!([1, 2]));
        // [$U#i3 bytes] as XGBoost writes default_left.
        assert_eq!(parse(b"[$U#i\x03\x00\x01\x00").unwrap(), json!([0, 1, 0]));
        assert!(parse(b"[$Z#i\x02").unwrap_err().reason.contains("not supported"));
    }

    #[test]
    fn objects_with_and_without_counts() {
        let mut b = vec![b'{'];
        b.extend(key("a"));
        b.extend_from_slice(b"i\x01");
        b.extend(key("b"));
        b.extend_from_slice(b"[i\x02N]");
        b.push(b'}');
        assert_eq!(parse(&b).unwrap(), json!({"a": 1, "b": [2]}));

        let mut c = b"{$i#i\x02".to_vec();
        c.extend(key("x"));
        c.push(3);
        c.extend(key("y"));
        c.push(4);
        assert_eq!(parse(&c).unwrap(), json!({"x": 3, "y": 4}));

        // XGBoost writes int64 key lengths: {L<8 bytes>name...}
        let mut d = b"{L\x00\x00\x00\x00\x00\x00\x00\x04name".to_vec();
        d.extend_from_slice(b"SL\x00\x00\x00\x00\x00\x00\x00\x02ok}");
        assert_eq!(parse(&d).unwrap(), json!({"name": "ok"}));
        assert_eq!(parse(b"{}").unwrap(), json!({}));
    }

    #[test]
    fn rejects_truncated_and_malformed_input() {
        let err = parse(b"[$d#i\x02\x00\x00\x00\x00\x00").unwrap_err();
        assert!(err.reason.contains("elements"), "{}", err.reason);
        assert!(parse(b"[#i\x02d\x00\x00").unwrap_err().reason.contains("end of data"));
        assert!(parse(b"Si\x05ab").unwrap_err().reason.contains("past the end"));
        assert!(parse(b"Si\xffab").unwrap_err().reason.contains("negative length"));
        assert!(parse(b"[i\x01").unwrap_err().reason.contains("end of data"));
        let err = parse(b"X").unwrap_err();
        assert!(err.reason.contains("unknown type marker 'X'"), "{}", err.reason);
        assert!(parse(b"i\x01i\x02").unwrap_err().reason.contains("after the end"));
        assert!(parse(b"[$d]").unwrap_err().reason.contains("count"));
        assert!(parse(b"S#\x01").unwrap_err().reason.contains("integer type marker"));
        assert!(parse(b"Si\x02\xff\xfe").unwrap_err().reason.contains("UTF-8"));
    }

    #[test]
    fn huge_counts_fail_before_allocating() {
        let b = b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff";
        assert!(parse(b).unwrap_err().reason.contains("claims"));
        let s = b"SL\x7f\xff\xff\xff\xff\xff\xff\xff";
        assert!(parse(s).unwrap_err().reason.contains("past the end"));
    }

    #[test]
    fn typed_arrays_decode_to_typed_vectors_within_the_budget() {
        let mut b = b"[$d#i\x03".to_vec();
        for x in [1.5f32, -2.0, 0.25] {
            b.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(super::parse(&b, 64).unwrap(), Doc::F32s(vec![1.5, -2.0, 0.25]));
        assert_eq!(super::parse(b"[$U#i\x02\x07\x00", 64).unwrap(), Doc::Bytes(vec![7, 0]));
        assert_eq!(super::parse(b"[$l#i\x01\xff\xff\xff\xfe", 64).unwrap(), Doc::I32s(vec![-2]));
        // The same array against a budget too small for it: refused before it is built.
        let err = super::parse(&b, 8).unwrap_err();
        assert!(err.reason.contains("serving.model_limits.max_memory_bytes"), "{}", err.reason);
        // Untyped arrays of payload-free values are charged per element.
        let nulls = [b"[".as_slice(), &[b'Z'; 1000], b"]"].concat();
        assert!(super::parse(&nulls, 1000).unwrap_err().reason.contains("memory"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = vec![b'['; MAX_DEPTH + 2];
        assert!(parse(&deep).unwrap_err().reason.contains("nesting"));
    }
}
