//! The failover states (RFC 8156 section 8), what each lets a server do for clients, and what
//! of them must outlive a restart.

use dhcp6_codec::failover::ServerState;
use serde::Deserialize;

/// Which end of the relationship this server is. The primary opens the connection and, in
/// hot standby (the only mode RFC 8156 defines), serves the clients while both are up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Primary,
    Secondary,
}

/// A failover endpoint's state (RFC 8156 section 8; wire values of OPTION_F_SERVER_STATE,
/// section 5.4, in [`State::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// After every start, until the partner's state is known or the wait ends (8.3).
    Startup,
    /// Both up and talking (8.8).
    Normal,
    /// The partner cannot be reached; it may still be serving (8.9).
    CommunicationsInterrupted,
    /// The partner is known to be down: this server serves everyone (8.4).
    PartnerDown,
    /// Back in touch after both may have served alone: bindings are compared (8.10).
    PotentialConflict,
    /// POTENTIAL-CONFLICT lost its connection (8.11).
    ResolutionInterrupted,
    /// The primary finished its side of the conflict resolution (8.12).
    ConflictDone,
    /// This server lost its bindings (or its partner held it down): it relearns them (8.5).
    Recover,
    /// Bindings relearnt; waiting for the MCLT to pass (8.6).
    RecoverWait,
    /// Ready to return to NORMAL together with the partner (8.7).
    RecoverDone,
}

impl State {
    /// Every state.
    pub const ALL: [State; 10] = [
        State::Startup,
        State::Normal,
        State::CommunicationsInterrupted,
        State::PartnerDown,
        State::PotentialConflict,
        State::ResolutionInterrupted,
        State::ConflictDone,
        State::Recover,
        State::RecoverWait,
        State::RecoverDone,
    ];

    /// The value in OPTION_F_SERVER_STATE (RFC 8156 section 13; the codec holds the numbers).
    pub fn code(self) -> ServerState {
        match self {
            State::Startup => ServerState::STARTUP,
            State::Normal => ServerState::NORMAL,
            State::CommunicationsInterrupted => ServerState::COMMUNICATIONS_INTERRUPTED,
            State::PartnerDown => ServerState::PARTNER_DOWN,
            State::PotentialConflict => ServerState::POTENTIAL_CONFLICT,
            State::Recover => ServerState::RECOVER,
            State::RecoverWait => ServerState::RECOVER_WAIT,
            State::RecoverDone => ServerState::RECOVER_DONE,
            State::ResolutionInterrupted => ServerState::RESOLUTION_INTERRUPTED,
            State::ConflictDone => ServerState::CONFLICT_DONE,
        }
    }

    /// The state with wire value `code`, if the RFC defines it.
    pub fn from_code(code: ServerState) -> Option<State> {
        State::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The RFC's name.
    pub fn name(self) -> &'static str {
        // Every State maps to one of the ten values the codec names.
        self.code().name().expect("a State's wire value is a defined one")
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where new resources may come from (independent allocation, RFC 8156 section 4.2.1: each
/// server owns a share of every pool; see [`crate::server::Server::pair_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocateFrom {
    /// No new bindings.
    Nothing,
    /// This server's share only.
    OwnShare,
    /// Both shares: in PARTNER-DOWN once the MCLT has passed since the partner went down.
    PartnersShareToo,
}

/// What a server may do for clients in its current state: [`super::Failover::service`].
///
/// | state | primary | secondary |
/// |---|---|---|
/// | STARTUP | nothing | nothing |
/// | NORMAL | everything, new bindings from its share | nothing |
/// | COMMUNICATIONS-INTERRUPTED | everything, new bindings from its share | the same |
/// | PARTNER-DOWN | everything; its share, both after partner-down time + MCLT | the same |
/// | POTENTIAL-CONFLICT | nothing | nothing |
/// | RESOLUTION-INTERRUPTED | as COMMUNICATIONS-INTERRUPTED | the same |
/// | CONFLICT-DONE | as NORMAL | (not entered) nothing |
/// | RECOVER, RECOVER-WAIT | nothing | nothing |
/// | RECOVER-DONE | Renew and Rebind of its own bindings, no new ones | the same |
///
/// "Everything" is: answer Solicit/Request, Renew and Rebind of its own bindings, and Rebind of
/// bindings the partner made (whose lifetimes are capped by the MCLT like any other, see
/// [`super::binding::LazyUpdates::lifetime_cap`]). In hot standby the secondary stays silent
/// in NORMAL, Rebind included: the primary answers every client, the secondary's share waits
/// for the primary to be unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Whether to answer clients at all; when false, every client message is dropped.
    pub answers_clients: bool,
    /// Where a Solicit or Request may get a new resource from.
    pub allocate_from: AllocateFrom,
    /// Whether to answer a Renew (addressed to this server) for a binding it holds.
    pub answer_renew: bool,
    /// Whether to answer a Rebind for a binding this server made.
    pub answer_rebind: bool,
    /// Whether to answer a Rebind for a binding the partner made (known from its BNDUPDs).
    pub answer_rebind_for_partner: bool,
}

impl Service {
    /// Nothing at all.
    pub const SILENT: Service = Service {
        answers_clients: false,
        allocate_from: AllocateFrom::Nothing,
        answer_renew: false,
        answer_rebind: false,
        answer_rebind_for_partner: false,
    };

