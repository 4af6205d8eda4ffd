//! What dhcp6d tells the service manager (systemd's `Type=notify`, through `NOTIFY_SOCKET`):
//! that it is ready once it really serves (leases loaded, XDP attached, sockets open), what it
//! is doing (`STATUS=`), that it is stopping, and the watchdog's keep-alives. Without
//! `NOTIFY_SOCKET` in the environment nothing is sent and nothing changes.
//!
//! The keep-alives are sent by the engine loop itself ([`super::run`]), never by a task of
//! their own: a loop that stops turning stops them, and systemd restarts the daemon.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{info, warn};

/// The service manager as the environment describes it.
pub struct ServiceManager {
    /// Whether there is one to tell (`NOTIFY_SOCKET`).
    listening: bool,
    /// How often a keep-alive is due, when the watchdog is on (`WATCHDOG_USEC`).
    keep_alive: Option<Duration>,
    /// The status line last sent, so that an unchanged one is not sent again.
    status: String,
}

impl ServiceManager {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, when set: the watchdog is meant for this
    /// process only if it names it).
    pub fn from_env() -> ServiceManager {
        let keep_alive = sd_notify::watchdog_enabled().and_then(keep_alive_interval);
        if let Some(every) = keep_alive {
            info!(every_ms = every.as_millis() as u64, "systemd watchdog on: keep-alives from the engine loop");
        }
        ServiceManager { listening: std::env::var_os("NOTIFY_SOCKET").is_some(), keep_alive, status: String::new() }
    }

    /// Whether anything is sent at all: without a service manager, callers need not even
    /// make a status line.
    pub fn listening(&self) -> bool {
        self.listening
    }

    /// How often [`Self::keep_alive`] is due; `None` without a watchdog.
    pub fn keep_alive_every(&self) -> Option<Duration> {
        self.keep_alive
    }

    /// dhcp6d serves: `READY=1` with a status line.
    pub fn ready(&mut self, status: String) {
        send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        self.status = status;
    }

    /// A status line for `systemctl status`, sent when it changed.
    pub fn status(&mut self, status: String) {
        if status != self.status {
            send(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    /// dhcp6d is stopping: `STOPPING=1`.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// The engine loop turned: `WATCHDOG=1`.
    pub fn keep_alive(&self) {
        if self.keep_alive.is_some() {
            send(&[NotifyState::Watchdog]);
        }
    }
}

/// Keep-alives go at half the watchdog's timeout, as sd_watchdog_enabled(3) advises, so that
/// one late turn of the loop is not yet a restart. A timeout of 0 means no watchdog.
pub fn keep_alive_interval(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then(|| (timeout / 2).max(Duration::from_micros(1)))
}

/// Sends `states`; a service manager that cannot be reached is logged, not fatal: dhcp6d
/// serves all the same.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "could not notify the service manager (NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alives_go_at_half_the_timeout() {
        assert_eq!(keep_alive_interval(Duration::from_secs(30)), Some(Duration::from_secs(15)));
        assert_eq!(keep_alive_interval(Duration::from_micros(3)), Some(Duration::from_nanos(1500)));
        // Never an interval of 0, which a timer cannot run.
        assert_eq!(keep_alive_interval(Duration::from_nanos(1)), Some(Duration::from_micros(1)));
    }

    #[test]
    fn a_zero_timeout_is_no_watchdog() {
        assert_eq!(keep_alive_interval(Duration::ZERO), None);
    }
}
