//! Report periods: `from` / `to` as local dates (`2026-11-01`, in the shop's time zone)
//! or RFC 3339 instants. `from` is inclusive; `to` is exclusive for instants and
//! inclusive for dates (a date means "through the end of that day").

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::ledger::policy::local_day_boundary;

/// A bad period bound.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {value:?} is not a date (YYYY-MM-DD) or an RFC 3339 time")]
pub struct BadBound {
    /// `from` or `to`.
    pub name: &'static str,
    /// What was given.
    pub value: String,
}

/// Parse one bound. `end` selects the "through the end of the day" reading of dates.
pub fn parse_bound(
    name: &'static str,
    value: &str,
    tz: Tz,
    end: bool,
) -> Result<DateTime<Utc>, BadBound> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| BadBound {
        name,
        value: value.to_string(),
    })?;
    let noon = date
        .and_hms_opt(12, 0, 0)
        .and_then(|n| n.and_local_timezone(tz).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or(BadBound {
            name,
            value: value.to_string(),
        })?;
    Ok(local_day_boundary(noon, u32::from(end), tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_to_date_means_through_the_end_of_that_local_day() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let to = parse_bound("to", "2026-11-30", tz, true).unwrap();
        assert_eq!(to, "2026-12-01T05:00:00Z".parse::<DateTime<Utc>>().unwrap());
        let from = parse_bound("from", "2026-11-01", tz, false).unwrap();
        assert_eq!(
            from,
            "2026-11-01T04:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_bound("from", "yesterday", tz, false).is_err());
    }
}
