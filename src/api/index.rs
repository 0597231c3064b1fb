//! The JobService's view of ScheduledWorkflows: a watch cache (in the API's scope: one
//! namespace, or all) kept as a `Catalog`: each object by uid, each ListJobs scope in every
//! sort order. Reads are served from it after an authorization check; an unknown id is a 404
//! without any request.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::StreamExt;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        watcher::{self, Event},
    },
};
use tracing::warn;

use super::catalog::Catalog;
use crate::model::stored::SwfObject;

#[derive(Clone)]
pub struct Index {
    catalog: Arc<RwLock<Catalog>>,
    listed: tokio::sync::watch::Sender<bool>,
}

impl Index {
    /// Starts the watch (with the API's own identity) in `namespace`, or everywhere.
    pub fn start(own: Client, namespace: Option<&str>) -> Index {
        let api: Api<SwfObject> = match namespace {
            Some(ns) => Api::namespaced(own, ns),
            None => Api::all(own),
        };
        let index = Index {
            catalog: Arc::default(),
            listed: tokio::sync::watch::Sender::new(false),
        };
        let stream = watcher::watcher(api, watcher::Config::default().any_semantic())
            .backoff(crate::serve::watch_backoff::WatchBackoff::default());
        let this = index.clone();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            // A relist is built aside and swapped in whole: readers keep the last full view.
            let mut relist: Option<Catalog> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => relist = Some(Catalog::default()),
                    Ok(Event::InitApply(o)) => relist.get_or_insert_with(Catalog::default).upsert(o),
                    Ok(Event::InitDone) => {
                        *this.write() = relist.take().unwrap_or_default();
                        this.listed.send_replace(true);
                    }
                    Ok(Event::Apply(o)) => this.write().upsert(o),
                    Ok(Event::Delete(o)) => {
                        if let Some(uid) = &o.metadata.uid {
                            this.write().remove(uid);
                        }
                    }
                    Err(e) => warn!(error = %e, "job index watch error"),
                }
            }
        });
        index
    }

    /// The catalog, to read (a page is cut under this lock; keep it short).
    pub fn read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The object with this uid, if the cache has it.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<SwfObject>> {
        self.read().get(uid)
    }

    /// Adds what a create returned, so the creator can read it at once.
    pub fn remember(&self, obj: SwfObject) {
        self.write().upsert(obj);
    }

    /// Drops what a delete removed, so the caller no longer reads it.
    pub fn forget(&self, uid: &str) {
        self.write().remove(uid);
    }

    /// True once the first list has completed.
    pub fn ready(&self) -> bool {
        *self.listed.borrow()
    }
}
