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
        assert_eq!(number("- 2.5"), Some(-2.5));
        assert_eq!(number("1e400"), None);
    }
}
