//! Content negotiation: the request format from Content-Type, the response format from Accept
//! (q-values, ranges, the request's own format when Accept says nothing).

use super::{MediaTypeError, RequestFormat, ResponseFormat};

/// The request format named by a Content-Type header (case-insensitive, parameters ignored).
pub fn request_format(content_type: Option<&str>) -> Result<RequestFormat, MediaTypeError> {
    let Some(header) = content_type.filter(|h| !h.trim().is_empty()) else {
        return Ok(RequestFormat::Csv);
    };
    match essence(header).as_str() {
        "text/csv" => Ok(RequestFormat::Csv),
        "application/json" => Ok(RequestFormat::Json),
        "application/jsonlines" => Ok(RequestFormat::JsonLines),
        _ => Err(MediaTypeError::Unsupported(header.to_string())),
    }
}

/// The response format for an Accept header: the highest q-value we can produce, ties going to
/// the range listed first and then to the request's own format.
pub fn response_format(accept: Option<&str>, request: RequestFormat) -> Result<ResponseFormat, MediaTypeError> {
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Ok(request.into());
    };
    let ranges = parse_accept(header);
    let candidates =
        [ResponseFormat::from(request), ResponseFormat::Csv, ResponseFormat::Json, ResponseFormat::JsonLines];
    // (q, position of the deciding range); the first candidate wins ties.
    let mut best: Option<(ResponseFormat, f32, usize)> = None;
    for candidate in candidates {
        let Some((q, position)) = quality(&ranges, candidate) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((_, best_q, best_position)) => q > best_q || (q == best_q && position < best_position),
        };
        if q > 0.0 && better {
            best = Some((candidate, q, position));
        }
    }
    best.map(|(format, _, _)| format).ok_or_else(|| MediaTypeError::NotAcceptable(header.to_string()))
}

/// `type/subtype` of a media type, lowercased, without parameters.
fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

struct MediaRange {
    essence: String,
    q: f32,
}

/// The ranges of an Accept header in order; ranges with an unreadable q-value are dropped.
fn parse_accept(header: &str) -> Vec<MediaRange> {
    header
        .split(',')
        .filter(|range| !range.trim().is_empty())
        .filter_map(|range| {
            let mut q = 1.0;
            for parameter in range.split(';').skip(1) {
                if let Some((name, value)) = parameter.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    q = value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?;
                }
            }
            Some(MediaRange { essence: essence(range), q })
        })
        .collect()
}

/// The q-value the most specific matching range gives `format`, with that range's position.
fn quality(ranges: &[MediaRange], format: ResponseFormat) -> Option<(f32, usize)> {
    let (media_type, type_wildcard) = match format {
        ResponseFormat::Csv => ("text/csv", "text/*"),
        ResponseFormat::Json => ("application/json", "application/*"),
        ResponseFormat::JsonLines => ("application/jsonlines", "application/*"),
    };
    let specificity = |essence: &str| {
        if essence == media_type {
            Some(2)
        } else if essence == type_wildcard {
            Some(1)
        } else if essence == "*/*" {
            Some(0)
        } else {
            None
        }
    };
    ranges
        .iter()
        .enumerate()
        .filter_map(|(position, range)| specificity(&range.essence).map(|s| (s, position, range.q)))
        // Most specific first; among equals, the first listed.
        .min_by_key(|(s, position, _)| (std::cmp::Reverse(*s), *position))
        .map(|(_, position, q)| (q, position))
}
