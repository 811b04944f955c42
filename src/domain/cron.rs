//! AWS six-field cron expressions (`cron(minutes hours day-of-month month day-of-week year)`), as
//! used by monitoring schedules. The solution only checks the shape `^cron(\S+\s){5}\S+$` at
//! deploy time; here every field is checked against the AWS rules before anything is stored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::values::{InvalidValue, string_value};

/// A valid AWS cron expression, normalised to single spaces between fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct CronExpression(String);
string_value!(CronExpression);

/// What one of the six fields accepts.
struct FieldRule {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for `min..`, matched case-insensitively (`JAN`, `SUN`, ...).
    names: &'static [&'static str],
    kind: FieldKind,
}

#[derive(PartialEq)]
enum FieldKind {
    Plain,
    /// Also `?`, `L` and `<day>W`.
    DayOfMonth,
    /// Also `?`, `L`, `<day>L` and `<day>#<n>`.
    DayOfWeek,
}

const MONTHS: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldRule; 6] = [
    FieldRule { name: "minutes", min: 0, max: 59, names: &[], kind: FieldKind::Plain },
    FieldRule { name: "hours", min: 0, max: 23, names: &[], kind: FieldKind::Plain },
    FieldRule { name: "day-of-month", min: 1, max: 31, names: &[], kind: FieldKind::DayOfMonth },
    FieldRule { name: "month", min: 1, max: 12, names: MONTHS, kind: FieldKind::Plain },
    FieldRule { name: "day-of-week", min: 1, max: 7, names: WEEKDAYS, kind: FieldKind::DayOfWeek },
    FieldRule { name: "year", min: 1970, max: 2199, names: &[], kind: FieldKind::Plain },
];

const SHAPE: &str =
    "expected `cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)`, e.g. `cron(0 * ? * * *)`";

impl CronExpression {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let Some(inner) = s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) else {
            if s.starts_with("rate(") {
                return Err(InvalidValue::new(format!(
                    "rate() expressions are not supported by monitoring schedules; {SHAPE}"
                )));
            }
            return Err(InvalidValue::new(SHAPE));
        };
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(InvalidValue::new(format!("has {} fields; {SHAPE}", fields.len())));
        }
        for (text, rule) in fields.iter().zip(&FIELDS) {
            check_field(text, rule).map_err(|why| InvalidValue::new(format!("{} `{text}`: {why}", rule.name)))?;
        }
        match (fields[2] == "?", fields[4] == "?") {
            (true, false) | (false, true) => {}
            (true, true) => {
                return Err(InvalidValue::new(
                    "day-of-month and day-of-week cannot both be `?`: give one of them a value or `*`",
                ));
            }
            (false, false) => {
                return Err(InvalidValue::new(
                    "one of day-of-month and day-of-week must be `?`, e.g. `cron(0 12 * * ? *)` or `cron(0 12 ? * MON *)`",
                ));
            }
        }
        Ok(Self(format!("cron({})", fields.join(" "))))
    }

    /// The six fields, in order: minutes, hours, day-of-month, month, day-of-week, year.
    pub fn fields(&self) -> [&str; 6] {
        let inner = &self.0["cron(".len()..self.0.len() - 1];
        let mut out = [""; 6];
        for (slot, field) in out.iter_mut().zip(inner.split(' ')) {
            *slot = field;
        }
        out
    }

    /// Whether SageMaker Model Monitor accepts this schedule. It takes only hourly
    /// (`cron(0 * ? * * *)`), daily (`cron(0 H ? * * *)`) and every-N-hours
    /// (`cron(0 H/N ? * * *)`) expressions, although any valid cron works on the local target.
    pub fn is_sagemaker_monitor_schedule(&self) -> bool {
        let [minutes, hours, dom, month, dow, year] = self.fields();
        let hour_ok = |h: &str| h.len() <= 2 && h.parse::<u32>().is_ok_and(|h| h <= 23);
        let hours_ok = match hours.split_once('/') {
            None => hours == "*" || hour_ok(hours),
            Some((start, every)) => hour_ok(start) && every.parse::<u32>().is_ok_and(|n| (1..=24).contains(&n)),
        };
        minutes == "0" && hours_ok && dom == "?" && month == "*" && dow == "*" && year == "*"
    }
}

