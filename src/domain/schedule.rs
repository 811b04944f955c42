//! When an AWS cron expression fires (the monitoring schedules' windows). Written here rather
//! than taken from a cron crate: AWS's six fields (with a year), `?`, `L`, `W` and `#`, and
//! day-of-week numbered 1 = Sunday differ from the Unix and Quartz dialects those crates speak.
//! Times are UTC to the minute.

use super::cron::CronExpression;
use super::request::{FieldError, FieldErrorCode};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};

/// How far ahead or back a search goes before deciding an expression never fires (e.g. a year
/// that has passed): the years the expression may name and then some.
const MAX_DAYS: i64 = 366 * 8;

/// A field as the set of values it allows.
fn set(text: &str, min: u32, max: u32, names: &[&str]) -> Vec<bool> {
    let mut allowed = vec![false; (max + 1) as usize];
    let value = |t: &str| -> u32 {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(t))
            .map(|i| min + i as u32)
            .unwrap_or_else(|| t.parse().unwrap_or(min))
    };
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap_or(1).max(1)),
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a), value(b)),
                // `a/step` runs from a to the end of the field.
                None if item.contains('/') => (value(r), max),
                None => (value(r), value(r)),
            },
        };
        let mut v = from;
        while v <= to.min(max) {
            allowed[v as usize] = true;
            v += step;
        }
    }
    allowed
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (y, m) = if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).expect("a valid first of month").pred_opt().expect("a day before").day()
}

/// AWS numbers days of the week 1 (Sunday) to 7 (Saturday).
fn weekday(date: NaiveDate) -> u32 {
    date.weekday().number_from_sunday()
}

fn day_of_month_matches(field: &str, date: NaiveDate) -> bool {
    let last = last_day_of_month(date);
    match field {
        "?" | "*" => true,
        "L" => date.day() == last,
        f if f.ends_with('W') => {
            // The weekday nearest the given day, within the month.
            let target = f[..f.len() - 1].parse::<u32>().unwrap_or(1).min(last);
            let day = NaiveDate::from_ymd_opt(date.year(), date.month(), target).expect("a day within the month");
            let nearest = match weekday(day) {
                1 if target == last => target - 2, // Sunday at the month's end: back to Friday
                1 => target + 1,
                7 if target == 1 => target + 2, // Saturday the 1st: on to Monday the 3rd
                7 => target - 1,
                _ => target,
            };
            date.day() == nearest
        }
        f => set(f, 1, 31, &[])[date.day() as usize],
    }
}

const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn day_of_week_matches(field: &str, date: NaiveDate) -> bool {
    let day = weekday(date);
    let named =
        |t: &str| WEEKDAYS.iter().position(|n| n.eq_ignore_ascii_case(t)).map(|i| i as u32 + 1).or(t.parse().ok());
    match field {
        "?" | "*" => true,
        "L" => day == 7,
        f if f.ends_with('L') => named(&f[..f.len() - 1]) == Some(day) && date.day() + 7 > last_day_of_month(date),
        f if f.contains('#') => {
            let (d, n) = f.split_once('#').unwrap_or_default();
            named(d) == Some(day) && n.parse::<u32>().is_ok_and(|n| (date.day() - 1) / 7 + 1 == n)
        }
        f => set(f, 1, 7, WEEKDAYS)[day as usize],
    }
}

struct Parsed<'a> {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    day_of_month: &'a str,
    months: Vec<bool>,
    day_of_week: &'a str,
    years: Vec<bool>,
}

impl Parsed<'_> {
    fn day_matches(&self, date: NaiveDate) -> bool {
        let year_ok =
            u32::try_from(date.year()).ok().and_then(|y| self.years.get(y as usize)).copied().unwrap_or(false);
        year_ok
            && self.months[date.month() as usize]
            && day_of_month_matches(self.day_of_month, date)
            && day_of_week_matches(self.day_of_week, date)
    }

    /// The firing times of a day, in order.
    fn times(&self) -> impl DoubleEndedIterator<Item = NaiveTime> + '_ {
        (0..24u32).filter(|h| self.hours[*h as usize]).flat_map(move |h| {
            (0..60u32)
                .filter(|m| self.minutes[*m as usize])
                .map(move |m| NaiveTime::from_hms_opt(h, m, 0).expect("a valid time"))
        })
    }
}

