//! The gate in front of every JobService call, HTTP and gRPC alike. In order:
//!
//! 1. **Who is calling**, from the headers alone (a TokenReview at most). A caller who is not
//!    authenticated gets a 401 and nothing of the body is read.
//! 2. **The body**, read within the call's size limit and deadline and within the budget all
//!    bodies share, and its structure counted before anything decodes it.
//! 3. **A slot**: at most `concurrent_requests` calls are worked on at once.
//!
//! Only then does the handler run, with the caller (`User`) in the request's extensions and the
//! body in memory.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    Limits,
    auth::{Caller, Freshness, User},
    error::{ApiError, Code},
    service::JobApi,
    wire,
};
use crate::serve::{body, json_bounds, listen::Peer};

pub struct Gate {
    api: Arc<JobApi>,
    limits: Limits,
    budget: body::Budget,
    slots: Arc<Semaphore>,
    schema: wire::Schema,
}

/// What one call may bring, and whether it writes (then who is calling is asked anew).
struct Call<'a> {
    limit: usize,
    shape: Shape<'a>,
    writes: bool,
}

enum Shape<'a> {
    /// A JSON body (HTTP).
    Json,
    /// gRPC frames of this request message type.
    Grpc(&'a str),
}

/// A call let through: who, what they sent, and what they hold until it is answered.
struct Admitted {
    user: User,
    bytes: Bytes,
    _reserved: Option<OwnedSemaphorePermit>,
    _slot: OwnedSemaphorePermit,
}

impl Admitted {
    /// Runs the handler with the caller in the extensions and the body from memory; what the
    /// call holds (its share of the budget, its slot) is given back once it is answered.
    async fn run(self, mut parts: Parts, next: Next) -> Response {
        parts.extensions.insert(self.user.clone());
        let response = next
            .run(Request::from_parts(parts, Body::from(self.bytes.clone())))
            .await;
        drop(self);
        response
    }
}

impl Gate {
    pub fn new(api: Arc<JobApi>, limits: Limits) -> anyhow::Result<Gate> {
        Ok(Gate {
            api,
            budget: body::Budget::new(limits.body_budget),
            slots: Arc::new(Semaphore::new(limits.concurrent_requests)),
            schema: wire::Schema::from_descriptors(super::DESCRIPTORS)?,
            limits,
        })
    }

    async fn admit(&self, parts: &Parts, body: Body, call: Call<'_>) -> Result<Admitted, ApiError> {
        let peer = parts.extensions.get::<Peer>();
        let caller = Caller::from_headers(&parts.headers, peer, self.api.multi_user())?;
        let freshness = if call.writes { Freshness::Now } else { Freshness::Cached };
        let user = self.api.authenticate(&caller, freshness).await?;
        let declared = body::declared_length(&parts.headers);
        let read = body::read(body, declared, call.limit, self.limits.body_timeout, &self.budget)
            .await
            .map_err(body_error)?;
        self.check_shape(&read.bytes, &call.shape)?;
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(Code::Unavailable, "the API is shutting down"))?;
        Ok(Admitted {
            user,
            bytes: read.bytes,
            _reserved: read.reserved,
            _slot: slot,
        })
    }

    fn check_shape(&self, bytes: &[u8], shape: &Shape<'_>) -> Result<(), ApiError> {
        match shape {
            Shape::Json => json_bounds::check(bytes, self.limits.json)
                .map(|_| ())
                .map_err(|e| ApiError::invalid(e.to_string())),
            Shape::Grpc(message) => self
                .schema
                .check_grpc_body(message, bytes, self.limits.wire)
                .map_err(|e| ApiError::invalid(e.to_string())),
        }
    }

    /// What an HTTP call may bring: a job (create), or a small body (nothing else needs one).
    fn http_call(&self, parts: &Parts) -> Call<'static> {
        let create =
            parts.method == axum::http::Method::POST && parts.uri.path().trim_end_matches('/') == super::http::JOBS;
        Call {
            limit: if create {
                self.limits.max_create_bytes
            } else {
                self.limits.max_small_body
            },
            shape: Shape::Json,
            writes: parts.method != axum::http::Method::GET,
        }
    }

    /// What a gRPC call may bring, by its method; `None` for a method the service lacks.
    fn grpc_call<'a>(&'a self, path: &str) -> Option<Call<'a>> {
        let message = self.schema.request_type(path)?;
        let limit = if message == ".api.CreateJobRequest" {
            self.limits.max_create_bytes
        } else {
            self.limits.max_small_body
        };
        let reads = [".api.GetJobRequest", ".api.ListJobsRequest"];
        Some(Call {
            limit,
            shape: Shape::Grpc(message),
            writes: !reads.contains(&message),
        })
    }
}

fn body_error(e: body::BodyError) -> ApiError {
    let code = match e {
        body::BodyError::TooLarge(_) => Code::ResourceExhausted,
        body::BodyError::TooSlow(_) => Code::DeadlineExceeded,
        body::BodyError::Broken => Code::InvalidArgument,
    };
    ApiError::new(code, e.to_string())
}

/// The HTTP front end's gate (a middleware on the job routes).
pub async fn http(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let call = gate.http_call(&parts);
    match gate.admit(&parts, body, call).await {
        Err(e) => super::http::error_response(&e),
        Ok(admitted) => admitted.run(parts, next).await,
    }
}

/// The gRPC front end's gate (a middleware on the gRPC router): JobService methods only;
/// server reflection is public.
pub async fn grpc(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api.JobService/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Some(call) = gate.grpc_call(parts.uri.path()) else {
        return tonic::Status::unimplemented("no such method")
            .into_http::<Body>()
            .into_response();
    };
    match gate.admit(&parts, body, call).await {
        Err(e) => e.to_grpc().into_http::<Body>().into_response(),
        Ok(admitted) => admitted.run(parts, next).await,
    }
}
