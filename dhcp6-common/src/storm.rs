//! Per-client storm protection: a token bucket per client in XDP, so that one broken client
//! that sends thousands of messages a second has its excess cut before it costs the others
//! their share of the server.
//!
//! A client is known by its source MAC on the interface its messages come in on (on-link
//! clients of the server, and clients on the relay's access links), or, in a Relay-Forward,
//! whose source MAC is the relay's, by a hash of its DUID ([`StormKey`]). Each has a
//! [`StormBucket`]: it fills at [`StormConfig::rate`] messages a second up to its burst, and
//! each message takes one message's worth of tokens or is cut. The arithmetic lives here,
//! once, for the XDP program and the tests alike.
//!
//! The buckets are kept in an array of [`StormSet`]s, each two buckets (one cache line), the
//! set chosen by a hash of the key: an LRU cache two ways deep, whose least recently counted
//! bucket gives way to a new client. An array lookup is an address computation the verifier
//! inlines; an LRU hash map's lookup (hashing the key, walking a bucket list, marking the
//! entry used) cost about 90 ns a frame on a 2-core EPYC VM, three times the target, and
//! this costs a few. The price is that two clients can only share a set with one other
//! client: a storming client whose set a third client comes through loses its bucket to the
//! one not counted last and gets a full bucket back when it returns (at most a burst more
//! per such eviction, which needs three active clients in one of 32,768 sets).
//!
//! ```
//! use dhcp6_common::storm::{StormBucket, StormConfig};
//!
//! // 10 messages a second, bursts of 3.
//! let config = StormConfig::new(10, 3);
//! let mut bucket = StormBucket::full(0, &config);
//! let at = |ns: u64| move || ns;
//! assert!(bucket.take(at(0), &config) && bucket.take(at(0), &config) && bucket.take(at(0), &config));
//! assert!(!bucket.take(at(0), &config), "the burst is spent");
//! assert!(bucket.take(at(100_000_000), &config), "a tenth of a second later, one more");
//! ```

/// Nanoseconds in a second: tokens are counted in messages times 10^9, so that a bucket fills
/// by `rate` per nanosecond without a division.
pub const NS_PER_SECOND: u64 = 1_000_000_000;

/// One message's worth of tokens.
pub const TOKEN: u64 = NS_PER_SECOND;

/// Most messages a second a client may be given (and most burst): beyond this the limit
/// would not protect anything, and the arithmetic stays far from overflowing.
pub const STORM_MAX: u32 = 1_000_000;

/// Sets of buckets XDP keeps ([`StormSet`]): room for 65,536 clients, two per set.
pub const STORM_SETS: u32 = 1 << STORM_SET_BITS;
/// log2 of [`STORM_SETS`].
pub const STORM_SET_BITS: u32 = 15;
/// Buckets per set.
pub const STORM_WAYS: usize = 2;

/// Clients cut recently that XDP keeps a record of, for `dhcp6d show storms`.
pub const STORM_RECORDS: u32 = 1024;

/// Bytes of a client's identity a [`StormRecord`] holds: a MAC, or the start of a DUID
/// (every DUID-LL and DUID-LLT, and a DUID-UUID, whole).
pub const STORM_ID_BYTES: usize = 24;

/// [`StormKey::kind`] of a client known by its source MAC on an interface.
pub const KEY_MAC: u32 = 1;
/// [`StormKey::kind`] of a client known by its DUID inside a Relay-Forward.
pub const KEY_DUID: u32 = 2;

/// Slots of the per-CPU cut counters (`STORM_CUT`): messages cut by MAC, and by DUID.
pub const STORM_CUT_SLOTS: u32 = 2;
/// Where `STORM_CUT` counts messages cut of clients known by their MAC.
pub const CUT_BY_MAC: u32 = 0;
/// Where `STORM_CUT` counts messages cut of clients known by their DUID (Relay-Forwards).
pub const CUT_BY_DUID: u32 = 1;

/// The limit, in `STORM_CONFIG` (one entry), written by dhcp6d at start. A rate of 0: off,
/// and XDP looks at nothing else.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormConfig {
    /// Messages a second a client's bucket fills by (0: storm protection off).
    pub rate: u64,
    /// The bucket's size, in tokens: the burst times [`TOKEN`].
    pub capacity: u64,
    /// How long an empty bucket takes to fill, nanoseconds: past that, a bucket is full
    /// whatever it held, and `elapsed * rate` is never computed past `capacity`.
    pub fill_ns: u64,
}

