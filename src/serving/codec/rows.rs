//! Request bodies in: CSV, JSON and JSON lines rows read into a feature matrix, with errors that
//! name the row and column.

use super::{CodecError, FeatureMatrix, RequestFormat};
use serde_json::Value;

/// Parses an invocation body into rows of exactly `expected_cols` features.
pub fn parse_rows(format: RequestFormat, body: &[u8], expected_cols: usize) -> Result<FeatureMatrix, CodecError> {
    let text = utf8(body)?;
    match format {
        RequestFormat::Csv => parse_csv(text, expected_cols),
        RequestFormat::Json => parse_json(text, expected_cols),
        RequestFormat::JsonLines => parse_json_lines(text, expected_cols),
    }
}

/// Appends one line of a line-split input (a batch transform's `SplitType=Line`) to `matrix`:
/// a CSV row, or for the JSON formats one JSON row per line. `row` is the line's number, for
/// errors.
pub fn parse_line(format: RequestFormat, line: &str, row: usize, matrix: &mut FeatureMatrix) -> Result<(), CodecError> {
    match format {
        RequestFormat::Csv => parse_csv_line(line, row, matrix),
        RequestFormat::Json | RequestFormat::JsonLines => {
            let value: Value = serde_json::from_str(line).map_err(|e| at_row(row, format!("not valid JSON: {e}")))?;
            matrix.push_instance(row, &value)
        }
    }
}

