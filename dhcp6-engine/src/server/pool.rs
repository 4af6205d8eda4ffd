//! Address and prefix pools: the space a subnet hands out, walked by a cyclic ascending
//! search (the fourth choice of the allocation order) that skips whatever is taken.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::config::{PdPool, Subnet};

/// A set of resources of one size: addresses (/128, step 1) or delegated prefixes (/d, step
/// 2^(128-d)), in ascending disjoint ranges.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Inclusive (low, high) bounds of each range, aligned to `step`.
    ranges: Vec<(u128, u128)>,
    prefix_len: u8,
    /// Where the next search starts.
    cursor: u128,
    /// A locked pool gives nothing new: [`Pool::next_free`] finds nothing in it.
    locked: bool,
}

impl Pool {
    /// The addresses of a subnet's ranges.
    pub fn addresses(subnet: &Subnet) -> Pool {
        let mut ranges: Vec<(u128, u128)> = subnet.ranges.iter().map(|r| (r.low, r.high)).collect();
        ranges.sort_unstable();
        Pool::new(ranges, 128).locked(subnet.locked)
    }

    /// The delegated prefixes of a PD pool.
    pub fn prefixes(pool: &PdPool) -> Pool {
        let mut ranges: Vec<(u128, u128)> = pool
            .ranges
            .iter()
            .map(|r| {
                let low = u128::from(r.network());
                let high = u128::from(r.broadcast());
                // The last delegated prefix of the range starts one step below its end.
                (low, high - (step_of(pool.delegated_length) - 1))
            })
            .collect();
        ranges.sort_unstable();
        Pool::new(ranges, pool.delegated_length).locked(pool.locked)
    }

    fn new(ranges: Vec<(u128, u128)>, prefix_len: u8) -> Pool {
        let cursor = ranges.first().map_or(0, |r| r.0);
        Pool { ranges, prefix_len, cursor, locked: false }
    }

    fn locked(self, locked: bool) -> Pool {
        Pool { locked, ..self }
    }

    /// Whether the pool is locked: it gives nothing to new clients.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Continues the search where `old` left it, when `old` is the same space (the pool of an
    /// earlier configuration): a reload does not send the search back to the start of a
    /// full pool.
    pub fn keep_cursor(&mut self, old: &Pool) {
        if old.ranges == self.ranges && old.prefix_len == self.prefix_len {
            self.cursor = old.cursor;
        }
    }

    /// Starts the search at the `seed`th resource (modulo the pool's size) instead of the
    /// first: servers sharing a lease database each start elsewhere, so that they seldom race
    /// for the same free address.
    pub fn start_at(&mut self, seed: u128) {
        let step = self.step();
        let mut index = match self.size() {
            0 => return,
            size => seed % size,
        };
        for (lo, hi) in &self.ranges {
            let n = (hi - lo) / step + 1;
            if index < n {
                self.cursor = lo + index * step;
                return;
            }
            index -= n;
        }
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn step(&self) -> u128 {
        step_of(self.prefix_len)
    }

    fn resource(&self, v: u128) -> Ipv6Net {
        // prefix_len comes from a checked configuration (0..=128).
        Ipv6Net::new(Ipv6Addr::from(v), self.prefix_len).expect("prefix length is at most 128")
    }

    /// Whether `resource` is one this pool hands out.
    pub fn contains(&self, resource: &Ipv6Net) -> bool {
        let v = u128::from(resource.addr());
        resource.prefix_len() == self.prefix_len
            && resource.addr() == resource.network()
            && self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&v) && (v - lo) % self.step() == 0)
    }

    /// How many resources the pool holds (saturating at u128::MAX).
    pub fn size(&self) -> u128 {
        self.ranges.iter().fold(0u128, |n, (lo, hi)| n.saturating_add((hi - lo) / self.step() + 1))
    }

    /// The next resource at or after the cursor, cycling, for which `taken` is false. Gives
    /// up after `max_probes` taken resources in a row (the caller passes how many are taken,
    /// plus one, so that a full pool is detected without walking all of it).
    /// A locked pool has none.
    pub fn next_free(&mut self, max_probes: u128, mut taken: impl FnMut(&Ipv6Net) -> bool) -> Option<Ipv6Net> {
        if self.ranges.is_empty() || self.locked {
            return None;
        }
        let step = self.step();
        let mut v = self.cursor;
        let limit = max_probes.min(self.size());
        let mut probes = 0u128;
        while probes < limit {
            v = self.normalize(v);
            let r = self.resource(v);
            probes += 1;
            if !taken(&r) {
                self.cursor = v.wrapping_add(step);
                return Some(r);
            }
            v = v.wrapping_add(step);
        }
        None
    }

    /// The pool cut in two by count, range by range: each range's first half (rounded up) and
    /// its second half. Failover partners that allocate independently (RFC 8156 section
    /// 4.2.1) each own one of them.
    pub fn halves(&self) -> (Pool, Pool) {
        let step = self.step();
        let (mut lower, mut upper) = (Vec::new(), Vec::new());
        for &(lo, hi) in &self.ranges {
            let count = ((hi - lo) / step).saturating_add(1);
            let first = count - count / 2;
            lower.push((lo, lo + (first - 1) * step));
            if first < count {
                upper.push((lo + first * step, hi));
            }
        }
        (Pool::new(lower, self.prefix_len).locked(self.locked), Pool::new(upper, self.prefix_len).locked(self.locked))
    }

    /// `v` if it lies in a range, else the start of the next range, wrapping to the first.
    fn normalize(&self, v: u128) -> u128 {
        for (lo, hi) in &self.ranges {
            if v <= *hi {
                return if v < *lo { *lo } else { v };
            }
        }
        self.ranges[0].0
    }
}

