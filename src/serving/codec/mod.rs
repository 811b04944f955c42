//! Invocation bodies in, predictions out, byte-compatible with SageMaker's built-in XGBoost
//! container where it defines the behaviour.
//!
//! # What the container does (aws/sagemaker-xgboost-container, 1.5-1 and later)
//!
//! Single-model endpoints in algorithm mode are served by the Flask app in
//! `src/sagemaker_xgboost_container/algorithm_mode/serve.py` (`serving.py` starts it through
//! gunicorn; MMS and `algorithm_mode/handler_service.py` only serve multi-model endpoints).
//! Its `/invocations` handler, since PRs #269-#271 ("Add accept encodings to alg_mode") and
//! #281/#282 ("Fix JSON output format"), answers `preds.tolist()` like this:
//!
//! - Accept: `cgi.parse_header` of the whole header (parameters dropped, lowercased); absent or
//!   `*/*` means `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`, default `text/csv`; anything outside
//!   `application/json`, `application/jsonlines`, `application/x-recordio-protobuf`, `text/csv`
//!   is 406. The response's `Content-Type` is the accept type through Flask's `mimetype=`, which
//!   adds `; charset=utf-8` to `text/*` only (hence `text/csv; charset=utf-8` in captures).
//! - `text/csv`: `sagemaker_inference.encoder.encode(preds_list, "text/csv")`, i.e.
//!   `numpy.savetxt(stream, preds_list, delimiter=",", fmt="%s")`: one line per row, each ending
//!   in `\n`. A scalar model (regression, `binary:logistic`, `multi:softmax`) gives one value per
//!   line (`0.5\n0.25\n`); `multi:softprob` gives the class probabilities of a row joined by
//!   commas (`0.1,0.2,0.7\n`). (Before 1.5-1 it was `",".join(map(str, preds))` with no newline,
//!   which is what older captures such as reference B.6's `"0.0254181120544672"` show.)
//! - `application/json`: `serve_utils.encode_predictions_as_json`, i.e.
//!   `json.dumps({"predictions": [{"score": p} for p in preds_list]})` with Python's default
//!   separators: `{"predictions": [{"score": 0.5}, {"score": [0.1, 0.2, 0.7]}]}`.
//! - `application/jsonlines`: not encodable without selectable inference
//!   (`SAGEMAKER_INFERENCE_OUTPUT`): `sagemaker_inference.encoder` has no JSON-lines encoder, so
//!   the container fails the request. Its selectable-inference path writes JSON lines with
//!   `encoder.json_to_jsonlines({"predictions": [...]})`: one `json.dumps(entry)` plus `\n` per
//!   prediction. We answer that shape with the `score` entries: `{"score": 0.5}\n`.
//! - Numbers: Python's `str(float)` / `repr(float)` (numpy's `str(np.float64)` is the same): the
//!   shortest round-trip digits, positional for 1e-4 <= |x| < 1e16 with at least one decimal
//!   (`1.0`), otherwise scientific with a signed exponent of at least two digits (`1e-05`,
//!   `1.5e+16`); `nan`/`inf` in CSV and `NaN`/`Infinity` from `json.dumps`. Predictions are
//!   float32 widened to double by `tolist()`, so callers pass `f64::from(f32)` to get the same
//!   digits (`0.0254181120544672`).
//!
//! Request side (`serve_utils.parse_content_data`, `encoder.csv_to_dmatrix`): the body is
//! stripped, split on `\n`, empty fields become `nan`, and every field must convert to a float
//! (a header row fails). JSON and JSON lines requests are not accepted by the built-in container;
//! we read the shapes of SageMaker's common inference formats (`{"instances": ...}`).
//!
//! # Where we differ, on purpose
//!
//! - Without an Accept header (or with `*/*`) we answer in the request's format instead of
//!   `text/csv`: Model Monitor refuses captures whose input and output encodings differ.
//! - Accept may list several types with q-values; we pick the best we can produce.
//! - A missing Content-Type means `text/csv` (the container would try libsvm, which we do not
//!   read); other parameters such as `label_size` are ignored.
//! - Infinite feature values are refused here rather than by XGBoost's DMatrix check.

