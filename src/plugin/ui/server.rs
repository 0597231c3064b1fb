//! The HTTP side: routes, the Host check against DNS rebinding, the session token on every
//! action (POST only), bounded request bodies, security headers, the live-update stream. The
//! pages themselves are rendered by `pages` from the cache's snapshot.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Form, Router,
    body::Body,
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response, sse},
    routing::get,
};
use jiff::{Timestamp, tz::TimeZone};
use kube::Api;

use super::{
    model::Entry,
    pages::{self, Action},
    preview,
    store::Store,
};
use crate::model::{
    keys::{BACKFILL_ANNOTATION, RESUME_ANNOTATION, RUN_NOW_REQUEST_ANNOTATION},
    stored::SwfObject,
};

/// The largest request body accepted (the forms are a few hundred bytes).
pub const MAX_BODY: usize = 8 * 1024;

pub struct App {
    pub store: Arc<Store>,
    /// The per-session secret every action must carry.
    pub token: String,
    /// Host header values accepted (`127.0.0.1:PORT`, `localhost:PORT`).
    pub hosts: Vec<String>,
    pub local_zone: TimeZone,
    pub all_namespaces: bool,
}

/// A fresh session token: 244 random bits (two v4 UUIDs, from the OS's generator).
pub fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/timeline", get(timeline))
        .route("/forecast", get(forecast))
        .route("/events", get(events))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(script))
        .route("/s/{ns}/{name}", get(schedule))
        .route("/s/{ns}/{name}/confirm/{action}", get(confirm))
        .route("/s/{ns}/{name}/backfill", get(backfill_preview).post(backfill))
        .route("/s/{ns}/{name}/{action}", axum::routing::post(act))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// True when `host` is one this server answers to (DNS rebinding sends the attacker's name).
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    host.is_some_and(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
}

/// Equal strings, compared in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    if !host_allowed(host, &app.hosts) {
        return (
            StatusCode::FORBIDDEN,
            "refused: this server answers only to its own address (Host header check)\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn entries(snap: &super::store::Snapshot) -> Vec<Entry<'_>> {
    snap.schedules
        .iter()
        .map(|o| Entry::with(o, snap.runs_of(o), snap.validated(o)))
        .collect()
}

async fn overview(State(app): State<Arc<App>>, Query(q): Query<pages::OverviewQuery>) -> Html<String> {
    let version = app.store.version();
    let snap = app.store.snapshot();
    versioned(
        version,
        pages::overview(&entries(&snap), &q, app.all_namespaces, Timestamp::now()),
    )
}

async fn timeline(State(app): State<Arc<App>>, Query(q): Query<pages::TimelineQuery>) -> Html<String> {
    let version = app.store.version();
    let snap = app.store.snapshot();
    versioned(
        version,
        pages::timeline(&entries(&snap), &q, &app.local_zone, Timestamp::now()),
    )
}

async fn forecast(State(app): State<Arc<App>>, Query(q): Query<pages::ForecastQuery>) -> Html<String> {
    let version = app.store.version();
    let snap = app.store.snapshot();
    versioned(
        version,
        pages::forecast(&entries(&snap), &q, &app.local_zone, Timestamp::now()),
    )
}

/// The page, marked with the cache version it was rendered from: its live-update stream starts
/// there (`/events?since=`), so a change between the render and the stream is not lost.
fn versioned(version: u64, page: String) -> Html<String> {
    Html(page.replacen(
        "<main id=\"main\"",
        &format!("<main id=\"main\" data-version=\"{version}\""),
        1,
    ))
}

fn not_found(ns: &str, name: &str) -> Response {
    let text = format!("scheduledworkflow {ns}/{name} is not among the schedules shown");
    (
        StatusCode::NOT_FOUND,
        Html(pages::message("Not found", &text, Timestamp::now())),
    )
        .into_response()
}

fn find<'s>(snap: &'s super::store::Snapshot, ns: &str, name: &str) -> Option<&'s SwfObject> {
    snap.schedules
        .iter()
        .find(|o| o.metadata.namespace.as_deref() == Some(ns) && o.metadata.name.as_deref() == Some(name))
        .map(|o| o.as_ref())
}

async fn schedule(
    State(app): State<Arc<App>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let version = app.store.version();
    let snap = app.store.snapshot();
    let Some(obj) = find(&snap, &ns, &name) else {
        return not_found(&ns, &name);
    };
    let events = super::super::events_of(app.store.client(), &ns, &name)
        .await
        .unwrap_or_default();
    let e = Entry::with(obj, snap.runs_of(obj), snap.validated(obj));
    let now = Timestamp::now();
    let window = super::svg::Window {
        from: now.checked_sub(jiff::SignedDuration::from_hours(12)).unwrap_or(now),
        to: now.checked_add(jiff::SignedDuration::from_hours(12)).unwrap_or(now),
    };
    let lane = format!(
        "<h2>Last and next 12 hours</h2><div class=\"scroll\">{}</div>",
        super::svg::timeline(&[&e], window, &e.viewed.zone, now)
    );
    let flash = match q.get("done").map(String::as_str) {
        Some("backfill") => Some("Backfill requested: progress shows under Backfill."),
        Some(done) => Action::parse(done).map(Action::done),
        None => None,
    };
    versioned(version, pages::schedule(&e, &events, &lane, flash, now)).into_response()
}

async fn confirm(State(app): State<Arc<App>>, Path((ns, name, action)): Path<(String, String, String)>) -> Response {
    let Some(action) = Action::parse(&action) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if find(&app.store.snapshot(), &ns, &name).is_none() {
        return not_found(&ns, &name);
    }
    Html(pages::confirm(&ns, &name, action, &app.token, Timestamp::now())).into_response()
}