    /// Every client, with new bindings from `allocate_from`.
    pub fn full(allocate_from: AllocateFrom) -> Service {
        Service {
            answers_clients: true,
            allocate_from,
            answer_renew: true,
            answer_rebind: true,
            answer_rebind_for_partner: true,
        }
    }

    /// Extending this server's own bindings only.
    pub const EXTEND_ONLY: Service = Service {
        answers_clients: true,
        allocate_from: AllocateFrom::Nothing,
        answer_renew: true,
        answer_rebind: true,
        answer_rebind_for_partner: false,
    };
}

/// What must survive a restart (RFC 8156 section 8.2: the state, when it began, and in
/// PARTNER-DOWN since when the partner is held down; the bindings themselves are in the lease
/// store). The driver writes [`Persisted::encode`] to a file, synced, before it carries out
/// anything else [`super::Failover::handle`] asked for after the [`super::Action::Persist`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persisted {
    /// The state last entered; never STARTUP (a restart in STARTUP keeps the one before).
    pub state: State,
    /// When it was entered (Unix seconds): RECOVER-WAIT counts the MCLT from RECOVER's start.
    pub since: u64,
    /// The partner's state when last heard, if ever.
    pub partner_state: Option<State>,
    /// In PARTNER-DOWN: when this server decided its partner was down. Taking over the
    /// partner's share waits until this plus the MCLT, across restarts.
    pub partner_down_time: Option<u64>,
    /// In RECOVER and RECOVER-WAIT: when RECOVER-DONE may be entered (RECOVER's start plus the
    /// MCLT), across restarts.
    pub recover_done_at: Option<u64>,
}

/// What this server can have given clients before this start, as far as it can tell: what
/// decides where it starts when it has no state file, and whether a RECOVER must wait out the
/// MCLT (RFC 8156 section 8.6: RECOVER-WAIT lets lifetimes the server may have granted, and
/// its partner may not know of, run out). See docs/failover.md, "Starting without a state
/// file".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// An empty lease store, and no state file or one in RECOVER: the server holds no binding
    /// and has served no client since it last lost them. It is either brand new or lost its
    /// storage, and cannot tell which; its partner's state can. RECOVER skips the MCLT wait
    /// only when the partner is recovering too (a new pair: neither has served anyone);
    /// a partner that has been serving means this server may have lost bindings the partner
    /// never learnt, so it waits.
    NeverServed,
    /// No state file, but leases: a server that served on its own before it was made one of
    /// a pair (seed 003's migration), or one that lost its state file but not its leases. It
    /// holds every binding it gave, so nothing is relearnt: it starts as one that lost its
    /// partner (COMMUNICATIONS-INTERRUPTED: its own share, lifetimes capped by the MCLT) and
    /// sends all its bindings once connected.
    Standalone,
    /// A state file, which says where the server stood; or a server known to have served and
    /// lost its storage: a RECOVER waits the MCLT.
    MayHaveServed,
}

impl History {
    /// What the driver knows at start: the state file's content, if there is one, and how
    /// many leases the store holds.
    pub fn at_start(persisted: Option<&Persisted>, leases: usize) -> History {
        match persisted {
            None if leases == 0 => History::NeverServed,
            None => History::Standalone,
            // RECOVER serves no client: entered empty and still empty, nothing was given out.
            Some(p) if leases == 0 && p.state == State::Recover => History::NeverServed,
            Some(_) => History::MayHaveServed,
        }
    }
}

/// The first bytes of an encoded [`Persisted`].
const MAGIC: &[u8; 4] = b"D6FO";
/// The layout's version: bump it when the layout changes. Version 2: the states' values are
/// RFC 8156's (version 1 used the DHCPv4 failover draft's).
const VERSION: u8 = 2;
/// Magic, version, state, since, partner state (0: none), then the partner-down time and
/// RECOVER-DONE time, each a presence byte and a u64.
const ENCODED_LEN: usize = 4 + 1 + 1 + 8 + 1 + 9 + 9;

/// Why bytes read back are not a [`Persisted`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistedError {
    #[error("failover state file: {0} bytes, expected {ENCODED_LEN}")]
    Length(usize),
    #[error("failover state file: not one (bad magic)")]
    Magic,
    #[error("failover state file: layout version {0}, this build reads {VERSION}")]
    Version(u8),
    #[error("failover state file: unknown state {0}")]
    State(u8),
}

