//! The JobService's view of ScheduledWorkflows: a watch cache (in the API's scope: one
//! namespace, or all), with an index from job id (the object's uid) to the object. Reads are
//! served from it after an authorization check; an unknown id is a 404 without any request.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        watcher::{self, Event},
    },
};
use tracing::warn;

use crate::stored::SwfObject;

#[derive(Clone)]
pub struct Index {
    by_uid: Arc<RwLock<HashMap<String, Arc<SwfObject>>>>,
    listed: tokio::sync::watch::Sender<bool>,
}

impl Index {
    /// Starts the watch (with the API's own identity) in `namespace`, or everywhere.
    pub fn start(own: Client, namespace: Option<&str>) -> Index {
        let api: Api<SwfObject> = match namespace {
            Some(ns) => Api::namespaced(own, ns),
            None => Api::all(own),
        };
        let by_uid: Arc<RwLock<HashMap<String, Arc<SwfObject>>>> = Arc::default();
        let listed = tokio::sync::watch::Sender::new(false);
        let index = Index {
            by_uid: by_uid.clone(),
            listed: listed.clone(),
        };
        let stream = watcher::watcher(api, watcher::Config::default().any_semantic())
            .backoff(crate::controller::backoff::WatchBackoff::default());
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            let mut relist: Option<HashMap<String, Arc<SwfObject>>> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => relist = Some(HashMap::new()),
                    Ok(Event::InitApply(o)) => insert(relist.get_or_insert_with(HashMap::new), o),
                    Ok(Event::InitDone) => {
                        *by_uid.write().unwrap_or_else(|p| p.into_inner()) = relist.take().unwrap_or_default();
                        listed.send_replace(true);
                    }
                    Ok(Event::Apply(o)) => insert(&mut by_uid.write().unwrap_or_else(|p| p.into_inner()), o),
                    Ok(Event::Delete(o)) => {
                        if let Some(uid) = &o.metadata.uid {
                            by_uid.write().unwrap_or_else(|p| p.into_inner()).remove(uid);
                        }
                    }
                    Err(e) => warn!(error = %e, "job index watch error"),
                }
            }
        });
        index
    }

    /// The object with this uid, if the cache has it.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<SwfObject>> {
        self.by_uid.read().unwrap_or_else(|p| p.into_inner()).get(uid).cloned()
    }

    /// Every object of `namespace` in the cache.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<SwfObject>> {
        self.by_uid
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|o| o.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect()
    }

    /// Adds what a create returned, so the creator can read it at once.
    pub fn remember(&self, obj: SwfObject) {
        insert(&mut self.by_uid.write().unwrap_or_else(|p| p.into_inner()), obj);
    }

    /// Drops what a delete removed, so the caller no longer reads it.
    pub fn forget(&self, uid: &str) {
        self.by_uid.write().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }

    /// True once the first list has completed.
    pub fn ready(&self) -> bool {
        *self.listed.borrow()
    }
}

fn insert(map: &mut HashMap<String, Arc<SwfObject>>, obj: SwfObject) {
    if let Some(uid) = obj.metadata.uid.clone() {
        map.insert(uid, Arc::new(obj));
    }
}
