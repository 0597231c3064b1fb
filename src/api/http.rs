//! The HTTP/JSON front end, on the paths of the proto's `google.api.http` bindings, with
//! KFP's grpc-gateway wire format (proto field names, int64 as strings, enums by name).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};

use super::{
    error::{ApiError, Code},
    proto::{Job, ListJobsRequest, ResourceKey, ResourceType},
    service::{Caller, JobApi},
};

pub const OPENAPI: &str = include_str!("../../api/job.swagger.json");

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn reply<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(v) => match serde_json::to_string(&v) {
            Ok(body) => json(StatusCode::OK, body),
            // pbjson refuses some values a stored object may hold (e.g. a timestamp it cannot
            // write): an error for this request, never a crash of the server.
            Err(e) => {
                let e = ApiError::new(Code::Internal, format!("cannot encode the response: {e}"));
                json(StatusCode::INTERNAL_SERVER_ERROR, e.body().to_string())
            }
        },
        Err(e) => json(
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.body().to_string(),
        ),
    }
}

fn caller(headers: &HeaderMap) -> Caller {
    Caller::from_header(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

async fn create(State(api): State<Arc<JobApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let job: Job = match serde_json::from_slice(&body) {
        Ok(job) => job,
        Err(e) => return reply::<()>(Err(ApiError::invalid(format!("Invalid job: {e}")))),
    };
    reply(api.create_job(&caller(&headers), job).await)
}

async fn get_one(State(api): State<Arc<JobApi>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    reply(api.get_job(&caller(&headers), &id).await)
}

/// Parses ListJobs' query string; unknown parameters are a 400, not silently ignored.
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
            other => return Err(ApiError::invalid(format!("Invalid query: unknown parameter {other:?}"))),
        }
    }
    if key.r#type != 0 || !key.id.is_empty() {
        req.resource_reference_key = Some(key);
    }
    Ok(req)
}

async fn list(State(api): State<Arc<JobApi>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let result = match list_request(query.as_deref()) {
        Ok(req) => api.list_jobs(&caller(&headers), &req).await,
        Err(e) => Err(e),
    };
    reply(result)
}

async fn enable(State(api): State<Arc<JobApi>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    reply(
        api.set_enabled(&caller(&headers), &id, true)
            .await
            .map(|()| serde_json::json!({})),
    )
}

async fn disable(State(api): State<Arc<JobApi>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    reply(
        api.set_enabled(&caller(&headers), &id, false)
            .await
            .map(|()| serde_json::json!({})),
    )
}

async fn delete(State(api): State<Arc<JobApi>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    reply(
        api.delete_job(&caller(&headers), &id)
            .await
            .map(|()| serde_json::json!({})),
    )
}

pub fn router(api: Arc<JobApi>) -> Router {
    Router::new()
        .route("/apis/v1beta1/jobs", post(create).get(list))
        .route("/apis/v1beta1/jobs/{id}", get(get_one).delete(delete))
        .route("/apis/v1beta1/jobs/{id}/enable", post(enable))
        .route("/apis/v1beta1/jobs/{id}/disable", post(disable))
        .route(
            "/apis/v1beta1/healthz",
            get(|| async { json(StatusCode::OK, r#"{"multi_user":true}"#.into()) }),
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
        assert!(
            list_request(Some("colour=blue"))
                .unwrap_err()
                .message
                .contains("unknown parameter")
        );
        assert!(list_request(Some("page_size=x")).is_err());
        assert!(list_request(Some("resource_reference_key.type=GALAXY")).is_err());
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
