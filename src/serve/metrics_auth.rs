//! Who may read `/metrics` on the secure metrics port, as controller-runtime's secure metrics
//! decide it: the caller's bearer token is checked with a TokenReview, then a
//! SubjectAccessReview asks whether that user may `get` the non-resource URL `/metrics`
//! (`deploy/base/rbac.yaml`'s `swf-operator-metrics-reader` grants it). Answers are cached
//! per token for `TTL`; a caller is told only 401 or 403, never the API server's words.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};
use moka::future::Cache;
use sha2::{Digest, Sha256};

/// How long an answer about a token is kept.
pub const TTL: Duration = Duration::from_secs(10);
const TOKENS: u64 = 1_000;
const MAX_TOKEN_BYTES: usize = 16 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Forbidden,
    Unauthenticated,
}

pub struct MetricsAuth {
    client: Client,
    answers: Cache<[u8; 32], Verdict>,
}

impl MetricsAuth {
    /// Reviews made with `client` (the operator's identity: it may create TokenReviews and
    /// SubjectAccessReviews).
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(MetricsAuth {
            client,
            answers: Cache::builder().max_capacity(TOKENS).time_to_live(TTL).build(),
        })
    }

    async fn verdict(&self, token: &str) -> Result<Verdict, StatusCode> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.answers
            .try_get_with(key, self.review(token))
            .await
            .map_err(|e: Arc<StatusCode>| *e)
    }

    async fn review(&self, token: &str) -> Result<Verdict, StatusCode> {
        let unavailable = |e: kube::Error| {
            tracing::warn!(error = %e, "cannot review a caller of /metrics");
            StatusCode::SERVICE_UNAVAILABLE
        };
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(unavailable)?
            .status
            .unwrap_or_default();
        let Some(user) = reviewed.user.filter(|_| reviewed.authenticated == Some(true)) else {
            return Ok(Verdict::Unauthenticated);
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
            .map_err(unavailable)?
            .status
            .is_some_and(|s| s.allowed);
        Ok(if allowed { Verdict::Allowed } else { Verdict::Forbidden })
    }
}

/// The middleware in front of `/metrics`.
pub async fn require(State(auth): State<Arc<MetricsAuth>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "a bearer token is required").into_response();
    };
    match auth.verdict(token).await {
        Ok(Verdict::Allowed) => next.run(req).await,
        Ok(Verdict::Forbidden) => (StatusCode::FORBIDDEN, "this identity may not get /metrics").into_response(),
        Ok(Verdict::Unauthenticated) => (StatusCode::UNAUTHORIZED, "the bearer token is not valid").into_response(),
        Err(status) => (status, "cannot check the caller now; try again").into_response(),
    }
}
