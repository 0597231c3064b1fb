//! The validating admission webhook (docs/admission.md): the API server asks it about every
//! create of a ScheduledWorkflow and every update that changes `spec`, so a bad schedule is
//! refused at `kubectl apply` with every problem named, and a user can only schedule runs they
//! could create themselves. Every replica serves it; it needs no leadership.

pub mod args;
pub mod authorize;
pub mod review;
pub mod webhook_config;

use std::{sync::Arc, time::Duration};

use authorize::Authorizer;
use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::post,
};
use kube::core::{
    DynamicObject, Status,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
};
use review::{Change, Verdict};
use tokio::sync::Semaphore;

use crate::{
    model::stored::SwfObject,
    scheduling::spec_check::Rules,
    serve::{body, json_bounds, listen, metrics::Metrics, tls::Reloading},
};

/// The API server sends the object and the old object, each at most etcd's 1.5 MiB.
const MAX_BODY_BYTES: usize = 4 << 20;
/// The API server sends a review at once; a body that trickles is not from it.
const BODY_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONCURRENT_REQUESTS: usize = 64;
/// Review bodies being read at once (two of the largest).
const BODY_BUDGET: usize = 8 << 20;
/// Two objects as large as the reconciler's largest manifest (200,000 nodes each): about
/// 800,000 structural characters. More is refused before it is decoded.
const JSON: json_bounds::JsonBounds = json_bounds::JsonBounds {
    max_structure: 800_000,
    max_depth: 1_000,
};
/// Structure being decoded at once, over all reviews (one of the largest): decoding and
/// judging a review costs about 70 bytes per value, so this bounds the reviews' memory
/// (about 30 MiB) whatever their sizes and number.
const DECODING: usize = JSON.max_structure;
pub const PATH: &str = "/validate-scheduledworkflows";

pub struct Webhook {
    pub rules: Rules,
    /// None when `--admission-authorize=false`.
    pub authorizer: Option<Authorizer>,
    pub metrics: Arc<Metrics>,
    /// The webhook's own budget (in the scheduler's process, apart from anything else).
    pub bounds: Bounds,
}

/// What the reviews being answered at once may hold.
pub struct Bounds {
    budget: body::Budget,
    slots: Arc<Semaphore>,
    /// One permit per structural character of the reviews being decoded.
    decoding: Arc<Semaphore>,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            budget: body::Budget::new(BODY_BUDGET),
            slots: Arc::new(Semaphore::new(CONCURRENT_REQUESTS)),
            decoding: Arc::new(Semaphore::new(DECODING)),
        }
    }
}

