//! Predictions out: CSV, JSON and JSON lines bodies, with numbers written exactly as Python's
//! `repr(float)` (and `json.dumps`) write them.

use super::ResponseFormat;

/// Encodes model outputs, `per_row` values per input row, as the XGBoost container does (see
/// the module documentation). Returns the response content type and body.
pub fn encode_predictions(format: ResponseFormat, outputs: &[f64], per_row: usize) -> (&'static str, Vec<u8>) {
    debug_assert!(per_row > 0 && outputs.len().is_multiple_of(per_row));
    let rows = outputs.chunks(per_row.max(1));
    let mut out = String::with_capacity(outputs.len() * 22 + 32);
    let content_type = match format {
        ResponseFormat::Csv => {
            for row in rows {
                for (i, value) in row.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_python_float(&mut out, *value, false);
                }
                out.push('\n');
            }
            "text/csv; charset=utf-8"
        }
        ResponseFormat::Json => {
            out.push_str("{\"predictions\": [");
            for (i, row) in rows.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_score(&mut out, row, per_row);
            }
            out.push_str("]}");
            "application/json"
        }
        ResponseFormat::JsonLines => {
            for row in rows {
                push_score(&mut out, row, per_row);
                out.push('\n');
            }
            "application/jsonlines"
        }
    };
    (content_type, out.into_bytes())
}

/// `{"score": x}` or, for multi-output models, `{"score": [a, b, c]}`.
pub(super) fn push_score(out: &mut String, row: &[f64], per_row: usize) {
    out.push_str("{\"score\": ");
    if per_row == 1 {
        push_python_float(out, row[0], true);
    } else {
        out.push('[');
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_python_float(out, *value, true);
        }
        out.push(']');
    }
    out.push('}');
}

/// Writes `x` as Python's `repr(float)` does (`json.dumps` when `json`, which spells the
/// non-finite values differently).
pub(super) fn push_python_float(out: &mut String, x: f64, json: bool) {
    if x.is_nan() {
        out.push_str(if json { "NaN" } else { "nan" });
        return;
    }
    if x.is_infinite() {
        let sign = if x < 0.0 { "-" } else { "" };
        out.push_str(sign);
        out.push_str(if json { "Infinity" } else { "inf" });
        return;
    }
    // The shortest round-trip digits (as Python's repr, but for exact ties); only the layout
    // differs.
    let mut buffer = [0u8; 24];
    let (shortest, exponent) = shortest_digits(x, &mut buffer);
    let even = tie_to_even(x, shortest, exponent);
    let digits = even.as_deref().unwrap_or(shortest);
    out.push_str(if x.is_sign_negative() { "-" } else { "" });
    if (-4..16).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(digits);
        } else {
            let integer_len = exponent as usize + 1;
            if digits.len() > integer_len {
                out.push_str(&digits[..integer_len]);
                out.push('.');
                out.push_str(&digits[integer_len..]);
            } else {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', integer_len - digits.len()));
                out.push_str(".0");
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{exponent_sign}{:02}", exponent.unsigned_abs()));
    }
}

/// The significant digits of `|x|`'s shortest round-trip representation (no trailing zeros;
/// `0` for zero) and the decimal exponent of the first: 0.0254 is (`254`, -2). From ryu, which
/// picks the same digits as Rust's `{:e}` and several times faster, without allocating (this
/// runs for every prediction a batch transform writes).
fn shortest_digits(x: f64, buffer: &mut [u8; 24]) -> (&str, i32) {
    let mut ryu = ryu::Buffer::new();
    let text = ryu.format_finite(x.abs());
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().expect("ryu writes an integer exponent")),
        None => (text, 0),
    };
    let integer_len = mantissa.find('.').unwrap_or(mantissa.len()) as i32;
    let mut len = 0;
    let mut leading_zeros = 0;
    for byte in mantissa.bytes().filter(u8::is_ascii_digit) {
        if len == 0 && byte == b'0' {
            leading_zeros += 1;
            continue;
        }
        buffer[len] = byte;
        len += 1;
    }
    while len > 1 && buffer[len - 1] == b'0' {
        len -= 1;
    }
    if len == 0 {
        buffer[0] = b'0';
        return (std::str::from_utf8(&buffer[..1]).expect("ASCII digits"), 0);
    }
    let digits = std::str::from_utf8(&buffer[..len]).expect("ASCII digits");
    (digits, exponent + integer_len - 1 - leading_zeros)
}

