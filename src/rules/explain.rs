//! The text of an explanation, rendered when it is first read.
//!
//! Scoring keeps the numbers of each contribution; the sentence ("rule-3: x2 on 40.5
//! base points of the order = 40.5, Floor -> +40") is built only when something reads
//! it — the ledger when it stores a posting, the API, a simulation. What-if replay of a
//! shop's history never reads it, and formatting decimals was a quarter of the time of
//! a score. A [`Detail`] reads as a `&str` and serialises as a plain string, so stored
//! postings and API answers are unchanged.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use loyaltyd_adapter::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Rounding;
use crate::points::Points;

/// A contribution's human-readable account of the arithmetic.
#[derive(Clone)]
pub struct Detail {
    how: How,
    text: OnceLock<String>,
}

/// What a part of a whole-order or matching-lines rule applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Order,
    Lines,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Order => "the order",
            Scope::Lines => "matching lines",
        }
    }
}

/// The numbers behind each kind of sentence.
#[derive(Debug, Clone)]
pub(crate) enum How {
    /// Text given as is (read back from storage, or written by hand).
    Text,
    Base {
        eligible: Decimal,
        cur: Currency,
        ppu: Decimal,
        raw: Decimal,
        rounding: Rounding,
        points: i64,
    },
    /// `points_per_unit`; `raw` is the unrounded total when rounding once per order,
    /// `None` when each line is rounded.
    Rate {
        id: String,
        rate: Decimal,
        cur: Currency,
        spend: Decimal,
        scope: Scope,
        raw: Option<Decimal>,
        rounding: Rounding,
        points: i64,
    },
    Multiplier {
        id: String,
        m: Decimal,
        on_base: Decimal,
        scope: Scope,
        raw: Decimal,
        rounding: Rounding,
        points: i64,
    },
    Bonus {
        id: String,
        bonus: Points,
    },
    CashBack {
        id: String,
        pct: Decimal,
        spend: Decimal,
        cur: Currency,
        scope: Scope,
        cash: Decimal,
    },
    /// A rule that lost under `combine = "best"`.
    NotApplied {
        inner: Box<How>,
        winner: String,
    },
    Cap {
        id: &'static str,
        cap: Points,
        what: &'static str,
        earlier: Points,
        cut: Points,
    },
}

/// Builds an explanation with plain string pushes: going through `fmt::write` for a
/// dozen pieces per sentence was most of the cost of rendering one.
struct Out(String);

impl Out {
    fn s(&mut self, piece: &str) -> &mut Out {
        self.0.push_str(piece);
        self
    }

    /// An integer, as `Display` writes it.
    fn i(&mut self, v: i64) -> &mut Out {
        let mut buf = [0u8; 20];
        let at = digits(v.unsigned_abs(), &mut buf);
        if v < 0 {
            self.0.push('-');
        }
        self.push_ascii(&buf[at..])
    }

    /// A decimal exactly as `Decimal`'s `Display` writes it, without its per-digit
    /// 96-bit division for the usual non-negative mantissa under 2^64.
    fn d(&mut self, d: Decimal) -> &mut Out {
        let m = match u64::try_from(d.mantissa()) {
            Ok(m) if !d.is_sign_negative() => m,
            _ => {
                use std::fmt::Write;
                // Writing into a String cannot fail.
                let _ = write!(self.0, "{d}");
                return self;
            }
        };
        let scale = d.scale() as usize;
        // Up to 28 digits of scale plus a leading zero: zero-filled on the left.
        let mut buf = [b'0'; 32];
        let at = digits(m, &mut buf);
        if scale == 0 {
            return self.push_ascii(&buf[at..]);
        }
        let start = at.min(buf.len() - scale - 1);
        let point = buf.len() - scale;
        self.push_ascii(&buf[start..point]);
        self.0.push('.');
        self.push_ascii(&buf[point..])
    }

    fn rounding(&mut self, r: Rounding) -> &mut Out {
        self.s(match r {
            Rounding::Floor => "Floor",
            Rounding::Round => "Round",
            Rounding::Ceil => "Ceil",
        })
    }

    fn push_ascii(&mut self, bytes: &[u8]) -> &mut Out {
        // Only ASCII digits are ever passed here, so this never drops anything.
        self.0
            .push_str(std::str::from_utf8(bytes).unwrap_or_default());
        self
    }
}

/// Writes the decimal digits of `v` at the end of `buf`; returns where they start.
fn digits(mut v: u64, buf: &mut [u8]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return i;
        }
    }
}