pub(super) fn utf8(body: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(body).map_err(|e| {
        let row = 1 + body[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count();
        CodecError { row: Some(row), column: None, message: "the body is not valid UTF-8".to_string() }
    })
}

/// The body's lines without surrounding blank space (as the container's `payload.strip()`),
/// each with its 1-based line number in the original body and without a trailing `\r`.
pub(super) fn lines(text: &str) -> Result<impl Iterator<Item = (usize, &str)>, CodecError> {
    let start = text.trim_start();
    let first_row = 1 + text[..text.len() - start.len()].bytes().filter(|b| *b == b'\n').count();
    let trimmed = start.trim_end();
    if trimmed.is_empty() {
        return Err(whole_body("the body has no rows"));
    }
    // memchr's vectorised search rather than `str::split`, whose searcher takes about a byte an
    // instruction: a one-row invocation's body was searched end to end in 700 (callgrind).
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', trimmed.as_bytes()).chain(std::iter::once(trimmed.len()));
    let split = ends.map(move |end| {
        let line = &trimmed[start..end];
        start = end + 1;
        line
    });
    Ok(split.enumerate().map(move |(i, line)| (first_row + i, line.strip_suffix('\r').unwrap_or(line))))
}

pub(super) fn parse_csv(text: &str, cols: usize) -> Result<FeatureMatrix, CodecError> {
    let mut matrix = FeatureMatrix::with_cols(cols);
    for (row, line) in lines(text)? {
        parse_csv_line(line, row, &mut matrix)?;
    }
    Ok(matrix)
}

/// One pass over the line: the fields are parsed as they are found, and a wrong number of
/// fields wins over a bad value (as when the fields were counted first).
fn parse_csv_line(line: &str, row: usize, matrix: &mut FeatureMatrix) -> Result<(), CodecError> {
    if parse_plain_csv_line(line.as_bytes(), matrix.cols, &mut matrix.values) {
        matrix.rows += 1;
        return Ok(());
    }
    parse_csv_fields(line, row, matrix)
}

/// [`parse_csv_line`] field by field, with every rule and error message.
fn parse_csv_fields(line: &str, row: usize, matrix: &mut FeatureMatrix) -> Result<(), CodecError> {
    let start = matrix.values.len();
    let mut found = 0;
    let mut bad_value = None;
    for field in line.split(',') {
        found += 1;
        if found > matrix.cols || bad_value.is_some() {
            continue;
        }
        match parse_csv_field(field) {
            Ok(value) => matrix.values.push(value),
            Err(message) => {
                // A failing first row is most often a header the caller forgot to drop.
                let message =
                    if row == 1 { format!("{message} (CSV input must not have a header row)") } else { message };
                bad_value = Some(at(row, found, message));
            }
        }
    }
    if found != matrix.cols || bad_value.is_some() {
        matrix.values.truncate(start);
        return Err(if found != matrix.cols { column_count(row, matrix.cols, found) } else { bad_value.expect("set") });
    }
    matrix.rows += 1;
    Ok(())
}

/// The usual line in one pass: exactly `cols` fields, each a number read right up to its comma
/// (or empty). Anything else (blank space, a bad value, another count of fields) leaves `values`
/// as it was and returns false, for [`parse_csv_line`]'s full rules and error messages. The same
/// values as those rules give: fast-float2 reads a field it consumes whole exactly as
/// [`parse_csv_field`] does (its `parse` is this partial parse plus that check).
fn parse_plain_csv_line(line: &[u8], cols: usize, values: &mut Vec<f32>) -> bool {
    let start = values.len();
    // The row's room at once: pushed value by value, a one-row request's matrix grew four times.
    values.reserve(cols);
    let mut at = 0;
    for col in 1..=cols {
        let value = if at == line.len() || line[at] == b',' {
            Some(f32::NAN)
        } else {
            let field = &line[at..];
            match plain_decimal(field).or_else(|| fast_float2::parse_partial::<f64, _>(field).ok()) {
                Some((value, used)) => {
                    at += used;
                    to_feature(value).ok()
                }
                None => None,
            }
        };
        let ends_right = if col == cols { at == line.len() } else { line.get(at) == Some(&b',') };
        match value {
            Some(value) if ends_right => values.push(value),
            _ => {
                values.truncate(start);
                return false;
            }
        }
        at += 1;
    }
    cols > 0
}

/// Powers of ten exact in an f64.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A plain decimal (`-`, digits, a point, digits; at least one digit) opening `field` and ending
/// at a comma or with the field, and how many bytes it takes; `None` for anything else, which
/// fast-float2 reads. Exact, and so the value fast-float2 gives: the digits as an integer of at
/// most 2^53 divided by a power of ten of at most 10^22 are both exact in an f64, and the one
/// division rounds correctly (Clinger's fast path; longer numbers go to fast-float2).
///
/// Written here rather than calling fast-float2 for every field: its general reader (exponents,
/// long mantissas, inf and nan, a partial read's bookkeeping) took ~175 instructions a field
/// of the usual 6-8 characters, this one about 50 (callgrind: a one-row invocation of 30
/// fields, 57.9 k instructions before, 56.0 k after).
fn plain_decimal(field: &[u8]) -> Option<(f64, usize)> {
    // Digits accumulate with wrapping arithmetic and are counted after: more than 19 (which
    // might have wrapped) go to fast-float2 anyway.
    let digits_from = |at: &mut usize, mantissa: &mut u64| {
        let start = *at;
        while let Some(digit) = field.get(*at).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10) {
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            *at += 1;
        }
        *at - start
    };
    let negative = field.first() == Some(&b'-');
    let mut at = usize::from(negative);
    let mut mantissa = 0u64;
    let whole = digits_from(&mut at, &mut mantissa);
    let fraction = if field.get(at) == Some(&b'.') {
        at += 1;
        digits_from(&mut at, &mut mantissa)
    } else {
        0
    };
    let digits = whole + fraction;
    let ends = at == field.len() || field[at] == b',';
    if !ends || digits == 0 || digits > 19 || mantissa > 1 << 53 || fraction >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let magnitude = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction];
    Some((if negative { -magnitude } else { magnitude }, at))
}

pub(super) fn parse_csv_field(field: &str) -> Result<f32, String> {
    // Most fields have no blank around them: skip the trim's scan for those.
    let bytes = field.as_bytes();
    let padded = bytes.first().is_some_and(|b| b.is_ascii_whitespace() || *b >= 0x80)
        || bytes.last().is_some_and(|b| b.is_ascii_whitespace() || *b >= 0x80);
    let field = if padded { field.trim() } else { field };
    if field.is_empty() {
        return Ok(f32::NAN);
    }
    // fast-float2 first (correctly rounded, as std is, and about twice as fast: parsing is a
    // third of a batch transform's work); what it refuses, std decides, so the accepted
    // spellings stay exactly std's.
    match fast_float2::parse::<f64, _>(field).or_else(|_| field.parse::<f64>()) {
        Ok(value) => to_feature(value),
        Err(_) => Err(format!("\"{}\" is not a number", shorten(field))),
    }
}

