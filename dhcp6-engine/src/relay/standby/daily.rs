//! The daily batch (the remote backup service's "batch backup daily"): a backup service
//! configured with `daily_batch = "03:30"` (or `"03:30:15"`) sends its peer a batch of every entry once
//! a day at that time (UTC), whatever went between. Whether one is due is decided here, from
//! the time of the last batch sent and the time now, so that it is tested without a clock.

use std::fmt;

const DAY: u64 = 86_400;

/// A time of day, UTC, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DailyTime {
    /// Seconds since midnight UTC.
    seconds: u32,
}

/// Why a daily time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DailyTimeError {
    #[error("{0:?} is not a time of day as HH:MM or HH:MM:SS (UTC, 00:00 to 23:59:59)")]
    Format(String),
    #[error("{0:?}: the hour must be from 00 to 23")]
    Hour(String),
    #[error("{0:?}: the minute must be from 00 to 59")]
    Minute(String),
    #[error("{0:?}: the second must be from 00 to 59")]
    Second(String),
}

impl DailyTime {
    /// `hour:minute`, None past 23:59.
    pub fn new(hour: u8, minute: u8) -> Option<DailyTime> {
        DailyTime::with_seconds(hour, minute, 0)
    }

    /// `hour:minute:second`, None past 23:59:59.
    pub fn with_seconds(hour: u8, minute: u8, second: u8) -> Option<DailyTime> {
        (hour < 24 && minute < 60 && second < 60)
            .then(|| DailyTime { seconds: u32::from(hour) * 3600 + u32::from(minute) * 60 + u32::from(second) })
    }

    /// Reads `HH:MM` or `HH:MM:SS` (two digits each).
    ///
    /// ```
    /// use dhcp6_engine::relay::standby::daily::DailyTime;
    /// assert_eq!(DailyTime::parse("03:30"), Ok(DailyTime::new(3, 30).unwrap()));
    /// assert_eq!(DailyTime::parse("03:30:15"), Ok(DailyTime::with_seconds(3, 30, 15).unwrap()));
    /// assert!(DailyTime::parse("3:30").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<DailyTime, DailyTimeError> {
        let format = || DailyTimeError::Format(text.to_string());
        let parts: Vec<&str> = text.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(format());
        }
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !parts.iter().all(|p| two_digits(p)) {
            return Err(format());
        }
        // Two ASCII digits always make a u8.
        let number = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<u8>().map_err(|_| format()));
        let (hour, minute, second) = (number(0)?, number(1)?, number(2)?);
        if hour > 23 {
            return Err(DailyTimeError::Hour(text.to_string()));
        }
        if minute > 59 {
            return Err(DailyTimeError::Minute(text.to_string()));
        }
        DailyTime::with_seconds(hour, minute, second).ok_or_else(|| DailyTimeError::Second(text.to_string()))
    }

    /// The last instant at this time of day at or before `now` (Unix seconds).
    fn last_at_or_before(self, now: u64) -> u64 {
        let today = now - now % DAY + u64::from(self.seconds);
        if today <= now {
            today
        } else {
            today.saturating_sub(DAY)
        }
    }

    /// Whether a batch is due at `now`, the last batch having gone at `last` (Unix seconds;
    /// None: none yet): when none has gone since this time of day last came. A time missed
    /// while the link was down makes one batch due, not one per day missed; any batch (on
    /// connect, on demand) counts, so a batch is not sent twice for one day's time.
    pub fn due(self, last: Option<u64>, now: u64) -> bool {
        last.is_none_or(|last| last < self.last_at_or_before(now))
    }
}