impl CronExpression {
    fn parsed(&self) -> Parsed<'_> {
        let [minutes, hours, dom, month, dow, year] = self.fields();
        const MONTHS: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
        Parsed {
            minutes: set(minutes, 0, 59, &[]),
            hours: set(hours, 0, 23, &[]),
            day_of_month: dom,
            months: set(month, 1, 12, MONTHS),
            day_of_week: dow,
            years: set(year, 1970, 2199, &[]),
        }
    }

    /// The first firing time strictly after `t`; `None` if it never fires again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let parsed = self.parsed();
        let start = t.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut date = start.date_naive();
        for day in 0..MAX_DAYS {
            if parsed.day_matches(date) {
                let from = if day == 0 { start.time() } else { NaiveTime::MIN };
                if let Some(time) = parsed.times().find(|time| *time >= from) {
                    return Some(Utc.from_utc_datetime(&date.and_time(time)));
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The last firing time strictly before `t`; `None` if it never fired in the searched years.
    pub fn previous_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let parsed = self.parsed();
        let mut date = t.date_naive();
        for day in 0..MAX_DAYS {
            if parsed.day_matches(date) {
                let found =
                    parsed.times().rev().find(|time| day > 0 || Utc.from_utc_datetime(&date.and_time(*time)) < t);
                if let Some(time) = found {
                    return Some(Utc.from_utc_datetime(&date.and_time(time)));
                }
            }
            date = date.pred_opt()?;
        }
        None
    }
}

/// The longest window a run-now may cover.
pub const MAX_WINDOW_DAYS: i64 = 31;

/// Whether `[start, end)` is a window a monitor can run over now: ordered, at most
/// [`MAX_WINDOW_DAYS`] long, and not ending in the future.
pub fn check_window(start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), FieldError> {
    if end <= start {
        return Err(FieldError::new(
            "/end_time",
            FieldErrorCode::InvalidValue,
            "`end_time` must be after `start_time`",
        ));
    }
    if end - start > Duration::days(MAX_WINDOW_DAYS) {
        return Err(FieldError::new(
            "/end_time",
            FieldErrorCode::InvalidValue,
            format!("a window may cover at most {MAX_WINDOW_DAYS} days"),
        ));
    }
    if end > now {
        return Err(FieldError::new(
            "/end_time",
            FieldErrorCode::InvalidValue,
            "`end_time` is in the future: a window can only be analysed once its traffic is captured",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> CronExpression {
        CronExpression::parse(s).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, t: &str) -> String {
        cron(expr).next_after(at(t)).unwrap().to_rfc3339()
    }

    #[test]
    fn model_monitor_schedules() {
        assert_eq!(next("cron(0 * ? * * *)", "2026-12-03T08:12:30Z"), "2026-12-03T09:00:00+00:00");
        assert_eq!(next("cron(0 * ? * * *)", "2026-12-03T09:00:00Z"), "2026-12-03T10:00:00+00:00");
        assert_eq!(next("cron(0 6 ? * * *)", "2026-12-03T08:00:00Z"), "2026-12-04T06:00:00+00:00");
        assert_eq!(next("cron(0 0/6 ? * * *)", "2026-12-03T08:00:00Z"), "2026-12-03T12:00:00+00:00");
        let hourly = cron("cron(0 * ? * * *)");
        assert_eq!(
            hourly.previous_before(at("2026-12-03T09:00:00Z")).unwrap().to_rfc3339(),
            "2026-12-03T08:00:00+00:00"
        );
        assert_eq!(
            hourly.previous_before(at("2026-12-03T09:00:01Z")).unwrap().to_rfc3339(),
            "2026-12-03T09:00:00+00:00"
        );
        assert_eq!(
            cron("cron(30 2 ? * * *)").previous_before(at("2026-12-03T01:00:00Z")).unwrap().to_rfc3339(),
            "2026-12-02T02:30:00+00:00"
        );
    }

    #[test]
    fn aws_day_rules() {
        // Last day of the month; the weekday nearest the 15th; the last Friday; the 2nd Monday.
        assert_eq!(next("cron(0 12 L * ? *)", "2027-02-01T00:00:00Z"), "2027-02-28T12:00:00+00:00");
        // 2027-05-15 is a Saturday: the nearest weekday is Friday the 14th.
        assert_eq!(next("cron(0 12 15W * ? *)", "2027-05-01T00:00:00Z"), "2027-05-14T12:00:00+00:00");
        assert_eq!(next("cron(0 12 ? * 6L *)", "2026-12-01T00:00:00Z"), "2026-12-25T12:00:00+00:00");
        assert_eq!(next("cron(0 12 ? * MON#2 *)", "2026-12-01T00:00:00Z"), "2026-12-14T12:00:00+00:00");
        assert_eq!(next("cron(15 10 ? * MON-FRI *)", "2026-12-05T00:00:00Z"), "2026-12-07T10:15:00+00:00");
        assert_eq!(next("cron(0/15 * ? * * *)", "2026-12-03T08:16:00Z"), "2026-12-03T08:30:00+00:00");
        assert_eq!(next("cron(0 0 1 JAN ? 2027)", "2026-06-01T00:00:00Z"), "2027-01-01T00:00:00+00:00");
        assert!(cron("cron(0 0 1 JAN ? 2025)").next_after(at("2026-06-01T00:00:00Z")).is_none());
    }

    #[test]
    fn run_now_windows_are_ordered_bounded_and_past() {
        let now = Utc::now();
        let hour = Duration::hours(1);
        assert!(check_window(now - hour, now, now).is_ok());
        assert_eq!(check_window(now, now - hour, now).unwrap_err().pointer, "/end_time");
        assert!(check_window(now - Duration::days(40), now, now).is_err());
        assert!(check_window(now, now + hour, now + Duration::minutes(5)).is_err());
    }
}
