//! Server groups (seed 000: redundancy and load balancing among remote servers): a client
//! sticks to one server by a hash of its DUID; a server that leaves several messages in a row
//! unanswered is marked down, its clients go to the next server, and it is tried again later.

use std::collections::VecDeque;

use super::ServerGroup;

/// One server's health and counters.
#[derive(Debug, Clone, Default)]
pub struct ServerState {
    pub sent: u64,
    pub answered: u64,
    pub timed_out: u64,
    /// Unix seconds until which the server is down (0: up).
    down_until: u64,
    /// Send times of the messages since its last answer.
    outstanding: VecDeque<u64>,
}

impl ServerState {
    pub fn is_down(&self, now: u64) -> bool {
        self.down_until > now
    }
}

/// The servers of one group.
#[derive(Debug, Clone)]
pub struct GroupState {
    pub servers: Vec<ServerState>,
}

/// FNV-1a: a stable hash, so that a client keeps its server across restarts.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl GroupState {
    pub fn new(servers: usize) -> GroupState {
        GroupState { servers: vec![ServerState::default(); servers] }
    }

    /// The server for client `duid`: its own by hash, or the next one up.
    pub fn pick(&self, duid: &[u8], _group: &ServerGroup, now: u64) -> Option<usize> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        let start = (fnv1a(duid) % n as u64) as usize;
        (0..n).map(|i| (start + i) % n).find(|&i| !self.servers[i].is_down(now))
    }

    pub fn sent(&mut self, server: usize, now: u64) {
        let s = &mut self.servers[server];
        s.sent += 1;
        // Bounded: past a few more than any threshold, older sends add nothing.
        if s.outstanding.len() < 1024 {
            s.outstanding.push_back(now);
        }
    }

    /// Any answer shows the server is up.
    pub fn answered(&mut self, server: usize) {
        let s = &mut self.servers[server];
        s.answered += 1;
        s.outstanding.clear();
        s.down_until = 0;
    }

    /// Marks down the servers with `dead_after` messages in a row unanswered past the timeout.
    pub fn check_timeouts(&mut self, group: &ServerGroup, now: u64) {
        for s in &mut self.servers {
            let late = s.outstanding.iter().filter(|t| now.saturating_sub(**t) >= group.answer_timeout).count();
            if late as u64 >= u64::from(group.dead_after.max(1)) {
                s.timed_out += late as u64;
                s.outstanding.clear();
                s.down_until = now + group.retry_after;
            }
        }
    }
}
