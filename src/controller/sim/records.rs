//! What the world logs: every run ever created (with its origin, finish and deletion), the
//! user's edits, the status writes, the requests of each pass; each stamped with its place in
//! one global order (`Seq`) and its sim time. The invariants read these, never the operator.

use jiff::Timestamp;
use serde_json::Value;

use crate::model::{
    crd::ScheduledWorkflowSpec,
    keys::{BACKFILL_RUN_ANNOTATION, SERVED_RUN_NOW_ANNOTATION},
};

/// A place in the one order of everything that happens in a seed.
pub type Seq = u64;

/// One life of an operator instance: a crash starts a new one (with no memory of the last).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Incarnation(pub u32);

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    User,
    /// The cluster itself: a Job finishing.
    Cluster,
    Operator(Incarnation),
}

/// What a run was created for, read from the object the operator sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Scheduled,
    Backfill(String),
    RunNow(String),
}

impl Origin {
    /// Read from the annotations the operator puts on the runs it creates.
    pub fn of(obj: &Value) -> Origin {
        let annotation = |key: &str| obj["metadata"]["annotations"][key].as_str().map(str::to_string);
        match (
            annotation(SERVED_RUN_NOW_ANNOTATION),
            annotation(BACKFILL_RUN_ANNOTATION),
        ) {
            (Some(v), _) => Origin::RunNow(v),
            (None, Some(v)) => Origin::Backfill(v),
            (None, None) => Origin::Scheduled,
        }
    }

    pub fn is_backfill(&self) -> bool {
        matches!(self, Origin::Backfill(_))
    }

    /// Scheduled and backfill runs are runs of ticks; a run-now run is not.
    pub fn is_tick(&self) -> bool {
        !matches!(self, Origin::RunNow(_))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Scheduled => f.write_str("scheduled"),
            Origin::Backfill(v) => write!(f, "backfill {v}"),
            Origin::RunNow(v) => write!(f, "run-now {v}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub seq: Seq,
    pub at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Finished {
    pub when: Stamp,
    pub failed: bool,
    /// The finish time the Job reports (the cluster's clock: sim time plus the seed's skew).
    pub reported: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Deleted {
    pub when: Stamp,
    pub by: Cause,
}

/// One run ever created (a name may be reused after a deletion; the uid never is).
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub uid: String,
    pub name: String,
    pub tick: Option<Timestamp>,
    pub origin: Origin,
    pub created: Stamp,
    /// The pass that created it.
    pub pass: u64,
    /// Runs of its class (backfill, or the schedule's own) active right after it was created,
    /// itself included (indexes into `World::runs`).
    pub busy: Vec<usize>,
    pub finished: Option<Finished>,
    pub deleted: Option<Deleted>,
    pub removed: Option<Stamp>,
}

impl RunRecord {
    /// Not finished and not being deleted: counts against maxConcurrency.
    pub fn active(&self) -> bool {
        self.finished.is_none() && self.deleted.is_none()
    }

    pub fn deleted_by_user_before(&self, seq: Seq) -> bool {
        self.deleted
            .as_ref()
            .is_some_and(|d| d.by == Cause::User && d.when.seq < seq)
    }

    pub fn deleted_before(&self, seq: Seq) -> bool {
        self.deleted.as_ref().is_some_and(|d| d.when.seq < seq)
    }

    pub fn describe(&self) -> String {
        let tick = self.tick.map_or("-".into(), super::time::tick);
        format!("{} (uid {}, {}, tick {tick})", self.name, self.uid, self.origin)
    }
}

/// A user's change of the spec or the annotations, with what they were after it.
#[derive(Clone)]
pub struct UserEdit {
    pub when: Stamp,
    /// The object's resourceVersion after the edit.
    pub rv: u64,
    pub spec: ScheduledWorkflowSpec,
}

/// A status write that reached the world.
pub struct StatusWrite {
    pub when: Stamp,
    pub rv: u64,
    pub by: Cause,
    pub pass: u64,
    pub status: Value,
}

/// What one request of a pass did (for the invariants about a whole pass, and the trace).
#[derive(Clone, Debug)]
pub struct Request {
    pub seq: Seq,
    pub method: &'static str,
    pub name: String,
    pub code: u16,
    /// A fault the simulation injected (the answer is the fault's, not the world's).
    pub fault: Option<&'static str>,
    pub detail: Detail,
}

#[derive(Clone, Debug)]
pub enum Detail {
    Create {
        tick: Option<Timestamp>,
        origin: Origin,
    },
    /// The object read, if it exists: its origin, and whether it had finished.
    Get {
        found: Option<(Origin, bool)>,
    },
    Delete {
        was_active: bool,
    },
    Status,
    Unknown,
}

/// The pass the operator is running now, and the requests it has made.
pub struct PassLog {
    pub id: u64,
    pub incarnation: Incarnation,
    pub requests: Vec<Request>,
    /// The object as a `GET` read it afresh (after a status write conflicted), and when.
    pub reread: Option<(Seq, crate::model::stored::SwfObject)>,
}