impl StormConfig {
    /// `rate` messages a second, in bursts of up to `burst` (both at most [`STORM_MAX`], the
    /// burst at least 1; the configuration checks them).
    pub const fn new(rate: u32, burst: u32) -> StormConfig {
        let rate = if rate > STORM_MAX { STORM_MAX } else { rate } as u64;
        let burst = if burst > STORM_MAX {
            STORM_MAX
        } else if burst == 0 {
            1
        } else {
            burst
        } as u64;
        let capacity = burst * TOKEN;
        StormConfig {
            rate,
            capacity,
            fill_ns: match capacity.checked_div(rate) {
                Some(ns) => ns,
                None => 0,
            },
        }
    }

    /// Storm protection off.
    pub const OFF: StormConfig = StormConfig { rate: 0, capacity: 0, fill_ns: 0 };

    pub const fn is_on(&self) -> bool {
        self.rate != 0
    }
}

/// Whom a bucket is for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StormKey {
    /// The interface the client's messages come in on ([`KEY_MAC`]); 0 for a DUID, which
    /// names the client whichever relay its messages come through.
    pub ifindex: u32,
    /// [`KEY_MAC`] or [`KEY_DUID`].
    pub kind: u32,
    /// The MAC (its six bytes, big-endian, in the low 48 bits), or the DUID's FNV-1a hash
    /// ([`crate::relay::fnv1a_step`]).
    pub id: u64,
}

impl StormKey {
    /// The key of a client known by `mac` on interface `ifindex`.
    pub const fn mac(ifindex: u32, mac: [u8; 6]) -> StormKey {
        let mut id = 0u64;
        let mut i = 0;
        while i < 6 {
            id = (id << 8) | mac[i] as u64;
            i += 1;
        }
        StormKey { ifindex, kind: KEY_MAC, id }
    }

    /// The key of a client known by a DUID that hashed to `hash`.
    pub const fn duid(hash: u64) -> StormKey {
        StormKey { ifindex: 0, kind: KEY_DUID, id: hash }
    }

    /// The set its bucket is kept in: a multiplicative hash (Fibonacci hashing) of the key's
    /// fields, its top bits.
    #[inline(always)]
    pub const fn set(&self) -> u32 {
        let mixed = self.id ^ ((self.ifindex as u64) << 32 | self.kind as u64).rotate_left(48);
        (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - STORM_SET_BITS)) as u32
    }
}

/// A client's token bucket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormBucket {
    /// Tokens held, in [`TOKEN`]s per message.
    pub tokens: u64,
    /// When the tokens were last counted, CLOCK_MONOTONIC nanoseconds.
    pub stamp: u64,
}

impl StormBucket {
    /// The bucket of a client first seen at `now`: full, so that a new client is never cut.
    pub const fn full(now: u64, config: &StormConfig) -> StormBucket {
        StormBucket { tokens: config.capacity, stamp: now }
    }

    /// Counts a message: takes a message's worth of tokens if the bucket holds it; if not,
    /// reads the clock (`clock`), fills the bucket for the time since it was last filled, and
    /// takes from that. Returns whether the message passes (false: it is cut, and takes
    /// nothing). A clock that went back (another CPU's earlier reading) adds nothing.
    ///
    /// The clock is read only when the bucket runs dry: reading it was most of what the bucket
    /// cost a frame (about 35 ns of 50 on a 2-core EPYC VM, even the coarse clock), and a
    /// client within its burst never needs it. Filling late only ever gives a client more
    /// than filling at each message would, never less; what it can give more is bounded: a
    /// client quiet for a while can send its burst, then, as the bucket it finds empty is
    /// filled for the quiet time, up to a second burst (two bursts at once, at most, then its
    /// rate).
    #[inline(always)]
    pub fn take(&mut self, clock: impl FnOnce() -> u64, config: &StormConfig) -> bool {
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            return true;
        }
        let now = clock();
        let elapsed = now.saturating_sub(self.stamp);
        let tokens = if elapsed >= config.fill_ns {
            config.capacity
        } else {
            let filled = self.tokens + elapsed * config.rate;
            if filled > config.capacity {
                config.capacity
            } else {
                filled
            }
        };
        if now > self.stamp {
            self.stamp = now;
        }
        if tokens < TOKEN {
            self.tokens = tokens;
            return false;
        }
        self.tokens = tokens - TOKEN;
        true
    }
}

/// A bucket with the key of the client it is for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormSlot {
    pub key: StormKey,
    pub bucket: StormBucket,
}

