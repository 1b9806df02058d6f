//! The clock rule (DESIGN.md invariant 7): the latest `occurred_at` wins (invariant 3), so a
//! time no one checks could outrank every later STOP forever. Every source is held to the
//! same bounds: an effective time is never later than the recording time plus a small skew,
//! never earlier than a sane floor. Pure: the commit path and the HTTP adapter pass `now` and
//! the tenant's bounds.
//!
//! A customer's claim outside the bounds is corrected to the recording time, never a reason
//! to lose the message; a business's own input outside them is refused so it can be fixed.

use chrono::{DateTime, Duration, TimeZone, Utc};

/// The time an input claims for itself, as decoded and not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claimed {
    /// The value as the input wrote it, kept as proof; `None` when the input had none.
    pub raw: Option<String>,
    /// The instant it reads as, when it reads as one.
    pub at: Option<DateTime<Utc>>,
}

impl Claimed {
    /// A claim that reads as `at`.
    pub fn at(raw: impl Into<String>, at: DateTime<Utc>) -> Claimed {
        Claimed {
            raw: Some(raw.into()),
            at: Some(at),
        }
    }

    /// A claim of Unix seconds (WhatsApp's `timestamp`), read without judging its range: a
    /// millisecond value reads as a far-future instant, which the bounds then catch.
    pub fn unix_seconds(raw: impl Into<String>) -> Claimed {
        let raw = raw.into();
        let at = raw
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| Utc.timestamp_opt(s, 0).single());
        Claimed { raw: Some(raw), at }
    }

    /// A claim in RFC 3339 (our normalized records).
    pub fn rfc3339(raw: impl Into<String>) -> Claimed {
        let raw = raw.into();
        let at = DateTime::parse_from_rfc3339(raw.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc));
        Claimed { raw: Some(raw), at }
    }
}

/// Why a business's time is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfBounds {
    #[error(
        "{} is in the future (server time {}): a future decision would outrank every later one",
        at.to_rfc3339(),
        now.to_rfc3339()
    )]
    Future {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error(
        "{} is before {}, the earliest event time this ledger accepts (earliest_event_time)",
        at.to_rfc3339(),
        earliest.to_rfc3339()
    )]
    TooEarly {
        at: DateTime<Utc>,
        earliest: DateTime<Utc>,
    },
}

/// A tenant's bounds (`max_clock_skew_seconds`, `earliest_event_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBounds {
    /// How far past the recording time a clock may run (senders' clocks drift).
    pub max_skew: Duration,
    /// Nothing happened before this; earlier is a unit mistake or garbage.
    pub earliest: DateTime<Utc>,
}

/// The default skew: the HTTP API's rule since its first version.
pub const DEFAULT_MAX_SKEW_SECONDS: u32 = 300;

impl Default for ClockBounds {
    fn default() -> Self {
        ClockBounds {
            max_skew: Duration::seconds(i64::from(DEFAULT_MAX_SKEW_SECONDS)),
            earliest: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
        }
    }
}

/// The time an event takes effect, and what the input claimed when that was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveTime {
    pub at: DateTime<Utc>,
    /// Set when the claim was replaced by the recording time.
    pub corrected: bool,
    /// The raw claim that was replaced, kept in `source.claimed_time`.
    pub claimed: Option<String>,
    /// The earliest time the message can be placed at: `at` for a trusted claim, the start
    /// of the skew window before the recording time for a corrected one.
    pub earliest: DateTime<Utc>,
}

impl EffectiveTime {
    /// Where an event of this message sits in event time. A corrected opt-in sits at the
    /// earliest time it can, so that a START whose time could not be trusted never outranks
    /// a STOP the customer sent around the same time; a corrected opt-out sits at its
    /// recording time. When in doubt, the side that stops marketing wins.
    pub fn placed(&self, opt_in: bool) -> DateTime<Utc> {
        if self.corrected && opt_in {
            self.earliest
        } else {
            self.at
        }
    }
}

