//! Whether the user who creates or changes a schedule may create its runs themselves: a
//! `SubjectAccessReview` for `create` on the run kind's resource in the schedule's namespace.
//! Without this check the operator, which creates runs with its own identity, would let a user
//! who may create ScheduledWorkflows (and nothing else) run any Job or Workflow under any
//! service account of the namespace.
//!
//! A review may come from anyone who reaches the webhook's port (unless it demands the API
//! server's client certificate), so the answers say only what the requesting user needs:
//! no reason from the API server's authorizer, no API server error text (those go to the
//! log). Run kinds are looked up once: found ones for 5 minutes, missing ones for 30 s.

use std::time::Duration;

use k8s_openapi::api::{
    authentication::v1::UserInfo,
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{
    Api, Client,
    api::{ApiResource, GroupVersionKind, PostParams},
    discovery::Scope,
};
use moka::future::Cache;

use crate::model::{names, runkind::RunKind};

/// How long a resolved kind → resource is kept (kinds rarely move).
const RESOURCE_TTL: Duration = Duration::from_secs(300);
/// How long a kind the cluster does not serve is remembered as such (a new CRD is seen
/// within this; a review naming made-up kinds costs one lookup per kind per 30 s).
const MISSING_TTL: Duration = Duration::from_secs(30);
/// Kinds remembered, each cache.
const KINDS: u64 = 1_000;
/// Under the webhook's own timeout (5 s in deploy/), so the user reads our message rather than
/// the API server's "context deadline exceeded".
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error(
        "{user} may not create {resource} in namespace {namespace:?}, and this schedule would create them (`kubectl auth can-i create {resource} -n {namespace} --as {user}` says no); ask for that permission, or have someone who has it apply the schedule"
    )]
    Forbidden {
        user: String,
        resource: String,
        namespace: String,
    },
    #[error("run kind {kind} is not served by this cluster; install its CRD before the schedule")]
    UnknownKind { kind: RunKind },
    #[error(
        "run kind {kind} is cluster-scoped; runs are created in the schedule's namespace, so only namespaced kinds can be runs"
    )]
    ClusterScoped { kind: RunKind },
    /// The check could not be made; the request is refused rather than let through unchecked.
    #[error("cannot check whether {user} may create {kind} in namespace {namespace:?} now; try again")]
    Unchecked {
        user: String,
        kind: RunKind,
        namespace: String,
    },
}

impl Denied {
    /// The metrics verdict.
    pub fn verdict(&self) -> &'static str {
        match self {
            Denied::Forbidden { .. } | Denied::UnknownKind { .. } | Denied::ClusterScoped { .. } => "unauthorized",
            Denied::Unchecked { .. } => "error",
        }
    }
}

/// What API discovery says about a run kind.
#[derive(Clone, Debug)]
enum Lookup {
    Namespaced(ApiResource),
    ClusterScoped,
}

pub struct Authorizer {
    client: Client,
    resources: Cache<RunKind, Lookup>,
    /// Kinds discovery did not find (not errors of our own, such as a timeout).
    missing: Cache<RunKind, ()>,
}

impl Authorizer {
    pub fn new(client: Client) -> Self {
        Authorizer {
            client,
            resources: Cache::builder().max_capacity(KINDS).time_to_live(RESOURCE_TTL).build(),
            missing: Cache::builder().max_capacity(KINDS).time_to_live(MISSING_TTL).build(),
        }
    }