mod negotiation;
mod numbers;
mod rows;

pub use negotiation::{request_format, response_format};
pub use numbers::encode_predictions;
pub use rows::{parse_line, parse_rows};

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFormat {
    Csv,
    Json,
    JsonLines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Csv,
    Json,
    JsonLines,
}

impl From<RequestFormat> for ResponseFormat {
    fn from(format: RequestFormat) -> Self {
        match format {
            RequestFormat::Csv => ResponseFormat::Csv,
            RequestFormat::Json => ResponseFormat::Json,
            RequestFormat::JsonLines => ResponseFormat::JsonLines,
        }
    }
}

/// Row-major features; `f32::NAN` marks a missing value, as XGBoost's DMatrix does.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

/// A request body that cannot be read; `row` and `column` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CodecError {
    pub row: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.row, self.column) {
            (Some(row), Some(column)) => write!(f, "row {row}, column {column}: {}", self.message),
            (Some(row), None) => write!(f, "row {row}: {}", self.message),
            (None, Some(column)) => write!(f, "column {column}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// Answered with 415 Unsupported Media Type.
    #[error("content type {0:?} is not supported; send text/csv, application/json or application/jsonlines")]
    Unsupported(String),
    /// Answered with 406 Not Acceptable.
    #[error(
        "no type allowed by Accept {0:?} can be produced; accept text/csv, application/json or application/jsonlines"
    )]
    NotAcceptable(String),
}

#[cfg(test)]
mod tests {
    use super::numbers::*;
    use super::*;
    use serde_json::Value;

    fn csv(body: &str, cols: usize) -> Result<FeatureMatrix, CodecError> {
        parse_rows(RequestFormat::Csv, body.as_bytes(), cols)
    }

    fn json(body: &str, cols: usize) -> Result<FeatureMatrix, CodecError> {
        parse_rows(RequestFormat::Json, body.as_bytes(), cols)
    }

    fn jsonl(body: &str, cols: usize) -> Result<FeatureMatrix, CodecError> {
        parse_rows(RequestFormat::JsonLines, body.as_bytes(), cols)
    }

    /// Values with NaN replaced by None, so matrices compare with `==`.
    fn values(matrix: &FeatureMatrix) -> Vec<Option<f32>> {
        matrix.values.iter().map(|v| (!v.is_nan()).then_some(*v)).collect()
    }

    fn position(error: &CodecError) -> (Option<usize>, Option<usize>) {
        (error.row, error.column)
    }

    fn encode(format: ResponseFormat, outputs: &[f64], per_row: usize) -> (&'static str, String) {
        let (content_type, body) = encode_predictions(format, outputs, per_row);
        (content_type, String::from_utf8(body).unwrap())
    }

    fn repr(x: f64) -> String {
        let mut out = String::new();
        push_python_float(&mut out, x, false);
        out
    }

    // --- media types ---

    #[test]
    fn request_formats_from_content_type() {
        let cases = [
            (Some("text/csv"), RequestFormat::Csv),
            (Some("text/csv; charset=utf-8"), RequestFormat::Csv),
            (Some("TEXT/CSV;label_size=1"), RequestFormat::Csv),
            (Some(" application/json "), RequestFormat::Json),
            (Some("application/json; charset=UTF-8"), RequestFormat::Json),
            (Some("Application/JSONLines"), RequestFormat::JsonLines),
            (None, RequestFormat::Csv),
            (Some(""), RequestFormat::Csv),
        ];
        for (header, expected) in cases {
            assert_eq!(request_format(header), Ok(expected), "{header:?}");
        }
    }

    #[test]
    fn unsupported_content_types_are_refused() {
        for header in
            ["text/libsvm", "application/x-recordio-protobuf", "application/octet-stream", "text/csvx", "text"]
        {
            assert_eq!(request_format(Some(header)), Err(MediaTypeError::Unsupported(header.to_string())));
        }
        let message = request_format(Some("image/png")).unwrap_err().to_string();
        assert!(message.contains("image/png") && message.contains("text/csv"), "{message}");
    }

