//! The JobService operations, shared by the HTTP and gRPC front ends.
//!
//! Every operation is called for an authenticated caller (`gate` authenticates before it reads
//! a request's body). Reads come from the API's watch
//! cache (`index`) after a SubjectAccessReview: an unknown id, or one the caller may not read,
//! is a 404 that costs no request and reveals nothing. Writes are made as the caller, so
//! Kubernetes RBAC has the last word.

use kube::{
    Api, Resource,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};

use super::{
    auth::{Auth, Caller, Freshness, MultiUser, User},
    catalog::Scope,
    convert,
    error::{ApiError, Code},
    index::Index,
    list,
    ordered::Ordered,
    proto::{Job, ListJobsRequest, ListJobsResponse, ResourceType},
};
use crate::model::{crd::ScheduledWorkflow, stored::SwfObject};

/// How the API is set up.
#[derive(Clone, Debug, Default)]
pub struct ApiSettings {
    /// Namespace of jobs created or listed without a NAMESPACE reference; `None`: such a
    /// request is a 400 (never the operator's own namespace by default).
    pub default_namespace: Option<String>,
    /// Only this namespace is served (a namespace-scoped install).
    pub scope: Option<String>,
    /// The API's own namespace, and the service accounts there a job may not run as (the
    /// API's and the scheduler's: they would hand a user's workflow their rights).
    pub own_namespace: Option<String>,
    pub refused_service_accounts: Vec<String>,
    /// KFP's create-time changes to a workflow.
    pub create: convert::CreateOptions,
    /// DANGEROUS, local development only: requests without a token act as the API itself.
    pub allow_anonymous: bool,
    pub multi_user: Option<MultiUser>,
}

pub struct JobApi {
    auth: Auth,
    index: Index,
    settings: ApiSettings,
    /// Workflow manifests being parsed at once (each up to 200,000 nodes, about 10 MiB).
    manifest_parses: std::sync::Arc<tokio::sync::Semaphore>,
    /// Filtered ListJobs pages being cut at once (each checks every job of its scope).
    filtered_lists: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Manifests parsed at once; more creates wait.
const MANIFEST_PARSES: usize = 2;
/// Filtered pages cut at once; more wait (unfiltered pages never do).
const FILTERED_LISTS: usize = 2;

impl JobApi {
    /// Starts the watch cache of jobs (with the API's own identity, in its scope).
    pub fn new(base: kube::Config, own: kube::Client, settings: ApiSettings) -> JobApi {
        if settings.allow_anonymous {
            tracing::warn!(
                "--api-insecure-anonymous: requests without a token act as the API itself; never use this outside local development"
            );
        }
        JobApi {
            index: Index::start(own.clone(), settings.scope.as_deref()),
            auth: Auth::new(base, own, settings.allow_anonymous, settings.multi_user.clone()),
            settings,
            manifest_parses: std::sync::Arc::new(tokio::sync::Semaphore::new(MANIFEST_PARSES)),
            filtered_lists: std::sync::Arc::new(tokio::sync::Semaphore::new(FILTERED_LISTS)),
        }
    }

    /// True once the watch cache has listed everything.
    pub fn ready(&self) -> bool {
        self.index.ready()
    }

    pub fn multi_user(&self) -> Option<&MultiUser> {
        self.auth.multi_user()
    }

    /// Who is calling (the gate asks before it reads a body; for a write, `Freshness::Now`);
    /// 401 otherwise.
    pub async fn authenticate(&self, caller: &Caller, freshness: Freshness) -> Result<User, ApiError> {
        self.auth.authenticate(caller, freshness).await
    }

    fn in_scope(&self, namespace: &str) -> Result<(), ApiError> {
        match &self.settings.scope {
            Some(scope) if scope != namespace => Err(ApiError::new(
                Code::PermissionDenied,
                format!("this API serves namespace {scope} only"),
            )),
            _ => Ok(()),
        }
    }

    /// The job with `id`, if `user` may read it; otherwise a 404 that does not say which.
    async fn readable(
        &self,
        user: &User,
        id: &str,
        freshness: Freshness,
    ) -> Result<std::sync::Arc<SwfObject>, ApiError> {
        let obj = self.index.by_uid(id).ok_or_else(|| ApiError::not_found(id))?;
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        if self.in_scope(&ns).is_err() || !self.auth.allowed(user, "get", &ns, freshness).await? {
            return Err(ApiError::not_found(id));
        }
        Ok(obj)
    }