fn check_field(text: &str, rule: &FieldRule) -> Result<(), String> {
    if text == "?" {
        return match rule.kind {
            FieldKind::Plain => Err("`?` is only allowed in day-of-month and day-of-week".to_string()),
            _ => Ok(()),
        };
    }
    // `L`, `W` and `#` stand alone: they cannot be part of a list or range.
    match rule.kind {
        FieldKind::DayOfMonth if text == "L" => return Ok(()),
        FieldKind::DayOfMonth if text.ends_with('W') => {
            let day = &text[..text.len() - 1];
            return value(day, rule).map(drop).map_err(|why| format!("`W` needs a day of the month before it ({why})"));
        }
        FieldKind::DayOfWeek if text == "L" => return Ok(()),
        FieldKind::DayOfWeek if text.ends_with('L') => {
            let day = &text[..text.len() - 1];
            return value(day, rule).map(drop);
        }
        FieldKind::DayOfWeek if text.contains('#') => {
            let (day, nth) = text.split_once('#').unwrap_or_default();
            value(day, rule)?;
            return match nth.parse::<u32>() {
                Ok(1..=5) => Ok(()),
                _ => Err(format!("`#{nth}` must name the 1st to 5th weekday of the month")),
            };
        }
        _ => {}
    }
    for item in text.split(',') {
        check_item(item, rule)?;
    }
    Ok(())
}