impl How {
    fn write(&self, o: &mut Out) {
        match self {
            How::Text => {}
            How::Base {
                eligible,
                cur,
                ppu,
                raw,
                rounding,
                points,
            } => {
                let cur = cur.as_str();
                o.s("eligible spend ").d(*eligible).s(" ").s(cur);
                o.s(" x ").d(*ppu).s(" points per ").s(cur);
                o.s(" = ").d(*raw).s(", ").rounding(*rounding);
                o.s(" -> ").i(*points);
            }
            How::Rate {
                id,
                rate,
                cur,
                spend,
                scope,
                raw,
                rounding,
                points,
            } => {
                let cur = cur.as_str();
                o.s(id).s(": ").d(*rate).s(" points per ").s(cur);
                o.s(" on ").d(*spend).s(" ").s(cur);
                o.s(" of ").s(scope.as_str());
                match raw {
                    Some(raw) => o.s(" = ").d(*raw).s(", ").rounding(*rounding).s(" -> +"),
                    None => o.s(", ").rounding(*rounding).s(" per line -> +"),
                };
                o.i(*points);
            }
            How::Multiplier {
                id,
                m,
                on_base,
                scope,
                raw,
                rounding,
                points,
            } => {
                o.s(id).s(": x").d(*m).s(" on ").d(*on_base);
                o.s(" base points of ").s(scope.as_str());
                o.s(" = ").d(*raw).s(", ").rounding(*rounding);
                o.s(" -> +").i(*points);
            }
            How::Bonus { id, bonus } => {
                o.s(id).s(": bonus +").i(bonus.0);
            }
            How::CashBack {
                id,
                pct,
                spend,
                cur,
                scope,
                cash,
            } => {
                let cur = cur.as_str();
                o.s(id)
                    .s(": ")
                    .d(*pct)
                    .s("% cash back on ")
                    .d(*spend)
                    .s(" ")
                    .s(cur);
                o.s(" of ")
                    .s(scope.as_str())
                    .s(" = ")
                    .d(*cash)
                    .s(" ")
                    .s(cur);
                o.s(" store credit");
            }
            How::NotApplied { inner, winner } => {
                inner.write(o);
                o.s(" (not applied: best rule wins, ")
                    .s(winner)
                    .s(" gives more)");
            }
            How::Cap {
                id,
                cap,
                what,
                earlier,
                cut,
            } => {
                o.s(id).s(": at most ").i(cap.0).s(" points ").s(what);
                if earlier.0 > 0 {
                    o.s(", ").i(earlier.0).s(" already earned");
                }
                o.s(": ").i(cut.0);
            }
        }
    }
}

impl Detail {
    pub(crate) fn new(how: How) -> Detail {
        Detail {
            how,
            text: OnceLock::new(),
        }
    }

    /// The same rule's detail, marked as losing to `winner` under `combine = "best"`.
    pub(crate) fn not_applied(self, winner: &str) -> Detail {
        let inner = match self.how {
            How::Text => {
                return Detail::from(format!(
                    "{} (not applied: best rule wins, {winner} gives more)",
                    self.as_str()
                ))
            }
            how => Box::new(how),
        };
        Detail::new(How::NotApplied {
            inner,
            winner: winner.to_string(),
        })
    }

    /// The text, rendered on first use.
    pub fn as_str(&self) -> &str {
        self.text.get_or_init(|| {
            let mut o = Out(String::with_capacity(96));
            self.how.write(&mut o);
            o.0
        })
    }
}

impl From<String> for Detail {
    fn from(text: String) -> Detail {
        Detail {
            how: How::Text,
            text: OnceLock::from(text),
        }
    }
}

impl From<&str> for Detail {
    fn from(text: &str) -> Detail {
        Detail::from(text.to_string())
    }
}

impl Deref for Detail {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Detail {
    fn eq(&self, other: &Detail) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Detail {}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Detail {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl Serialize for Detail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Detail, D::Error> {
        String::deserialize(d).map(Detail::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_reads_serialises_and_compares_as_its_text() {
        let d = Detail::new(How::Bonus {
            id: "welcome".into(),
            bonus: Points(50),
        });
        assert_eq!(d, "welcome: bonus +50");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"welcome: bonus +50\"");
        let back: Detail = serde_json::from_str("\"welcome: bonus +50\"").unwrap();
        assert_eq!(back, d);
        assert!(d.contains("+50"));
    }

    fn rendered(d: Decimal) -> String {
        let mut o = Out(String::new());
        o.d(d);
        o.0
    }

    proptest::proptest! {
        #[test]
        fn decimals_in_explanations_read_exactly_as_decimal_display(
            lo: u32, mid: u32, hi in 0u32..3, neg: bool, scale in 0u32..=28
        ) {
            let d = Decimal::from_parts(lo, mid, hi, neg, scale);
            proptest::prop_assert_eq!(rendered(d), d.to_string());
        }

        #[test]
        fn integers_in_explanations_read_exactly_as_display(v: i64) {
            let mut o = Out(String::new());
            o.i(v);
            proptest::prop_assert_eq!(o.0, v.to_string());
        }
    }

    #[test]
    fn small_decimals_keep_their_scale_and_leading_zero() {
        for s in [
            "0",
            "0.00",
            "0.005",
            "123.45",
            "40.50",
            "7",
            "18446744073709551615.5",
        ] {
            let d: Decimal = s.parse().unwrap();
            assert_eq!(rendered(d), s);
        }
    }

    #[test]
    fn rounding_names_read_as_their_debug_form() {
        for r in [Rounding::Floor, Rounding::Round, Rounding::Ceil] {
            let mut o = Out(String::new());
            o.rounding(r);
            assert_eq!(o.0, format!("{r:?}"));
        }
    }

    #[test]
    fn a_losing_rule_keeps_its_sentence_and_names_the_winner() {
        let d = Detail::new(How::Bonus {
            id: "a".into(),
            bonus: Points(5),
        })
        .not_applied("b");
        assert_eq!(d, "a: bonus +5 (not applied: best rule wins, b gives more)");
        let t = Detail::from("x").not_applied("y");
        assert_eq!(t, "x (not applied: best rule wins, y gives more)");
    }
}
