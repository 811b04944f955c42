//! A monitoring schedule's AWS cron expression (our own parser: AWS cron differs from the cron
//! crates): parsed or refused with an error; a parsed one's next firing is after the given time
//! and is the firing its previous-firing search finds again.
#![no_main]

use chrono::{Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use mlops::domain::cron::CronExpression;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(expression) = CronExpression::parse(text) else { return };
    let t = Utc.with_ymd_and_hms(2026, 12, 7, 13, 37, 42).unwrap();
    if let Some(next) = expression.next_after(t) {
        assert!(next > t, "{text}: next firing {next} is not after {t}");
        assert_eq!(expression.previous_before(next + Duration::minutes(1)), Some(next), "{text}");
    }
    if let Some(previous) = expression.previous_before(t) {
        assert!(previous < t, "{text}: previous firing {previous} is not before {t}");
        assert_eq!(expression.next_after(previous - Duration::minutes(1)), Some(previous), "{text}");
    }
});
