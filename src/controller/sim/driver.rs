//! The seeded driver: builds the world and two operator instances, then takes random weighted
//! actions (advance the clock, edit the spec, ask for run-now/backfill/resume, finish or delete
//! runs, crash or hand over the active instance, toggle faults, lose a watch), runs the real
//! reconcile pass whenever the active instance would, and has the invariants checked after
//! every step. A calm phase ends every seed (`calm.rs`).
//!
//! Wake-ups model the controller: after `Next::After(d)` the next pass runs at `now + d`;
//! never for `Next::OnChange`; at once when the instance is delivered a change of one of the
//! schedule's Jobs (the run cache says it changed) or a ScheduledWorkflow event for which
//! `worth_a_pass` changes, when it becomes active (a handover, a restart) or relists; after an
//! `Err`, at `retry_after`'s delay. Only the active instance runs passes; spurious passes are
//! never injected. Passes take no simulated time; the async pass runs on a current-thread
//! tokio runtime whose only I/O is the in-memory API server answering inline.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use jiff::{SignedDuration, Timestamp};
use kube::Client;

use super::{
    api::Shared,
    dice::Dice,
    edits,
    instance::{Instance, rv_of},
    invariants::{Checker, PassEnd, PassStart, Rule},
    records::{Incarnation, PassLog, Request, Seq},
    seed::Config,
    time::{EPOCH, SimClock, millis, rel, secs, tick},
    trace::{Outcome, Trace},
    words,
    world::{NS, World},
};
use crate::{
    controller::reconcile::{Next, reconcile_once, retry_after},
    model::stored::SwfObject,
};

/// Passes at one instant before the seed is stopped as a livelock.
const MAX_PASSES_AT_ONCE: u32 = 50;
/// Passes in one seed before it is stopped as a runaway.
const MAX_PASSES: u64 = 20_000;
/// Simulated time the random actions may take: a seed's cost grows with its ticks, and the
/// calm phase catches up every tick missed before it.
const CHAOS_SECONDS: i64 = 20 * 60;
/// The latest a late watch event comes (ms after its write). The operator assumes its watch
/// shows its own status write within a minute (`status_write::MEMORY_TTL`: the remembered
/// write is dropped after 60 s); later events would test that assumption, not the pass.
const LATE_MAX_MS: i64 = 50_000;
/// Seeds from here on are the past-endTime family: one slot flipping Wait/Replace, endTime
/// moved into the past and lifted, backfills of the latest ticks (`edits::Style::past_end`).
/// Seeds below it are unchanged by the family.
pub const PAST_END: u64 = 1 << 32;
/// Seeds from here on are the quick family: every run finishes 1-3 s after it is created,
/// creates often answer 500 though they created ("slow creates"), watch events are often
/// late, so a retried pass meets (409) a run that already finished (issue 18's bug 4).
pub const QUICK: u64 = 1 << 33;
/// Seeds from here on are the failing family: the failure policy always on, at most one failed
/// run kept, runs that mostly fail, backfills three times as often (a history limit meeting
/// the failure policy: issue 18's bug 3, which the other families reach rarely).
pub const FAILING: u64 = 3 << 32;

pub struct Sim {
    pub(super) cfg: Config,
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) world: Shared,
    pub(super) clock: SimClock,
    pub(super) client: Client,
    pub(super) instances: Vec<Instance>,
    pub(super) active: usize,
    pub(super) incarnations: u32,
    pub(super) passes: u64,
    /// The instant of the last pass and how many ran at it.
    pub(super) instant: (Timestamp, u32),
    pub(super) trace: Trace,
    pub(super) checker: Checker,
    /// In the calm phase: when each run finishes.
    pub(super) finishes: BTreeMap<String, Timestamp>,
    pub(super) calm: bool,
    pub(super) halted: bool,
}

/// Runs one seed, with its trace or without (the many seeds of a full run).
pub fn run(seed: u64, traced: bool) -> Outcome {
    let mut sim = Sim::new(seed, traced);
    sim.settle();
    let until = sim.now() + secs(CHAOS_SECONDS);
    for _ in 0..sim.cfg.actions {
        if sim.halted || sim.now() > until {
            break;
        }
        sim.act();
        sim.settle();
    }
    if !sim.halted {
        sim.calm_phase();
    }
    Outcome {
        seed,
        violations: sim.checker.violations,
        trace: sim.trace,
        passes: sim.passes,
    }
}