/// The buckets of the clients whose keys hash to one set ([`StormKey::set`]), in the
/// `STORM_BUCKETS` array. A slot whose key is all zeros is free (no client has kind 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormSet {
    pub slots: [StormSlot; STORM_WAYS],
}

impl StormSet {
    /// Counts a message of `key` ([`StormBucket::take`], `clock` read only if needed); whether
    /// it passes. A client not in the set takes the slot filled least recently, with a full
    /// bucket: a quiet client's (filled when it came), before a storming one's (filled each
    /// time it runs dry). Two CPUs counting in one set at once may tear a slot between them,
    /// which at worst gives one client a wrong count for a moment.
    #[inline(always)]
    pub fn take(&mut self, key: &StormKey, clock: impl FnOnce() -> u64, config: &StormConfig) -> bool {
        let mut oldest = 0;
        let mut i = 0;
        while i < STORM_WAYS {
            let slot = &mut self.slots[i];
            if slot.key.id == key.id && slot.key.ifindex == key.ifindex && slot.key.kind == key.kind {
                return slot.bucket.take(clock, config);
            }
            if slot.bucket.stamp < self.slots[oldest].bucket.stamp {
                oldest = i;
            }
            i += 1;
        }
        let slot = &mut self.slots[oldest];
        slot.key = *key;
        slot.bucket = StormBucket::full(clock(), config);
        slot.bucket.take(|| 0, config)
    }
}

/// What XDP keeps of a client it cut (in the `STORMS` LRU hash, by [`StormKey`]), for
/// `dhcp6d show storms`: userspace lists the records whose last cut is recent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StormRecord {
    /// Messages cut since the record was made.
    pub cut: u64,
    /// When the first and the last of them were cut, CLOCK_MONOTONIC nanoseconds.
    pub first_cut: u64,
    pub last_cut: u64,
    /// The client's MAC, or the start of its DUID; `id_len` bytes of it.
    pub id: [u8; STORM_ID_BYTES],
    /// The DUID's whole length (more than [`STORM_ID_BYTES`]: cut short), or 6 for a MAC.
    pub id_len: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<StormConfig>() == 24);
