//! An invocation as a caller sends it: any media type and body is negotiated and parsed into
//! rows, or refused with an error that names where; rows that parse have the expected width.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::serving::codec::{RequestFormat, parse_rows, request_format, response_format};

fuzz_target!(|data: &[u8]| {
    // Layout: the column count, a content type and an Accept (up to a newline each), the body.
    let Some((&cols, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let content_type = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let accept = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let body = parts.next().unwrap_or_default();
    if let Ok(format) = request_format(content_type) {
        let _ = response_format(accept, format);
    }
    let cols = usize::from(cols % 40);
    for format in [RequestFormat::Csv, RequestFormat::Json, RequestFormat::JsonLines] {
        if let Ok(matrix) = parse_rows(format, body, cols) {
            assert!(matrix.values.len() >= matrix.rows * matrix.cols, "{format:?}: fewer values than rows x cols");
            if cols > 0 {
                assert_eq!(matrix.cols, cols, "{format:?}: rows of another width accepted");
            }
        }
    }
});