    #[test]
    fn absent_or_any_accept_answers_in_the_request_format() {
        for request in [RequestFormat::Csv, RequestFormat::Json, RequestFormat::JsonLines] {
            for accept in [None, Some(""), Some("*/*"), Some("*/*;q=0.8")] {
                assert_eq!(
                    response_format(accept, request),
                    Ok(ResponseFormat::from(request)),
                    "{accept:?} {request:?}"
                );
            }
        }
    }

    #[test]
    fn accept_picks_the_best_producible_type() {
        use RequestFormat as Rq;
        use ResponseFormat as Rs;
        let cases = [
            ("text/csv", Rq::Json, Rs::Csv),
            ("application/json", Rq::Csv, Rs::Json),
            ("application/json;verbose=True", Rq::Csv, Rs::Json),
            ("APPLICATION/JSONLINES", Rq::Csv, Rs::JsonLines),
            ("application/json, text/csv", Rq::Csv, Rs::Json),
            ("text/csv;q=0.5, application/json", Rq::Csv, Rs::Json),
            ("application/json;q=0.2, text/csv;q=0.9", Rq::Json, Rs::Csv),
            ("image/png, text/*", Rq::Json, Rs::Csv),
            ("application/*", Rq::Csv, Rs::Json),
            ("application/*", Rq::JsonLines, Rs::JsonLines),
            ("text/csv;q=0, */*", Rq::Csv, Rs::Json),
            ("application/json;q=0.3, */*;q=0.1", Rq::Csv, Rs::Json),
            ("application/json;q=abc, text/csv", Rq::Json, Rs::Csv),
        ];
        for (accept, request, expected) in cases {
            assert_eq!(response_format(Some(accept), request), Ok(expected), "{accept:?} {request:?}");
        }
    }

    #[test]
    fn unacceptable_accept_is_refused() {
        for accept in [
            "image/png",
            "application/x-recordio-protobuf",
            "text/csv;q=0",
            "text/html, application/xml;q=0.9",
            "application/json;q=2",
        ] {
            assert_eq!(
                response_format(Some(accept), RequestFormat::Csv),
                Err(MediaTypeError::NotAcceptable(accept.to_string())),
                "{accept:?}"
            );
        }
    }

    // --- CSV ---

    #[test]
    fn csv_rows_with_lf_crlf_and_optional_trailing_newline() {
        let expected = vec![Some(1.0), Some(2.5), Some(-3.0), Some(4.0), Some(0.5), Some(6e3)];
        for body in
            ["1,2.5,-3\n4,.5,6e3", "1,2.5,-3\n4,.5,6e3\n", "1,2.5,-3\r\n4,.5,6e3\r\n", "1, 2.5 ,-3\n4,0.5,6000\n\n"]
        {
            let matrix = csv(body, 3).unwrap();
            assert_eq!((matrix.rows, matrix.cols), (2, 3), "{body:?}");
            assert_eq!(values(&matrix), expected, "{body:?}");
        }
    }

    #[test]
    fn csv_missing_values() {
        let matrix = csv("1,,3\nnan,NaN, \n,,", 3).unwrap();
        assert_eq!(matrix.rows, 3);
        assert_eq!(values(&matrix), vec![Some(1.0), None, Some(3.0), None, None, None, None, None, None]);
    }

    #[test]
    fn csv_single_column_and_single_row() {
        let matrix = csv("0.25\n", 1).unwrap();
        assert_eq!((matrix.rows, matrix.cols), (1, 1));
        assert_eq!(matrix.values, vec![0.25]);
    }

