//! Warnings that can repeat many times a second (a full disk refuses every commit, an
//! unreachable peer fails every send) are logged at most once per window, with how often they
//! happened since the last line, so that the log says what goes on without flooding.

use std::time::{Duration, Instant};

/// The window of the daemon's repeated warnings.
pub const WINDOW: Duration = Duration::from_secs(5);

/// One repeated warning's state.
#[derive(Debug, Clone)]
pub struct Throttle {
    window: Duration,
    /// When a line was last logged.
    logged: Option<Instant>,
    /// Times it happened since, unlogged.
    suppressed: u64,
}

impl Throttle {
    pub const fn new(window: Duration) -> Throttle {
        Throttle { window, logged: None, suppressed: 0 }
    }

    /// The warning happened at `now`: `Some(n)` if a line is due (`n`: how many times it happened
    /// unlogged since the last line), `None` if it is to be counted only.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.logged {
            Some(at) if now.saturating_duration_since(at) < self.window => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// What a line adds when it stands for more than one time: ", and N times more in the last
/// W s" (empty for `more` = 0).
pub fn repeats(more: u64) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(", and {more} times more in the last {} s", WINDOW.as_secs())
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_the_count_of_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(0), "the first is logged");
        let within: Vec<_> = (1..=1940).map(|ms| t.hit(start + Duration::from_millis(ms))).collect();
        assert!(within.iter().all(Option::is_none), "the rest of the window is counted only");
        assert_eq!(t.hit(start + Duration::from_secs(5)), Some(1940), "the next line says how many");
        assert_eq!(t.hit(start + Duration::from_secs(11)), Some(0));
    }
}