impl Sim {
    fn new(seed: u64, traced: bool) -> Self {
        let mut dice = Dice::new(seed);
        let mut cfg = Config::roll(&mut dice);
        if seed >= FAILING {
            cfg.failing(&mut dice);
        } else if seed >= QUICK {
            cfg.quick = true;
            cfg.faults.post_slow = 0.5;
            cfg.late = 0.5;
        } else if seed >= PAST_END {
            cfg.style.flip = true;
            cfg.style.past_end = true;
        }
        let created = Timestamp::from_second(EPOCH + dice.range(0, 59)).unwrap_or(Timestamp::UNIX_EPOCH);
        let clock = SimClock::starting_at(created + millis(dice.range(0, 999)));
        let mut spec = edits::initial(&mut dice, created, cfg.style.one_off);
        if cfg.style.failing {
            edits::failing(&mut dice, &mut spec);
        }
        let mut world = World::new(clock.clone(), dice, spec, created);
        world.skew = if world.dice.chance(0.5) {
            world.dice.range(-60, 60)
        } else {
            0
        };
        world.deferred_delete = world.dice.rate(0.3, 0.2, 0.8);
        world.faults = cfg.faults;
        world.faults.on = world.dice.chance(0.3);
        let first = format!(
            "created {}: {}; skew {}s, faults {:?}, late {:.2}, fail {:.2}",
            tick(created),
            edits::describe(&world.swf.spec),
            world.skew,
            world.faults,
            cfg.late,
            cfg.fail_rate
        );
        let world = Shared(Arc::new(Mutex::new(world)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("a current-thread runtime: {e}"));
        let client = {
            let _entered = rt.enter(); // kube's client spawns its buffer task here
            Client::new(world.clone(), NS)
        };
        let mut sim = Sim {
            cfg,
            rt,
            world,
            clock,
            client,
            instances: Vec::new(),
            active: 0,
            incarnations: 0,
            passes: 0,
            instant: (Timestamp::UNIX_EPOCH, 0),
            trace: Trace::new(traced),
            checker: Checker::default(),
            finishes: BTreeMap::new(),
            calm: false,
            halted: false,
        };
        for label in ['A', 'B'] {
            let instance = sim.start_instance(label);
            sim.instances.push(instance);
        }
        sim.instances[0].wake_at = Some(sim.clock.now());
        sim.log(&first);
        sim
    }

    pub(super) fn start_instance(&mut self, label: char) -> Instance {
        self.incarnations += 1;
        let (swf, jobs) = {
            let w = self.world.lock();
            (w.swf_json(), w.jobs_json())
        };
        let incarnation = Incarnation(self.incarnations);
        Instance::start(label, incarnation, self.client.clone(), &self.clock, &swf, &jobs)
            .unwrap_or_else(|| panic!("the world's ScheduledWorkflow decodes"))
    }

    /// A trace line at a new step.
    pub(super) fn log(&mut self, text: &str) {
        let (seq, at) = {
            let mut w = self.world.lock();
            (w.next_seq(), w.now())
        };
        self.trace.log(seq, at, text);
    }

    pub(super) fn roll<T>(&self, f: impl FnOnce(&mut Dice) -> T) -> T {
        f(&mut self.world.lock().dice)
    }

    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Hands the world's new watch events to both instances, each after its own delay.
    pub(super) fn distribute(&mut self) {
        let events = std::mem::take(&mut self.world.lock().outbox);
        let now = self.now();
        for event in events {
            for i in 0..self.instances.len() {
                let delay = self.roll(|d| self.delay(d));
                self.instances[i].enqueue(event.clone(), now + millis(delay));
            }
        }
    }

    /// A late event comes 10 s to `LATE_MAX_MS` after its write (see `LATE_MAX_MS`).
    fn delay(&self, d: &mut Dice) -> i64 {
        if self.calm {
            d.range(0, 200)
        } else if d.chance(self.cfg.late) {
            d.range(10_000, LATE_MAX_MS)
        } else {
            d.range(0, 3_000)
        }
    }

    /// Checks what the last step changed.
    pub(super) fn check(&mut self) {
        let w = self.world.lock();
        self.checker.after_step(&w, Vec::new());
        self.halted |= self.checker.halted();
    }

    // ---- time ----

    fn next_event(&self) -> Option<Timestamp> {
        let removal = self.world.lock().next_removal();
        let deliveries = self.instances.iter().filter_map(Instance::next_delivery);
        let finish = self.finishes.values().min().copied();
        let wake = self.instances[self.active].wake_at;
        deliveries.chain([removal, finish, wake].into_iter().flatten()).min()
    }

    /// Moves the clock to `target`, doing everything due on the way, in time order.
    pub(super) fn advance_to(&mut self, target: Timestamp) {
        self.advance_until(target, |_| false);
    }

    /// Like `advance_to`, but stops as soon as `done` holds after a step.
    pub(super) fn advance_until(&mut self, target: Timestamp, done: impl Fn(&World) -> bool) {
        while !self.halted {
            match self.next_event() {
                Some(t) if t <= target => {
                    self.clock.set(t);
                    self.step(t);
                    if done(&self.world.lock()) {
                        return;
                    }
                }
                _ => break,
            }
        }
        self.clock.set(target);
    }

    /// Everything due now.
    pub(super) fn settle(&mut self) {
        self.advance_to(self.now());
    }

    /// One thing due at `now`: a delivery, a removal, a finish (calm phase), else a pass.
    fn step(&mut self, now: Timestamp) {
        for i in 0..self.instances.len() {
            if let Some((woke, what)) = self.instances[i].deliver(now) {
                let label = self.instances[i].label;
                let wakes = woke && i == self.active;
                let line = if self.trace.on() {
                    format!("{label} told: {what}{}", if wakes { " (wakes a pass)" } else { "" })
                } else {
                    String::new()
                };
                self.log(&line);
                if wakes {
                    self.wake_now(i);
                }
                return;
            }
        }
        let removed = self.world.lock().remove_due();
        if !removed.is_empty() {
            self.log(&format!("removed {}", removed.join(", ")));
            self.distribute();
            return self.check();
        }
        if let Some((name, _)) = self.finishes.iter().find(|(_, at)| **at <= now) {
            let name = name.clone();
            self.finishes.remove(&name);
            self.finish(&name, false);
            return;
        }
        self.run_pass();
    }

    pub(super) fn wake_now(&mut self, i: usize) {
        let now = self.now();
        let wake = &mut self.instances[i].wake_at;
        *wake = Some(wake.map_or(now, |w| w.min(now)));
    }

    // ---- the pass ----

    fn run_pass(&mut self) {
        let now = self.now();
        if self.runaway(now) {
            return;
        }
        let i = self.active;
        self.instances[i].wake_at = None;
        self.passes += 1;
        let id = self.passes;
        let incarnation = self.instances[i].incarnation;
        let start = {
            let mut w = self.world.lock();
            w.pass = Some(PassLog {
                id,
                incarnation,
                requests: Vec::new(),
                reread: None,
            });
            // What the pass plans from: the view, or the object the instance's last status
            // write returned while the view has not caught up (`StatusWriter::newest`).
            let instance = &self.instances[i];
            let planned_from = instance.ctx.status.newest(&instance.view, now);
            self.checker
                .pass_start(id, &w, &planned_from, incarnation, instance.lag(rv_of(&planned_from)))
        };
        let instance = &self.instances[i];
        let result = self.rt.block_on(reconcile_once(&instance.view, &instance.ctx));
        let next = match &result {
            Ok(next) => *next,
            Err(e) => retry_after(&instance.view, e, &instance.ctx),
        };
        let result = result.map_err(|e| format!("{}: {}", e.reason(), words::short(&e.to_string())));
        let (requests, reread) = self
            .world
            .lock()
            .pass
            .take()
            .map(|p| (p.requests, p.reread))
            .unwrap_or_default();
        self.instances[i].wake_at = match next {
            Next::After(d) => Some(now + SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)),
            Next::OnChange => None,
        };
        let published = self.instances[i].published();
        let line = if self.trace.on() {
            let line = words::pass(id, &self.instances[i], &start.lag, &requests, &result, next, &published);
            line + &words::status(self.world.lock().status())
        } else {
            String::new()
        };
        self.log(&line);
        self.check_pass(&start, &result, &requests, reread);
        self.halted |= self.checker.halted();
        self.distribute();
        if self.calm || self.cfg.quick {
            self.schedule_finishes();
        }
    }

