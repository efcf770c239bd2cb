//! Flows recently evicted from the table, so their later packets are not
//! taken for new connections picked up midstream (a duplicate of the same
//! connection, with a false `pending` verdict).
//!
//! A flow is remembered by its key's 64-bit hash under the table's random
//! seed (16 bytes with its generation, where the key would take 48): a false
//! match, about n / 2^64 per packet, only drops the packets of a flow whose
//! start was not seen. At most `cap` flows are remembered, the oldest
//! forgotten first; a fresh SYN on a remembered key starts a new connection
//! and forgets it.

use std::collections::VecDeque;

use hashbrown::HashTable;

#[derive(Debug)]
pub(super) struct Evicted {
    /// (key hash, generation): the generation tells a key remembered again
    /// from its older entry in `order`.
    set: HashTable<(u64, u64)>,
    /// Oldest first.
    order: VecDeque<(u64, u64)>,
    cap: usize,
    next_gen: u64,
}

impl Evicted {
    pub fn new(cap: usize) -> Self {
        Evicted {
            set: HashTable::new(),
            order: VecDeque::new(),
            cap,
            next_gen: 0,
        }
    }

    pub fn contains(&self, hash: u64) -> bool {
        !self.set.is_empty() && self.set.find(hash, |e| e.0 == hash).is_some()
    }

    pub fn remember(&mut self, hash: u64) {
        if self.cap == 0 {
            return;
        }
        let g = self.next_gen;
        self.next_gen += 1;
        match self.set.find_mut(hash, |e| e.0 == hash) {
            Some(e) => e.1 = g,
            None => {
                self.set.insert_unique(hash, (hash, g), |e| e.0);
            }
        }
        self.order.push_back((hash, g));
        while self.order.len() > self.cap {
            let Some((h, g)) = self.order.pop_front() else {
                break;
            };
            if let Ok(e) = self.set.find_entry(h, |e| *e == (h, g)) {
                e.remove();
            }
        }
    }

    pub fn forget(&mut self, hash: u64) {
        if let Ok(e) = self.set.find_entry(hash, |e| e.0 == hash) {
            e.remove();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_forgotten_first() {
        let mut e = Evicted::new(3);
        for h in 1..=5 {
            e.remember(h);
        }
        assert_eq!(e.len(), 3);
        assert!(!e.contains(1) && !e.contains(2));
        assert!(e.contains(3) && e.contains(4) && e.contains(5));
        assert!(e.order.len() <= 3);
    }

    #[test]
    fn remembered_again_outlives_its_older_entry() {
        let mut e = Evicted::new(3);
        e.remember(1);
        e.remember(2);
        e.remember(1);
        e.remember(3);
        // The first entry of 1 leaves the queue; 1 itself stays.
        assert!(e.contains(1) && e.contains(2) && e.contains(3));
        e.remember(4);
        assert!(!e.contains(2) && e.contains(1));
    }

    #[test]
    fn forget() {
        let mut e = Evicted::new(3);
        e.remember(9);
        e.forget(9);
        assert!(!e.contains(9));
        e.remember(9);
        assert!(e.contains(9));
    }
}
