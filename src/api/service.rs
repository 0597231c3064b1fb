//! The JobService operations, shared by the HTTP and gRPC front ends. Every Kubernetes call
//! that reads or changes a job is made with the caller's own bearer token, so Kubernetes RBAC
//! decides who may list, create, enable or delete in which namespace.

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::AuthInfo,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tracing::warn;

use super::{
    convert,
    error::{ApiError, Code},
    list,
    proto::{Job, ListJobsRequest, ListJobsResponse, ResourceType},
};
use crate::crd::ScheduledWorkflow;

/// Who is calling: the bearer token of the `authorization` header, if any.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub token: Option<String>,
}

impl Caller {
    /// From an `authorization` header value (`Bearer <token>`).
    pub fn from_header(value: Option<&str>) -> Caller {
        let token = value
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Caller { token }
    }
}

pub struct JobApi {
    /// Where the cluster is; the identity is replaced by the caller's for every request.
    base: kube::Config,
    /// The operator's own identity: used only to find which namespace a job id lives in (and
    /// for every call when `allow_anonymous` is on, for local development).
    own: Client,
    store: reflector::Store<ScheduledWorkflow>,
    default_namespace: String,
    allow_anonymous: bool,
}

impl JobApi {
    /// Starts the id → namespace index (a watch with the operator's identity).
    pub fn new(base: kube::Config, own: Client, default_namespace: String, allow_anonymous: bool) -> JobApi {
        let (store, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(Api::<ScheduledWorkflow>::all(own.clone()), watcher::Config::default()),
        )
        .default_backoff()
        .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    warn!(error = %e, "job index watch error");
                }
            }
        });
        if allow_anonymous {
            warn!(
                "--api-insecure-anonymous: requests without a token act as the operator itself; never use this outside local development"
            );
        }
        JobApi {
            base,
            own,
            store,
            default_namespace,
            allow_anonymous,
        }
    }

    fn client_for(&self, caller: &Caller) -> Result<Client, ApiError> {
        match &caller.token {
            Some(token) => {
                let mut config = self.base.clone();
                config.auth_info = AuthInfo {
                    token: Some(token.clone().into()),
                    ..Default::default()
                };
                Client::try_from(config).map_err(|e| ApiError::new(Code::Internal, format!("client: {e}")))
            }
            None if self.allow_anonymous => Ok(self.own.clone()),
            None => Err(ApiError::new(
                Code::Unauthenticated,
                "Request header error: there is no bearer token in the authorization header",
            )),
        }
    }

    /// Namespace and name of the job with this id (the resource's uid).
    async fn locate(&self, id: &str) -> Result<(String, String), ApiError> {
        let found = |swf: &ScheduledWorkflow| (swf.namespace().unwrap_or_default(), swf.name_any());
        if let Some(swf) = self.store.state().iter().find(|s| s.uid().as_deref() == Some(id)) {
            return Ok(found(swf));
        }
        // Not indexed yet (just created elsewhere): ask the API server.
        let all = Api::<ScheduledWorkflow>::all(self.own.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| ApiError::from_kube(e, "list jobs"))?;
        all.items
            .iter()
            .find(|s| s.uid().as_deref() == Some(id))
            .map(found)
            .ok_or_else(|| ApiError::not_found(id))
    }

    async fn get_swf(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Api<ScheduledWorkflow>, ScheduledWorkflow), ApiError> {
        let client = self.client_for(caller)?;
        let (ns, name) = self.locate(id).await?;
        let api: Api<ScheduledWorkflow> = Api::namespaced(client, &ns);
        let swf = api
            .get(&name)
            .await
            .map_err(|e| ApiError::from_kube(e, &format!("get job {id}")))?;
        if swf.uid().as_deref() != Some(id) {
            return Err(ApiError::not_found(id));
        }
        Ok((api, swf))
    }

    pub async fn create_job(&self, caller: &Caller, job: Job) -> Result<Job, ApiError> {
        let client = self.client_for(caller)?;
        let (ns, swf) = convert::job_to_swf(&job, &self.default_namespace)?;
        let api: Api<ScheduledWorkflow> = Api::namespaced(client, &ns);
        let created = api
            .create(&PostParams::default(), &swf)
            .await
            .map_err(|e| ApiError::from_kube(e, "create job"))?;
        Ok(convert::swf_to_job(&created))
    }

    pub async fn get_job(&self, caller: &Caller, id: &str) -> Result<Job, ApiError> {
        Ok(convert::swf_to_job(&self.get_swf(caller, id).await?.1))
    }

    pub async fn list_jobs(&self, caller: &Caller, req: &ListJobsRequest) -> Result<ListJobsResponse, ApiError> {
        let client = self.client_for(caller)?;
        let key = req.resource_reference_key.clone().unwrap_or_default();
        let (namespace, experiment) = match ResourceType::try_from(key.r#type)
            .unwrap_or(ResourceType::UnknownResourceType)
        {
            ResourceType::UnknownResourceType if key.id.is_empty() => (self.default_namespace.clone(), None),
            ResourceType::Namespace if !key.id.is_empty() => (key.id.clone(), None),
            ResourceType::Experiment if !key.id.is_empty() => (self.default_namespace.clone(), Some(key.id.clone())),
            other => {
                return Err(ApiError::invalid(format!(
                    "resource_reference_key: {} {:?} is not supported (use NAMESPACE or EXPERIMENT with an id)",
                    other.as_str_name(),
                    key.id
                )));
            }
        };
        let api: Api<ScheduledWorkflow> = Api::namespaced(client, &namespace);
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| ApiError::from_kube(e, "list jobs"))?;
            items.extend(page.items);
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => params = params.continue_token(&c),
                _ => break,
            }
        }
        let jobs: Vec<Job> = items
            .iter()
            .filter(|s| experiment.is_none() || s.spec.experiment_id == experiment)
            .map(convert::swf_to_job)
            .collect();
        let scope = format!("{namespace}/{}", experiment.unwrap_or_default());
        let page = list::page(
            jobs,
            &list::Query {
                page_token: &req.page_token,
                page_size: req.page_size,
                sort_by: &req.sort_by,
                filter: &req.filter,
                scope: &scope,
            },
        )?;
        Ok(ListJobsResponse {
            jobs: page.jobs,
            total_size: page.total_size,
            next_page_token: page.next_page_token,
        })
    }

    pub async fn set_enabled(&self, caller: &Caller, id: &str, enabled: bool) -> Result<(), ApiError> {
        let (api, swf) = self.get_swf(caller, id).await?;
        let patch = serde_json::json!({"spec": {"enabled": enabled}});
        api.patch(&swf.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ApiError::from_kube(e, &format!("change mode of job {id}")))?;
        Ok(())
    }

    pub async fn delete_job(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        let (api, swf) = self.get_swf(caller, id).await?;
        // Background cascade: the runs go too (KFP's default for custom resources).
        let params = DeleteParams::background().preconditions(kube::api::Preconditions {
            uid: Some(id.to_string()),
            resource_version: None,
        });
        api.delete(&swf.name_any(), &params)
            .await
            .map_err(|e| ApiError::from_kube(e, &format!("delete job {id}")))?;
        Ok(())
    }
}