    /// Checks what a pass did; a pass that read the object afresh after its status write
    /// conflicted is checked as two: the attempt that conflicted, from its view, and the one
    /// after, from the object it read.
    fn check_pass(
        &mut self,
        start: &PassStart,
        result: &Result<Next, String>,
        requests: &[Request],
        reread: Option<(Seq, SwfObject)>,
    ) {
        let w = self.world.lock();
        let Some((seq, fresh)) = reread else {
            let end = PassEnd {
                start,
                result,
                requests,
                before: None,
            };
            return self.checker.pass_end(&w, &end);
        };
        let split = requests.iter().take_while(|r| r.seq < seq).count();
        let conflicted = Err("StatusConflict".to_string());
        let first = PassEnd {
            start,
            result: &conflicted,
            requests: &requests[..split],
            before: Some(seq),
        };
        self.checker.pass_end(&w, &first);
        let again = Checker::reread(start, &fresh);
        let second = PassEnd {
            start: &again,
            result,
            requests: &requests[split..],
            before: None,
        };
        self.checker.pass_end(&w, &second);
    }

    /// Stops a seed whose passes never stop (a livelock at one instant, or too many).
    fn runaway(&mut self, now: Timestamp) -> bool {
        self.instant = if self.instant.0 == now {
            (now, self.instant.1 + 1)
        } else {
            (now, 1)
        };
        let why = if self.instant.1 > MAX_PASSES_AT_ONCE {
            format!("{MAX_PASSES_AT_ONCE} passes at {} and still waking", rel(now))
        } else if self.passes >= MAX_PASSES {
            format!("{MAX_PASSES} passes in one seed")
        } else {
            return false;
        };
        self.checker.report(&self.world.lock(), Rule::Harness, why);
        self.halted = true;
        true
    }
}
