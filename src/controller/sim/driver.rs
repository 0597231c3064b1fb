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
    calm,
    dice::Dice,
    edits,
    instance::Instance,
    invariants::{Checker, PassEnd, Rule},
    time::{EPOCH, SimClock, millis, rel, secs, tick},
    trace::{Outcome, Trace},
    world::{Detail, Faults, Incarnation, NS, PassLog, Request, World, suspended},
};
use crate::{
    backfill::BACKFILL_ANNOTATION,
    controller::reconcile::{Next, reconcile_once, retry_after},
    crd::{ConcurrencyPolicy, RESUME_ANNOTATION, RUN_NOW_REQUEST_ANNOTATION},
};

/// Passes at one instant before the seed is stopped as a livelock.
const MAX_PASSES_AT_ONCE: u32 = 50;
/// Passes in one seed before it is stopped as a runaway.
const MAX_PASSES: u64 = 20_000;
/// Simulated time the random actions may take: a seed's cost grows with its ticks, and the
/// calm phase catches up every tick missed before it.
const CHAOS_SECONDS: i64 = 20 * 60;

/// What a seed is like: drawn first from its dice.
struct Config {
    actions: i64,
    /// The actions it takes and how often (swarm testing: each seed leaves some out and
    /// favours others, so rarer combinations come up).
    weights: Vec<(u32, Action)>,
    style: edits::Style,
    faults: Faults,
    /// How often a watch event is late (10-120 s instead of 0-3 s).
    late: f64,
    /// How often a Job finishes as Failed.
    fail_rate: f64,
}

