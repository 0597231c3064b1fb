//! The floor: an ideal client that creates exactly the Jobs swf-operator would create at each
//! tick (rendered by swf-operator's own `render`, with the same names, labels and owner
//! references, before the tick), all at once over keep-alive connections, with no status write
//! and no event. What this API server can do for a client with nothing else to do: the
//! benchmark's lower bound for trigger lag and API server cost per run.
//!
//! A process of its own (`bench floor NAMESPACE`), started like a controller, so its CPU and
//! memory are measured the same way. It runs until it is stopped.

use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::{Api, api::PostParams};
use swf_operator::{
    model::crd::ScheduledWorkflow,
    scheduling::{
        render::{self, Origin, Owner, RunRequest},
        validate::{self, Validated},
    },
};

/// Creates in flight at once (each on its own keep-alive connection).
const CONNECTIONS: usize = 32;

pub async fn run(namespace: &str) {
    let client = kube::Client::try_default().await.unwrap();
    let swfs: Api<ScheduledWorkflow> = Api::namespaced(client.clone(), namespace);
    let schedules: Vec<(Owner, Validated)> = swfs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|swf| {
            let owner = Owner {
                name: swf.metadata.name.clone().unwrap_or_default(),
                namespace: namespace.to_string(),
                uid: swf.metadata.uid.clone().unwrap_or_default(),
            };
            (owner, validate::validate(&swf.spec, "UTC").unwrap())
        })
        .collect();
    let path = format!("/apis/batch/v1/namespaces/{namespace}/jobs");
    eprintln!("floor: {} schedules in {namespace}", schedules.len());
    for index in 1.. {
        // Every tick is a whole minute (the schedules are `0 * * * * *`).
        let now = Timestamp::now().as_second();
        let tick = Timestamp::from_second((now / 60 + 1) * 60).unwrap();
        let bodies: Vec<Vec<u8>> = schedules
            .iter()
            .map(|(owner, v)| {
                let request = RunRequest {
                    name: render::run_name(&owner.name, tick),
                    scheduled: tick,
                    index,
                    run_uuid: uuid::Uuid::new_v4().to_string(),
                    origin: Origin::Scheduled,
                };
                serde_json::to_vec(&render::render(owner, None, v, &request, tick)).unwrap()
            })
            .collect();
        let wait = tick.as_microsecond() - Timestamp::now().as_microsecond();
        tokio::time::sleep(Duration::from_micros(u64::try_from(wait).unwrap_or(0))).await;
        let failed = futures::stream::iter(bodies)
            .map(|body| {
                let (client, path) = (client.clone(), path.clone());
                async move {
                    let request = kube::core::Request::new(path)
                        .create(&PostParams::default(), body)
                        .unwrap();
                    client.request_text(request).await.is_err()
                }
            })
            .buffer_unordered(CONNECTIONS)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        eprintln!(
            "floor: tick {tick}: {} created, {failed} failed",
            schedules.len() - failed
        );
    }
}
