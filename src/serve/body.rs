//! Reading a request body within bounds: a size limit, a deadline, and a budget shared by
//! the bodies being read and decoded at once.
//!
//! A body first reserves its size in the budget (its `Content-Length`, else the call's limit;
//! once read, what it did not use is given back) and keeps it until the request is answered,
//! so the bodies held at once never exceed the budget; more wait, in order. A request
//! without a body reserves nothing.

use std::{sync::Arc, time::Duration};

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const KIB: usize = 1024;

/// Room for the bodies of one server.
#[derive(Clone, Debug)]
pub struct Budget {
    /// One permit per KiB.
    kib: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    /// `total` bytes of bodies at once.
    pub fn new(total: usize) -> Budget {
        Budget {
            kib: Arc::new(Semaphore::new(total.div_ceil(KIB))),
            total,
        }
    }

    /// Reserves room for `bytes` (whole KiB), waiting while other bodies hold it.
    async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        if bytes == 0 {
            return None;
        }
        let kib = u32::try_from(bytes.min(self.total).div_ceil(KIB)).unwrap_or(u32::MAX);
        self.kib.clone().acquire_many_owned(kib).await.ok()
    }
}

/// Gives back what a reservation holds beyond `used` bytes.
fn shrink(reserved: &mut Option<OwnedSemaphorePermit>, used: usize) {
    if let Some(permit) = reserved {
        let keep = used.div_ceil(KIB);
        if let Some(excess) = permit.num_permits().checked_sub(keep).filter(|n| *n > 0) {
            drop(permit.split(excess));
        }
    }
}

/// A body read in full, and its share of the budget (held until dropped).
#[derive(Debug)]
pub struct Read {
    pub bytes: Bytes,
    pub reserved: Option<OwnedSemaphorePermit>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the {0} bytes this call accepts")]
    TooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    TooSlow(Duration),
    #[error("the request body could not be read")]
    Broken,
}

/// Reads `body` (which declares `declared` bytes, if it says) when it is at most `limit`
/// bytes and is in memory within `deadline`, waiting for room in `budget` included: bodies
/// queued behind slow ones give up with them, so the queue empties within one deadline.
pub async fn read(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    deadline: Duration,
    budget: &Budget,
) -> Result<Read, BodyError> {
    use axum::body::HttpBody;
    let expected = match declared {
        Some(n) if n > limit as u64 => return Err(BodyError::TooLarge(limit)),
        Some(n) => n as usize,
        // A request that says it has no body (a GET) reserves nothing.
        None if body.is_end_stream() => 0,
        None => limit,
    };
    let reserve_and_read = async {
        let reserved = budget.reserve(expected).await;
        (reserved, Limited::new(body, expected).collect().await)
    };
    let (mut reserved, collected) = tokio::time::timeout(deadline, reserve_and_read)
        .await
        .map_err(|_| BodyError::TooSlow(deadline))?;
    match collected {
        Ok(all) => {
            let bytes = all.to_bytes();
            shrink(&mut reserved, bytes.len());
            Ok(Read { bytes, reserved })
        }
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge(limit)),
        Err(_) => Err(BodyError::Broken),
    }
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_within_their_limit() {
        let budget = Budget::new(64 * KIB);
        let ok = read(Body::from("hello"), Some(5), 10, Duration::from_secs(1), &budget)
            .await
            .unwrap();
        assert_eq!(ok.bytes, "hello");
        assert_eq!(ok.reserved.as_ref().map(|p| p.num_permits()), Some(1), "one KiB");
        let none = read(Body::empty(), Some(0), 10, Duration::from_secs(1), &budget)
            .await
            .unwrap();
        assert!(none.reserved.is_none(), "no body, no reservation");
        let get = read(Body::empty(), None, 10, Duration::from_secs(1), &budget)
            .await
            .unwrap();
        assert!(
            get.reserved.is_none(),
            "a request that says it has no body reserves nothing"
        );
        assert_eq!(
            read(Body::from("hello"), Some(20), 10, Duration::from_secs(1), &budget)
                .await
                .unwrap_err(),
            BodyError::TooLarge(10),
            "refused on its declared length, unread"
        );
        assert_eq!(
            read(Body::from("x".repeat(20)), None, 10, Duration::from_secs(1), &budget)
                .await
                .unwrap_err(),
            BodyError::TooLarge(10)
        );
    }

    #[tokio::test]
    async fn bodies_share_the_budget_and_give_back_what_they_do_not_use() {
        let budget = Budget::new(8 * KIB);
        let unknown = read(Body::from("z"), None, 6 * KIB, Duration::from_secs(1), &budget)
            .await
            .unwrap();
        assert_eq!(
            unknown.reserved.as_ref().map(|p| p.num_permits()),
            Some(1),
            "reserved its limit, kept what it used"
        );
        drop(unknown);
        let first = read(
            Body::from("x".repeat(6 * KIB)),
            None,
            6 * KIB,
            Duration::from_secs(1),
            &budget,
        )
        .await
        .unwrap();
        assert!(first.reserved.is_some());
        let second = read(
            Body::from("y".repeat(4 * KIB)),
            Some(4 * KIB as u64),
            6 * KIB,
            Duration::from_secs(1),
            &budget,
        );
        let waited = tokio::time::timeout(Duration::from_millis(100), second).await;
        assert!(waited.is_err(), "waits while the first holds the budget");
        let third = read(
            Body::from("z"),
            Some(7 * KIB as u64),
            7 * KIB,
            Duration::from_millis(200),
            &budget,
        );
        assert_eq!(
            third.await.unwrap_err(),
            BodyError::TooSlow(Duration::from_millis(200)),
            "waiting for room counts against the deadline"
        );
        drop(first);
        let second = read(
            Body::from("y".repeat(4 * KIB)),
            Some(4 * KIB as u64),
            6 * KIB,
            Duration::from_secs(1),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(second.bytes.len(), 4 * KIB);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_fails_at_its_deadline() {
        let budget = Budget::new(64 * KIB);
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let slow = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        assert_eq!(
            read(slow, Some(10), 10, Duration::from_secs(3), &budget)
                .await
                .unwrap_err(),
            BodyError::TooSlow(Duration::from_secs(3))
        );
    }
}
