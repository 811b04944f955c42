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

/// Classifies a non-empty field.
pub fn classify(field: &str) -> Kind {
    let b = field.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
        if b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let whole = digits(i);
    if whole == 0 {
        return if field == "true" || field == "false" { Kind::Boolean } else { Kind::String };
    }
    i += whole;
    if i == b.len() {
        return Kind::Integral;
    }
    let mut fraction = false;
    if b[i] == b'.' {
        let n = digits(i + 1);
        if n == 0 {
            return Kind::String;
        }
        i += 1 + n;
        fraction = true;
    }
    if i == b.len() {
        return if fraction { Kind::Fractional } else { Kind::String };
    }
    if matches!(b[i], b'e' | b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let n = digits(i);
        if n > 0 && i + n == b.len() {
            return Kind::Fractional;
        }
    }
    Kind::String
}

/// The number in an Integral or Fractional field (the optional space after a sign dropped).
pub fn number(field: &str) -> Option<f64> {
    let parsed = match field.as_bytes() {
        [sign @ (b'-' | b'+'), b' ', ..] => {
            let rest = &field[2..];
            rest.parse::<f64>().ok().map(|v| if *sign == b'-' { -v } else { v })
        }
        _ => field.parse::<f64>().ok(),
    };
    parsed.filter(|v| v.is_finite())
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