pub(super) fn parse_json(text: &str, cols: usize) -> Result<FeatureMatrix, CodecError> {
    if text.trim().is_empty() {
        return Err(whole_body("the body has no rows"));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| whole_body(&format!("the body is not valid JSON: {e}")))?;
    let mut matrix = FeatureMatrix::with_cols(cols);
    match &value {
        Value::Object(object) => {
            if let Some(instances) = object.get("instances") {
                let Value::Array(instances) = instances else {
                    return Err(whole_body("\"instances\" must be an array of rows"));
                };
                for (index, instance) in instances.iter().enumerate() {
                    matrix.push_instance(index + 1, instance)?;
                }
            } else if object.contains_key("features") {
                matrix.push_instance(1, &value)?;
            } else {
                return Err(whole_body(
                    "expected {\"instances\": [...]}, {\"features\": [...]}, a list of rows or one row",
                ));
            }
        }
        // A list of rows, or a single flat row of numbers.
        Value::Array(items) => match items.first() {
            None => {}
            Some(Value::Array(_) | Value::Object(_)) => {
                for (index, instance) in items.iter().enumerate() {
                    matrix.push_instance(index + 1, instance)?;
                }
            }
            Some(_) => matrix.push_row(1, items)?,
        },
        _ => {
            return Err(whole_body(
                "expected {\"instances\": [...]}, {\"features\": [...]}, a list of rows or one row",
            ));
        }
    }
    if matrix.rows == 0 {
        return Err(whole_body("the body has no rows"));
    }
    Ok(matrix)
}

pub(super) fn parse_json_lines(text: &str, cols: usize) -> Result<FeatureMatrix, CodecError> {
    let mut matrix = FeatureMatrix::with_cols(cols);
    for (row, line) in lines(text)? {
        if line.trim().is_empty() {
            return Err(at_row(row, "empty line".to_string()));
        }
        let value: Value = serde_json::from_str(line).map_err(|e| at_row(row, format!("not valid JSON: {e}")))?;
        matrix.push_instance(row, &value)?;
    }
    Ok(matrix)
}

impl FeatureMatrix {
    pub fn with_cols(cols: usize) -> Self {
        Self { values: Vec::new(), rows: 0, cols }
    }

    /// One instance: `[...]` or `{"features": [...]}`.
    fn push_instance(&mut self, row: usize, instance: &Value) -> Result<(), CodecError> {
        match instance {
            Value::Array(values) => self.push_row(row, values),
            Value::Object(object) => match object.get("features") {
                Some(Value::Array(values)) => self.push_row(row, values),
                _ => Err(at_row(row, "an object instance needs \"features\": [...]".to_string())),
            },
            _ => Err(at_row(row, "an instance must be an array of numbers or {\"features\": [...]}".to_string())),
        }
    }

    fn push_row(&mut self, row: usize, values: &[Value]) -> Result<(), CodecError> {
        if values.len() != self.cols {
            return Err(column_count(row, self.cols, values.len()));
        }
        for (index, value) in values.iter().enumerate() {
            let feature = match value {
                Value::Null => Ok(f32::NAN),
                Value::Number(number) => {
                    number.as_f64().ok_or_else(|| format!("{number} is not a number")).and_then(to_feature)
                }
                other => Err(format!("{} is not a number or null", shorten(&other.to_string()))),
            }
            .map_err(|message| at(row, index + 1, message))?;
            self.values.push(feature);
        }
        self.rows += 1;
        Ok(())
    }
}

/// XGBoost reads features as float32 after the container parsed them as float64; going through
/// f64 keeps the same rounding.
pub(super) fn to_feature(value: f64) -> Result<f32, String> {
    if value.is_nan() {
        return Ok(f32::NAN);
    }
    if value.is_infinite() {
        return Err("infinite values are not allowed (leave the field empty for missing)".into());
    }
    let feature = value as f32;
    if feature.is_infinite() {
        return Err(format!("{value} is too large for a 32-bit float"));
    }
    Ok(feature)
}

/// At most 40 characters of `text`, so that a stray blob does not flood the error message.
pub(super) fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

pub(super) fn column_count(row: usize, expected: usize, found: usize) -> CodecError {
    at_row(row, format!("expected {expected} columns, found {found}"))
}

pub(super) fn at(row: usize, column: usize, message: String) -> CodecError {
    CodecError { row: Some(row), column: Some(column), message }
}

