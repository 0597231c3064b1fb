//! The HTTP/JSON front end, on the paths of the proto's `google.api.http` bindings, with
//! KFP's grpc-gateway wire format (proto field names, int64 as strings, enums by name).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};

use super::{
    auth::User,
    error::{ApiError, Code},
    gate::Gate,
    proto::{Job, ListJobsRequest, ResourceKey, ResourceType},
    service::JobApi,
};

pub const OPENAPI: &str = include_str!("../../api/job.swagger.json");
/// The jobs collection; the gate lets larger bodies through to a POST here (CreateJob).
pub const JOBS: &str = "/apis/v1beta1/jobs";

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Timestamps as grpc-gateway writes them: UTC with `Z` (pbjson writes `+00:00`).
fn zulu(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.len() >= 20 && s.ends_with("+00:00") && s.as_bytes()[10] == b'T' => {
            s.truncate(s.len() - 6);
            s.push('Z');
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(zulu),
        serde_json::Value::Object(map) => map.values_mut().for_each(zulu),
        _ => {}
    }
}

fn reply<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(v) => match serde_json::to_value(&v).map(|mut v| {
            zulu(&mut v);
            v.to_string()
        }) {
            Ok(body) => json(StatusCode::OK, body),
            // pbjson refuses some values a stored object may hold (e.g. a timestamp it cannot
            // write): an error for this request, never a crash of the server.
            Err(e) => error_response(&ApiError::new(
                Code::Internal,
                format!("cannot encode the response: {e}"),
            )),
        },
        Err(e) => error_response(&e),
    }
}

/// KFP's error body with the HTTP status of its code.
pub fn error_response(e: &ApiError) -> Response {
    json(
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.body().to_string(),
    )
}

async fn create(State(api): State<Arc<JobApi>>, Extension(user): Extension<User>, body: Bytes) -> Response {
    let job: Job = match serde_json::from_slice(&body) {
        Ok(job) => job,
        Err(e) => return reply::<()>(Err(ApiError::invalid(format!("Invalid job: {e}")))),
    };
    reply(api.create_job(&user, job).await)
}

async fn get_one(State(api): State<Arc<JobApi>>, Extension(user): Extension<User>, Path(id): Path<String>) -> Response {
    reply(api.get_job(&user, &id).await)
}

/// Parses ListJobs' query string. Unknown parameters are ignored, as grpc-gateway does (KFP's
/// clients send some this API has no use for).
fn list_request(query: Option<&str>) -> Result<ListJobsRequest, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("Invalid query: {e}")))?;
    let mut req = ListJobsRequest::default();
    let mut key = ResourceKey::default();
    let mut seen = HashMap::new();
    for (k, v) in pairs {
        if seen.insert(k.clone(), ()).is_some() {
            return Err(ApiError::invalid(format!("Invalid query: {k} given twice")));
        }
        match k.as_str() {
            "page_token" | "pageToken" => req.page_token = v,
            "page_size" | "pageSize" => {
                req.page_size = v
                    .parse()
                    .map_err(|_| ApiError::invalid(format!("Invalid page size: {v:?}")))?;
            }
            "sort_by" | "sortBy" => req.sort_by = v,
            "filter" => req.filter = v,
            "resource_reference_key.type" | "resourceReferenceKey.type" => {
                key.r#type = ResourceType::from_str_name(&v)
                    .or_else(|| v.parse::<i32>().ok().and_then(|n| ResourceType::try_from(n).ok()))
                    .ok_or_else(|| ApiError::invalid(format!("Invalid resource_reference_key.type: {v:?}")))?
                    as i32;
            }
            "resource_reference_key.id" | "resourceReferenceKey.id" => key.id = v,
            _ => {}
        }
    }
    if key.r#type != 0 || !key.id.is_empty() {
        req.resource_reference_key = Some(key);
    }
    Ok(req)
}

async fn list(State(api): State<Arc<JobApi>>, Extension(user): Extension<User>, RawQuery(query): RawQuery) -> Response {
    let result = match list_request(query.as_deref()) {
        Ok(req) => api.list_jobs(&user, &req).await,
        Err(e) => Err(e),
    };
    reply(result)
}

async fn enable(State(api): State<Arc<JobApi>>, Extension(user): Extension<User>, Path(id): Path<String>) -> Response {
    reply(api.set_enabled(&user, &id, true).await.map(|()| serde_json::json!({})))
}

async fn disable(State(api): State<Arc<JobApi>>, Extension(user): Extension<User>, Path(id): Path<String>) -> Response {
    reply(api.set_enabled(&user, &id, false).await.map(|()| serde_json::json!({})))
}

async fn delete(State(api): State<Arc<JobApi>>, Extension(user): Extension<User>, Path(id): Path<String>) -> Response {
    reply(api.delete_job(&user, &id).await.map(|()| serde_json::json!({})))
}

/// The job routes behind the gate (`gate::http`), and the public ones: health, KFP's
/// `multi_user` flag, the OpenAPI document.
pub fn router(api: Arc<JobApi>, gate: Arc<Gate>) -> Router {
    let jobs = Router::new()
        .route(JOBS, post(create).get(list))
        .route("/apis/v1beta1/jobs/{id}", get(get_one).delete(delete))
        .route("/apis/v1beta1/jobs/{id}/enable", post(enable))
        .route("/apis/v1beta1/jobs/{id}/disable", post(disable))
        // The gate has read the body within the call's own limit (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(gate, super::gate::http));
    Router::new()
        .merge(jobs)
        .route(
            "/apis/v1beta1/healthz",
            get(|State(api): State<Arc<JobApi>>| async move {
                // KFP's clients read multi_user to decide whether requests need a namespace.
                let body = serde_json::json!({"multi_user": api.multi_user().is_some()});
                json(StatusCode::OK, body.to_string())
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/apis/v1beta1/swagger.json",
            get(|| async { json(StatusCode::OK, OPENAPI.into()) }),
        )
        .fallback(|| async { reply::<()>(Err(ApiError::new(super::error::Code::NotFound, "Not Found"))) })
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_parsing() {
        let r = list_request(Some("page_size=5&sort_by=name%20desc&resource_reference_key.type=NAMESPACE&resource_reference_key.id=a&filter=%7B%7D")).unwrap();
        assert_eq!(r.page_size, 5);
        assert_eq!(r.sort_by, "name desc");
        assert_eq!(r.filter, "{}");
        assert_eq!(r.resource_reference_key.unwrap().r#type, ResourceType::Namespace as i32);
        assert_eq!(
            list_request(Some("colour=blue&page_size=3")).unwrap().page_size,
            3,
            "ignored"
        );
        assert!(list_request(Some("page_size=x")).is_err());
        assert!(list_request(Some("resource_reference_key.type=GALAXY")).is_err());
    }

    #[test]
    fn timestamps_are_written_with_z() {
        let mut v = serde_json::json!({"created_at": "2026-01-01T00:00:00+00:00", "name": "+00:00", "x": ["2026-01-01T00:00:00.5+00:00"]});
        zulu(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"created_at": "2026-01-01T00:00:00Z", "name": "+00:00", "x": ["2026-01-01T00:00:00.5Z"]})
        );
    }

    #[test]
    fn openapi_document_parses_and_names_every_path() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for path in [
            "/apis/v1beta1/jobs",
            "/apis/v1beta1/jobs/{id}",
            "/apis/v1beta1/jobs/{id}/enable",
            "/apis/v1beta1/jobs/{id}/disable",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}
