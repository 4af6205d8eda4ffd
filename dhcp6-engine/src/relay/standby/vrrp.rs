//! keepalived's notify FIFO, read: one line per VRRP state change of an instance or a sync
//! group, `TYPE "NAME" STATE PRIORITY`, as keepalived's `notify_fifo` writes them
//! (`vrrp/vrrp_notify.c`):
//!
//! ```text
//! INSTANCE "RELAY6" MASTER 200
//! GROUP "ACCESS" BACKUP 0
//! ```
//!
//! STATE is MASTER, BACKUP, FAULT or STOP (keepalived stopping), or an event that changes no
//! state (MASTER_RX_LOWER_PRI, MASTER_PRIORITY, BACKUP_PRIORITY; DELETED for an instance a
//! reload removed). A group's priority is 0. The same FIFO (`notify_fifo`, not
//! `vrrp_notify_fifo`) also carries the checker's `VS` and `RS` lines, which are no VRRP
//! notices.

/// What a notice is about: a VRRP instance or a sync group of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpSubject {
    Instance,
    Group,
}

/// The VRRP state keepalived reports (RFC 9568 section 6.4: Initialize, Backup, Active;
/// keepalived's own FAULT and STOP besides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VrrpState {
    /// Active: the instance owns the virtual addresses.
    Master,
    Backup,
    /// A tracked interface or script failed: the instance neither owns nor contends.
    Fault,
    /// keepalived stopped the instance (it is exiting, or a reload removed it).
    Stop,
}

/// One line of the FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpNotice {
    pub subject: VrrpSubject,
    pub name: String,
    /// The new state; `None` for a notice that changes no state (a priority event).
    pub state: Option<VrrpState>,
    /// The instance's effective priority (0 for a group).
    pub priority: u8,
}

/// Why a line is no VRRP notice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpNoticeError {
    /// A `VS` or `RS` line of keepalived's checker, or another type.
    #[error("not a VRRP notice ({0:?})")]
    OtherType(String),
    #[error("the instance name is not quoted")]
    UnquotedName,
    #[error("no state after the name")]
    MissingState,
    #[error("unknown state {0:?}")]
    UnknownState(String),
    #[error("priority {0:?} is not 0 to 255")]
    BadPriority(String),
}

impl VrrpNotice {
    /// Reads one line (with or without its newline).
    ///
    /// ```
    /// use dhcp6_engine::relay::standby::vrrp::{VrrpNotice, VrrpState, VrrpSubject};
    /// let n = VrrpNotice::parse("INSTANCE \"RELAY6\" MASTER 200\n").unwrap();
    /// assert_eq!((n.subject, n.name.as_str(), n.state, n.priority), (VrrpSubject::Instance, "RELAY6", Some(VrrpState::Master), 200));
    /// ```
    pub fn parse(line: &str) -> Result<VrrpNotice, VrrpNoticeError> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let subject = match kind {
            "INSTANCE" => VrrpSubject::Instance,
            "GROUP" => VrrpSubject::Group,
            other => return Err(VrrpNoticeError::OtherType(other.to_string())),
        };
        // keepalived quotes the name and writes it as configured (no quote inside it).
        let rest = rest.strip_prefix('"').ok_or(VrrpNoticeError::UnquotedName)?;
        let (name, rest) = rest.split_once('"').ok_or(VrrpNoticeError::UnquotedName)?;
        let mut words = rest.split_whitespace();
        let state = match words.next().ok_or(VrrpNoticeError::MissingState)? {
            "MASTER" => Some(VrrpState::Master),
            "BACKUP" => Some(VrrpState::Backup),
            "FAULT" => Some(VrrpState::Fault),
            "STOP" | "DELETED" => Some(VrrpState::Stop),
            "MASTER_RX_LOWER_PRI" | "MASTER_PRIORITY" | "BACKUP_PRIORITY" => None,
            other => return Err(VrrpNoticeError::UnknownState(other.to_string())),
        };
        let priority = match words.next() {
            None => 0,
            Some(p) => p.parse().map_err(|_| VrrpNoticeError::BadPriority(p.to_string()))?,
        };
        Ok(VrrpNotice { subject, name: name.to_string(), state, priority })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_and_group_lines_are_read() {
        let n = VrrpNotice::parse("INSTANCE \"RELAY6\" BACKUP 100").unwrap();
        assert_eq!(
            n,
            VrrpNotice {
                subject: VrrpSubject::Instance,
                name: "RELAY6".into(),
                state: Some(VrrpState::Backup),
                priority: 100
            }
        );
        let g = VrrpNotice::parse("GROUP \"ACCESS\" FAULT 0\n").unwrap();
        assert_eq!(
            (g.subject, g.name.as_str(), g.state, g.priority),
            (VrrpSubject::Group, "ACCESS", Some(VrrpState::Fault), 0)
        );
        let stop = VrrpNotice::parse("INSTANCE \"VI 1\" STOP 0").unwrap();
        assert_eq!((stop.name.as_str(), stop.state), ("VI 1", Some(VrrpState::Stop)));
        assert_eq!(VrrpNotice::parse("INSTANCE \"x\" DELETED 0").unwrap().state, Some(VrrpState::Stop));
    }

    #[test]
    fn priority_events_change_no_state() {
        for event in ["MASTER_RX_LOWER_PRI", "MASTER_PRIORITY", "BACKUP_PRIORITY"] {
            let n = VrrpNotice::parse(&format!("INSTANCE \"RELAY6\" {event} 90")).unwrap();
            assert_eq!((n.state, n.priority), (None, 90));
        }
    }

    #[test]
    fn other_lines_are_refused_with_their_reason() {
        use VrrpNoticeError::*;
        let cases = [
            ("VS [2001:db8::1]:tcp:80 UP", OtherType("VS".into())),
            ("RS [2001:db8::2]:tcp:80 [2001:db8::1]:tcp:80 DOWN", OtherType("RS".into())),
            ("", OtherType(String::new())),
            ("INSTANCE RELAY6 MASTER 200", UnquotedName),
            ("INSTANCE \"RELAY6 MASTER 200", UnquotedName),
            ("INSTANCE \"RELAY6\"", MissingState),
            ("INSTANCE \"RELAY6\" {UNKNOWN} 0", UnknownState("{UNKNOWN}".into())),
            ("INSTANCE \"RELAY6\" MASTER 300", BadPriority("300".into())),
        ];
        for (line, error) in cases {
            assert_eq!(VrrpNotice::parse(line), Err(error), "{line:?}");
        }
    }
}