impl Config {
    fn roll(d: &mut Dice) -> Self {
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
        Config {
            actions: d.range(20, 50),
            weights,
            style: edits::Style { one_off, policy },
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
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Action {
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

const ACTIONS: [(u32, Action); 14] = [
    (8, Action::ToWake),
    (4, Action::ToDelivery),
    (6, Action::Wait),
    (5, Action::Edit),
    (1, Action::RunNow),
    (2, Action::Backfill),
    (1, Action::Cancel),
    (1, Action::Resume),
    (8, Action::Finish),
    (1, Action::UserDelete),
    (1, Action::Crash),
    (1, Action::Handover),
    (1, Action::ToggleFaults),
    (1, Action::Relist),
];

struct Sim {
    cfg: Config,
    rt: tokio::runtime::Runtime,
    world: Shared,
    clock: SimClock,
    client: Client,
    instances: Vec<Instance>,
    active: usize,
    incarnations: u32,
    passes: u64,
    /// The instant of the last pass and how many ran at it.
    instant: (Timestamp, u32),
    trace: Trace,
    checker: Checker,
    /// In the calm phase: when each run finishes.
    finishes: BTreeMap<String, Timestamp>,
    calm: bool,
    halted: bool,
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
        let cfg = Config::roll(&mut dice);
        let created = Timestamp::from_second(EPOCH + dice.range(0, 59)).unwrap_or(Timestamp::UNIX_EPOCH);
        let clock = SimClock::starting_at(created + millis(dice.range(0, 999)));
        let spec = edits::initial(&mut dice, created, cfg.style.one_off);
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

    fn start_instance(&mut self, label: char) -> Instance {
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
    fn log(&mut self, text: &str) {
        let (seq, at) = {
            let mut w = self.world.lock();
            (w.next_seq(), w.now())
        };
        self.trace.log(seq, at, text);
    }

    fn roll<T>(&self, f: impl FnOnce(&mut Dice) -> T) -> T {
        f(&mut self.world.lock().dice)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Hands the world's new watch events to both instances, each after its own delay.
    fn distribute(&mut self) {
        let events = std::mem::take(&mut self.world.lock().outbox);
        let now = self.now();
        for event in events {
            for i in 0..self.instances.len() {
                let delay = self.roll(|d| self.delay(d));
                self.instances[i].enqueue(event.clone(), now + millis(delay));
            }
        }
    }

    fn delay(&self, d: &mut Dice) -> i64 {
        if self.calm {
            d.range(0, 200)
        } else if d.chance(self.cfg.late) {
            d.range(10_000, 120_000)
        } else {
            d.range(0, 3_000)
        }
    }

    /// Checks what the last step changed.
    fn check(&mut self) {
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
    fn advance_to(&mut self, target: Timestamp) {
        self.advance_until(target, |_| false);
    }

    /// Like `advance_to`, but stops as soon as `done` holds after a step.
    fn advance_until(&mut self, target: Timestamp, done: impl Fn(&World) -> bool) {
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
    fn settle(&mut self) {
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

    fn wake_now(&mut self, i: usize) {
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
            });
            self.checker
                .pass_start(id, &w, &self.instances[i].view, incarnation, self.instances[i].lag())
        };
        let instance = &self.instances[i];
        let result = self.rt.block_on(reconcile_once(&instance.view, &instance.ctx));
        let next = match &result {
            Ok(next) => *next,
            Err(e) => retry_after(&instance.view, e, &instance.ctx),
        };
        let result = result.map_err(|e| format!("{}: {}", e.reason(), short(&e.to_string())));
        let requests = self.world.lock().pass.take().map(|p| p.requests).unwrap_or_default();
        self.instances[i].wake_at = match next {
            Next::After(d) => Some(now + SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)),
            Next::OnChange => None,
        };
        let published = self.instances[i].published();
        let line = if self.trace.on() {
            let line = self.describe_pass(id, i, &start.lag, &requests, &result, next, &published);
            line + &status_words(self.world.lock().status())
        } else {
            String::new()
        };
        self.log(&line);
        {
            let w = self.world.lock();
            let end = PassEnd {
                start: &start,
                result: &result,
                requests: &requests,
            };
            self.checker.pass_end(&w, &end);
        }
        self.halted |= self.checker.halted();
        self.distribute();
        if self.calm {
            self.schedule_finishes();
        }
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

    #[allow(clippy::too_many_arguments)]
    fn describe_pass(
        &self,
        id: u64,
        i: usize,
        lag: &super::instance::Lag,
        requests: &[Request],
        result: &Result<Next, String>,
        next: Next,
        published: &[String],
    ) -> String {
        let instance = &self.instances[i];
        let view = &instance.view;
        let said: Vec<String> = requests.iter().map(describe_request).collect();
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("ERR {e}"),
        };
        format!(
            "pass {id} by {}#{} (view gen {} rv {}{}): [{}] {outcome} -> {next:?} {published:?}",
            instance.label,
            instance.incarnation.0,
            view.metadata.generation.unwrap_or(0),
            view.metadata.resource_version.as_deref().unwrap_or("?"),
            if lag.foreign() { ", behind" } else { "" },
            said.join("; ")
        )
    }

    // ---- actions ----

    fn act(&mut self) {
        let suspended = suspended(self.world.lock().status());
        let action = if suspended && self.roll(|d| d.chance(0.1)) {
            Action::Resume
        } else {
            self.roll(|d| d.weighted(&self.cfg.weights))
        };
        match action {
            Action::ToWake => match self.instances[self.active].wake_at {
                Some(t) => self.advance_to(t),
                None => self.wait(),
            },
            Action::ToDelivery => match self.instances.iter().filter_map(Instance::next_delivery).min() {
                Some(t) => self.advance_to(t),
                None => self.wait(),
            },
            Action::Wait => self.wait(),
            Action::Edit => self.edit(),
            Action::RunNow => self.annotate(RUN_NOW_REQUEST_ANNOTATION, "run-now"),
            Action::Backfill => self.backfill(),
            Action::Cancel => self.cancel_backfill(),
            Action::Resume => self.annotate(RESUME_ANNOTATION, "resume"),
            Action::Finish => self.finish_some(),
            Action::UserDelete => self.user_delete(),
            Action::Crash => self.crash(),
            Action::Handover => self.handover(),
            Action::ToggleFaults => self.toggle_faults(),
            Action::Relist => self.relist(),
        }
        self.check();
    }

    fn wait(&mut self) {
        let ms = self.roll(|d| d.range(0, 90_000));
        self.log(&format!("wait {}.{:03}s", ms / 1000, ms % 1000));
        self.advance_to(self.now() + millis(ms));
    }

    fn edit(&mut self) {
        let line = {
            let mut w = self.world.lock();
            let mut spec = w.swf.spec.clone();
            let now = w.now();
            let field = edits::edit(&mut w.dice, now, &mut spec, self.cfg.style);
            w.user_edit(|s, _| *s = spec);
            format!(
                "user edits {field} (gen {}): {}",
                w.swf.generation,
                edits::describe(&w.swf.spec)
            )
        };
        self.log(&line);
        self.distribute();
    }

    fn annotate(&mut self, key: &'static str, what: &str) {
        let value = format!("{what}-{}", self.world.lock().seq());
        self.world.lock().user_edit(|_, a| {
            a.insert(key.to_string(), value.clone());
        });
        self.log(&format!("user sets {key}={value}"));
        self.distribute();
    }

    fn backfill(&mut self) {
        let value = {
            let mut w = self.world.lock();
            let (now, spec) = (w.now(), w.swf.spec.clone());
            edits::backfill_range(&mut w.dice, now, &spec)
        };
        self.world.lock().user_edit(|_, a| {
            a.insert(BACKFILL_ANNOTATION.to_string(), value.clone());
        });
        self.log(&format!("user asks for a backfill of {value}"));
        self.distribute();
    }

    fn cancel_backfill(&mut self) {
        if !self.world.lock().swf.annotations.contains_key(BACKFILL_ANNOTATION) {
            return self.wait();
        }
        self.world.lock().user_edit(|_, a| {
            a.remove(BACKFILL_ANNOTATION);
        });
        self.log("user removes the backfill annotation");
        self.distribute();
    }

    fn finish_some(&mut self) {
        let active = self.world.lock().active_jobs();
        if active.is_empty() {
            return self.wait();
        }
        let name = self.roll(|d| d.pick(&active).clone());
        let failed = self.roll(|d| d.chance(self.cfg.fail_rate));
        self.finish(&name, failed);
    }

    fn finish(&mut self, name: &str, failed: bool) {
        self.world.lock().finish_job(name, failed);
        self.log(&format!("{name} {}", if failed { "fails" } else { "succeeds" }));
        self.distribute();
        self.check();
    }

    fn user_delete(&mut self) {
        let names: Vec<String> = {
            let w = self.world.lock();
            w.jobs
                .iter()
                .filter(|(_, j)| w.runs[j.run].deleted.is_none())
                .map(|(n, _)| n.clone())
                .collect()
        };
        if names.is_empty() {
            return self.wait();
        }
        let name = self.roll(|d| d.pick(&names).clone());
        self.world.lock().delete_job(&name, super::world::Cause::User);
        self.log(&format!("user deletes {name}"));
        self.distribute();
    }

    fn crash(&mut self) {
        let label = self.instances[self.active].label;
        let fresh = self.start_instance(label);
        self.instances[self.active] = fresh;
        self.log(&format!(
            "{label} crashes and restarts as {label}#{} (memory lost)",
            self.incarnations
        ));
        self.wake_now(self.active);
    }

    fn handover(&mut self) {
        self.active = 1 - self.active;
        self.log(&format!("handover: {} is active", self.instances[self.active].label));
        self.wake_now(self.active);
    }

    fn toggle_faults(&mut self) {
        let on = {
            let mut w = self.world.lock();
            w.faults.on = !w.faults.on;
            w.faults.on
        };
        self.log(&format!("faults {}", if on { "on" } else { "off" }));
    }

    fn relist(&mut self) {
        let i = usize::try_from(self.roll(|d| d.range(0, 1))).unwrap_or(0);
        let swf = self.roll(|d| d.chance(0.5));
        let (obj, jobs) = {
            let w = self.world.lock();
            (w.swf_json(), w.jobs_json())
        };
        let woke = if swf {
            self.instances[i].relist_swf(&obj);
            true
        } else {
            self.instances[i].relist_jobs(&jobs)
        };
        let what = if swf { "ScheduledWorkflow" } else { "Job" };
        self.log(&format!(
            "{}'s {what} watch is lost and relisted",
            self.instances[i].label
        ));
        if woke && i == self.active {
            self.wake_now(i);
        }
    }

    // ---- the calm phase ----

    fn calm_phase(&mut self) {
        let to_periodic = self.roll(|d| d.chance(0.5).then(|| d.range(10, 120)));
        self.world.lock().faults.on = false;
        self.calm = true;
        let now = self.now();
        for instance in &mut self.instances {
            instance.hurry(now);
        }
        self.settle();
        let resume = format!("calm-{}", self.world.lock().seq());
        let line = {
            let mut w = self.world.lock();
            let suspended = suspended(w.status());
            w.user_edit(|spec, a| {
                edits::calm(spec, now, to_periodic);
                a.remove(BACKFILL_ANNOTATION);
                if suspended {
                    a.insert(RESUME_ANNOTATION.to_string(), resume);
                }
            });
            format!("calm phase: {}", edits::describe(&w.swf.spec))
        };
        self.log(&line);
        self.distribute();
        self.schedule_finishes();
        let mut calm = calm::begin(&self.world.lock());
        let end = match calm.end {
            Some(end) => end,
            None => {
                self.advance_until(calm.deadline, |w| calm.caught_up(w).is_some());
                let caught_up = calm.caught_up(&self.world.lock());
                calm.open(caught_up)
            }
        };
        self.log(&format!("calm phase runs until {}", rel(end)));
        self.advance_to(end);
        if !self.halted {
            let w = self.world.lock();
            self.checker.after_step(&w, calm::check(&w, &calm));
        }
    }

    /// In the calm phase every active run finishes 1-3 s after it is seen.
    fn schedule_finishes(&mut self) {
        let now = self.now();
        let active = self.world.lock().active_jobs();
        for name in active {
            if !self.finishes.contains_key(&name) {
                let at = now + millis(self.world.lock().dice.range(1_000, 3_000));
                self.finishes.insert(name, at);
            }
        }
    }
}

/// The status after a pass, in a few words: summary, trigger, suspension, backfill.
fn status_words(status: &serde_json::Value) -> String {
    let time = |p: &str| super::world::time_at(status, p).map_or("-".to_string(), tick);
    let index = status
        .pointer("/trigger/lastWorkflowIndex")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let mut words = format!(
        " | {} last {} #{index} next {} skip {}",
        super::world::summary_type(status).unwrap_or("-"),
        time("/trigger/lastTriggeredTime"),
        time("/trigger/nextTriggeredTime"),
        time("/trigger/skipThrough"),
    );
    if suspended(status) {
        words.push_str(" SUSPENDED");
    }
    if let Some(phase) = status.pointer("/backfill/phase").and_then(|p| p.as_str()) {
        words.push_str(&format!(" backfill {phase} through {}", time("/backfill/through")));
    }
    words
}

/// An error's message up to its first parenthesis (kube's `Status` debug output follows).
fn short(message: &str) -> &str {
    message.split(" (Status").next().unwrap_or(message)
}

fn describe_request(r: &Request) -> String {
    let fault = r.fault.map_or(String::new(), |f| format!(" [{f}]"));
    let what = match &r.detail {
        Detail::Create { tick: t, origin } => format!(" ({origin}, tick {})", t.map_or("-".into(), tick)),
        Detail::Get {
            found: Some((origin, finished)),
        } => {
            format!(" ({origin}{})", if *finished { ", finished" } else { "" })
        }
        Detail::Delete { was_active: true } => " (active)".into(),
        _ => String::new(),
    };
    format!("{} {} {}{fault}{what}", r.method, r.name, r.code)
}
