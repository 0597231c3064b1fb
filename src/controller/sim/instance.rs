//! One operator instance (a replica): its own `Context` (run cache, RecentCreates, remembered
//! status write, backoff), its own view of the ScheduledWorkflow (the last object its watch
//! delivered) and its own two watch streams, the ScheduledWorkflow's and the Jobs'. Each stream
//! delivers in resourceVersion order, each event after its own delay, so the two streams
//! reorder relative to each other and an event can arrive many steps late. Delivering does what
//! the controller does: the Job stream feeds `RunCache::apply`/`delete`, the ScheduledWorkflow
//! stream feeds `StatusWriter::observed`, and `worth_a_pass` decides whether it wakes a pass.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Arc,
};

use jiff::Timestamp;
use kube::{
    Client,
    api::{ApiResource, GroupVersionKind},
};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{
    records::{Cause, Incarnation},
    time::SimClock,
    world::{Change, WatchEvent},
};
use crate::{
    controller::{
        Clock, Context, Settings,
        backoff::Backoff,
        election::leader::Leader,
        events::{Events, Pending},
        runs::{self, RunCache, RunCaches},
        status_write::StatusWriter,
        worth_a_pass,
    },
    model::{
        runkind::RunKind,
        stored::{RunObject, SwfObject},
    },
    serve::metrics::Metrics,
};

struct Queued {
    at: Timestamp,
    event: WatchEvent,
}

/// One watch stream: events in order, each with the time it is delivered.
#[derive(Default)]
struct Stream(VecDeque<Queued>);

impl Stream {
    /// Queues `event` for `at`, or later: a stream never overtakes itself.
    fn push(&mut self, event: WatchEvent, at: Timestamp) {
        let at = self.0.back().map_or(at, |last| last.at.max(at));
        self.0.push_back(Queued { at, event });
    }

    fn head(&self) -> Option<Timestamp> {
        self.0.front().map(|q| q.at)
    }
}

/// What an instance has not been told yet, when a pass starts.
#[derive(Clone, Debug, Default)]
pub struct Lag {
    /// Jobs with undelivered events (of any cause).
    pub jobs: BTreeSet<String>,
    /// Jobs with undelivered events this instance did not cause (finishes, users, the other
    /// one).
    pub foreign_job_names: BTreeSet<String>,
    /// Undelivered ScheduledWorkflow events this instance did not cause.
    pub foreign_swf: bool,
}

impl Lag {
    pub fn foreign(&self) -> bool {
        self.foreign_jobs() || self.foreign_swf
    }

    pub fn foreign_jobs(&self) -> bool {
        !self.foreign_job_names.is_empty()
    }
}

pub struct Instance {
    pub label: char,
    pub incarnation: Incarnation,
    pub ctx: Arc<Context>,
    cache: Arc<RunCache>,
    events: mpsc::Receiver<Pending>,
    pub view: SwfObject,
    worth: Option<u64>,
    swf: Stream,
    jobs: Stream,
    /// When the controller would run its next pass (only the active instance runs them).
    pub wake_at: Option<Timestamp>,
}

fn jobs_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs")
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

impl Instance {
    /// A fresh process: caches listed from the world, the ScheduledWorkflow as the world has it.
    pub fn start(
        label: char,
        incarnation: Incarnation,
        client: Client,
        clock: &SimClock,
        swf: &Value,
        jobs: &[Value],
    ) -> Option<Self> {
        let metrics = Arc::new(Metrics::default());
        let (events, rx) = Events::channel(metrics.clone());
        let (wake, _) = mpsc::unbounded_channel();
        let runs = RunCaches::new(client.clone(), None, wake, metrics.clone(), Default::default());
        let listed = jobs.iter().filter_map(decode::<RunObject>).collect();
        let cache = RunCache::preloaded(RunKind::parse("batch/v1", "Job"), jobs_resource(), listed);
        runs.insert(cache.clone());
        let clock = clock.clone();
        let ctx = Context {
            client,
            settings: Settings::new(None, "UTC", vec![]),
            clock: Clock::from_fn(move || clock.now()),
            runs,
            status: StatusWriter::default(),
            events,
            backoff: Backoff::default(),
            leader: Leader::always(),
            metrics,
            lanes: Default::default(),
        };
        let view: SwfObject = decode(swf)?;
        Some(Instance {
            label,
            incarnation,
            ctx: Arc::new(ctx),
            cache,
            events: rx,
            worth: worth_a_pass(&view),
            view,
            swf: Stream::default(),
            jobs: Stream::default(),
            wake_at: None,
        })
    }

    pub fn enqueue(&mut self, event: WatchEvent, at: Timestamp) {
        match event.change {
            Change::Swf(_) => self.swf.push(event, at),
            Change::Job { .. } => self.jobs.push(event, at),
        }
    }