#[derive(serde::Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

async fn backfill_preview(
    State(app): State<Arc<App>>,
    Path((ns, name)): Path<(String, String)>,
    Query(range): Query<Range>,
) -> Response {
    let snap = app.store.snapshot();
    let Some(obj) = find(&snap, &ns, &name) else {
        return not_found(&ns, &name);
    };
    let e = Entry::with(obj, snap.runs_of(obj), snap.validated(obj));
    let now = Timestamp::now();
    let (from, to) = (range.from.unwrap_or_default(), range.to.unwrap_or_default());
    let p = preview::preview(&e.viewed, e.runs, &from, &to, now);
    Html(pages::backfill_preview(&ns, &name, &p, &e.viewed.zone, &app.token, now)).into_response()
}

/// The refusal of a form without the session's token; None when it has it.
fn without_token(app: &App, form: &HashMap<String, String>) -> Option<Response> {
    match form.get("token") {
        Some(t) if same_secret(t, &app.token) => None,
        _ => Some((
            StatusCode::FORBIDDEN,
            Html(pages::message(
                "Refused",
                "refused: the request does not carry this session's token (open the page from kubectl swf ui's URL)",
                Timestamp::now(),
            )),
        )
            .into_response()),
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    let text = format!("the request failed: {e}");
    (
        StatusCode::BAD_GATEWAY,
        Html(pages::message("Failed", &text, Timestamp::now())),
    )
        .into_response()
}

async fn act(
    State(app): State<Arc<App>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = without_token(&app, &form) {
        return refused;
    }
    let Some(action) = Action::parse(&action) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if find(&app.store.snapshot(), &ns, &name).is_none() {
        return not_found(&ns, &name);
    }
    let api: Api<SwfObject> = Api::namespaced(app.store.client().clone(), &ns);
    let now = Timestamp::now().as_second().to_string();
    let result = match action {
        Action::RunNow => super::super::annotate(&api, &name, RUN_NOW_REQUEST_ANNOTATION, Some(&now)).await,
        Action::Resume => super::super::annotate(&api, &name, RESUME_ANNOTATION, Some(&now)).await,
        Action::Enable => super::super::set_enabled(&api, &name, true).await,
        Action::Disable => super::super::set_enabled(&api, &name, false).await,
    };
    match result {
        Ok(()) => done(&ns, &name, action.slug()),
        Err(e) => failed(e),
    }
}

fn done(ns: &str, name: &str, what: &str) -> Response {
    Redirect::to(&format!("{}?done={what}", super::html::schedule_path(ns, name))).into_response()
}

async fn backfill(
    State(app): State<Arc<App>>,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = without_token(&app, &form) {
        return refused;
    }
    let snap = app.store.snapshot();
    let Some(obj) = find(&snap, &ns, &name) else {
        return not_found(&ns, &name);
    };
    let e = Entry::with(obj, snap.runs_of(obj), snap.validated(obj));
    let (from, to) = (
        form.get("from").cloned().unwrap_or_default(),
        form.get("to").cloned().unwrap_or_default(),
    );
    // Checked again as the preview was (the range, the tick count) before it is asked for.
    let value = match preview::preview(&e.viewed, e.runs, &from, &to, Timestamp::now()) {
        Ok(p) => p.value,
        Err(message) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(pages::message("Refused", &message, Timestamp::now())),
            )
                .into_response();
        }
    };
    let api: Api<SwfObject> = Api::namespaced(app.store.client().clone(), &ns);
    match super::super::annotate(&api, &name, BACKFILL_ANNOTATION, Some(&value)).await {
        Ok(()) => done(&ns, &name, "backfill"),
        Err(e) => failed(e),
    }
}

#[derive(serde::Deserialize)]
struct Since {
    since: Option<u64>,
}

/// Server-sent events: `changed` when the cache changed since the page's version (at once if it
/// already has), then at each change, at most twice a second.
async fn events(
    State(app): State<Arc<App>>,
    Query(since): Query<Since>,
) -> sse::Sse<impl futures::Stream<Item = Result<sse::Event, Infallible>>> {
    let mut changes = app.store.changes();
    let stale = since.since.is_some_and(|v| v != *changes.borrow_and_update());
    let stream = futures::stream::unfold((changes, stale), |(mut rx, stale)| async move {
        if !stale {
            rx.changed().await.ok()?;
            // Let a burst of changes settle into one refresh.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let version = *rx.borrow_and_update();
        Some((Ok(sse::Event::default().data(version.to_string())), (rx, false)))
    });
    sse::Sse::new(stream).keep_alive(sse::KeepAlive::default())
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("assets/live.js"))
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_host_is_answered() {
        let allowed = vec!["127.0.0.1:8421".to_string(), "localhost:8421".to_string()];
        assert!(host_allowed(Some("127.0.0.1:8421"), &allowed));
        assert!(host_allowed(Some("LOCALHOST:8421"), &allowed));
        assert!(!host_allowed(Some("evil.example:8421"), &allowed));
        assert!(!host_allowed(Some("127.0.0.1:80"), &allowed));
        assert!(!host_allowed(None, &allowed));
    }

    #[test]
    fn secrets_compare_whole() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(same_secret(&t, &t.clone()));
        assert!(!same_secret(&t, &t[..63]));
        assert!(!same_secret(&t, ""));
        assert_ne!(t, new_token());
    }
}
