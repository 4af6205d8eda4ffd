//! Counters keyed by enums: a fixed array indexed by the enum, named by it when shown or
//! exported. Message types, drop reasons and XDP verdicts are counted this way, so that a
//! counter can never be misspelt and every reader (`show`, a metrics exporter) sees the same
//! names.
//!
//! ```
//! use dhcp6_engine::counters::Counts;
//! use dhcp6_codec::MessageType;
//!
//! let mut received = Counts::<MessageType>::default();
//! received.add(MessageType::Solicit, 2);
//! assert_eq!(received[MessageType::Solicit], 2);
//! assert_eq!(received.total(), 2);
//! ```

use std::{fmt, marker::PhantomData, ops::Index};

use dhcp6_codec::MessageType;
use dhcp6_common::counters::Verdict;
use serde::{ser::SerializeMap, Deserialize, Deserializer, Serialize, Serializer};

/// The most keys a [`Counter`] may have.
pub const MAX_KEYS: usize = 32;

/// An enum whose values are counted: every value, a dense index for each, and its name.
pub trait Counter: Copy + fmt::Debug + 'static {
    /// Every value, in the order they are shown.
    const ALL: &'static [Self];
    /// A distinct index below [`MAX_KEYS`].
    fn index(self) -> usize;
    /// Its name in `show`, in the control socket's answers and in metrics (snake_case).
    fn name(self) -> &'static str;
}

/// A count for each value of `K`.
pub struct Counts<K: Counter> {
    counts: [u64; MAX_KEYS],
    key: PhantomData<K>,
}

impl<K: Counter> Counts<K> {
    pub fn add(&mut self, key: K, n: u64) {
        self.counts[key.index()] = self.counts[key.index()].saturating_add(n);
    }

    pub fn bump(&mut self, key: K) {
        self.add(key, 1);
    }

    /// Sets a count kept elsewhere (by a driver's atomic counter, or by XDP).
    pub fn set(&mut self, key: K, n: u64) {
        self.counts[key.index()] = n;
    }

    /// Every key with its count, zeros included, in [`Counter::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        K::ALL.iter().map(|k| (*k, self.counts[k.index()]))
    }

    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }
}

impl<K: Counter> Default for Counts<K> {
    fn default() -> Self {
        Counts { counts: [0; MAX_KEYS], key: PhantomData }
    }
}

impl<K: Counter> Clone for Counts<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: Counter> Copy for Counts<K> {}

impl<K: Counter> PartialEq for Counts<K> {
    fn eq(&self, other: &Self) -> bool {
        self.counts == other.counts
    }
}

impl<K: Counter> Eq for Counts<K> {}

impl<K: Counter> fmt::Debug for Counts<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.name(), n))).finish()
    }
}

impl<K: Counter> Index<K> for Counts<K> {
    type Output = u64;
    fn index(&self, key: K) -> &u64 {
        &self.counts[key.index()]
    }
}

/// A map of every key's name to its count.
impl<K: Counter> Serialize for Counts<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(K::ALL.len()))?;
        for (k, n) in self.iter() {
            map.serialize_entry(k.name(), &n)?;
        }
        map.end()
    }
}

/// From a map of names to counts; names it does not know (a newer daemon's) are skipped.
impl<'de, K: Counter> Deserialize<'de> for Counts<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let named = std::collections::HashMap::<String, u64>::deserialize(deserializer)?;
        let mut counts = Counts::default();
        for k in K::ALL {
            if let Some(n) = named.get(k.name()) {
                counts.set(*k, *n);
            }
        }
        Ok(counts)
    }
}

impl Counter for MessageType {
    const ALL: &'static [Self] = &MessageType::ALL;
    fn index(self) -> usize {
        usize::from(self as u8)
    }
    fn name(self) -> &'static str {
        MessageType::name(self)
    }
}

impl Counter for Verdict {
    const ALL: &'static [Self] = &Verdict::ALL;
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        Verdict::name(self)
    }
}

/// Declares a counted enum: the enum, its [`Counter`] impl with `ALL` in declaration order,
/// and a name per value.
#[macro_export]
macro_rules! counted_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $crate::counters::Counter for $name {
            const ALL: &'static [Self] = &[$($name::$variant,)*];
            fn index(self) -> usize {
                self as usize
            }
            fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl $name {
            /// Its name in `show`, the control socket's answers and metrics.
            pub fn name(self) -> &'static str {
                <Self as $crate::counters::Counter>::name(self)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes_are_distinct_and_small<K: Counter>() {
        let mut seen = [false; MAX_KEYS];
        for k in K::ALL {
            assert!(k.index() < MAX_KEYS, "{k:?}");
            assert!(!std::mem::replace(&mut seen[k.index()], true), "{k:?} shares its index");
        }
    }

    #[test]
    fn every_counted_enum_fits() {
        indexes_are_distinct_and_small::<MessageType>();
        indexes_are_distinct_and_small::<Verdict>();
        indexes_are_distinct_and_small::<crate::server::DropReason>();
        indexes_are_distinct_and_small::<crate::relay::RelayDrop>();
        indexes_are_distinct_and_small::<crate::server::leasequery::LeasequeryOutcome>();
    }

    #[test]
    fn serializes_every_name_with_its_count() {
        let mut c = Counts::<MessageType>::default();
        c.bump(MessageType::Renew);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["RENEW"], 1);
        assert_eq!(json["SOLICIT"], 0);
        assert_eq!(json.as_object().unwrap().len(), MessageType::ALL.len());
        assert_eq!(serde_json::from_value::<Counts<MessageType>>(json).unwrap(), c);
    }
}