    pub async fn create_job(&self, user: &User, job: Job) -> Result<Job, ApiError> {
        let (ns, swf) = self.convert(job).await?;
        self.in_scope(&ns)?;
        self.refuse_own_identity(&ns, &swf)?;
        let api: Api<SwfObject> = Api::namespaced(self.auth.client_for(user)?, &ns);
        let request = kube::core::Request::new(ScheduledWorkflow::url_path(&(), Some(&ns)));
        let body = serde_json::to_vec(&swf).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        let request = request
            .create(&PostParams::default(), body)
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        let created: SwfObject = api
            .into_client()
            .request(request)
            .await
            .map_err(|e| ApiError::from_kube(e, "create job"))?;
        let job = convert::swf_to_job(&created);
        self.index.remember(created);
        Ok(job)
    }

    /// The namespace and resource of a job to create. Parsing its manifest costs memory and
    /// CPU in proportion to its nodes: two at once, on a blocking thread.
    async fn convert(&self, job: Job) -> Result<(String, ScheduledWorkflow), ApiError> {
        let _parsing = self
            .manifest_parses
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(Code::Unavailable, "the API is shutting down"))?;
        let default_namespace = self.settings.default_namespace.clone();
        let options = self.settings.create.clone();
        tokio::task::spawn_blocking(move || convert::job_to_swf(&job, default_namespace.as_deref(), &options))
            .await
            .map_err(|_| ApiError::new(Code::Internal, "converting the job failed"))?
    }

    /// A job must not run as the API's (or operator's) own service account in its namespace:
    /// that would hand a user's workflow the operator's rights. Every place a run names an
    /// account counts (`accounts`); there, a name that is not literal cannot be checked.
    fn refuse_own_identity(&self, ns: &str, swf: &ScheduledWorkflow) -> Result<(), ApiError> {
        let Some(own_ns) = self.settings.own_namespace.as_ref().filter(|own| *own == ns) else {
            return Ok(());
        };
        let found = super::accounts::of(&swf.spec);
        let refused = &self.settings.refused_service_accounts;
        if let Some((sa, path)) = found.named.iter().find(|(sa, _)| refused.contains(sa)) {
            return Err(ApiError::invalid(format!(
                "{path}: {sa} is the operator's own service account in {own_ns} and cannot run jobs"
            )));
        }
        if let Some(path) = found.unchecked.first() {
            return Err(ApiError::invalid(format!(
                "{path}: in {own_ns}, where the operator's own service accounts are, a run's service account must be a literal name (this one is an expression or cannot be read)"
            )));
        }
        Ok(())
    }

    pub async fn get_job(&self, user: &User, id: &str) -> Result<Job, ApiError> {
        Ok(convert::swf_to_job(&*self.readable(user, id, Freshness::Cached).await?))
    }

