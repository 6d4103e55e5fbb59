//! The liability chart: points outstanding (available + pending, all members) at the
//! end of each local day with postings, drawn as inline SVG by the server.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::report::activity::Day;

/// Width and height of the plot's view box.
const W: f64 = 720.0;
const H: f64 = 220.0;
/// Margins: left for the value labels, bottom for the dates.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 10.0;
/// At most this many hover dots.
const MAX_DOTS: usize = 120;

/// One point of the series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dot {
    pub x: String,
    pub y: String,
    pub label: String,
}

/// A label on an axis.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tick {
    pub x: String,
    pub y: String,
    pub text: String,
}

/// What the template draws.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    /// `points` of the step line.
    pub line: String,
    /// `points` of the area under it.
    pub area: String,
    pub dots: Vec<Dot>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// The plot's frame (x0, y0, x1, y1) as strings.
    pub x0: String,
    pub y0: String,
    pub x1: String,
    pub y1: String,
    /// Points outstanding after the last day.
    pub outstanding: i64,
    /// Days drawn.
    pub days: usize,
}

/// Points outstanding at the end of each day: the running sum of issued − redeemed −
/// expired − reversed + adjusted (the liability report's identity, per day).
pub fn outstanding(days: &[Day]) -> Vec<(NaiveDate, i64)> {
    let mut total = 0i64;
    days.iter()
        .map(|d| {
            total += d.issued.0 - d.redeemed.0 - d.expired.0 - d.reversed.0 + d.adjusted.0;
            (d.date, total)
        })
        .collect()
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A round step for about four ticks up to `max`.
fn step(max: i64) -> i64 {
    let raw = (max.max(1) as f64 / 4.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    nice.ceil() as i64
}

/// Lay the series out; `None` when there is nothing to draw.
pub fn chart(series: &[(NaiveDate, i64)]) -> Option<Chart> {
    let (first, last) = (series.first()?, series.last()?);
    let span = (last.0 - first.0).num_days().max(1) as f64;
    let lo = series.iter().map(|p| p.1).min().unwrap_or(0).min(0);
    let hi = series.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let st = step(hi - lo);
    let top = (hi + st - 1).div_euclid(st) * st;
    let bottom = lo.div_euclid(st) * st;
    let range = (top - bottom).max(1) as f64;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |d: NaiveDate| {
        if series.len() == 1 {
            LEFT + pw
        } else {
            LEFT + pw * (d - first.0).num_days() as f64 / span
        }
    };
    let y = |v: i64| TOP + ph * (top - v) as f64 / range;

    // A step line: the value holds until the next day with postings.
    let mut line = Vec::new();
    if series.len() == 1 {
        line.push(format!("{},{}", fmt(LEFT), fmt(y(first.1))));
    }
    for (i, (d, v)) in series.iter().enumerate() {
        if i > 0 {
            line.push(format!("{},{}", fmt(x(*d)), fmt(y(series[i - 1].1))));
        }
        line.push(format!("{},{}", fmt(x(*d)), fmt(y(*v))));
    }
    let line = line.join(" ");
    let base = fmt(y(bottom.max(0).min(top)));
    let start_x = if series.len() == 1 { LEFT } else { x(first.0) };
    let area = format!(
        "{},{} {} {},{}",
        fmt(start_x),
        base,
        line,
        fmt(x(last.0)),
        base
    );
    let every = series.len().div_ceil(MAX_DOTS).max(1);
    let mut dots: Vec<Dot> = series
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0 || *i == series.len() - 1)
        .map(|(_, (d, v))| Dot {
            x: fmt(x(*d)),
            y: fmt(y(*v)),
            label: format!("{d}: {v} points outstanding"),
        })
        .collect();
    dots.dedup();
    let y_ticks = (0..)
        .map(|i| bottom + i * st)
        .take_while(|v| *v <= top)
        .map(|v| Tick {
            x: fmt(LEFT - 6.0),
            y: fmt(y(v) + 4.0),
            text: v.to_string(),
        })
        .collect();
    let mut x_ticks = vec![Tick {
        x: fmt(if series.len() == 1 { LEFT } else { x(first.0) }),
        y: fmt(H - 6.0),
        text: first.0.to_string(),
    }];
    if series.len() > 1 {
        x_ticks.push(Tick {
            x: fmt(x(last.0)),
            y: fmt(H - 6.0),
            text: last.0.to_string(),
        });
    }
    Some(Chart {
        width: W,
        height: H,
        line,
        area,
        dots,
        y_ticks,
        x_ticks,
        x0: fmt(LEFT),
        y0: fmt(TOP),
        x1: fmt(W - RIGHT),
        y1: fmt(H - BOTTOM),
        outstanding: last.1,
        days: series.len(),
    })
}

/// `points × point_value`, rounded to the currency's minor unit.
pub fn money(points: i64, point_value: Decimal, minor_units: u32) -> String {
    let mut v = (Decimal::from(points) * point_value).round_dp_with_strategy(
        minor_units,
        rust_decimal::RoundingStrategy::MidpointNearestEven,
    );
    v.rescale(minor_units);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::Points;

    fn day(date: &str, issued: i64, redeemed: i64) -> Day {
        Day {
            date: date.parse().unwrap(),
            issued: Points(issued),
            redeemed: Points(redeemed),
            ..Day::default()
        }
    }

    #[test]
    fn outstanding_points_are_the_running_identity() {
        let days = [
            day("2026-01-01", 11, 0),
            day("2026-01-03", 0, 5),
            Day {
                adjusted: Points(3),
                expired: Points(1),
                reversed: Points(2),
                ..day("2026-01-09", 4, 0)
            },
        ];
        let s = outstanding(&days);
        assert_eq!(s.iter().map(|p| p.1).collect::<Vec<_>>(), vec![11, 6, 10]);
    }

    #[test]
    fn the_chart_spans_the_days_and_labels_the_ends() {
        let s = outstanding(&[day("2026-01-01", 11, 0), day("2026-01-11", 0, 5)]);
        let c = chart(&s).unwrap();
        assert_eq!(c.outstanding, 6);
        assert_eq!(c.x_ticks.len(), 2);
        assert_eq!(c.x_ticks[1].text, "2026-01-11");
        assert_eq!(c.dots.len(), 2);
        assert!(c.dots[1].label.contains("6 points"));
        // Step line: first point, the hold, the drop.
        assert_eq!(c.line.split(' ').count(), 3);
        assert!(c.y_ticks.first().unwrap().text == "0");
        assert!(c.y_ticks.last().unwrap().text.parse::<i64>().unwrap() >= 11);
        assert!(chart(&[]).is_none());
        let one = chart(&s[..1]).unwrap();
        assert_eq!(one.days, 1);
    }

    #[test]
    fn money_uses_the_minor_unit() {
        assert_eq!(money(6, Decimal::new(1, 2), 2), "0.06");
        assert_eq!(money(1234, Decimal::new(5, 3), 0), "6");
        assert_eq!(step(11), 5);
        assert_eq!(step(1000), 250);
    }
}