/// One list item: `*`, `a`, `a-b`, each optionally followed by `/step`.
fn check_item(item: &str, rule: &FieldRule) -> Result<(), String> {
    if item.is_empty() {
        return Err("has an empty list item".to_string());
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    if range != "*" {
        match range.split_once('-') {
            Some((from, to)) => {
                let (from_v, to_v) = (value(from, rule)?, value(to, rule)?);
                if from_v > to_v {
                    return Err(format!("range `{range}` runs backwards"));
                }
            }
            None => {
                value(range, rule)?;
            }
        }
    }
    if let Some(step) = step {
        let largest = rule.max - rule.min;
        match step.parse::<u32>() {
            Ok(n) if (1..=largest).contains(&n) => {}
            _ => {
                return Err(format!("increment `/{step}` must be between 1 and {largest}"));
            }
        }
    }
    Ok(())
}

/// A single number or name, checked against the field's range.
fn value(text: &str, rule: &FieldRule) -> Result<u32, String> {
    if let Some(i) = rule.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(rule.min + i as u32);
    }
    match text.parse::<u32>() {
        Ok(v) if text.bytes().all(|b| b.is_ascii_digit()) && (rule.min..=rule.max).contains(&v) => Ok(v),
        Ok(_) => Err(format!("`{text}` is outside {}-{}", rule.min, rule.max)),
        Err(_) if rule.names.is_empty() => Err(format!("`{text}` is not a number in {}-{}", rule.min, rule.max)),
        Err(_) => {
            Err(format!("`{text}` is not a number in {}-{} or one of {}", rule.min, rule.max, rule.names.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> CronExpression {
        CronExpression::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match CronExpression::parse(s) {
            Ok(c) => panic!("{s} accepted as {c}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn accepts_documented_forms() {
        for s in [
            "cron(0 * ? * * *)",
            "cron(0 12 * * ? *)",
            "cron(15 10 ? * 6L 2030-2040)",
            "cron(0 18 ? * MON-FRI *)",
            "cron(0 8 1 * ? *)",
            "cron(0/15 * * * ? *)",
            "cron(0/10 * ? * MON-FRI *)",
            "cron(0/5 8-17 ? * MON-FRI *)",
            "cron(0 9 ? * 2#1 *)",
            "cron(0 0 L * ? *)",
            "cron(0 0 15W * ? *)",
            "cron(0 0 ? * L *)",
            "cron(5,35 14 * JAN,mar ? *)",
            "cron(*/5 * * * ? *)",
            "cron(0 0 ? * sun *)",
        ] {
            ok(s);
        }
    }

    #[test]
    fn normalises_spacing() {
        assert_eq!(ok("  cron(0  *  ? * * *) ").as_str(), "cron(0 * ? * * *)");
        assert_eq!(ok("cron(0 17/12 ? * * *)").fields(), ["0", "17/12", "?", "*", "*", "*"]);
    }

    #[test]
    fn rejects_shape_errors() {
        assert!(err("0 * ? * * *").contains("expected `cron("));
        assert!(err("rate(5 minutes)").contains("rate()"));
        assert!(err("cron(0 * ? * *)").contains("has 5 fields"));
        assert!(err("cron(0 * ? * * * *)").contains("has 7 fields"));
        assert!(err("CRON(0 * ? * * *)").contains("expected `cron("));
    }

    #[test]
    fn rejects_out_of_range_values() {
        assert!(err("cron(60 * ? * * *)").starts_with("minutes `60`"));
        assert!(err("cron(0 24 ? * * *)").starts_with("hours `24`"));
        assert!(err("cron(0 0 32 * ? *)").starts_with("day-of-month `32`"));
        assert!(err("cron(0 0 0 * ? *)").starts_with("day-of-month `0`"));
        assert!(err("cron(0 0 1 13 ? *)").starts_with("month `13`"));
        assert!(err("cron(0 0 1 FOO ? *)").contains("JAN"));
        assert!(err("cron(0 0 ? * 8 *)").starts_with("day-of-week `8`"));
        assert!(err("cron(0 0 ? * * 1969)").starts_with("year `1969`"));
        assert!(err("cron(0 0 ? * * 2200)").starts_with("year `2200`"));
        assert!(err("cron(-1 * ? * * *)").starts_with("minutes"));
        assert!(err("cron(+5 * ? * * *)").starts_with("minutes"));
    }

    #[test]
    fn rejects_bad_lists_ranges_and_increments() {
        assert!(err("cron(5,,10 * ? * * *)").contains("empty list item"));
        assert!(err("cron(30-10 * ? * * *)").contains("runs backwards"));
        assert!(err("cron(0/0 * ? * * *)").contains("increment"));
        assert!(err("cron(0/60 * ? * * *)").contains("increment"));
        assert!(err("cron(0 */24 ? * * *)").contains("increment"));
        assert!(err("cron(0 1-2-3 ? * * *)").starts_with("hours"));
    }

    #[test]
    fn special_characters_only_where_allowed() {
        assert!(err("cron(? * * * ? *)").contains("only allowed in day-of-month"));
        assert!(err("cron(0 0 1 ? * *)").contains("only allowed"));
        assert!(err("cron(0 0 L,5 * ? *)").starts_with("day-of-month"));
        assert!(err("cron(0 0 32W * ? *)").contains("`W`"));
        assert!(err("cron(0 0 W * ? *)").contains("`W`"));
        assert!(err("cron(0 0 ? * 2#6 *)").contains("1st to 5th"));
        assert!(err("cron(0 0 ? * 9#1 *)").starts_with("day-of-week"));
        assert!(err("cron(0 0 ? * 8L *)").starts_with("day-of-week"));
        assert!(err("cron(L 0 ? * * *)").starts_with("minutes"));
        assert!(err("cron(0 0 ? * 2W *)").starts_with("day-of-week"));
        assert!(err("cron(0 0 1# * ? *)").starts_with("day-of-month"));
    }

    #[test]
    fn exactly_one_day_field_is_question_mark() {
        assert!(err("cron(0 0 ? * ? *)").contains("cannot both be `?`"));
        assert!(err("cron(0 0 * * * *)").contains("must be `?`"));
        assert!(err("cron(0 0 1 * MON *)").contains("must be `?`"));
    }

    #[test]
    fn sagemaker_monitor_shapes() {
        for s in [
            "cron(0 * ? * * *)",
            "cron(0 12 ? * * *)",
            "cron(0 00 ? * * *)",
            "cron(0 17/12 ? * * *)",
            "cron(0 0/2 ? * * *)",
        ] {
            assert!(ok(s).is_sagemaker_monitor_schedule(), "{s}");
        }
        for s in [
            "cron(15 * ? * * *)",
            "cron(0 * * * ? *)",
            "cron(0 * ? * MON *)",
            "cron(0 * ? JAN * *)",
            "cron(0 * ? * * 2030)",
            "cron(0 1-5 ? * * *)",
            "cron(0 */2 ? * * *)",
        ] {
            assert!(!ok(s).is_sagemaker_monitor_schedule(), "{s}");
        }
    }

    #[test]
    fn serde_revalidates() {
        let c = ok("cron(0 * ? * * *)");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#""cron(0 * ? * * *)""#);
        assert_eq!(serde_json::from_str::<CronExpression>(&json).unwrap(), c);
        assert!(serde_json::from_str::<CronExpression>(r#""cron(0 * * * * *)""#).is_err());
    }
}