/// When `x` lies exactly halfway between two shortest representations, Python (David Gay's
/// dtoa) takes the one with an even last digit, Rust the upper one: `repr` of
/// 1059438285926254.25 is `1059438285926254.2`. Returns the even digits when they differ from
/// Rust's `digits` (scientific exponent `exponent`) and still read back as `x`.
pub(super) fn tie_to_even(x: f64, digits: &str, exponent: i32) -> Option<String> {
    // A tie needs the exact value to have exactly one more significant digit, a 5.
    let exact = exact_significant_digits(x)?;
    if exact % 10 != 5 || exact.to_string().len() != digits.len() + 1 {
        return None;
    }
    let low = exact / 10;
    let even = if low % 2 == 0 { low } else { low + 1 }.to_string();
    if even == digits || even.len() != digits.len() {
        return None;
    }
    let last_digit_exponent = exponent - i32::try_from(even.len()).ok()? + 1;
    let candidate: f64 = format!("{even}e{last_digit_exponent}").parse().ok()?;
    (candidate == x.abs()).then_some(even)
}

/// The significant digits of `|x|`'s exact decimal value (no trailing zeros), if there are at
/// most 18 of them; only such values can be ties between 17-digit representations.
pub(super) fn exact_significant_digits(x: f64) -> Option<u128> {
    const LIMIT: u128 = 1_000_000_000_000_000_000;
    let bits = x.abs().to_bits();
    let biased_exponent = i32::try_from(bits >> 52).ok()?;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = match biased_exponent {
        0 => (fraction, -1074),
        _ => (fraction | (1 << 52), biased_exponent - 1075),
    };
    if mantissa == 0 {
        return None;
    }
    // |x| = odd * 2^power
    let shift = mantissa.trailing_zeros();
    let mut value = u128::from(mantissa >> shift);
    let mut power = exponent + i32::try_from(shift).ok()?;
    if power < 0 {
        // odd * 5^-power / 10^-power: odd, so no trailing zeros to drop. Most values (every
        // float32 prediction widened to double) have far more digits: say so without the loop.
        // 2^60 > LIMIT and 5 > 2^2.32, so more than 60 bits of odd * 5^-power is too many.
        let bits = 128 - value.leading_zeros();
        if f64::from(bits) + f64::from(-power) * 5f64.log2() > 61.0 {
            return None;
        }
        for _ in 0..-power {
            value *= 5;
            if value >= LIMIT {
                return None;
            }
        }
        return Some(value);
    }
    // Each factor 5 of the odd part pairs with a factor 2 into a trailing zero.
    while power > 0 && value % 5 == 0 {
        value /= 5;
        power -= 1;
    }
    if power > 60 {
        return None;
    }
    value <<= power;
    (value < LIMIT).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the digits were before ryu: Rust's `{:e}`.
    fn lower_exp(x: f64) -> (String, i32) {
        let scientific = format!("{:e}", x.abs());
        let (mantissa, exponent) = scientific.split_once('e').unwrap();
        (mantissa.chars().filter(|c| *c != '.').collect(), exponent.parse().unwrap())
    }

    #[test]
    fn ryus_digits_are_rusts_after_ties() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut values = vec![0.0, -0.0, 1.0, 100.0, 0.1, 1e16, 1.5e16, 1e-5, 5e-324, f64::MAX, 123.456, 1e15, 0.0001];
        for _ in 0..200_000 {
            let bits = next();
            values.push(f64::from_bits(bits));
            values.push(f64::from(f32::from_bits(bits as u32)));
            values.push((bits % 1_000_000) as f64 / 1000.0);
        }
        let mut buffer = [0u8; 24];
        for x in values.into_iter().filter(|x| x.is_finite()) {
            // Exact ties may round either way before Python's tie-to-even decides them.
            let (digits, exponent) = shortest_digits(x, &mut buffer);
            let ours = tie_to_even(x, digits, exponent).unwrap_or_else(|| digits.to_string());
            let (rust, rust_exponent) = lower_exp(x);
            let theirs = tie_to_even(x, &rust, rust_exponent).unwrap_or(rust);
            assert_eq!((ours, exponent), (theirs, rust_exponent), "{x:e}");
        }
    }
}