    pub async fn list_jobs(&self, user: &User, req: &ListJobsRequest) -> Result<ListJobsResponse, ApiError> {
        let (namespace, experiment) = self.list_scope(req)?;
        self.in_scope(&namespace)?;
        if !self.auth.allowed(user, "list", &namespace, Freshness::Cached).await? {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("{} may not list jobs in namespace {namespace}", user.name),
            ));
        }
        let scope = Scope { namespace, experiment };
        if !list::filtered(&req.filter, &req.page_token) {
            // A range walk of the scope's order and the page's conversion: microseconds.
            return page_of(&self.index, &scope, req);
        }
        // A filter checks every job of the scope: on a blocking thread, a few at once, so a
        // large namespace never stalls the threads serving other calls.
        let _scanning = self
            .filtered_lists
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(Code::Unavailable, "the API is shutting down"))?;
        let index = self.index.clone();
        let req = req.clone();
        tokio::task::spawn_blocking(move || page_of(&index, &scope, &req))
            .await
            .map_err(|_| ApiError::new(Code::Internal, "listing the jobs failed"))?
    }

    /// The namespace (and experiment) a ListJobs request is about.
    fn list_scope(&self, req: &ListJobsRequest) -> Result<(String, Option<String>), ApiError> {
        let key = req.resource_reference_key.clone().unwrap_or_default();
        let default = || {
            self.settings.default_namespace.clone().ok_or_else(|| {
                ApiError::invalid("resource_reference_key: give a NAMESPACE (this API has no default namespace)")
            })
        };
        match ResourceType::try_from(key.r#type).unwrap_or(ResourceType::UnknownResourceType) {
            ResourceType::UnknownResourceType if key.id.is_empty() => Ok((default()?, None)),
            // Checked before it is reviewed or cached: a namespace name is a DNS label.
            ResourceType::Namespace if !key.id.is_empty() => {
                match crate::model::names::namespace_problem("resource_reference_key.id", &key.id) {
                    Some(problem) => Err(ApiError::invalid(problem)),
                    None => Ok((key.id, None)),
                }
            }
            ResourceType::Experiment if key.id.len() > MAX_EXPERIMENT_ID => Err(ApiError::invalid(format!(
                "resource_reference_key.id: an experiment id has at most {MAX_EXPERIMENT_ID} characters"
            ))),
            ResourceType::Experiment if !key.id.is_empty() => Ok((default()?, Some(key.id))),
            other => Err(ApiError::invalid(format!(
                "resource_reference_key: {} {:?} is not supported (use NAMESPACE or EXPERIMENT with an id)",
                other.as_str_name(),
                key.id
            ))),
        }
    }

    pub async fn set_enabled(&self, user: &User, id: &str, enabled: bool) -> Result<(), ApiError> {
        let obj = self.readable(user, id, Freshness::Now).await?;
        let (ns, name) = names(&obj);
        let api: Api<SwfObject> = Api::namespaced(self.auth.client_for(user)?, &ns);
        // The uid in the patch is a precondition: a recreated object of the same name is not
        // changed.
        let patch = serde_json::json!({"metadata": {"uid": id}, "spec": {"enabled": enabled}});
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(updated) => {
                self.index.remember(updated); // the caller reads their own write
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Err(ApiError::not_found(id)),
            Err(e) => Err(ApiError::from_kube(e, &format!("change mode of job {id}"))),
        }
    }

    pub async fn delete_job(&self, user: &User, id: &str) -> Result<(), ApiError> {
        let obj = self.readable(user, id, Freshness::Now).await?;
        let (ns, name) = names(&obj);
        let api: Api<SwfObject> = Api::namespaced(self.auth.client_for(user)?, &ns);
        // Background cascade: the runs go too (KFP's default for custom resources).
        let params = DeleteParams::background().preconditions(kube::api::Preconditions {
            uid: Some(id.to_string()),
            resource_version: None,
        });
        match api.delete(&name, &params).await {
            Ok(_) => {
                self.index.forget(id);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Err(ApiError::not_found(id)),
            Err(e) => Err(ApiError::from_kube(e, &format!("delete job {id}"))),
        }
    }
}

/// One page of the jobs of `scope` for `req`; only the page's objects are converted, after
/// the index's lock is released.
fn page_of(index: &Index, scope: &Scope, req: &ListJobsRequest) -> Result<ListJobsResponse, ApiError> {
    let token_scope = format!(
        "{}/{}",
        scope.namespace,
        scope.experiment.as_deref().unwrap_or_default()
    );
    let query = list::Query {
        page_token: &req.page_token,
        page_size: req.page_size,
        sort_by: &req.sort_by,
        filter: &req.filter,
        scope: &token_scope,
    };
    let page = {
        let catalog = index.read();
        match catalog.scope(scope) {
            Some(jobs) => list::page(jobs, &query)?,
            // No job in scope: still checks the query (a bad one is a 400 either way).
            None => list::page(&Ordered::default(), &query)?,
        }
    };
    Ok(ListJobsResponse {
        jobs: page.items.iter().map(|o| convert::swf_to_job(o)).collect(),
        total_size: page.total_size,
        next_page_token: page.next_page_token,
    })
}

/// KFP's experiment ids are UUIDs; anything much longer is not one.
const MAX_EXPERIMENT_ID: usize = 256;

fn names(obj: &SwfObject) -> (String, String) {
    (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}
