//! What a seed is like, drawn first from its dice: how many actions it takes and which
//! (swarm testing: each seed leaves some actions out and favours others, so combinations that
//! are rare under one fixed mix come up), the API server's fault rates, how late watch events
//! can be, how often runs fail.

use super::{dice::Dice, edits, world::Faults};
use crate::model::crd::ConcurrencyPolicy;

/// What a seed is like: drawn first from its dice.
pub struct Config {
    pub actions: i64,
    /// The actions it takes and how often (swarm testing: each seed leaves some out and
    /// favours others, so rarer combinations come up).
    pub weights: Vec<(u32, Action)>,
    pub style: edits::Style,
    pub faults: Faults,
    /// How often a watch event is late (10-50 s instead of 0-3 s).
    pub late: f64,
    /// How often a Job finishes as Failed.
    pub fail_rate: f64,
    /// Every run finishes 1-3 s after it is created (the quick family, `driver::QUICK`).
    pub quick: bool,
}

impl Config {
    pub fn roll(d: &mut Dice) -> Self {
        let weights = ACTIONS
            .iter()
            .map(|&(w, a)| match a {
                Action::ToWake | Action::Wait | Action::Finish => (w, a),
                _ if d.chance(0.25) => (0, a),
                _ if d.chance(0.3) => (3 * w, a),
                _ => (w, a),
            })
            .collect();
        let policies = [
            ConcurrencyPolicy::Wait,
            ConcurrencyPolicy::Skip,
            ConcurrencyPolicy::Replace,
        ];
        let one_off = d.chance(0.12);
        let policy = d.chance(0.5).then(|| *d.pick(&policies));
        let flip = d.chance(0.3);
        let ahead = flip || d.chance(0.25);
        Config {
            actions: d.range(20, 50),
            weights,
            style: edits::Style {
                one_off,
                policy,
                ahead,
                flip,
                past_end: false,
                failing: false,
            },
            faults: Faults {
                on: false,
                post_fail: d.rate(0.4, 0.05, 0.3),
                post_slow: d.rate(0.5, 0.05, 0.3),
                get_fail: d.rate(0.5, 0.05, 0.3),
                patch_fail: d.rate(0.4, 0.05, 0.3),
                delete_fail: d.rate(0.5, 0.05, 0.3),
            },
            late: d.rate(0.4, 0.02, 0.2),
            fail_rate: d.rate(0.2, 0.2, 0.9),
            quick: false,
        }
    }

    /// The failing family (`driver::FAILING`): most runs fail and backfills come three times
    /// as often (the spec's side is `edits::failing`).
    pub fn failing(&mut self, d: &mut Dice) {
        self.style.failing = true;
        self.fail_rate = d.rate(0.0, 0.5, 0.9);
        for (weight, action) in &mut self.weights {
            if matches!(action, Action::Backfill) {
                *weight = 3 * BACKFILL_WEIGHT;
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Action {
    ToWake,
    ToDelivery,
    Wait,
    Edit,
    RunNow,
    Backfill,
    Cancel,
    Resume,
    Finish,
    UserDelete,
    Crash,
    Handover,
    ToggleFaults,
    Relist,
}

const BACKFILL_WEIGHT: u32 = 2;

const ACTIONS: [(u32, Action); 14] = [
    (8, Action::ToWake),
    (4, Action::ToDelivery),
    (6, Action::Wait),
    (5, Action::Edit),
    (1, Action::RunNow),
    (BACKFILL_WEIGHT, Action::Backfill),
    (1, Action::Cancel),
    (1, Action::Resume),
    (8, Action::Finish),
    (1, Action::UserDelete),
    (1, Action::Crash),
    (1, Action::Handover),
    (1, Action::ToggleFaults),
    (1, Action::Relist),
];
