//! Who is calling and what they may do, decided before any other work.
//!
//! - **Authentication**: a bearer token is checked with a TokenReview (made with the API's own
//!   identity), or, in Kubeflow's multi-user mode, the user comes from the header the trusted
//!   proxy sets (`kubeflow-userid`; `identity` decides when it is believed). An invalid token
//!   is a 401 at the cost of one TokenReview, cached per token; nothing else is read.
//! - **Authorization**: a SubjectAccessReview for the user, verb and namespace, cached briefly.
//! - **Acting**: writes (create, enable/disable, delete) are made as the caller: with their
//!   token, or by impersonating the user (by name only, never groups). Kubernetes RBAC has the
//!   last word, and the audit log names the user. Clients are reused per caller (bounded).

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams, config::AuthInfo};
use moka::{future::Cache as AsyncCache, sync::Cache};
use sha2::{Digest, Sha256};

use super::error::{ApiError, Code};

/// Who is calling, from the request's headers.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The bearer token of the `authorization` header.
    pub token: Option<String>,
    /// The user named by the trusted proxy's header (multi-user mode only).
    pub proxied_user: Option<String>,
}

impl Caller {
    /// From a request's headers (HTTP headers or gRPC metadata) and its peer: the bearer token
    /// of `authorization`, and in multi-user mode the user the trusted proxy's header names
    /// (`identity::proxied_user`; a header it refuses is a 401).
    pub fn from_headers(
        headers: &axum::http::HeaderMap,
        peer: Option<&crate::serve::listen::Peer>,
        multi_user: Option<&MultiUser>,
    ) -> Result<Caller, ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let proxied_user = match multi_user {
            Some(mu) => super::identity::proxied_user(headers, peer.map(|p| p.addr.ip()), mu)?,
            None => None,
        };
        Ok(Caller { token, proxied_user })
    }
}

pub use super::identity::MultiUser;

/// Tokens with this audience are accepted in multi-user mode (KFP's).
pub const KFP_AUDIENCE: &str = "pipelines.kubeflow.org";
const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// How to act as them.
    pub acting: Acting,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Acting {
    /// With their own bearer token.
    Token(String),
    /// By impersonation (the trusted proxy's user).
    Impersonate,
    /// As the API itself (`--api-insecure-anonymous`, local development only).
    Own,
}

/// How old a cached answer a read may use; writes always ask again (`Freshness::Now`).
pub const AUTHN_TTL: Duration = Duration::from_secs(5);
pub const AUTHZ_TTL: Duration = Duration::from_secs(5);

/// How recent an answer about a caller must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Reads: an answer up to `AUTHN_TTL`/`AUTHZ_TTL` old (a revoked token or rule stops
    /// working for reads within that).
    Cached,
    /// Writes: asked now, so a deleted ServiceAccount's token or a removed rule stops them at
    /// once, even where the API acts by impersonation (which the API server cannot tie to a
    /// token).
    Now,
}
const CLIENT_TTL: Duration = Duration::from_secs(600);
/// Bytes each cache may hold (of user names, groups, tokens and namespaces).
const CACHED_BYTES: u64 = 16 << 20;
const CLIENTS: u64 = 256;
/// The longest bearer token reviewed (Kubernetes' are about 1 KiB; OIDC ID tokens a few).
pub const MAX_TOKEN_BYTES: usize = 16 << 10;

/// What a cached user costs, in bytes (for the caches' bounds).
fn weight(user: &User) -> usize {
    let token = match &user.acting {
        Acting::Token(t) => t.len(),
        _ => 0,
    };
    64 + user.name.len() + token + user.groups.iter().map(|g| g.len() + 24).sum::<usize>()
}

