//! Server groups (redundancy and load balancing among remote servers): a client
//! sticks to one server by a hash of its DUID; a server that leaves several messages in a row
//! unanswered is marked down, its clients go to the next server, and it is tried again later.
//!
//! Clients are hashed to one of [`RELAY_BUCKETS`] buckets by their DUID, and each bucket goes
//! to a server by weighted rendezvous hashing: each (bucket, server) pair gets a score from
//! the hash and the server's weight, and the bucket goes to the best-scoring server that is
//! up. So servers get clients in proportion to their weights, and when one goes down only
//! its own clients move (each bucket to its second choice), spread over the others by weight.
//! The buckets are what the XDP relay reads ([`GroupState::buckets`]): it reaches the same
//! server for a client as userspace does.
//!
//! A group that sends every message to all its servers ([`super::SendTo::All`]) picks none:
//! it keeps only each server's health and counters here.

use std::collections::VecDeque;

use dhcp6_common::relay::{bucket, RELAY_BUCKETS};

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

/// The rendezvous score of server `index` (of weight `weight`) for bucket `bucket`:
/// weight / -ln(u), with u uniform in (0, 1) from the pair's hash.
fn score(bucket: usize, index: usize, weight: u32) -> f64 {
    // splitmix64's finaliser spreads the pair's bits over the whole word.
    let client = (bucket as u64).wrapping_mul(0xd6e8_feb8_6659_fd93);
    let mut x = client ^ (index as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

impl GroupState {
    pub fn new(servers: usize) -> GroupState {
        GroupState { servers: vec![ServerState::default(); servers] }
    }

    /// Every server taken for up again, with nothing outstanding (counters kept): what a relay
    /// that starts relaying after a standby switchover knows of its servers, since while it
    /// did not relay it learnt nothing of them and what it knew before is stale.
    pub fn revive(&mut self) {
        for s in &mut self.servers {
            s.down_until = 0;
            s.outstanding.clear();
        }
    }

    /// The server for client `duid`: its bucket's.
    pub fn pick(&self, duid: &[u8], group: &ServerGroup, now: u64) -> Option<usize> {
        self.pick_bucket(bucket(duid), group, now)
    }

    /// The server of every bucket ([`dhcp6_common::relay::NO_SERVER`] where none is up), as
    /// the XDP relay reads them.
    pub fn buckets(&self, group: &ServerGroup, now: u64) -> Vec<u8> {
        (0..RELAY_BUCKETS)
            .map(|b| {
                self.pick_bucket(b, group, now).map_or(dhcp6_common::relay::NO_SERVER, |s| {
                    u8::try_from(s).unwrap_or(dhcp6_common::relay::NO_SERVER)
                })
            })
            .collect()
    }

    /// The server for a bucket: the best-scoring weighted server that is up, else the
    /// best-scoring backup (weight 0) that is up.
    fn pick_bucket(&self, client: usize, group: &ServerGroup, now: u64) -> Option<usize> {
        let best = |backups: bool| {
            group
                .servers
                .iter()
                .enumerate()
                .filter(|(i, m)| (m.weight == 0) == backups && !self.servers[*i].is_down(now))
                .map(|(i, m)| (i, score(client, i, m.weight.max(1))))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        };
        best(false).or_else(|| best(true))
    }

    pub fn sent(&mut self, server: usize, now: u64) {
        self.sent_many(server, 1, now);
    }

    /// `count` messages sent to `server` at `now` (the XDP relay's, counted since last read).
    pub fn sent_many(&mut self, server: usize, count: u64, now: u64) {
        let s = &mut self.servers[server];
        s.sent += count;
        // Bounded: past a few more than any threshold, older sends add nothing.
        for _ in 0..count.min(1024) {
            if s.outstanding.len() >= 1024 {
                break;
            }
            s.outstanding.push_back(now);
        }
    }

    /// Any answer shows the server is up.
    pub fn answered(&mut self, server: usize) {
        self.answered_many(server, 1);
    }

    /// `count` answers from `server` (the XDP relay's, counted since last read).
    pub fn answered_many(&mut self, server: usize, count: u64) {
        if count == 0 {
            return;
        }
        let s = &mut self.servers[server];
        s.answered += count;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::GroupMember;

    fn group(weights: &[u32]) -> ServerGroup {
        ServerGroup {
            name: "g".into(),
            servers: weights
                .iter()
                .enumerate()
                .map(|(i, w)| GroupMember { address: format!("2001:db8:ff::{}", i + 1).parse().unwrap(), weight: *w })
                .collect(),
            send_to: crate::relay::SendTo::One,
            dead_after: 1,
            answer_timeout: 1,
            retry_after: 60,
        }
    }

    fn duid(n: u32) -> Vec<u8> {
        let mut d = vec![0, 3, 0, 1];
        d.extend_from_slice(&n.to_be_bytes());
        d
    }

    /// How many of `clients` clients each server gets.
    fn shares(state: &GroupState, g: &ServerGroup, clients: u32) -> Vec<u32> {
        let mut counts = vec![0; g.servers.len()];
        for n in 0..clients {
            counts[state.pick(&duid(n), g, 0).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn clients_spread_in_proportion_to_weights() {
        let g = group(&[3, 1, 1]);
        let counts = shares(&GroupState::new(3), &g, 50_000);
        // Expected 30,000 / 10,000 / 10,000; allow 3% of the total either way.
        for (count, expected) in counts.iter().zip([30_000, 10_000, 10_000]) {
            assert!((*count as i64 - expected).abs() < 1500, "{counts:?}");
        }
        let equal = shares(&GroupState::new(2), &group(&[1, 1]), 50_000);
        assert!((equal[0] as i64 - 25_000).abs() < 1000, "{equal:?}");
    }

    #[test]
    fn a_server_going_down_moves_only_its_own_clients() {
        let g = group(&[2, 1, 1]);
        let mut state = GroupState::new(3);
        let before: Vec<usize> = (0..10_000).map(|n| state.pick(&duid(n), &g, 0).unwrap()).collect();
        state.sent(0, 0);
        state.check_timeouts(&g, 5);
        assert!(state.servers[0].is_down(5));
        let mut moved = [0u32; 3];
        for (n, was) in before.iter().enumerate() {
            let now = state.pick(&duid(n as u32), &g, 5).unwrap();
            if *was == 0 {
                assert_ne!(now, 0);
                moved[now] += 1;
            } else {
                assert_eq!(now, *was, "client {n} of a healthy server moved");
            }
        }
        // Server 0's clients went to both of the others, about equally (their weights are equal).
        assert!(moved[1] > 1500 && moved[2] > 1500, "{moved:?}");
        // The same clients go back when it answers again.
        state.answered(0);
        assert!((0..10_000).all(|n| state.pick(&duid(n), &g, 6) == Some(before[n as usize])));
    }

    #[test]
    fn the_buckets_xdp_reads_send_each_client_where_userspace_does() {
        let g = group(&[2, 1, 1]);
        let mut state = GroupState::new(3);
        for down in [false, true] {
            if down {
                state.sent(1, 0);
                state.check_timeouts(&g, 5);
            }
            let buckets = state.buckets(&g, 5);
            assert_eq!(buckets.len(), RELAY_BUCKETS);
            for n in 0..5_000 {
                let d = duid(n);
                assert_eq!(Some(usize::from(buckets[bucket(&d)])), state.pick(&d, &g, 5));
            }
            assert_eq!(buckets.contains(&1), !down, "a server marked down has no bucket");
        }
        // XDP's counts move the state as userspace's own do.
        state.answered_many(1, 3);
        assert!(!state.servers[1].is_down(5));
        state.sent_many(2, 4, 10);
        state.check_timeouts(&g, 20);
        assert!(state.servers[2].is_down(20));
        assert_eq!(state.servers[2].sent, 4);
    }

    #[test]
    fn a_backup_server_serves_only_while_every_weighted_server_is_down() {
        let g = group(&[1, 0]);
        let mut state = GroupState::new(2);
        assert_eq!(shares(&state, &g, 1000), vec![1000, 0]);
        state.sent(0, 0);
        state.check_timeouts(&g, 5);
        assert!((0..1000).all(|n| state.pick(&duid(n), &g, 5) == Some(1)));
        state.sent(1, 5);
        state.check_timeouts(&g, 10);
        assert_eq!(state.pick(&duid(1), &g, 10), None, "no server up");
    }
}