impl Persisted {
    /// `state` entered at `since`, with nothing else known.
    pub fn fresh(state: State, since: u64) -> Persisted {
        Persisted { state, since, partner_state: None, partner_down_time: None, recover_done_at: None }
    }

    /// A fixed layout of 33 bytes, big-endian: b"D6FO", version 2, state (OPTION_F_SERVER_STATE
    /// value), since (u64), partner state (0 when unknown), then for the partner-down time and
    /// the RECOVER-DONE time each 1 and the time (u64), or 0 and eight zero bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.state.code().0);
        out.extend_from_slice(&self.since.to_be_bytes());
        out.push(self.partner_state.map_or(0, |s| s.code().0));
        for time in [self.partner_down_time, self.recover_done_at] {
            out.push(u8::from(time.is_some()));
            out.extend_from_slice(&time.unwrap_or(0).to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Persisted, PersistedError> {
        if bytes.len() != ENCODED_LEN {
            return Err(PersistedError::Length(bytes.len()));
        }
        if &bytes[..4] != MAGIC {
            return Err(PersistedError::Magic);
        }
        if bytes[4] != VERSION {
            return Err(PersistedError::Version(bytes[4]));
        }
        let state_of = |b: u8| State::from_code(ServerState(b)).ok_or(PersistedError::State(b));
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let state = state_of(bytes[5])?;
        let partner_state = match bytes[14] {
            0 => None,
            b => Some(state_of(b)?),
        };
        Ok(Persisted {
            state,
            since: u64_at(6),
            partner_state,
            partner_down_time: (bytes[15] != 0).then(|| u64_at(16)),
            recover_done_at: (bytes[24] != 0).then(|| u64_at(25)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_round_trip_and_names_are_the_rfcs() {
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
        }
        // RFC 8156 section 13's values, 1 to 10, each the name of one state.
        let by_value: Vec<&str> = (1..=10).map(|v| State::from_code(ServerState(v)).unwrap().name()).collect();
        assert_eq!(
            by_value,
            [
                "STARTUP",
                "NORMAL",
                "COMMUNICATIONS-INTERRUPTED",
                "PARTNER-DOWN",
                "POTENTIAL-CONFLICT",
                "RECOVER",
                "RECOVER-WAIT",
                "RECOVER-DONE",
                "RESOLUTION-INTERRUPTED",
                "CONFLICT-DONE"
            ]
        );
        assert_eq!(State::from_code(ServerState(0)), None);
        assert_eq!(State::from_code(ServerState(11)), None);
        assert_eq!(State::CommunicationsInterrupted.to_string(), "COMMUNICATIONS-INTERRUPTED");
    }

    #[test]
    fn history_at_start_follows_the_state_file_and_the_leases() {
        assert_eq!(History::at_start(None, 0), History::NeverServed);
        assert_eq!(History::at_start(None, 1), History::Standalone, "upgraded, or lost its state file alone");
        let recovering = Persisted::fresh(State::Recover, 5);
        assert_eq!(History::at_start(Some(&recovering), 0), History::NeverServed, "still empty in RECOVER");
        assert_eq!(History::at_start(Some(&recovering), 3), History::MayHaveServed, "partly relearnt");
        let normal = Persisted::fresh(State::Normal, 5);
        assert_eq!(History::at_start(Some(&normal), 0), History::MayHaveServed);
        assert_eq!(History::at_start(Some(&normal), 3), History::MayHaveServed);
    }

    #[test]
    fn persisted_round_trips_in_33_bytes() {
        let p = Persisted {
            state: State::PartnerDown,
            since: 1_700_000_000,
            partner_state: Some(State::CommunicationsInterrupted),
            partner_down_time: Some(1_700_000_100),
            recover_done_at: None,
        };
        let bytes = p.encode();
        assert_eq!(bytes.len(), 33);
        assert_eq!(&bytes[..6], b"D6FO\x02\x04");
        assert_eq!(Persisted::decode(&bytes), Ok(p));
        let none = Persisted::fresh(State::Normal, 5);
        assert_eq!(Persisted::decode(&none.encode()), Ok(none));
        let waiting = Persisted { recover_done_at: Some(9), ..Persisted::fresh(State::RecoverWait, 5) };
        assert_eq!(Persisted::decode(&waiting.encode()), Ok(waiting));
    }

    #[test]
    fn persisted_rejects_damaged_bytes() {
        let good = Persisted::fresh(State::Normal, 5).encode();
        assert_eq!(Persisted::decode(&good[..10]), Err(PersistedError::Length(10)));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Persisted::decode(&bad), Err(PersistedError::Magic));
        let mut bad = good.clone();
        bad[4] = 1;
        assert_eq!(Persisted::decode(&bad), Err(PersistedError::Version(1)), "the old numbering");
        let mut bad = good;
        bad[5] = 99;
        assert_eq!(Persisted::decode(&bad), Err(PersistedError::State(99)));
    }
}
