//! Whether the user who creates or changes a schedule may create its runs themselves: a
//! `SubjectAccessReview` for `create` on the run kind's resource in the schedule's namespace.
//! Without this check the operator, which creates runs with its own identity, would let a user
//! who may create ScheduledWorkflows (and nothing else) run any Job or Workflow under any
//! service account of the namespace.

use std::time::Duration;

use k8s_openapi::api::{
    authentication::v1::UserInfo,
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{
    Api, Client,
    api::{ApiResource, GroupVersionKind, PostParams},
};
use moka::future::Cache;

use crate::runkind::RunKind;

/// How long a resolved kind → resource is kept (kinds rarely move; a new CRD is resolved on
/// first use, as failures are not kept).
const RESOURCE_TTL: Duration = Duration::from_secs(300);
/// Under the webhook's own timeout (5 s in deploy/), so the user reads our message rather than
/// the API server's "context deadline exceeded".
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error(
        "{user} may not create {resource} in namespace {namespace:?}, and this schedule would create them (`kubectl auth can-i create {resource} -n {namespace} --as {user}` says no{reason}); ask for that permission, or have someone who has it apply the schedule"
    )]
    Forbidden {
        user: String,
        resource: String,
        namespace: String,
        reason: String,
    },
    #[error("run kind {kind} is not served by this cluster ({why}); install its CRD before the schedule")]
    UnknownKind { kind: RunKind, why: String },
    /// The check could not be made; the request is refused rather than let through unchecked.
    #[error("cannot check whether {user} may create {kind} in namespace {namespace:?}: {why}")]
    Unchecked {
        user: String,
        kind: RunKind,
        namespace: String,
        why: String,
    },
}

impl Denied {
    /// The metrics verdict.
    pub fn verdict(&self) -> &'static str {
        match self {
            Denied::Forbidden { .. } | Denied::UnknownKind { .. } => "unauthorized",
            Denied::Unchecked { .. } => "error",
        }
    }
}

pub struct Authorizer {
    client: Client,
    resources: Cache<RunKind, ApiResource>,
}

impl Authorizer {
    pub fn new(client: Client) -> Self {
        Authorizer {
            client,
            resources: Cache::builder().max_capacity(1000).time_to_live(RESOURCE_TTL).build(),
        }
    }

    /// Ok when `user` may create `kind` in `namespace`.
    pub async fn may_create(&self, user: &UserInfo, namespace: &str, kind: &RunKind) -> Result<(), Denied> {
        let who = user.username.clone().unwrap_or_else(|| "(no user name)".into());
        let unchecked = |why: String| Denied::Unchecked {
            user: who.clone(),
            kind: kind.clone(),
            namespace: namespace.to_string(),
            why,
        };
        let resource = self.resource(kind).await?;
        let review = access_review(user, namespace, &resource);
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| unchecked("the SubjectAccessReview timed out".into()))?
            .map_err(|e| unchecked(format!("SubjectAccessReview: {e}")))?;
        let status = answer.status.unwrap_or_default();
        if status.allowed {
            return Ok(());
        }
        let reason = status.reason.filter(|r| !r.is_empty()).map(|r| format!(": {r}"));
        Err(Denied::Forbidden {
            user: who,
            resource: resource_name(&resource),
            namespace: namespace.to_string(),
            reason: reason.unwrap_or_default(),
        })
    }

    /// The API resource of `kind`, through API discovery.
    async fn resource(&self, kind: &RunKind) -> Result<ApiResource, Denied> {
        let client = self.client.clone();
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        self.resources
            .try_get_with(kind.clone(), async move {
                tokio::time::timeout(CALL_TIMEOUT, kube::discovery::pinned_kind(&client, &gvk))
                    .await
                    .map_err(|_| "API discovery timed out".to_string())?
                    .map(|(resource, _)| resource)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|why| Denied::UnknownKind {
                kind: kind.clone(),
                why: why.to_string(),
            })
    }
}

/// `jobs.batch`, `workflows.argoproj.io`, `configmaps`: the form `kubectl auth can-i` takes.
fn resource_name(r: &ApiResource) -> String {
    if r.group.is_empty() {
        r.plural.clone()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

fn access_review(user: &UserInfo, namespace: &str, resource: &ApiResource) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("create".into()),
                group: Some(resource.group.clone()),
                version: Some(resource.version.clone()),
                resource: Some(resource.plural.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}