impl fmt::Display for DailyTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.seconds / 3600, self.seconds % 3600 / 60)?;
        match self.seconds % 60 {
            0 => Ok(()),
            s => write!(f, ":{s:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 00:00:00 UTC.
    const MIDNIGHT: u64 = 1_796_601_600;

    fn at(day: u64, hour: u64, minute: u64, second: u64) -> u64 {
        MIDNIGHT + day * DAY + hour * 3600 + minute * 60 + second
    }

    #[test]
    fn parses_hh_mm_and_hh_mm_ss_and_says_what_is_wrong() {
        assert_eq!(DailyTime::parse("00:00"), Ok(DailyTime { seconds: 0 }));
        assert_eq!(DailyTime::parse("23:59").map(|t| t.to_string()), Ok("23:59".to_string()));
        assert_eq!(DailyTime::parse("03:30:00").map(|t| t.to_string()), Ok("03:30".to_string()));
        assert_eq!(DailyTime::parse("23:59:59"), Ok(DailyTime { seconds: 86_399 }));
        assert_eq!(DailyTime::parse("01:02:03").map(|t| t.to_string()), Ok("01:02:03".to_string()));
        for bad in ["", "0330", "3:30", "03:3", "03:30:0", "03:30:00:00", "ab:cd", "+3:30", "03:-1", " 03:30", "03:30:"]
        {
            assert_eq!(DailyTime::parse(bad), Err(DailyTimeError::Format(bad.into())), "{bad:?}");
        }
        assert_eq!(DailyTime::parse("24:00"), Err(DailyTimeError::Hour("24:00".into())));
        assert_eq!(DailyTime::parse("03:60"), Err(DailyTimeError::Minute("03:60".into())));
        assert_eq!(DailyTime::parse("03:59:60"), Err(DailyTimeError::Second("03:59:60".into())));
    }

    #[test]
    fn one_batch_a_day_at_the_time() {
        let t = DailyTime::parse("03:30").unwrap();
        let last = Some(at(0, 3, 30, 0));
        assert!(!t.due(last, at(0, 3, 30, 0)), "just sent");
        assert!(!t.due(last, at(0, 23, 0, 0)));
        assert!(!t.due(last, at(1, 3, 29, 59)), "not yet the next day's time");
        assert!(t.due(last, at(1, 3, 30, 0)), "the next day's time");
        assert!(t.due(last, at(1, 3, 30, 1)), "a tick late");
        assert!(!t.due(Some(at(1, 3, 30, 1)), at(1, 3, 30, 2)), "sent: not again that day");
    }

    #[test]
    fn across_midnight() {
        let late = DailyTime::parse("23:59").unwrap();
        assert!(late.due(Some(at(0, 23, 58, 0)), at(0, 23, 59, 0)));
        assert!(!late.due(Some(at(0, 23, 59, 10)), at(1, 0, 0, 30)), "yesterday's is sent");
        let midnight = DailyTime::parse("00:00").unwrap();
        assert!(!midnight.due(Some(at(0, 23, 59, 0)), at(0, 23, 59, 59)));
        assert!(midnight.due(Some(at(0, 23, 59, 0)), at(1, 0, 0, 0)));
        assert!(!midnight.due(Some(at(1, 0, 0, 0)), at(1, 23, 59, 59)));
    }

    #[test]
    fn a_time_missed_while_disconnected_is_one_batch() {
        let t = DailyTime::parse("03:30").unwrap();
        // Down from before day 1's time to after day 3's: one batch due, then none until
        // day 4's time.
        let last = Some(at(0, 3, 30, 0));
        assert!(t.due(last, at(3, 12, 0, 0)));
        let sent = Some(at(3, 12, 0, 0));
        assert!(!t.due(sent, at(3, 23, 0, 0)));
        assert!(!t.due(sent, at(4, 3, 29, 0)));
        assert!(t.due(sent, at(4, 3, 30, 0)));
        // A batch on connect after the time counts for that day.
        assert!(!t.due(Some(at(5, 4, 0, 0)), at(5, 5, 0, 0)));
        assert!(t.due(None, at(5, 5, 0, 0)), "no batch yet");
    }

    #[test]
    fn a_clock_set_back_sends_no_batch_twice() {
        let t = DailyTime::parse("03:30").unwrap();
        assert!(!t.due(Some(at(2, 4, 0, 0)), at(1, 4, 0, 0)));
        assert!(!t.due(Some(at(0, 0, 0, 0)), 100), "before the first day's time of 1970");
    }
}
