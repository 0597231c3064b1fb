//! The simulation's one source of randomness: a PCG generator seeded from the seed number, so
//! a seed always rolls the same numbers in the same order (the driver, the API server's faults
//! and the watch delays all draw from it, one after the other, on one thread).

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

pub struct Dice(Pcg64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Dice(Pcg64::seed_from_u64(seed))
    }

    /// True with probability `p` (no roll at all when `p` is 0, so a fault that is off costs
    /// no number and does not shift the rest of the seed).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.0.random_bool(p.min(1.0))
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { self.0.random_range(lo..=hi) }
    }

    /// A probability in `lo..hi`, or 0 in `off` of the cases.
    pub fn rate(&mut self, off: f64, lo: f64, hi: f64) -> f64 {
        if self.chance(off) {
            0.0
        } else {
            self.0.random_range(lo..hi)
        }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let last = i64::try_from(items.len()).unwrap_or(1) - 1;
        &items[usize::try_from(self.range(0, last)).unwrap_or(0)]
    }

    /// One of `items`, each as likely as its weight.
    pub fn weighted<T: Copy>(&mut self, items: &[(u32, T)]) -> T {
        let total: u32 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.range(0, i64::from(total) - 1);
        for (w, item) in items {
            if roll < i64::from(*w) {
                return *item;
            }
            roll -= i64::from(*w);
        }
        items[items.len() - 1].1
    }
}
