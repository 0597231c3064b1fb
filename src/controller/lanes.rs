//! The order in which passes that run at once send their writes: a run due now is created
//! before any status is written. At a tick, thousands of passes want a create and a status
//! patch each; sent in the order the passes reach them, the patches (a custom resource with its
//! whole spec, decoded, merged, validated and sent to every watcher) share the API server's time
//! with the creates, and every run arrives later. Here a free slot goes to a waiting due create
//! first; status writes, deletes and backfill creates take the slots no due create waits for.
//! Later writes cannot starve for good: a schedule has one pass at a time and its pass creates
//! before it writes, so the due creates waiting are at most one per schedule, and they drain.
//! Issue 21 §2; docs/performance.md says what it bought.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::oneshot;

/// Writes in flight at once: what the ideal client of the benchmark's floor sends (32).
pub const WRITES_IN_FLIGHT: usize = 32;

/// Which lane a write goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// The run of a tick that is due now (scheduled or run-now), and what makes room for it.
    Due,
    /// Everything that can wait a moment: status writes, deletes, backfill runs.
    Later,
}

/// Bounds the writes in flight; a freed slot goes to the oldest waiting `Due` write, else to
/// the oldest waiting `Later` one.
#[derive(Clone)]
pub struct Lanes(Arc<Mutex<Slots>>);

struct Slots {
    free: usize,
    due: VecDeque<oneshot::Sender<Permit>>,
    later: VecDeque<oneshot::Sender<Permit>>,
}

/// A slot, held while the write is in flight; dropped, it goes to the next waiting write.
pub struct Permit(Option<Lanes>);

impl Lanes {
    /// `parallel` writes in flight at once.
    pub fn new(parallel: usize) -> Self {
        Lanes(Arc::new(Mutex::new(Slots {
            free: parallel.max(1),
            due: VecDeque::new(),
            later: VecDeque::new(),
        })))
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding it; a poisoned lock still holds consistent counts.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a slot in this lane's turn.
    pub async fn enter(&self, lane: Lane) -> Permit {
        let waiting = {
            let mut slots = self.slots();
            // A slot is free only while no write waits (`release` hands it on first).
            if slots.free > 0 {
                slots.free -= 1;
                return Permit(Some(self.clone()));
            }
            let (tx, rx) = oneshot::channel();
            match lane {
                Lane::Due => slots.due.push_back(tx),
                Lane::Later => slots.later.push_back(tx),
            }
            rx
        };
        // A closed channel cannot happen (a sender is only dropped after a send); were it to,
        // the write goes on without a slot rather than waiting for good.
        waiting.await.unwrap_or(Permit(None))
    }

    /// Hands a freed slot to the next write that still waits, or frees it.
    fn release(&self) {
        loop {
            let next = {
                let mut slots = self.slots();
                match slots.due.pop_front().or_else(|| slots.later.pop_front()) {
                    Some(next) => next,
                    None => {
                        slots.free += 1;
                        return;
                    }
                }
            };
            // Sent without the lock held: a permit that its receiver drops unreceived is
            // released (and locks) again on whichever thread drops it.
            match next.send(Permit(Some(self.clone()))) {
                Ok(()) => return,
                // That write was cancelled: its permit comes back; the next waiting write gets it.
                Err(mut unused) => unused.0 = None,
            }
        }
    }
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes::new(WRITES_IN_FLIGHT)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(lanes) = self.0.take() {
            lanes.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex as StdMutex, time::Duration};

    use super::*;

    /// The order in which writes arriving in `arrivals`' order get the one slot, which is
    /// held when they arrive.
    async fn order_of(arrivals: &[(&'static str, Lane)]) -> Vec<&'static str> {
        let lanes = Lanes::new(1);
        let granted = Arc::new(StdMutex::new(Vec::new()));
        let first = lanes.enter(Lane::Due).await;
        let mut tasks = Vec::new();
        for &(name, lane) in arrivals {
            let (lanes, granted) = (lanes.clone(), granted.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = lanes.enter(lane).await;
                granted.lock().unwrap().push(name);
                tokio::task::yield_now().await; // in flight a moment
            }));
            tokio::task::yield_now().await; // each waits before the next arrives
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        granted.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn due_creates_go_before_writes_that_waited_longer() {
        let order = order_of(&[
            ("status a", Lane::Later),
            ("create 1", Lane::Due),
            ("status b", Lane::Later),
            ("create 2", Lane::Due),
        ])
        .await;
        assert_eq!(order, ["create 1", "create 2", "status a", "status b"]);
    }

    #[tokio::test]
    async fn a_later_write_does_not_take_a_free_slot_a_due_create_waits_for() {
        let lanes = Lanes::new(1);
        let held = lanes.enter(Lane::Due).await;
        let due = lanes.enter(Lane::Due);
        tokio::pin!(due);
        assert!(futures::poll!(due.as_mut()).is_pending());
        drop(held);
        let later = lanes.enter(Lane::Later);
        tokio::pin!(later);
        assert!(
            futures::poll!(later.as_mut()).is_pending(),
            "the slot went to the due create"
        );
        let due = due.await;
        drop(due);
        tokio::time::timeout(Duration::from_secs(5), later).await.unwrap();
    }

    #[tokio::test]
    async fn slots_bound_the_writes_in_flight() {
        let lanes = Lanes::new(2);
        let (_a, _b) = (lanes.enter(Lane::Later).await, lanes.enter(Lane::Due).await);
        let third = lanes.enter(Lane::Due);
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
    }

    #[tokio::test]
    async fn a_cancelled_write_passes_its_turn_on() {
        let lanes = Lanes::new(1);
        let held = lanes.enter(Lane::Due).await;
        {
            let cancelled = lanes.enter(Lane::Due);
            tokio::pin!(cancelled);
            assert!(futures::poll!(cancelled.as_mut()).is_pending());
        }
        let later = lanes.enter(Lane::Later);
        tokio::pin!(later);
        assert!(futures::poll!(later.as_mut()).is_pending());
        drop(held);
        let waited = tokio::time::timeout(Duration::from_secs(5), later).await;
        assert!(waited.is_ok(), "the slot skipped the cancelled create");
        drop(waited);
        let again = tokio::time::timeout(Duration::from_secs(5), lanes.enter(Lane::Due)).await;
        assert!(again.is_ok(), "and the slot was given back");
    }
}