pub(super) fn at_row(row: usize, message: String) -> CodecError {
    CodecError { row: Some(row), column: None, message }
}

pub(super) fn whole_body(message: &str) -> CodecError {
    CodecError { row: None, column: None, message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line the one-pass reader takes gives the values the field-by-field rules give, and
    /// what it refuses those rules decide.
    #[test]
    fn the_one_pass_reader_agrees_with_the_field_rules() {
        let spellings = [
            "1",
            "-2.5",
            "+3",
            "0.1234567890123456789",
            "1e-7",
            "2E+30",
            "1e400",
            "1e-400",
            "",
            " 1",
            "1 ",
            "nan",
            "NaN",
            "inf",
            "-infinity",
            ".5",
            "5.",
            "1.5x",
            "0x10",
            "1_0",
            "\u{661}",
            "3.4028236e38",
            "-0",
        ];
        let mut checked = 0;
        for a in spellings {
            for b in spellings {
                for line in [format!("{a},{b}"), format!("{a},{b},"), a.to_string(), format!("{a},{b}\r")] {
                    let mut fast = Vec::new();
                    if !parse_plain_csv_line(line.as_bytes(), 2, &mut fast) {
                        assert!(fast.is_empty(), "{line:?} left values behind");
                        continue;
                    }
                    let mut slow = FeatureMatrix::with_cols(2);
                    parse_csv_fields(&line, 1, &mut slow).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&fast), bits(&slow.values), "{line:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
        assert!(!parse_plain_csv_line(b"1", 0, &mut Vec::new()));
    }

    /// Whatever the plain-decimal reader takes, it reads as fast-float2 does, to the bit and to
    /// the byte: numbers of every length and place of the point (up to where it hands over),
    /// and strings of the characters numbers are made of.
    #[test]
    fn plain_decimals_read_as_fast_float_reads_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let (mut taken, mut handed_over) = (0, 0);
        for round in 0..200_000 {
            let text: String = if round % 2 == 0 {
                // A number: up to 22 digits, a point somewhere or nowhere, a sign or not.
                let digits = 1 + next(22) as usize;
                let mut t: String = (0..digits).map(|_| char::from(b'0' + next(10) as u8)).collect();
                match next(3) {
                    0 => {}
                    _ => t.insert(next(digits as u64 + 1) as usize, '.'),
                }
                if next(2) == 0 {
                    t.insert(0, '-');
                }
                t
            } else {
                let alphabet = ['0', '1', '5', '9', '.', '-', '+', 'e', 'E', ',', 'x', ' ', '/', ':', 'é', '\u{661}'];
                (0..1 + next(12)).map(|_| alphabet[next(alphabet.len() as u64) as usize]).collect()
            };
            // A number is read up to its comma: the same with the line's next fields after it
            // (and with bytes outside ASCII among the characters).
            let tail = match next(3) {
                0 => String::new(),
                1 => ",12345678,9".to_string(),
                _ => format!(",{}", (0..next(16)).map(|_| char::from(b'0' + next(10) as u8)).collect::<String>()),
            };
            let line = format!("{text}{tail}");
            let Some((value, used)) = plain_decimal(line.as_bytes()) else {
                handed_over += 1;
                continue;
            };
            let (expected, expected_used) = fast_float2::parse_partial::<f64, _>(line.as_bytes())
                .unwrap_or_else(|e| panic!("{line:?}: fast-float2 refuses what was taken: {e:?}"));
            assert_eq!((value.to_bits(), used), (expected.to_bits(), expected_used), "{line:?}");
            taken += 1;
        }
        assert!(taken > 70_000 && handed_over > 30_000, "{taken} taken, {handed_over} handed over");
        for (text, value, used) in [("13.6327,1", 13.6327, 7), ("-0", -0.0, 2), (".5", 0.5, 2), ("5.", 5.0, 2)] {
            let (read, took) = plain_decimal(text.as_bytes()).unwrap();
            assert_eq!((read.to_bits(), took), (f64::to_bits(value), used), "{text:?}");
        }
        for handed in ["1e5", "+1", "1.2.3", "-", ".", "12345678901234567890", "9007199254740993", "1 "] {
            assert_eq!(plain_decimal(handed.as_bytes()), None, "{handed:?}");
        }
    }
}