    /// Ok when `user` may create `kind` in `namespace`.
    pub async fn may_create(&self, user: &UserInfo, namespace: &str, kind: &RunKind) -> Result<(), Denied> {
        let who = user.username.clone().unwrap_or_else(|| "(no user name)".into());
        let unchecked = |why: String| {
            tracing::warn!(user = %who, %kind, namespace, %why, "cannot check a schedule's run kind");
            Denied::Unchecked {
                user: who.clone(),
                kind: kind.clone(),
                namespace: namespace.to_string(),
            }
        };
        let resource = self.resource(kind).await?;
        let review = access_review(user, namespace, &resource);
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| unchecked("the SubjectAccessReview timed out".into()))?
            .map_err(|e| unchecked(format!("SubjectAccessReview: {}", crate::serve::kube_error::said(&e))))?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(());
        }
        Err(Denied::Forbidden {
            user: who,
            resource: resource_name(&resource),
            namespace: namespace.to_string(),
        })
    }

    /// The API resource of `kind` (namespaced), through API discovery.
    async fn resource(&self, kind: &RunKind) -> Result<ApiResource, Denied> {
        let unknown = || Denied::UnknownKind { kind: kind.clone() };
        if !plausible(kind) || self.missing.contains_key(kind) {
            return Err(unknown());
        }
        let client = self.client.clone();
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let found = self
            .resources
            .try_get_with(kind.clone(), async move {
                let (resource, capabilities) =
                    tokio::time::timeout(CALL_TIMEOUT, kube::discovery::pinned_kind(&client, &gvk))
                        .await
                        .map_err(|_| Missed::TimedOut)?
                        .map_err(Missed::Discovery)?;
                Ok::<_, Missed>(match capabilities.scope {
                    Scope::Namespaced => Lookup::Namespaced(resource),
                    Scope::Cluster => Lookup::ClusterScoped,
                })
            })
            .await;
        match found {
            Ok(Lookup::Namespaced(resource)) => Ok(resource),
            Ok(Lookup::ClusterScoped) => Err(Denied::ClusterScoped { kind: kind.clone() }),
            Err(missed) => {
                tracing::info!(%kind, why = %missed, "run kind not found by API discovery");
                // Remembered only when the API server said so, not after a failure to ask.
                if let Missed::Discovery(e) = &*missed
                    && not_served(e)
                {
                    self.missing.insert(kind.clone(), ()).await;
                }
                Err(unknown())
            }
        }
    }
}

/// Why discovery did not find a kind.
#[derive(Debug, thiserror::Error)]
enum Missed {
    #[error("API discovery timed out")]
    TimedOut,
    #[error("{0}")]
    Discovery(kube::Error),
}

/// Whether discovery's error says the kind is not served (rather than that it could not ask).
fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404) || matches!(e, kube::Error::Discovery(_))
}

/// A kind that could be served: a DNS group (or none), a DNS-label version and a kind name
/// of letters and digits. Anything else is refused without asking the API server.
fn plausible(kind: &RunKind) -> bool {
    (kind.group.is_empty() || names::is_dns1123_subdomain(&kind.group))
        && names::is_dns1123_label(&kind.version)
        && (1..=63).contains(&kind.kind.len())
        && kind.kind.bytes().all(|b| b.is_ascii_alphanumeric())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_kinds_are_looked_up() {
        for ok in [("batch/v1", "Job"), ("v1", "Pod"), ("argoproj.io/v1alpha1", "Workflow")] {
            assert!(plausible(&RunKind::parse(ok.0, ok.1)), "{ok:?}");
        }
        let long = "x".repeat(300);
        for bad in [
            ("batch/v1", "Job!"),
            ("batch/v 1", "Job"),
            ("Batch/v1", "Job"),
            (long.as_str(), "Job"),
            ("batch/v1", ""),
            ("batch/v1", long.as_str()),
        ] {
            assert!(!plausible(&RunKind::parse(bad.0, bad.1)), "{bad:?}");
        }
    }

    #[test]
    fn denials_say_what_the_user_needs_and_nothing_of_the_api_server() {
        let forbidden = Denied::Forbidden {
            user: "alice".into(),
            resource: "jobs.batch".into(),
            namespace: "team-a".into(),
        };
        assert_eq!(
            forbidden.to_string(),
            "alice may not create jobs.batch in namespace \"team-a\", and this schedule would create them (`kubectl auth can-i create jobs.batch -n team-a --as alice` says no); ask for that permission, or have someone who has it apply the schedule"
        );
        let unchecked = Denied::Unchecked {
            user: "alice".into(),
            kind: RunKind::parse("batch/v1", "Job"),
            namespace: "team-a".into(),
        };
        assert!(unchecked.to_string().ends_with("now; try again"), "{unchecked}");
        assert_eq!(unchecked.verdict(), "error");
    }
}