impl ClockBounds {
    /// `at`, if it lies within the bounds for a record made at `now`.
    pub fn check(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), OutOfBounds> {
        if at > now + self.max_skew {
            return Err(OutOfBounds::Future { at, now });
        }
        if at < self.earliest {
            return Err(OutOfBounds::TooEarly {
                at,
                earliest: self.earliest,
            });
        }
        Ok(())
    }

    /// A customer's message time: trusted within the bounds, else (out of range, unreadable
    /// or missing) replaced by `now`, the side that keeps a STOP rather than losing it.
    pub fn effective(&self, claimed: &Claimed, now: DateTime<Utc>) -> EffectiveTime {
        match claimed.at {
            Some(at) if self.check(at, now).is_ok() => EffectiveTime {
                at,
                corrected: false,
                claimed: None,
                earliest: at,
            },
            _ => EffectiveTime {
                at: now,
                corrected: true,
                claimed: claimed.raw.clone(),
                earliest: now - self.max_skew,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_time_within_the_bounds_is_trusted() {
        let b = ClockBounds::default();
        for at in [
            now(),
            now() - Duration::days(400),
            now() + Duration::seconds(300),
        ] {
            let e = b.effective(&Claimed::at("x", at), now());
            assert_eq!((e.at, e.corrected, e.claimed), (at, false, None));
        }
    }

    #[test]
    fn a_time_out_of_range_is_corrected_to_now_and_kept() {
        let b = ClockBounds::default();
        for raw in [
            "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
        ] {
            let e = b.effective(&Claimed::rfc3339(raw), now());
            assert_eq!(e.at, now(), "{raw}");
            assert!(e.corrected);
            assert_eq!(e.claimed.as_deref(), Some(raw));
        }
        let late = now() + Duration::seconds(301);
        assert!(b.effective(&Claimed::at("x", late), now()).corrected);
    }

    #[test]
    fn milliseconds_unreadable_and_missing_times_are_corrected() {
        let b = ClockBounds::default();
        let ms = Claimed::unix_seconds("1749416383000");
        assert!(ms.at.is_some(), "reads as a far-future instant");
        assert!(b.effective(&ms, now()).corrected);
        for claimed in [
            Claimed::unix_seconds("yesterday"),
            Claimed::unix_seconds("99999999999999999999"),
            Claimed::rfc3339("2026-13-45"),
            Claimed::default(),
        ] {
            let e = b.effective(&claimed, now());
            assert_eq!((e.at, e.corrected), (now(), true));
            assert_eq!(e.claimed, claimed.raw);
        }
        let ok = Claimed::unix_seconds(" 1749416383 ");
        assert_eq!(ok.at.unwrap().timestamp(), 1_749_416_383);
    }

    #[test]
    fn check_names_the_bound_a_business_time_breaks() {
        let b = ClockBounds {
            max_skew: Duration::seconds(60),
            earliest: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        };
        assert!(b.check(now() + Duration::seconds(60), now()).is_ok());
        let err = b.check(now() + Duration::seconds(61), now()).unwrap_err();
        assert!(err.to_string().contains("in the future"), "{err}");
        let err = b
            .check(Utc.with_ymd_and_hms(2019, 12, 31, 0, 0, 0).unwrap(), now())
            .unwrap_err();
        assert!(
            err.to_string().contains("before 2020-01-01T00:00:00+00:00"),
            "{err}"
        );
        assert!(b.check(b.earliest, now()).is_ok());
    }

    #[test]
    fn a_corrected_opt_in_sits_at_the_start_of_the_skew_window_and_an_opt_out_at_recording() {
        let b = ClockBounds::default();
        let e = b.effective(&Claimed::rfc3339("9999-12-31T23:59:59Z"), now());
        assert_eq!(e.placed(false), now());
        assert_eq!(e.placed(true), now() - Duration::seconds(300));
        let trusted = b.effective(&Claimed::at("x", now() - Duration::seconds(10)), now());
        assert_eq!(trusted.placed(true), trusted.placed(false));
    }
}