    pub fn next_delivery(&self) -> Option<Timestamp> {
        self.swf.head().into_iter().chain(self.jobs.head()).min()
    }

    /// Delivers the earliest event due at `now` (the ScheduledWorkflow's first on a tie).
    /// Returns whether it wakes a pass, and a line for the trace.
    pub fn deliver(&mut self, now: Timestamp) -> Option<(bool, String)> {
        let swf_first = match (self.swf.head(), self.jobs.head()) {
            (Some(s), Some(j)) => s <= j,
            (s, _) => s.is_some(),
        };
        let stream = if swf_first { &mut self.swf } else { &mut self.jobs };
        if stream.head()? > now {
            return None;
        }
        let event = stream.0.pop_front()?.event;
        Some(match event.change {
            Change::Swf(obj) => self.observe_swf(SwfObject::clone(&obj)),
            Change::Job {
                name,
                obj,
                deleted,
                what,
            } => {
                let run = RunObject::clone(&obj);
                let woken = if deleted {
                    self.cache.delete(&run)
                } else {
                    runs::applied(&self.cache, &self.ctx.runs.created, run)
                };
                (!woken.is_empty(), format!("{name} {what}"))
            }
        })
    }

    fn observe_swf(&mut self, view: SwfObject) -> (bool, String) {
        self.ctx.status.observed(&view);
        let worth = worth_a_pass(&view);
        let woke = worth != self.worth;
        self.worth = worth;
        let line = format!(
            "gen {} rv {}",
            view.metadata.generation.unwrap_or(0),
            view.metadata.resource_version.as_deref().unwrap_or("?")
        );
        self.view = view;
        (woke, line)
    }

    /// The ScheduledWorkflow watch was lost (410 Gone) and listed again: the view is the
    /// world's, undelivered events are superseded, and the controller passes every schedule.
    pub fn relist_swf(&mut self, obj: &Value) {
        self.swf.0.clear();
        if let Some(view) = decode::<SwfObject>(obj) {
            self.observe_swf(view);
        }
    }

    /// The Job watch was lost and listed again: the cache becomes the world's Jobs (removing
    /// what is gone, applying the rest). Returns whether anything changed (that wakes a pass).
    pub fn relist_jobs(&mut self, jobs: &[Value]) -> bool {
        self.jobs.0.clear();
        let listed: Vec<RunObject> = jobs.iter().filter_map(decode::<RunObject>).collect();
        let names: BTreeSet<Option<String>> = listed.iter().map(|r| r.metadata.name.clone()).collect();
        let mut changed = false;
        for cached in self.cache.owned_by(super::world::UID) {
            if !names.contains(&cached.metadata.name) {
                changed |= !self.cache.delete(&cached).is_empty();
            }
        }
        for run in listed {
            changed |= !self.cache.apply(run).is_empty();
        }
        changed
    }

    /// What has not been delivered yet.
    /// What the instance has not been told, for a pass that plans from the object at
    /// resourceVersion `planned_rv` (its view, or a newer object it wrote or read).
    pub fn lag(&self, planned_rv: u64) -> Lag {
        let foreign = |e: &WatchEvent| e.cause != Cause::Operator(self.incarnation);
        let newer = |e: &WatchEvent| match &e.change {
            Change::Swf(obj) => rv_of(obj) > planned_rv,
            Change::Job { .. } => false,
        };
        let jobs = self.jobs.0.iter().filter_map(|q| match &q.event.change {
            Change::Job { name, .. } => Some(name.clone()),
            Change::Swf(_) => None,
        });
        let foreign_job_names =
            self.jobs
                .0
                .iter()
                .filter(|q| foreign(&q.event))
                .filter_map(|q| match &q.event.change {
                    Change::Job { name, .. } => Some(name.clone()),
                    Change::Swf(_) => None,
                });
        Lag {
            jobs: jobs.collect(),
            foreign_job_names: foreign_job_names.collect(),
            foreign_swf: self.swf.0.iter().any(|q| foreign(&q.event) && newer(&q.event)),
        }
    }

    /// Everything undelivered is delivered by `now` at the latest (the calm phase).
    pub fn hurry(&mut self, now: Timestamp) {
        for q in self.swf.0.iter_mut().chain(self.jobs.0.iter_mut()) {
            q.at = q.at.min(now);
        }
    }

    /// The reasons of the Kubernetes Events the instance published since the last call.
    pub fn published(&mut self) -> Vec<String> {
        let mut reasons = Vec::new();
        while let Ok(p) = self.events.try_recv() {
            reasons.push(p.reason);
        }
        reasons
    }
}

/// An object's resourceVersion as the simulation's number (0 when absent).
pub fn rv_of(obj: &crate::model::stored::SwfObject) -> u64 {
    obj.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