    /// The fast float parser accepts exactly what std's does, with the same values.
    #[test]
    fn csv_fields_parse_as_std_parses_them() {
        let fields = [
            "1",
            "-1",
            "+1",
            "1.",
            ".5",
            "-.5",
            "1e5",
            "1E-5",
            "1e+5",
            "1e",
            "e5",
            ".",
            "-",
            "+",
            "1.2.3",
            "0x10",
            "nan",
            "NaN",
            "-nan",
            "inf",
            "-Infinity",
            "infinity",
            "1_000",
            "1,0",
            "١",
            "0.1000000000000000055511151231257827",
            "4.9406564584124654e-324",
            "1e-400",
            "2.2250738585072011e-308",
            "00012",
            "1e0000000000000000000001",
        ];
        for field in fields {
            let ours = rows::parse_csv_field(field);
            match field.parse::<f64>() {
                Ok(value) if value.is_infinite() || (value as f32).is_infinite() => assert!(ours.is_err(), "{field}"),
                Ok(value) => {
                    let got = ours.unwrap_or_else(|e| panic!("{field}: {e}"));
                    assert!(got.to_bits() == (value as f32).to_bits() || (got.is_nan() && value.is_nan()), "{field}");
                }
                Err(_) => assert!(ours.is_err(), "{field} is not a number for std"),
            }
        }
    }

    #[test]
    fn csv_rounds_like_float64_then_float32() {
        // Parsed as f64 first, then narrowed, as numpy then XGBoost do.
        let matrix = csv("0.1,16777217,1e-50", 3).unwrap();
        assert_eq!(matrix.values, vec![0.1f64 as f32, 16777216.0, 0.0]);
    }

    #[test]
    fn csv_header_row_names_row_and_column() {
        let error = csv("age,income\n1,2", 2).unwrap_err();
        assert_eq!(position(&error), (Some(1), Some(1)));
        assert_eq!(
            error.to_string(),
            "row 1, column 1: \"age\" is not a number (CSV input must not have a header row)"
        );
    }

    #[test]
    fn csv_non_number_names_row_and_column() {
        let error = csv("1,2,3\n4,5,6\n7,8,9\n1,2,3,\n", 3).unwrap_err();
        assert_eq!(error.to_string(), "row 4: expected 3 columns, found 4");

        let body = "1,2,3,4,5,6,7\n1,2,3,4,5,6,7\n1,2,3,4,5,6,x7\n";
        let error = csv(body, 7).unwrap_err();
        assert_eq!(position(&error), (Some(3), Some(7)));
        assert_eq!(error.to_string(), "row 3, column 7: \"x7\" is not a number");
    }

    #[test]
    fn csv_wrong_column_count_names_both_counts() {
        let error = csv("1,2,3\n4,5\n", 3).unwrap_err();
        assert_eq!(position(&error), (Some(2), None));
        assert_eq!(error.message, "expected 3 columns, found 2");
        // A blank line inside the body is a row with one (missing) field.
        let error = csv("1,2\n\n3,4", 2).unwrap_err();
        assert_eq!(error.to_string(), "row 2: expected 2 columns, found 1");
    }

    #[test]
    fn csv_row_numbers_count_stripped_leading_lines() {
        let error = csv("\n\n1,2\n3,y\n", 2).unwrap_err();
        assert_eq!(position(&error), (Some(4), Some(2)));
    }