const _: () = assert!(core::mem::size_of::<StormKey>() == 16);
const _: () = assert!(core::mem::size_of::<StormBucket>() == 16);
const _: () = assert!(core::mem::size_of::<StormSet>() == 64);
const _: () = assert!(core::mem::size_of::<StormRecord>() == 56);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data of integers, no padding (sizes asserted above): any bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::StormConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StormKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StormBucket {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StormSet {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StormRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Messages out of `sent`, one every `gap` nanoseconds from `start`, that pass.
    fn passed(bucket: &mut StormBucket, config: &StormConfig, start: u64, gap: u64, sent: u64) -> u64 {
        (0..sent).filter(|i| bucket.take(|| start + i * gap, config)).count() as u64
    }

    #[test]
    fn a_new_client_has_its_burst_then_the_rate() {
        let config = StormConfig::new(20, 50);
        let mut bucket = StormBucket::full(0, &config);
        assert_eq!(passed(&mut bucket, &config, 0, 0, 100), 50, "the burst at once");
        // 50,000 a second for one second: the rate (20 in that second) passes, the rest is cut.
        let through = passed(&mut bucket, &config, 0, 20_000, 50_000);
        assert!((19..=20).contains(&through), "{through} passed");
    }

    #[test]
    fn a_client_at_its_rate_is_never_cut() {
        let config = StormConfig::new(20, 5);
        let mut bucket = StormBucket::full(0, &config);
        // One every 50 ms (20 a second) for a minute.
        assert_eq!(passed(&mut bucket, &config, 0, 50 * MS, 1200), 1200);
        // And just above it (one every 49 ms) is cut, once the burst is spent.
        let mut bucket = StormBucket::full(0, &config);
        assert!(passed(&mut bucket, &config, 0, 49 * MS, 1200) < 1200);
    }

    #[test]
    fn a_bucket_fills_no_further_than_its_burst() {
        let config = StormConfig::new(10, 3);
        let mut bucket = StormBucket::full(0, &config);
        assert_eq!(passed(&mut bucket, &config, 0, 0, 5), 3);
        // An hour of silence, then a burst: still 3.
        assert_eq!(passed(&mut bucket, &config, 3_600 * NS_PER_SECOND, 0, 5), 3);
        // Half the fill time: one and a half messages, one passes.
        let later = 3_600 * NS_PER_SECOND + 150 * MS;
        assert_eq!(passed(&mut bucket, &config, later, 0, 3), 1);
    }

    #[test]
    fn the_clock_is_read_only_when_the_bucket_runs_dry() {
        let config = StormConfig::new(10, 5);
        let mut bucket = StormBucket::full(0, &config);
        let mut reads = 0;
        for _ in 0..5 {
            assert!(bucket.take(
                || {
                    reads += 1;
                    0
                },
                &config
            ));
        }
        assert_eq!(reads, 0, "a client within its burst costs no clock read");
        assert!(!bucket.take(
            || {
                reads += 1;
                0
            },
            &config
        ));
        assert_eq!(reads, 1);
    }

    #[test]
    fn a_quiet_client_gets_at_most_two_bursts_at_once_then_its_rate() {
        let config = StormConfig::new(10, 5);
        let mut bucket = StormBucket::full(0, &config);
        // An hour quiet, then a thousand messages in a second.
        let hour = 3_600 * NS_PER_SECOND;
        let through = passed(&mut bucket, &config, hour, MS, 1000);
        assert!(through <= 2 * 5 + 10, "{through} passed");
        // The next second, the rate.
        let next = passed(&mut bucket, &config, hour + NS_PER_SECOND, MS, 1000);
        assert!((9..=11).contains(&next), "{next} passed");
    }

    #[test]
    fn a_stamp_from_the_future_adds_nothing() {
        let config = StormConfig::new(10, 1);
        let mut bucket = StormBucket::full(10 * NS_PER_SECOND, &config);
        assert!(bucket.take(|| 10 * NS_PER_SECOND, &config));
        // Another CPU's earlier clock reading: nothing filled, and the stamp stays.
        assert!(!bucket.take(|| 9 * NS_PER_SECOND, &config));
        assert_eq!(bucket.stamp, 10 * NS_PER_SECOND);
    }

    #[test]
    fn the_largest_limits_do_not_overflow() {
        let config = StormConfig::new(u32::MAX, u32::MAX);
        assert_eq!(config.rate, u64::from(STORM_MAX));
        let mut bucket = StormBucket::full(0, &config);
        assert!(bucket.take(|| u64::MAX, &config));
        assert_eq!(StormConfig::new(5, 0).capacity, TOKEN, "a burst of at least one");
        assert!(!StormConfig::OFF.is_on() && StormConfig::new(1, 1).is_on());
    }

    #[test]
    fn a_set_keeps_two_clients_and_gives_the_least_recent_slot_to_a_third() {
        let config = StormConfig::new(1, 2);
        let (a, b, c) = (StormKey::mac(1, [2, 0, 0, 0, 0, 1]), StormKey::mac(1, [2, 0, 0, 0, 0, 2]), StormKey::duid(9));
        let mut set = StormSet::default();
        let at = |ns: u64| move || ns;
        // a spends its burst; b comes and goes; a is still cut, its bucket kept (and filled
        // last at 30, when it ran dry).
        assert!(set.take(&a, at(10), &config) && set.take(&a, at(10), &config));
        assert!(set.take(&b, at(20), &config));
        assert!(!set.take(&a, at(30), &config), "a's bucket was kept beside b's");
        // c takes the slot filled least recently: b's (20), not a's (30).
        assert!(set.take(&c, at(40), &config));
        assert!(!set.take(&a, at(50), &config), "a's bucket survived c");
        assert!(set.slots.iter().any(|s| s.key == c) && set.slots.iter().all(|s| s.key != b));
    }

    #[test]
    fn keys_spread_over_the_sets() {
        let mut seen = [0u32; STORM_SETS as usize];
        for n in 0..65_536u32 {
            let b = n.to_be_bytes();
            seen[StormKey::mac(3, [2, 0, b[0], b[1], b[2], b[3]]).set() as usize] += 1;
        }
        // 65,536 MACs in a row into 32,768 sets: two each on average, none crowded.
        assert!(seen.iter().all(|n| *n <= 8), "a crowded set: {}", seen.iter().max().unwrap());
        assert!(
            StormKey::duid(1).set() != StormKey::duid(2).set() || StormKey::duid(2).set() != StormKey::duid(3).set()
        );
    }

    #[test]
    fn a_mac_key_holds_the_six_bytes() {
        let key = StormKey::mac(3, [0x02, 0, 0, 0, 0xab, 0xcd]);
        assert_eq!((key.ifindex, key.kind, key.id), (3, KEY_MAC, 0x0200_0000_abcd));
        assert_eq!(StormKey::duid(7).kind, KEY_DUID);
    }
}