fn weight_u32(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

pub struct Auth {
    base: kube::Config,
    own: Client,
    allow_anonymous: bool,
    multi_user: Option<MultiUser>,
    /// Concurrent requests with the same token wait for one TokenReview.
    tokens: AsyncCache<[u8; 32], Option<User>>,
    reviews: AsyncCache<(User, &'static str, String), bool>,
    clients: Cache<User, Client>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn new(base: kube::Config, own: Client, allow_anonymous: bool, multi_user: Option<MultiUser>) -> Self {
        Auth {
            base,
            own,
            allow_anonymous,
            multi_user,
            tokens: AsyncCache::builder()
                .max_capacity(CACHED_BYTES)
                .weigher(|_, user: &Option<User>| weight_u32(32 + user.as_ref().map_or(0, weight)))
                .time_to_live(AUTHN_TTL)
                .build(),
            reviews: AsyncCache::builder()
                .max_capacity(CACHED_BYTES)
                .weigher(|(user, _, namespace): &(User, &'static str, String), _| {
                    weight_u32(weight(user) + namespace.len())
                })
                .time_to_live(AUTHZ_TTL)
                .build(),
            clients: Cache::builder().max_capacity(CLIENTS).time_to_idle(CLIENT_TTL).build(),
        }
    }

    pub fn multi_user(&self) -> Option<&MultiUser> {
        self.multi_user.as_ref()
    }

    /// The caller, authenticated; 401 otherwise.
    pub async fn authenticate(&self, caller: &Caller, freshness: Freshness) -> Result<User, ApiError> {
        if let (Some(_), Some(user)) = (&self.multi_user, &caller.proxied_user) {
            return Ok(User {
                name: user.clone(),
                groups: Vec::new(),
                acting: Acting::Impersonate,
            });
        }
        match &caller.token {
            Some(token) if token.len() > MAX_TOKEN_BYTES => Err(ApiError::new(
                Code::Unauthenticated,
                "the bearer token is not valid (longer than any token this API reviews)",
            )),
            Some(token) => self.review_token(token, freshness).await,
            None if self.allow_anonymous => Ok(User {
                name: "swf-operator:anonymous".into(),
                groups: Vec::new(),
                acting: Acting::Own,
            }),
            None => Err(ApiError::new(
                Code::Unauthenticated,
                "Request header error: there is no bearer token in the authorization header",
            )),
        }
    }

    async fn review_token(&self, token: &str, freshness: Freshness) -> Result<User, ApiError> {
        let user = match freshness {
            Freshness::Cached => self
                .tokens
                .try_get_with(digest(token), self.token_review(token))
                .await
                .map_err(|e: Arc<ApiError>| (*e).clone())?,
            Freshness::Now => {
                let user = self.token_review(token).await?;
                self.tokens.insert(digest(token), user.clone()).await;
                user
            }
        };
        user.ok_or_else(|| ApiError::new(Code::Unauthenticated, "the bearer token is not valid"))
    }

    /// A TokenReview with the API's identity: `None` when the token is not valid. A token for
    /// the API server acts as itself; in multi-user mode, a token for KFP's audience (which
    /// the API server would refuse) acts by impersonation.
    async fn token_review(&self, token: &str) -> Result<Option<User>, ApiError> {
        if let Some(user) = self.review(token, None).await? {
            return Ok(Some(User {
                acting: Acting::Token(token.to_string()),
                ..user
            }));
        }
        if self.multi_user.is_some()
            && let Some(user) = self.review(token, Some(KFP_AUDIENCE)).await?
        {
            // Impersonated by name only: RBAC for the impersonation names users (and, per
            // namespace, service accounts), never groups.
            return Ok(Some(User {
                acting: Acting::Impersonate,
                ..user
            }));
        }
        Ok(None)
    }

    async fn review(&self, token: &str, audience: Option<&str>) -> Result<Option<User>, ApiError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: audience.map(|a| vec![a.to_string()]),
            },
            ..Default::default()
        };
        // The caller is not authenticated yet: the API server's words stay in our log.
        let done = Api::<TokenReview>::all(self.own.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "TokenReview failed");
                ApiError::new(
                    Code::Unavailable,
                    "cannot authenticate the request now; try again later",
                )
            })?;
        let status = done.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        // An authenticator that ignores audiences answers without any (KFP checks this too).
        if let Some(wanted) = audience
            && !status.audiences.as_ref().is_some_and(|a| a.iter().any(|a| a == wanted))
        {
            return Ok(None);
        }
        let info = status.user.unwrap_or_default();
        Ok(Some(User {
            name: info.username.unwrap_or_default(),
            groups: info.groups.unwrap_or_default(),
            acting: Acting::Own, // set by the caller
        }))
    }

    /// Whether `user` may `verb` ScheduledWorkflows in `namespace` (a SubjectAccessReview).
    pub async fn allowed(
        &self,
        user: &User,
        verb: &'static str,
        namespace: &str,
        freshness: Freshness,
    ) -> Result<bool, ApiError> {
        if user.acting == Acting::Own {
            return Ok(true);
        }
        let key = (user.clone(), verb, namespace.to_string());
        match freshness {
            Freshness::Cached => self
                .reviews
                .try_get_with(key, self.access_review(user, verb, namespace))
                .await
                .map_err(|e: Arc<ApiError>| (*e).clone()),
            Freshness::Now => {
                let allowed = self.access_review(user, verb, namespace).await?;
                self.reviews.insert(key, allowed).await;
                Ok(allowed)
            }
        }
    }

    async fn access_review(&self, user: &User, verb: &'static str, namespace: &str) -> Result<bool, ApiError> {
        // An impersonated user is in `system:authenticated` as the API server will see them.
        let mut groups = user.groups.clone();
        if user.acting == Acting::Impersonate && !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                groups: Some(groups),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("kubeflow.org".into()),
                    resource: Some("scheduledworkflows".into()),
                    verb: Some(verb.into()),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let done = Api::<SubjectAccessReview>::all(self.own.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ApiError::new(Code::Unavailable, format!("cannot review access: {e}")))?;
        Ok(done.status.is_some_and(|s| s.allowed))
    }

    /// A client that acts as `user` (reused while they keep calling).
    pub fn client_for(&self, user: &User) -> Result<Client, ApiError> {
        if let Some(c) = self.clients.get(user) {
            return Ok(c);
        }
        let mut config = self.base.clone();
        match &user.acting {
            Acting::Own => return Ok(self.own.clone()),
            Acting::Token(token) => {
                config.auth_info = AuthInfo {
                    token: Some(token.clone().into()),
                    ..Default::default()
                };
            }
            Acting::Impersonate => {
                // The user alone, never groups: the API server adds system:authenticated (and a
                // service account's own groups).
                config.auth_info.impersonate = Some(user.name.clone());
                config.auth_info.impersonate_groups = None;
            }
        }
        let client = Client::try_from(config).map_err(|e| ApiError::new(Code::Internal, format!("client: {e}")))?;
        self.clients.insert(user.clone(), client.clone());
        Ok(client)
    }
}

/// Shared by the front ends.
pub type SharedAuth = Arc<Auth>;