    #[test]
    fn csv_refuses_infinite_and_out_of_range_values() {
        let error = csv("1,inf", 2).unwrap_err();
        assert_eq!(position(&error), (Some(1), Some(2)));
        assert!(error.message.contains("infinite"), "{error}");
        let error = csv("1,2\n-Infinity,2", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), Some(1)));
        let error = csv("1e39,2", 2).unwrap_err();
        assert!(error.message.contains("too large"), "{error}");
    }

    #[test]
    fn csv_quotes_are_not_numbers_and_long_fields_are_shortened() {
        let error = csv("\"1\",2", 2).unwrap_err();
        assert_eq!(position(&error), (Some(1), Some(1)));
        let long = "z".repeat(100);
        let error = csv(&format!("1,2\n1,{long}"), 2).unwrap_err();
        assert_eq!(error.message, format!("\"{}...\" is not a number", "z".repeat(40)));
    }

    #[test]
    fn empty_bodies_are_refused() {
        for format in [RequestFormat::Csv, RequestFormat::Json, RequestFormat::JsonLines] {
            for body in ["", " \n\r\n "] {
                let error = parse_rows(format, body.as_bytes(), 3).unwrap_err();
                assert_eq!(position(&error), (None, None), "{format:?} {body:?}");
                assert_eq!(error.message, "the body has no rows");
            }
        }
        assert_eq!(json("[]", 2).unwrap_err().message, "the body has no rows");
        assert_eq!(json("{\"instances\": []}", 2).unwrap_err().message, "the body has no rows");
    }

    #[test]
    fn invalid_utf8_names_the_row() {
        let error = parse_rows(RequestFormat::Csv, b"1,2\n3,\xff\n", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), None));
        assert_eq!(error.to_string(), "row 2: the body is not valid UTF-8");
    }

    // --- JSON ---

    #[test]
    fn json_accepted_shapes() {
        let expected = vec![Some(1.0), None, Some(3.0), Some(4.0), Some(5.5), Some(-6.0)];
        for body in [
            "{\"instances\": [[1, null, 3], [4, 5.5, -6]]}",
            "{\"instances\": [{\"features\": [1, null, 3]}, {\"features\": [4, 5.5, -6]}]}",
            "{\"instances\": [[1, null, 3], {\"features\": [4, 5.5, -6]}]}",
            "[[1, null, 3], [4, 5.5, -6]]",
            " [[1,null,3],[4,5.5,-6e0]]\n",
        ] {
            let matrix = json(body, 3).unwrap();
            assert_eq!((matrix.rows, matrix.cols), (2, 3), "{body}");
            assert_eq!(values(&matrix), expected, "{body}");
        }
        for body in ["[1, null, 3]", "{\"features\": [1, null, 3]}"] {
            let matrix = json(body, 3).unwrap();
            assert_eq!(matrix.rows, 1, "{body}");
            assert_eq!(values(&matrix), vec![Some(1.0), None, Some(3.0)], "{body}");
        }
    }

    #[test]
    fn json_errors_name_row_and_column() {
        let error = json("{\"instances\": [[1, 2], [3, \"4\"]]}", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), Some(2)));
        assert_eq!(error.to_string(), "row 2, column 2: \"4\" is not a number or null");

        let error = json("[[1, 2], [3, true], [5, 6]]", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), Some(2)));

        let error = json("[1, [2]]", 2).unwrap_err();
        assert_eq!(position(&error), (Some(1), Some(2)));

        let error = json("{\"instances\": [[1, 2], [3]]}", 2).unwrap_err();
        assert_eq!(error.to_string(), "row 2: expected 2 columns, found 1");

        let error = json("[1, 2, 3]", 2).unwrap_err();
        assert_eq!(error.to_string(), "row 1: expected 2 columns, found 3");

        let error = json("{\"instances\": [[1, 2], {\"values\": [1, 2]}]}", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), None));

        let error = json("[[1, 2], 3]", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), None));

        let error = json("[[1, 1e39]]", 2).unwrap_err();
        assert_eq!(position(&error), (Some(1), Some(2)));
    }

    #[test]
    fn json_document_errors_have_no_position() {
        for (body, message) in [
            ("{\"instances\": [[1, 2]", "not valid JSON"),
            ("{\"rows\": [[1, 2]]}", "expected {\"instances\""),
            ("{\"instances\": {\"a\": 1}}", "\"instances\" must be an array"),
            ("42", "expected {\"instances\""),
        ] {
            let error = json(body, 2).unwrap_err();
            assert_eq!(position(&error), (None, None), "{body}");
            assert!(error.message.contains(message), "{body}: {error}");
        }
    }

    // --- JSON lines ---

    #[test]
    fn json_lines_rows() {
        let body = "[1, 2]\n{\"features\": [3, null]}\r\n[5, 6]\n";
        let matrix = jsonl(body, 2).unwrap();
        assert_eq!((matrix.rows, matrix.cols), (3, 2));
        assert_eq!(values(&matrix), vec![Some(1.0), Some(2.0), Some(3.0), None, Some(5.0), Some(6.0)]);
    }

    #[test]
    fn json_lines_errors_name_the_line() {
        let error = jsonl("[1, 2]\n[3, 4\n", 2).unwrap_err();
        assert_eq!(position(&error), (Some(2), None));
        assert!(error.message.starts_with("not valid JSON"), "{error}");

        let error = jsonl("[1, 2]\n[3, 4]\n[5, \"x\"]", 2).unwrap_err();
        assert_eq!(position(&error), (Some(3), Some(2)));

        let error = jsonl("[1, 2]\n\n[3, 4]", 2).unwrap_err();
        assert_eq!(error.to_string(), "row 2: empty line");

        let error = jsonl("[1, 2]\n[3]", 2).unwrap_err();
        assert_eq!(error.to_string(), "row 2: expected 2 columns, found 1");
    }

    // --- responses ---

    #[test]
    fn python_float_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-7.0, "-7.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1.2345e15, "1234500000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (-2.5e100, "-2.5e+100"),
            (1e-300, "1e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            // Halfway between two shortest forms: Python keeps the even last digit.
            (4_237_753_143_705_017.0 / 4.0, "1059438285926254.2"),
            (713_109_754_160_765.0 / 8.0, "89138719270095.62"),
            (-3_021_296_471_651_181.0 / 4.0, "-755324117912795.2"),
            (0.5, "0.5"),
            // float32 predictions widened as numpy's tolist() does.
            (f64::from(0.025_418_112_f32), "0.0254181120544672"),
            (f64::from(0.1_f32), "0.10000000149011612"),
        ];
        for (value, expected) in cases {
            assert_eq!(repr(value), expected, "{value:e}");
        }
    }

    #[test]
    fn csv_responses() {
        assert_eq!(
            encode(ResponseFormat::Csv, &[0.5, 0.25, 1.0], 1),
            ("text/csv; charset=utf-8", "0.5\n0.25\n1.0\n".to_string())
        );
        assert_eq!(
            encode(ResponseFormat::Csv, &[0.1, 0.2, 0.7, 0.3, 0.3, 0.4], 3),
            ("text/csv; charset=utf-8", "0.1,0.2,0.7\n0.3,0.3,0.4\n".to_string())
        );
        assert_eq!(encode(ResponseFormat::Csv, &[], 1).1, "");
    }

    #[test]
    fn json_responses() {
        assert_eq!(
            encode(ResponseFormat::Json, &[0.43861907720565796, 0.4533972144126892], 1),
            (
                "application/json",
                "{\"predictions\": [{\"score\": 0.43861907720565796}, {\"score\": 0.4533972144126892}]}".to_string()
            )
        );
        assert_eq!(
            encode(ResponseFormat::Json, &[0.1, 0.2, 0.7, 1.0, 0.0, 0.0], 3).1,
            "{\"predictions\": [{\"score\": [0.1, 0.2, 0.7]}, {\"score\": [1.0, 0.0, 0.0]}]}"
        );
        assert_eq!(encode(ResponseFormat::Json, &[], 1).1, "{\"predictions\": []}");
        assert_eq!(
            encode(ResponseFormat::Json, &[f64::NAN, f64::NEG_INFINITY], 1).1,
            "{\"predictions\": [{\"score\": NaN}, {\"score\": -Infinity}]}"
        );
    }

    #[test]
    fn json_lines_responses() {
        assert_eq!(
            encode(ResponseFormat::JsonLines, &[0.5, 2.0], 1),
            ("application/jsonlines", "{\"score\": 0.5}\n{\"score\": 2.0}\n".to_string())
        );
        assert_eq!(
            encode(ResponseFormat::JsonLines, &[0.1, 0.9, 0.6, 0.4], 2).1,
            "{\"score\": [0.1, 0.9]}\n{\"score\": [0.6, 0.4]}\n"
        );
    }

    #[test]
    fn json_responses_parse_back() {
        let outputs = [0.1, 1e-5, 1.5e16, f64::from(0.3_f32)];
        let (_, body) = encode_predictions(ResponseFormat::Json, &outputs, 1);
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        let scores: Vec<f64> =
            parsed["predictions"].as_array().unwrap().iter().map(|p| p["score"].as_f64().unwrap()).collect();
        assert_eq!(scores, outputs);
    }
}
