//! Creating one run, or adopting it: both stages that create runs (the schedule's and the
//! backfill's) go through here, and each decides what an outcome means for it.

use kube::{Api, Resource, core::Request};
use tracing::info;

use super::Pass;
use crate::{
    controller::{error::Error, events::Kind, lanes::Lane},
    model::stored::RunObject,
    scheduling::{
        render::{self, Origin, RunRequest},
        runstate::{self, ObservedRun},
    },
    serve::kube_error::is_lasting,
};

/// How one create went.
pub(super) enum Outcome {
    /// Created now; `index` is the run's `workflowIndex`.
    Created { index: i64 },
    /// An earlier pass (or replica) had created it: adopted.
    Adopted { index: i64 },
    /// The name is held by an object this schedule does not own: the tick cannot have a run.
    Conflict,
    /// The create failed; `attempts` counts this tick's failed creates so far, `lasting` says a
    /// retry will not fix it (RBAC, admission, schema: `error::is_lasting`).
    Failed { error: Error, attempts: u32, lasting: bool },
}

/// What the API server answered.
enum Answer {
    New(RunObject),
    Existing(RunObject),
    Conflict,
}

impl Pass<'_> {
    /// Creates the run of `req`, or adopts it; a run that exists afterwards joins `runs`.
    /// `Err` only when this replica may no longer write.
    pub(super) async fn create_one(&self, req: &RunRequest, runs: &mut Vec<ObservedRun>) -> Result<Outcome, Error> {
        let lane = if req.origin.is_backfill() {
            Lane::Later
        } else {
            Lane::Due
        };
        let _slot = self.ctx.lanes.enter(lane).await;
        self.target.may_write(self.ctx)?;
        let service_account = self.checked.spec.service_account.as_deref();
        let body = render::render(&self.target.owner, service_account, &self.checked.v, req, self.now);
        let ns = &self.target.owner.namespace;
        let answer = match self.create_or_adopt(&req.name, body).await {
            Ok(answer) => answer,
            Err(error) => {
                self.ctx.metrics.run(ns, "failed");
                let attempts = self.ctx.backoff.tick_failed(&self.target.owner.uid, req.scheduled);
                let lasting = error.api_source().is_some_and(is_lasting);
                return Ok(Outcome::Failed {
                    error,
                    attempts,
                    lasting,
                });
            }
        };
        let (run, fresh) = match answer {
            Answer::New(run) => {
                self.ctx
                    .runs
                    .created
                    .remember(&self.target.owner.uid, run.clone(), self.now);
                (run, true)
            }
            Answer::Existing(run) => {
                // Adopted before the cache shows it: it holds its slot as a created run does.
                self.ctx
                    .runs
                    .created
                    .remember(&self.target.owner.uid, run.clone(), self.now);
                (run, false)
            }
            Answer::Conflict => {
                self.ctx.metrics.run(ns, "conflict");
                return Ok(Outcome::Conflict);
            }
        };
        self.ctx.metrics.run(ns, if fresh { "created" } else { "adopted" });
        let observed = runstate::observe(&self.checked.cache.kind, &run);
        let index = observed.status.index;
        self.announce(req, fresh);
        runs.retain(|r| r.status.name != observed.status.name);
        runs.push(observed);
        Ok(if fresh {
            Outcome::Created { index }
        } else {
            Outcome::Adopted { index }
        })
    }

    /// Logs the run; a new one also gets a `RunCreated` event (and, if scheduled, its lag).
    fn announce(&self, req: &RunRequest, fresh: bool) {
        let (ns, swf) = (&self.target.owner.namespace, &self.target.owner.name);
        if !fresh {
            info!(%ns, %swf, run = %req.name, "adopted a run an earlier pass created");
            return;
        }
        if req.origin == Origin::Scheduled {
            let lag = (self.now - req.scheduled).total(jiff::Unit::Second).unwrap_or(0.0);
            self.ctx.metrics.trigger_lag(lag);
        }
        let backfill = req.origin.is_backfill();
        info!(%ns, %swf, run = %req.name, scheduled = %req.scheduled, backfill, "created run");
        let what = if backfill { " (backfill)" } else { "" };
        let kind = &self.checked.cache.kind.kind;
        let note = format!("Created {kind} {} for {}{what}", req.name, req.scheduled);
        self.publish(Kind::Normal, "RunCreated", note);
    }

    /// POSTs the run; on `AlreadyExists` reads the object: owned by this schedule it is
    /// adopted (a run of ours being deleted is not: the tick waits until it is gone), owned by
    /// anything else it is a conflict. An answer that may hide a create that happened (a 5xx, a
    /// lost connection) is followed by a read too, so such a run holds its slot at once
    /// instead of when the cache shows it (issue 18, R12).
    async fn create_or_adopt(&self, name: &str, body: serde_json::Value) -> Result<Answer, Error> {
        let owner = &self.target.owner;
        let resource = &self.checked.cache.resource;
        let create = |source| Error::CreateRun {
            name: name.to_string(),
            source,
        };
        let url = <RunObject as Resource>::url_path(resource, Some(&owner.namespace));
        let bytes = serde_json::to_vec(&body).map_err(|e| create(kube::Error::SerdeError(e)))?;
        let request = Request::new(url)
            .create(&crate::controller::post_params(), bytes)
            .map_err(|e| create(kube::Error::BuildRequest(e)))?;
        let api: Api<RunObject> = Api::namespaced_with(self.ctx.client.clone(), &owner.namespace, resource);
        match self.ctx.client.request::<RunObject>(request).await {
            Ok(run) => Ok(Answer::New(run)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(name).await.map_err(|source| Error::ReadRun {
                    name: name.to_string(),
                    source,
                })?;
                self.classify(existing)
            }
            // Not found (or not readable): the create's own error is the one to report.
            Err(source) if may_have_happened(&source) => match api.get(name).await {
                Ok(existing) => self.classify(existing),
                Err(_) => Err(create(source)),
            },
            Err(source) => Err(create(source)),
        }
    }

    /// An existing object with the run's name: ours (adopted), ours but being deleted (the
    /// tick waits until it is gone), or someone else's (a conflict).
    fn classify(&self, existing: RunObject) -> Result<Answer, Error> {
        let owners = existing.metadata.owner_references.iter().flatten();
        let ours = owners.clone().any(|r| r.uid == self.target.owner.uid);
        match (ours, existing.metadata.deletion_timestamp.is_some()) {
            (false, _) => Ok(Answer::Conflict),
            (true, true) => Err(Error::RunBeingDeleted {
                name: existing.metadata.name.unwrap_or_default(),
            }),
            (true, false) => Ok(Answer::Existing(existing)),
        }
    }
}

/// A create that failed this way may still have happened: the API server answered 5xx (it may
/// have stored the object before failing), or the answer was lost.
fn may_have_happened(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(s) => s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
