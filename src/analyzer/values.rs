//! What a value is, by Deequ's rules (its `DataType` analyzer), which Model Monitor's type
//! inference and `data_type_check` follow:
//!
//! - Integral `^(-|\+)? ?\d+$`
//! - Fractional `^(-|\+)? ?\d+((\.\d+)|((?:\.\d+)?[Ee][-+]?\d+))$` (so `.5`, `5.` and `nan` are
//!   not numbers)
//! - Boolean `^(true|false)$`
//! - anything else non-empty is a String; an empty field is missing.
//!
//! Hand-written rather than `regex`: this runs on every field of every row.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integral,
    Fractional,
    Boolean,
    String,
}

/// Classifies a non-empty field. One pass with an index (this runs on every field of every
/// row; iterator adaptors per digit run cost a fifth of a profile).
pub fn classify(field: &str) -> Kind {
    let b = field.as_bytes();
    let n = b.len();
    let digits_from = |mut i: usize| {
        while i < n && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = 0;
    if n > 0 && (b[0] == b'-' || b[0] == b'+') {
        i = if n > 1 && b[1] == b' ' { 2 } else { 1 };
    }
    let after_whole = digits_from(i);
    if after_whole == i {
        return if field == "true" || field == "false" { Kind::Boolean } else { Kind::String };
    }
    i = after_whole;
    if i == n {
        return Kind::Integral;
    }
    if b[i] == b'.' {
        let after_fraction = digits_from(i + 1);
        if after_fraction == i + 1 {
            return Kind::String;
        }
        i = after_fraction;
        if i == n {
            return Kind::Fractional;
        }
    }
    if b[i] == b'e' || b[i] == b'E' {
        i += 1;
        if i < n && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let end = digits_from(i);
        if end > i && end == n {
            return Kind::Fractional;
        }
    }
    Kind::String
}

/// [`classify`] and, for a number, [`number`] in one scan where it can: a plain decimal (no
/// exponent, at most 19 digits) is read while it is classified, its value being the digits as an
/// integer scaled by a power of ten — exact and correctly rounded when the integer is below 2^53
/// and the power at most 10^22, both then exact doubles (Clinger's fast path, which fast-float
/// takes too). Anything else goes through `classify` and `number`. The same answers as those two,
/// bit for bit (tested against them).
pub fn classify_number(field: &str) -> (Kind, Option<f64>) {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    let b = field.as_bytes();
    let n = b.len();
    let mut i = 0;
    let negative = n > 0 && b[0] == b'-';
    if n > 0 && (b[0] == b'-' || b[0] == b'+') {
        i = if n > 1 && b[1] == b' ' { 2 } else { 1 };
    }
    let start = i;
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    while i < n && b[i].is_ascii_digit() {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
        digits += 1;
        i += 1;
    }
    let mut scale = 0usize;
    let kind = if i == start {
        None
    } else if i == n {
        Some(Kind::Integral)
    } else if b[i] == b'.' {
        let fraction = i + 1;
        i = fraction;
        while i < n && b[i].is_ascii_digit() {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
            digits += 1;
            i += 1;
        }
        scale = i - fraction;
        (i == n && scale > 0).then_some(Kind::Fractional)
    } else {
        None
    };
    match kind {
        Some(kind) if digits <= 19 && mantissa < (1 << 53) && scale < POW10.len() => {
            let magnitude = mantissa as f64 / POW10[scale];
            (kind, Some(if negative { -magnitude } else { magnitude }))
        }
        // An exponent, a long mantissa, or not a number: the general path.
        _ => {
            let kind = classify(field);
            let value = matches!(kind, Kind::Integral | Kind::Fractional).then(|| number(field)).flatten();
            (kind, value)
        }
    }
}

/// The number in an Integral or Fractional field (the optional space after a sign dropped).
pub fn number(field: &str) -> Option<f64> {
    let parsed = match field.as_bytes() {
        [sign @ (b'-' | b'+'), b' ', ..] => parse(&field[2..]).map(|v| if *sign == b'-' { -v } else { v }),
        _ => parse(field),
    };
    parsed.filter(|v| v.is_finite())
}

/// fast-float2 (correctly rounded, as std is, and about twice as fast on the fields of every
/// row); what it refuses, std decides.
fn parse(text: &str) -> Option<f64> {
    fast_float2::parse::<f64, _>(text).ok().or_else(|| text.parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deequs_patterns() {
        for (field, kind) in [
            ("0", Kind::Integral),
            ("-12", Kind::Integral),
            ("+ 7", Kind::Integral),
            ("3.25", Kind::Fractional),
            ("-1e5", Kind::Fractional),
            ("2.5E-3", Kind::Fractional),
            ("1.0e+10", Kind::Fractional),
            (".5", Kind::String),
            ("5.", Kind::String),
            ("1e", Kind::String),
            ("nan", Kind::String),
            ("Infinity", Kind::String),
            ("true", Kind::Boolean),
            ("True", Kind::String),
            ("12a", Kind::String),
            ("- ", Kind::String),
        ] {
            assert_eq!(classify(field), kind, "{field:?}");
        }
        assert_eq!(number("+ 7"), Some(7.0));
        for (field, _) in [("0", 0), ("-0", 0), ("-0.0", 0)] {
            assert_eq!(classify_number(field).1.map(f64::to_bits), number(field).map(f64::to_bits), "{field}");
        }
        assert_eq!(number("- 2.5"), Some(-2.5));
        assert_eq!(number("1e400"), None);
    }

    /// The one-scan path gives what `classify` and `number` give, bit for bit, on fields of every
    /// shape: decimals of every length and scale (both sides of the fast path's limits), signs with
    /// and without the space, exponents, and strings that are nearly numbers.
    #[test]
    fn one_scan_equals_classify_then_number() {
        let mut fields: Vec<String> = [
            "",
            "-",
            "+",
            "- ",
            "+ 7",
            "- 2.5",
            ".5",
            "5.",
            "1e5",
            "-1E-7",
            "2.5e300",
            "1e400",
            "nan",
            "inf",
            "true",
            "0.1",
            "0.30000000000000004",
            "9007199254740993",
            "9007199254740992",
            "99999999999999999999",
            "1234567890123456789",
            "12345678901234567890",
            "0.0000000000000000000001",
            "1.00000000000000000000001",
            "00012.500",
            "12a",
            "1.2.3",
            "-.5",
            "+0",
            "-0.000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Deterministic pseudo-random decimals (a 64-bit LCG: no RNG dependency in the library).
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            state >> 11
        };
        for _ in 0..200_000 {
            let whole = next() % 10u64.pow((next() % 12) as u32 + 1);
            let fraction_digits = (next() % 16) as usize;
            let sign = ["", "-", "+", "- "][(next() % 4) as usize];
            let field = if fraction_digits == 0 {
                format!("{sign}{whole}")
            } else {
                let fraction =
                    format!("{:0width$}", next() % 10u64.pow(fraction_digits.min(15) as u32), width = fraction_digits);
                format!("{sign}{whole}.{fraction}")
            };
            fields.push(field);
        }
        for field in &fields {
            let kind = if field.is_empty() { Kind::String } else { classify(field) };
            let expected = (kind, matches!(kind, Kind::Integral | Kind::Fractional).then(|| number(field)).flatten());
            if field.is_empty() {
                continue; // empty fields are missing before either is asked
            }
            let got = classify_number(field);
            assert_eq!(got.0, expected.0, "{field:?}");
            assert_eq!(got.1.map(f64::to_bits), expected.1.map(f64::to_bits), "{field:?}");
        }
    }
}
