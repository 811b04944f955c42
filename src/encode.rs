//! Text written by hand on hot paths (capture records, access log lines): JSON strings and UTC
//! timestamps. Each caller's tests compare what it writes with what `serde_json`, `chrono` or
//! `tracing-subscriber` write for the same values.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// `s` as a JSON string: copied as it is when nothing in it needs escaping, else escaped by
/// `serde_json` (which escapes byte by byte; most strings here have nothing to escape).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("a string always serializes");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` hold a quote, a backslash or a control character (what JSON escapes). Whole
/// blocks are scanned without an early exit, which the compiler turns into vector compares.
fn needs_escape(bytes: &[u8]) -> bool {
    let escaped = |b: u8| u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        if block.iter().fold(0u8, |any, &b| any | escaped(b)) != 0 {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| escaped(b) != 0)
}

/// `%Y-%m-%dT%H:%M:%S` (no zone; callers add fractions and `Z`), written directly: chrono's
/// `format` parses its pattern on every call, and `format!` goes through the formatting machinery
/// for each of six numbers.
pub fn write_utc_seconds(out: &mut Vec<u8>, time: DateTime<Utc>) {
    // Years outside 0..=9999 do not come from the clock; they are still written in full.
    match u32::try_from(time.year()) {
        Ok(year) if year <= 9999 => write_digits(out, year, 4),
        _ => out.extend_from_slice(format!("{:04}", time.year()).as_bytes()),
    }
    for (separator, value) in
        [(b'-', time.month()), (b'-', time.day()), (b'T', time.hour()), (b':', time.minute()), (b':', time.second())]
    {
        out.push(separator);
        write_digits(out, value, 2);
    }
}

thread_local! {
    /// The last second [`write_utc_second`] wrote on this thread, and its text.
    static SECOND: std::cell::RefCell<(Option<i64>, Vec<u8>)> = const { std::cell::RefCell::new((None, Vec::new())) };
}

/// [`write_utc_seconds`] of `seconds` since the epoch (whole seconds, UTC), the text kept per
/// thread and reused while the second lasts: a loaded server writes thousands of capture
/// records and access lines within one second, each with its time.
pub fn write_utc_second(out: &mut Vec<u8>, seconds: i64) {
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != Some(seconds) {
            *second = Some(seconds);
            text.clear();
            write_utc_seconds(text, DateTime::from_timestamp(seconds, 0).unwrap_or_default());
        }
        out.extend_from_slice(text);
    });
}

/// `value` in exactly `width` decimal digits (the lowest ones), zero-padded.
pub fn write_digits(out: &mut Vec<u8>, value: u32, width: u32) {
    for position in (0..width).rev() {
        out.push(b'0' + (value / 10u32.pow(position) % 10) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_seconds_read_as_chronos_format() {
        for micros in [0i64, 1_764_806_399_999_999, 1_764_806_400_000_000, 253_402_300_799_000_000, 951_782_400_123_456]
        {
            let time = DateTime::from_timestamp_micros(micros).unwrap();
            let mut written = Vec::new();
            write_utc_seconds(&mut written, time);
            assert_eq!(String::from_utf8(written).unwrap(), time.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
    }

    /// The remembered second is the second asked for: the same text as written afresh, when
    /// the second changes, comes back or stays.
    #[test]
    fn a_remembered_second_is_the_one_asked_for() {
        for seconds in [i64::MIN, 1_764_806_399, 1_764_806_400, 1_764_806_400, 0, 1_764_806_399, 253_402_300_799, -1] {
            let mut remembered = b"before ".to_vec();
            write_utc_second(&mut remembered, seconds);
            let mut fresh = b"before ".to_vec();
            write_utc_seconds(&mut fresh, DateTime::from_timestamp(seconds, 0).unwrap_or_default());
            assert_eq!(String::from_utf8(remembered).unwrap(), String::from_utf8(fresh).unwrap(), "{seconds}");
        }
    }

    #[test]
    fn strings_are_what_serde_json_writes() {
        for s in
            ["", "plain", "/v1/endpoints/a b", "quote \" and \\ backslash", "tab\tnew\nline", "ünï", &"x".repeat(70)]
        {
            let mut written = Vec::new();
            write_str(&mut written, s);
            assert_eq!(written, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}
