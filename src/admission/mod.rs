//! The validating admission webhook (docs/admission.md): the API server asks it about every
//! create of a ScheduledWorkflow and every update that changes `spec`, so a bad schedule is
//! refused at `kubectl apply` with every problem named, and a user can only schedule runs they
//! could create themselves. Every replica serves it; it needs no leadership.

pub mod args;
pub mod authorize;
pub mod review;
pub mod webhook_config;

use std::{sync::Arc, time::Duration};

use axum::{Json, Router, body::Bytes, extract::State, routing::post};
use kube::core::{
    DynamicObject, Status,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
};

use crate::{metrics::Metrics, server::listen, stored::SwfObject, tls::Reloading};
use authorize::Authorizer;
use review::{Change, Rules, Verdict};

/// The API server sends the object and the old object: two objects of at most ~3 MiB each.
const MAX_BODY_BYTES: usize = 8 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONCURRENT_REQUESTS: usize = 64;
pub const PATH: &str = "/validate-scheduledworkflows";

pub struct Webhook {
    pub rules: Rules,
    /// None when `--admission-authorize=false`.
    pub authorizer: Option<Authorizer>,
    pub metrics: Arc<Metrics>,
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

pub fn router(webhook: Arc<Webhook>) -> Router {
    use tower::ServiceBuilder;
    Router::new()
        .route(PATH, post(validate))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(webhook)
        .layer(
            ServiceBuilder::new()
                .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(CONCURRENT_REQUESTS)),
        )
}

/// Serves the webhook over HTTPS (the API server calls webhooks over TLS only) on a listener
/// bound beforehand, so the process is not reported ready before it can answer.
pub async fn serve(listener: std::net::TcpListener, cert: Arc<Reloading>, webhook: Arc<Webhook>) -> anyhow::Result<()> {
    let config = cert.server_config(&[b"http/1.1"]);
    let addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(%addr, path = PATH, "serving the admission webhook");
    let limits = listen::Limits {
        max_connections: 256,
        ..listen::Limits::standard(listen::Protocols::Http1)
    };
    listen::serve(listener, Some(config), limits, router(webhook)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn webhook() -> Arc<Webhook> {
        Arc::new(Webhook {
            rules: Rules {
                default_time_zone: "UTC".into(),
                ..Rules::default()
            },
            authorizer: None,
            metrics: Arc::new(Metrics::default()),
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