fn step_of(prefix_len: u8) -> u128 {
    if prefix_len == 0 {
        u128::MAX
    } else {
        1u128 << (128 - u32::from(prefix_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn cyclic_ascending_search_skips_taken_and_wraps() {
        let mut p = Pool::new(vec![(10, 12), (20, 21)], 128);
        let mut taken: HashSet<Ipv6Net> = HashSet::new();
        let mut got = Vec::new();
        for _ in 0..5 {
            let r = p.next_free(100, |r| taken.contains(r)).unwrap();
            taken.insert(r);
            got.push(u128::from(r.network()));
        }
        assert_eq!(got, vec![10, 11, 12, 20, 21]);
        assert_eq!(p.next_free(100, |r| taken.contains(r)), None);
        taken.remove(&net("::b/128"));
        // The cursor is past 21: the search wraps to the freed 11.
        assert_eq!(p.next_free(100, |r| taken.contains(r)), Some(net("::b/128")));
    }

    #[test]
    fn prefixes_step_by_delegated_length() {
        let pool = PdPool {
            name: "pd".into(),
            locked: false,
            prefix: net("2001:db8:8000::/40"),
            delegated_length: 56,
            ranges: vec![net("2001:db8:8000::/40")],
            excluded_prefix: None,
        };
        let mut p = Pool::prefixes(&pool);
        assert_eq!(p.size(), 1 << 16);
        let a = p.next_free(10, |_| false).unwrap();
        let b = p.next_free(10, |_| false).unwrap();
        assert_eq!((a, b), (net("2001:db8:8000::/56"), net("2001:db8:8000:100::/56")));
        assert!(p.contains(&net("2001:db8:80ff:ff00::/56")));
        assert!(!p.contains(&net("2001:db8:8000:80::/56")));
        assert!(!p.contains(&net("2001:db8:8000::/60")));
    }

    #[test]
    fn halves_split_each_range_by_count_and_cover_it_once() {
        let p = Pool::new(vec![(10, 14), (20, 20), (30, 31)], 128);
        let (lower, upper) = p.halves();
        let all = |p: &Pool| {
            let mut q = p.clone();
            (0..q.size()).map(|_| u128::from(q.next_free(100, |_| false).unwrap().network())).collect::<Vec<_>>()
        };
        assert_eq!(all(&lower), vec![10, 11, 12, 20, 30]);
        assert_eq!(all(&upper), vec![13, 14, 31]);
        assert_eq!(lower.size() + upper.size(), p.size());
        // Prefixes split on their step.
        let pool = PdPool {
            name: "pd".into(),
            locked: false,
            prefix: net("2001:db8:8000::/40"),
            delegated_length: 48,
            ranges: vec![net("2001:db8:8000::/40")],
            excluded_prefix: None,
        };
        let (lower, upper) = Pool::prefixes(&pool).halves();
        assert!(lower.contains(&net("2001:db8:807f::/48")) && !lower.contains(&net("2001:db8:8080::/48")));
        assert!(upper.contains(&net("2001:db8:8080::/48")) && upper.contains(&net("2001:db8:80ff::/48")));
        // A huge range halves without walking it.
        let (lower, upper) = Pool::new(vec![(0, u128::MAX - 2)], 128).halves();
        assert_eq!(lower.size(), upper.size());
    }

    #[test]
    fn a_search_started_elsewhere_stays_in_the_pool_and_wraps() {
        let mut p = Pool::new(vec![(10, 12), (20, 21)], 128);
        p.start_at(4);
        assert_eq!(p.next_free(10, |_| false), Some(p.resource(21)));
        assert_eq!(p.next_free(10, |_| false), Some(p.resource(10)));
        p.start_at(5 + 3);
        assert_eq!(p.next_free(10, |_| false), Some(p.resource(20)));
    }

    #[test]
    fn a_locked_pool_gives_nothing_and_keeps_its_cursor_for_the_same_space() {
        let mut p = Pool::new(vec![(10, 12)], 128);
        assert_eq!(p.next_free(10, |_| false), Some(net("::a/128")));
        let mut locked = p.clone().locked(true);
        assert!(locked.is_locked() && locked.contains(&net("::b/128")), "a locked pool still holds its leases");
        assert_eq!(locked.next_free(10, |_| false), None);
        let (lower, upper) = locked.halves();
        assert!(lower.is_locked() && upper.is_locked(), "both halves of a locked pool are locked");
        let mut again = Pool::new(vec![(10, 12)], 128);
        again.keep_cursor(&p);
        assert_eq!(again.next_free(10, |_| false), Some(net("::b/128")), "the search goes on where it was");
        let mut other = Pool::new(vec![(10, 13)], 128);
        other.keep_cursor(&p);
        assert_eq!(other.next_free(10, |_| false), Some(net("::a/128")), "another space starts at its start");
    }

    #[test]
    fn a_huge_range_is_searched_without_walking_it() {
        let mut p = Pool::new(vec![(0, u128::MAX >> 1)], 128);
        assert_eq!(p.next_free(3, |_| true), None);
        assert!(p.next_free(3, |_| false).is_some());
    }
}