impl Webhook {
    /// The answer to one review.
    pub async fn answer(&self, request: &AdmissionRequest<SwfObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let change = match (&request.operation, &request.object, &request.old_object) {
            // Our rules name the main resource only; never stand in the way of /status.
            _ if request.sub_resource.is_some() => return response,
            (Operation::Create, Some(new), _) => Change::Create(new),
            (Operation::Update, Some(new), Some(old)) => Change::Update { old, new },
            _ => return response,
        };
        let operation = operation_name(&request.operation);
        let verdict = review::review(change, namespace, &self.rules);
        let warnings = (!verdict.warnings.is_empty()).then(|| verdict.warnings.clone());
        let mut response = response;
        response.warnings = warnings;
        if !verdict.errors.is_empty() {
            self.metrics.admission_reviewed(operation, "invalid");
            return invalid(response, &request.name, &verdict);
        }
        if let Some(authorizer) = &self.authorizer {
            for kind in &verdict.authorize {
                if let Err(denied) = authorizer.may_create(&request.user_info, namespace, kind).await {
                    self.metrics.admission_reviewed(operation, denied.verdict());
                    return refused(
                        response,
                        Status::failure(&denied.to_string(), "Forbidden").with_code(403),
                    );
                }
            }
        }
        self.metrics.admission_reviewed(operation, "allowed");
        response
    }
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// A 422 naming every problem; kubectl prints the message after
/// `admission webhook "..." denied the request:`.
fn invalid(response: AdmissionResponse, name: &str, verdict: &Verdict) -> AdmissionResponse {
    let message = format!("ScheduledWorkflow {name:?} is invalid: {}", verdict.errors.join("; "));
    refused(response, Status::failure(&message, "Invalid").with_code(422))
}

fn refused(mut response: AdmissionResponse, status: Status) -> AdmissionResponse {
    response.allowed = false;
    response.result = status;
    response
}

async fn validate(State(webhook): State<Arc<Webhook>>, body: Bytes) -> Json<AdmissionReview<DynamicObject>> {
    let review: Result<AdmissionReview<SwfObject>, _> = serde_json::from_slice(&body);
    // The request takes the review's apiVersion and kind, which the response must echo.
    let request: Result<AdmissionRequest<SwfObject>, String> = review.map_err(|e| e.to_string()).and_then(|r| {
        r.try_into()
            .map_err(|e: kube::core::admission::ConvertAdmissionReviewError| e.to_string())
    });
    let response = match request {
        Ok(request) => webhook.answer(&request).await,
        Err(e) => {
            tracing::warn!(error = %e, "an AdmissionReview that cannot be read");
            webhook.metrics.admission_reviewed("unknown", "error");
            AdmissionResponse::invalid(format!("cannot read the AdmissionReview: {e}"))
        }
    };
    Json(response.into_review())
}

/// Before a review is decoded: its body, read within its size limit and deadline and the
/// webhook's budget, then its JSON structure counted, then a slot. A body that trickles holds
/// no slot, so it cannot keep the API server's reviews waiting.
async fn admit(State(webhook): State<Arc<Webhook>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = body::declared_length(&parts.headers);
    let bounds = &webhook.bounds;
    let read = match body::read(body, declared, MAX_BODY_BYTES, BODY_TIMEOUT, &bounds.budget).await {
        Ok(read) => read,
        Err(e) => {
            let status = match e {
                body::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                body::BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
                body::BodyError::Broken => StatusCode::BAD_REQUEST,
            };
            return (status, e.to_string()).into_response();
        }
    };
    let structure = match json_bounds::check(&read.bytes, JSON) {
        Ok(structure) => u32::try_from(structure.max(1)).unwrap_or(u32::MAX),
        Err(e) => {
            webhook.metrics.admission_reviewed("unknown", "error");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let (Ok(_slot), Ok(_decoding)) = (
        bounds.slots.clone().acquire_owned().await,
        bounds.decoding.clone().acquire_many_owned(structure).await,
    ) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(read.bytes.clone())))
        .await;
    drop(read);
    response
}

pub fn router(webhook: Arc<Webhook>) -> Router {
    let reviews = Router::new()
        .route(PATH, post(validate))
        // `admit` has read the body within MAX_BODY_BYTES (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(webhook.clone(), admit));
    Router::new()
        .merge(reviews)
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(webhook)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

/// Serves the webhook over HTTPS (the API server calls webhooks over TLS only) on a listener
/// bound beforehand, so the process is not reported ready before it can answer. With
/// `client_cas`, only clients with a certificate they signed (the API server, configured as
/// in docs/admission.md) get past the TLS handshake.
pub async fn serve(
    listener: std::net::TcpListener,
    cert: Arc<Reloading>,
    client_cas: Option<Vec<u8>>,
    webhook: Arc<Webhook>,
) -> anyhow::Result<()> {
    let config = match client_cas {
        Some(cas) => cert.server_config_for_clients_of(&[b"http/1.1"], &cas)?,
        None => cert.server_config(&[b"http/1.1"]),
    };
    let addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(%addr, path = PATH, "serving the admission webhook");
    let limits = listen::Limits {
        max_connections: 256,
        handshake_timeout: Duration::from_secs(5),
        ..listen::Limits::standard(listen::Protocols::Http1)
    };
    listen::serve(listener, Some(config), limits, router(webhook)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn webhook() -> Arc<Webhook> {
        Arc::new(Webhook {
            rules: Rules {
                default_time_zone: "UTC".into(),
                ..Rules::default()
            },
            authorizer: None,
            metrics: Arc::new(Metrics::default()),
            bounds: Bounds::default(),
        })
    }

    fn object(spec: Value) -> Value {
        json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
            "metadata": {"name": "s", "namespace": "ns"}, "spec": spec})
    }

    fn review(operation: &str, object: Value, old: Value) -> Bytes {
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "name": "s", "namespace": "ns", "operation": operation,
            "kind": {"group": "kubeflow.org", "version": "v1beta1", "kind": "ScheduledWorkflow"},
            "resource": {"group": "kubeflow.org", "version": "v1beta1", "resource": "scheduledworkflows"},
            "userInfo": {"username": "alice"}, "object": object, "oldObject": old}});
        Bytes::from(serde_json::to_vec(&review).unwrap())
    }

    async fn answer(body: Bytes) -> Value {
        let Json(review) = validate(State(webhook()), body).await;
        serde_json::to_value(review).unwrap()
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |v, _| json!([v]))
    }

    #[tokio::test]
    async fn the_answer_echoes_the_review_and_names_the_problem() {
        let bad = object(
            json!({"trigger": {"cronSchedule": {"cron": "* * *"}}, "runTemplate": {"apiVersion": "batch/v1", "kind": "Job"}}),
        );
        let a = answer(review("CREATE", bad, Value::Null)).await;
        assert_eq!(a["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(a["kind"], "AdmissionReview");
        assert_eq!(a["response"]["uid"], "u-1");
        assert_eq!(a["response"]["allowed"], false);
        assert_eq!(a["response"]["status"]["code"], 422);
        let message = a["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("spec.trigger.cronSchedule.cron"), "{message}");
    }

    #[tokio::test]
    async fn a_spec_nested_beyond_the_json_limit_is_judged_not_unreadable() {
        // serde_json stops at 128 levels; the review wraps the object in three more.
        let deep =
            object(json!({"runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"x": nested(140)}}}));
        let a = answer(review("CREATE", deep.clone(), Value::Null)).await;
        let message = a["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("recursion limit exceeded"), "{message}");
        assert_eq!(a["response"]["uid"], "u-1", "the review itself was read");
        let mut labelled = deep.clone();
        labelled["metadata"]["labels"] = json!({"team": "a"});
        let a = answer(review("UPDATE", labelled, deep)).await;
        assert_eq!(
            a["response"]["allowed"], true,
            "a stored object keeps taking metadata updates"
        );
    }

    #[tokio::test]
    async fn an_unreadable_review_is_refused_not_a_crash() {
        for body in [&b"not json"[..], b"{}", b"{\"request\": 5}"] {
            let a = answer(Bytes::from_static(body)).await;
            assert_eq!(a["response"]["allowed"], false, "{}", String::from_utf8_lossy(body));
        }
    }

    #[tokio::test]
    async fn status_and_deletes_are_never_judged() {
        let bad = object(json!({"timeZone": "Mars/Olympus"}));
        let mut status = serde_json::from_slice::<Value>(&review("UPDATE", bad.clone(), bad.clone())).unwrap();
        status["request"]["subResource"] = json!("status");
        status["request"]["object"]["spec"]["timeZone"] = json!("Moon/Base");
        let a = answer(Bytes::from(serde_json::to_vec(&status).unwrap())).await;
        assert_eq!(a["response"]["allowed"], true);
        let a = answer(review("DELETE", Value::Null, bad)).await;
        assert_eq!(a["response"]["allowed"], true);
    }
}
