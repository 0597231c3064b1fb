//! Pure ListJobs logic: `sort_by`, `filter`, `page_size` and keyset page tokens (KFP's
//! `list/list.go`, `filter/filter.go`).
//!
//! Pages are cut by a cursor (the sort value and id of the last job returned), not by an offset:
//! jobs created or deleted between two page requests never cause a duplicate or a skipped
//! survivor. `total_size` counts every job that matches the filter. Pages are walked out of an
//! `Ordered` scope (kept sorted by the watch, see `catalog`), so an unfiltered page costs
//! O(log n + page); filtering works on small `Row`s; only the page's items are turned into
//! `Job`s by the caller.
//!
//! A filter cannot use the order (it may name any field): a filtered page checks each job of
//! the scope once to count `total_size` and walks the order from the cursor until the page is
//! full, so its work is bounded by 2 × jobs in scope × predicates (at most `MAX_PREDICATES`,
//! each with at most `MAX_FILTER_VALUES` values), with no sort and no allocation per job
//! (except IS_SUBSTRING's lowercasing).

use std::{cmp::Ordering, sync::Arc};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{
    error::ApiError,
    ordered::{Cursor, Entry, Ordered},
    proto::{Filter, Job, predicate},
};

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 200;
/// Bounds on a filter: every predicate is evaluated against every job in scope, so their
/// number and size bound a ListJobs' work (KFP's UI sends one or two).
pub const MAX_PREDICATES: usize = 50;
pub const MAX_FILTER_VALUES: usize = 200;
pub const MAX_FILTER_VALUE_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    Description,
    PackageId,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "id" | "recurring_run_id" => Field::Id,
            "name" | "display_name" => Field::Name,
            "created_at" => Field::CreatedAt,
            "updated_at" => Field::UpdatedAt,
            "description" => Field::Description,
            // KFP's field map keeps the pipeline id under its old name.
            "package_id" | "pipeline_id" => Field::PackageId,
            _ => return None,
        })
    }
}

/// What sorting and filtering read of a job. Its strings are shared with the keys of the
/// orders it is kept in.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub description: Arc<str>,
    pub pipeline_id: Arc<str>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Row {
    /// The job's value of `field`, for sorting (a string is shared, not copied).
    pub fn key(&self, field: Field) -> Key {
        match field {
            Field::Id => Key::Str(self.id.clone()),
            Field::Name => Key::Str(self.name.clone()),
            Field::Description => Key::Str(self.description.clone()),
            Field::PackageId => Key::Str(self.pipeline_id.clone()),
            Field::CreatedAt => Key::Int(self.created_at),
            Field::UpdatedAt => Key::Int(self.updated_at),
        }
    }
}

impl From<&Job> for Row {
    fn from(j: &Job) -> Row {
        Row {
            id: j.id.as_str().into(),
            name: j.name.as_str().into(),
            description: j.description.as_str().into(),
            pipeline_id: j.pipeline_spec.as_ref().map_or("", |p| p.pipeline_id.as_str()).into(),
            created_at: j.created_at.as_ref().map_or(0, |t| t.seconds),
            updated_at: j.updated_at.as_ref().map_or(0, |t| t.seconds),
        }
    }
}

/// A sort or filter value as a page token or filter carries it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Str(String),
}

/// A job's sort value as the orders keep it; ordered exactly as `Value` (integers before
/// strings, strings by bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    Str(Arc<str>),
}

impl From<Value> for Key {
    fn from(v: Value) -> Key {
        match v {
            Value::Int(i) => Key::Int(i),
            Value::Str(s) => Key::Str(s.into()),
        }
    }
}

impl From<&Key> for Value {
    fn from(k: &Key) -> Value {
        match k {
            Key::Int(i) => Value::Int(*i),
            Key::Str(s) => Value::Str(s.to_string()),
        }
    }
}

/// `key` against a filter's `value`, as `Value`'s order would compare them (without a copy).
fn compare(key: &Key, value: &Value) -> Ordering {
    match (key, value) {
        (Key::Int(a), Value::Int(b)) => a.cmp(b),
        (Key::Str(a), Value::Str(b)) => (**a).cmp(b.as_str()),
        (Key::Int(_), Value::Str(_)) => Ordering::Less,
        (Key::Str(_), Value::Int(_)) => Ordering::Greater,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub field: Field,
    pub desc: bool,
}

impl Default for Sort {
    /// KFP's default: creation time, ascending.
    fn default() -> Self {
        Sort {
            field: Field::CreatedAt,
            desc: false,
        }
    }
}

/// `"field"`, `"field asc"` or `"field desc"` (case-insensitive).
pub fn parse_sort(sort_by: &str) -> Result<Sort, ApiError> {
    let parts: Vec<String> = sort_by.split_whitespace().map(str::to_lowercase).collect();
    let bad = || {
        ApiError::invalid(format!(
            "Invalid sorting field: {sort_by:?}; use one of id, name, created_at, updated_at, description, optionally followed by asc or desc"
        ))
    };
    let (field, desc) = match parts.as_slice() {
        [] => return Ok(Sort::default()),
        [f] => (f, false),
        [f, dir] if dir == "asc" => (f, false),
        [f, dir] if dir == "desc" => (f, true),
        _ => return Err(bad()),
    };
    Ok(Sort {
        field: Field::parse(field).ok_or_else(bad)?,
        desc,
    })
}

/// One checked predicate.
#[derive(Clone, Debug)]
struct Check {
    field: Field,
    op: predicate::Op,
    values: Vec<Value>,
    /// IS_SUBSTRING's value, lowercased once.
    needle: String,
}

/// The filter as given, decoded once more as KFP's `parseAPIFilter` does (`url.QueryUnescape`:
/// the KFP UI and documented clients encode it twice), and parsed.
fn decode_filter(filter: &str) -> Result<Filter, ApiError> {
    let decoded: String = form_urlencoded::parse(format!("f={}", filter).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    serde_json::from_str(&decoded).map_err(|e| ApiError::invalid(format!("Invalid filter: {e}")))
}

/// The filter in one canonical form, so a page token matches however the filter was spelled.
fn canonical_filter(filter: &str) -> Result<String, ApiError> {
    if filter.trim().is_empty() {
        return Ok(String::new());
    }
    let parsed = decode_filter(filter)?;
    serde_json::to_string(&parsed).map_err(|e| ApiError::invalid(format!("Invalid filter: {e}")))
}

/// Checks of a canonical filter (see `canonical_filter`; proto or camelCase names were
/// accepted there).
fn parse_filter(canonical: &str) -> Result<Vec<Check>, ApiError> {
    if canonical.trim().is_empty() {
        return Ok(Vec::new());
    }
    let parsed: Filter =
        serde_json::from_str(canonical).map_err(|e| ApiError::invalid(format!("Invalid filter: {e}")))?;
    if parsed.predicates.len() > MAX_PREDICATES {
        return Err(ApiError::invalid(format!(
            "Invalid filter: {} predicates; at most {MAX_PREDICATES} are accepted",
            parsed.predicates.len()
        )));
    }
    let mut checks = Vec::new();
    for p in parsed.predicates {
        let field = Field::parse(&p.key).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid filter: no support for filtering on unrecognized field {:?}",
                p.key
            ))
        })?;
        let op = predicate::Op::try_from(p.op).unwrap_or(predicate::Op::Unknown);
        let time_field = matches!(field, Field::CreatedAt | Field::UpdatedAt);
        let list_op = op == predicate::Op::In;
        let single = matches!(
            p.value,
            Some(
                predicate::Value::StringValue(_)
                    | predicate::Value::IntValue(_)
                    | predicate::Value::LongValue(_)
                    | predicate::Value::TimestampValue(_)
            )
        );
        let values: Vec<Value> = match p.value {
            None => {
                return Err(ApiError::invalid(format!(
                    "Invalid filter: predicate on {:?} has no value",
                    p.key
                )));
            }
            Some(predicate::Value::StringValue(s)) if !time_field => vec![Value::Str(s)],
            Some(predicate::Value::StringValues(v)) if !time_field => v.values.into_iter().map(Value::Str).collect(),
            Some(predicate::Value::IntValue(i)) if time_field => vec![Value::Int(i64::from(i))],
            Some(predicate::Value::LongValue(i)) if time_field => vec![Value::Int(i)],
            Some(predicate::Value::TimestampValue(t)) if time_field => vec![Value::Int(t.seconds)],
            Some(predicate::Value::IntValues(v)) if time_field => {
                v.values.into_iter().map(|i| Value::Int(i64::from(i))).collect()
            }
            Some(predicate::Value::LongValues(v)) if time_field => v.values.into_iter().map(Value::Int).collect(),
            Some(_) => {
                let want = if time_field {
                    "timestamp_value, int_value or long_value"
                } else {
                    "string_value"
                };
                return Err(ApiError::invalid(format!("Invalid filter: {:?} needs {want}", p.key)));
            }
        };
        match op {
            predicate::Op::Unknown => {
                return Err(ApiError::invalid(format!(
                    "Invalid filter: predicate on {:?} has no op",
                    p.key
                )));
            }
            predicate::Op::IsSubstring if time_field => {
                return Err(ApiError::invalid("Invalid filter: IS_SUBSTRING needs a string field"));
            }
            _ if !list_op && !single => {
                return Err(ApiError::invalid(format!(
                    "Invalid filter: {} takes a single value",
                    op.as_str_name()
                )));
            }
            _ => {}
        }
        within_bounds(&p.key, &values)?;
        let needle = match values.first() {
            Some(Value::Str(s)) if op == predicate::Op::IsSubstring => s.to_lowercase(),
            _ => String::new(),
        };
        checks.push(Check {
            field,
            op,
            values,
            needle,
        });
    }
    Ok(checks)
}

/// A predicate's values: at most `MAX_FILTER_VALUES`, each at most `MAX_FILTER_VALUE_BYTES`.
fn within_bounds(key: &str, values: &[Value]) -> Result<(), ApiError> {
    if values.len() > MAX_FILTER_VALUES {
        return Err(ApiError::invalid(format!(
            "Invalid filter: {} values for {key:?}; at most {MAX_FILTER_VALUES} are accepted",
            values.len()
        )));
    }
    if values
        .iter()
        .any(|v| matches!(v, Value::Str(s) if s.len() > MAX_FILTER_VALUE_BYTES))
    {
        return Err(ApiError::invalid(format!(
            "Invalid filter: a value for {key:?} is longer than {MAX_FILTER_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

fn matches(row: &Row, checks: &[Check]) -> bool {
    use predicate::Op::*;
    checks.iter().all(|c| {
        let v = row.key(c.field);
        // IN with an empty list matches nothing (KFP: `IN ()`).
        let Some(x) = c.values.first() else { return false };
        match c.op {
            Equals => compare(&v, x).is_eq(),
            NotEquals => compare(&v, x).is_ne(),
            GreaterThan => compare(&v, x).is_gt(),
            GreaterThanEquals => compare(&v, x).is_ge(),
            LessThan => compare(&v, x).is_lt(),
            LessThanEquals => compare(&v, x).is_le(),
            In => c.values.iter().any(|x| compare(&v, x).is_eq()),
            // SQL LIKE in KFP's MySQL: case-insensitive.
            IsSubstring => matches!(&v, Key::Str(s) if s.to_lowercase().contains(&c.needle)),
            Unknown => false,
        }
    })
}

/// What a page token remembers: the query it belongs to and the last job returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Token {
    sort: Sort,
    filter: String,
    scope: String,
    after: Value,
    after_id: String,
}

fn encode(t: &Token) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode(s: &str) -> Result<Token, ApiError> {
    let bad = |why: String| ApiError::invalid(format!("Invalid page token: {why}"));

    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

pub struct Query<'a> {
    pub page_token: &'a str,
    pub page_size: i32,
    pub sort_by: &'a str,
    pub filter: &'a str,
    /// Where the jobs come from (namespace / experiment); a token is only valid in its scope.
    pub scope: &'a str,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub total_size: i32,
    pub next_page_token: String,
}

/// Filters and cuts one page out of the jobs of a scope, kept in every order.
pub fn page<T: Clone>(jobs: &Ordered<T>, q: &Query) -> Result<Page<T>, ApiError> {
    if q.page_size < 0 {
        return Err(ApiError::invalid(format!(
            "Invalid page size: {} (must be 0 or more)",
            q.page_size
        )));
    }
    let size = match q.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    } as usize;
    let (sort, filter, cursor) = query_state(q)?;
    let checks = parse_filter(&filter)?;
    let total = if checks.is_empty() {
        jobs.len()
    } else {
        jobs.entries().filter(|e| matches(&e.row, &checks)).count()
    };
    // One more than the page: whether there is a next page.
    let mut picked: Vec<&Entry<T>> = jobs
        .walk(sort, cursor.as_ref())
        .filter(|e| matches(&e.row, &checks))
        .take(size + 1)
        .collect();
    let more = picked.len() > size;
    picked.truncate(size);
    let next_page_token = match (more, picked.last()) {
        (true, Some(last)) => encode(&Token {
            sort,
            filter,
            scope: q.scope.to_string(),
            after: Value::from(&last.row.key(sort.field)),
            after_id: last.row.id.to_string(),
        }),
        _ => String::new(),
    };
    Ok(Page {
        items: picked.into_iter().map(|e| e.item.clone()).collect(),
        total_size: i32::try_from(total).unwrap_or(i32::MAX),
        next_page_token,
    })
}

/// Whether a query has a filter, given or in its page token (then its page checks every job
/// of the scope). An unreadable token counts as unfiltered: `page` refuses it.
pub fn filtered(filter: &str, page_token: &str) -> bool {
    if !filter.trim().is_empty() {
        return true;
    }
    !page_token.is_empty() && decode(page_token).is_ok_and(|t| !t.filter.is_empty())
}

/// Sort, canonical filter and cursor (the sort value and id a page starts after) of a query:
/// from its page token when it has one (which then must agree with any sort, filter and scope
/// also given, as KFP checks).
fn query_state(q: &Query) -> Result<(Sort, String, Option<Cursor>), ApiError> {
    if q.page_token.is_empty() {
        return Ok((parse_sort(q.sort_by)?, canonical_filter(q.filter)?, None));
    }
    let token = decode(q.page_token)?;
    if !q.sort_by.is_empty() && parse_sort(q.sort_by)? != token.sort {
        return Err(ApiError::invalid(
            "page token does not match the sort_by of the request",
        ));
    }
    if !q.filter.is_empty() && canonical_filter(q.filter)? != token.filter {
        return Err(ApiError::invalid("page token does not match the filter of the request"));
    }
    if token.scope != q.scope {
        return Err(ApiError::invalid(
            "page token does not match the resource_reference_key of the request",
        ));
    }
    let cursor = (Key::from(token.after), token.after_id.into());
    Ok((token.sort, token.filter, Some(cursor)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::to_ts;

    fn job(id: &str, name: &str, created: i64) -> Job {
        Job {
            id: id.into(),
            name: name.into(),
            created_at: Some(to_ts(jiff::Timestamp::from_second(created).unwrap())),
            ..Default::default()
        }
    }

    fn q<'a>(token: &'a str, size: i32, sort: &'a str, filter: &'a str) -> Query<'a> {
        Query {
            page_token: token,
            page_size: size,
            sort_by: sort,
            filter,
            scope: "ns",
        }
    }

    fn ids(p: &Page<Job>) -> Vec<&str> {
        p.items.iter().map(|j| j.id.as_str()).collect()
    }

    fn page(jobs: Vec<Job>, q: &Query) -> Result<Page<Job>, ApiError> {
        let mut ordered = Ordered::default();
        for j in jobs {
            ordered.upsert(Row::from(&j), j);
        }
        super::page(&ordered, q)
    }

    #[test]
    fn default_order_is_created_at_then_id() {
        let jobs = vec![job("b", "x", 2), job("a", "y", 2), job("c", "z", 1)];
        let p = page(jobs, &q("", 0, "", "")).unwrap();
        assert_eq!(ids(&p), vec!["c", "a", "b"]);
        assert_eq!(p.total_size, 3);
        assert!(p.next_page_token.is_empty());
    }

    #[test]
    fn pages_survive_deletes_and_creates_between_requests() {
        let mut jobs: Vec<Job> = (0..10)
            .map(|i| job(&format!("id{i:02}"), &format!("n{i}"), 100 + i))
            .collect();
        let p1 = page(jobs.clone(), &q("", 3, "name desc", "")).unwrap();
        assert_eq!(ids(&p1), vec!["id09", "id08", "id07"]);
        // Between requests: a returned job and a not-yet-returned one are deleted, one is added.
        jobs.retain(|j| j.id != "id08" && j.id != "id05");
        jobs.push(job("id99", "n0a", 500));
        let p2 = page(jobs.clone(), &q(&p1.next_page_token, 3, "", "")).unwrap();
        assert_eq!(ids(&p2), vec!["id06", "id04", "id03"]);
        let p3 = page(jobs, &q(&p2.next_page_token, 3, "", "")).unwrap();
        assert_eq!(ids(&p3), vec!["id02", "id01", "id99"]);
    }

    #[test]
    fn the_last_full_page_has_no_next_token() {
        let jobs: Vec<Job> = (0..6).map(|i| job(&format!("id{i}"), "n", 100 + i)).collect();
        let p1 = page(jobs.clone(), &q("", 3, "", "")).unwrap();
        assert!(!p1.next_page_token.is_empty(), "three more jobs after the first page");
        let p2 = page(jobs, &q(&p1.next_page_token, 3, "", "")).unwrap();
        assert_eq!(ids(&p2), vec!["id3", "id4", "id5"]);
        assert!(p2.next_page_token.is_empty(), "nothing after the second page");
    }

    #[test]
    fn a_page_token_is_refused_outside_its_namespace() {
        let jobs: Vec<Job> = (0..4).map(|i| job(&format!("id{i}"), "n", 100 + i)).collect();
        let first = page(jobs.clone(), &q("", 2, "", "")).unwrap();
        let elsewhere = Query {
            scope: "other-ns",
            ..q(&first.next_page_token, 2, "", "")
        };
        let err = page(jobs, &elsewhere).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("resource_reference_key"), "{err}");
    }

    /// `total_size` counts every job the filter matches, not the page nor the scope (found by
    /// mutation testing: nothing read it on a filtered page).
    #[test]
    fn a_filtered_pages_total_is_every_match() {
        let jobs: Vec<Job> = (0..7)
            .map(|i| job(&format!("id{i}"), if i % 2 == 0 { "even" } else { "odd" }, 10 + i))
            .collect();
        let even = r#"{"predicates":[{"op":"EQUALS","key":"name","string_value":"even"}]}"#;
        let p = page(jobs, &q("", 2, "", even)).unwrap();
        assert_eq!(ids(&p), vec!["id0", "id2"]);
        assert_eq!(p.total_size, 4, "id0, id2, id4, id6");
    }

    #[test]
    fn filters() {
        let jobs = vec![job("a", "alpha", 10), job("b", "beta", 20), job("c", "gamma", 30)];
        let run = |f: &str| {
            ids(&page(jobs.clone(), &q("", 0, "", f)).unwrap())
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(r#"{"predicates":[{"op":"EQUALS","key":"name","string_value":"beta"}]}"#),
            vec!["b"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"NOT_EQUALS","key":"name","string_value":"beta"}]}"#),
            vec!["a", "c"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"GREATER_THAN","key":"created_at","long_value":"10"}]}"#),
            vec!["b", "c"]
        );
        assert_eq!(
            run(
                r#"{"predicates":[{"op":"GREATER_THAN_EQUALS","key":"created_at","timestamp_value":"1970-01-01T00:00:20Z"}]}"#
            ),
            vec!["b", "c"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"LESS_THAN","key":"created_at","int_value":30}]}"#),
            vec!["a", "b"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"LESS_THAN_EQUALS","key":"created_at","intValue":10}]}"#),
            vec!["a"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"IN","key":"name","string_values":{"values":["alpha","gamma"]}}]}"#),
            vec!["a", "c"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"IS_SUBSTRING","key":"name","stringValue":"MM"}]}"#),
            vec!["c"],
            "case-insensitive, as SQL LIKE"
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"IN","key":"name","string_values":{"values":[]}}]}"#),
            Vec::<String>::new(),
            "IN () matches nothing"
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"IN","key":"created_at","int_values":{"values":[10,30]}}]}"#),
            vec!["a", "c"]
        );
        assert_eq!(
            run(r#"{"predicates":[{"op":"IN","key":"created_at","long_values":{"values":["20"]}}]}"#),
            vec!["b"]
        );
        // Encoded once more, as the KFP UI sends it (KFP's parseAPIFilter unescapes it).
        let twice = "%7B%22predicates%22%3A%5B%7B%22op%22%3A%22EQUALS%22%2C%22key%22%3A%22name%22%2C%22string_value%22%3A%22beta%22%7D%5D%7D";
        assert_eq!(run(twice), vec!["b"]);
        assert_eq!(
            run(
                r#"{"predicates":[{"op":"IS_SUBSTRING","key":"name","string_value":"a"},{"op":"LESS_THAN","key":"created_at","long_value":"25"}]}"#
            ),
            vec!["a", "b"]
        );
    }

    #[test]
    fn bad_queries_are_400s() {
        let jobs = vec![job("a", "alpha", 10)];
        let refused = |token: &str, size: i32, sort: &str, filter: &str, want: &str| {
            let err = page(jobs.clone(), &q(token, size, sort, filter))
                .err()
                .unwrap_or_else(|| panic!("{want}: no error"));
            assert!(err.message.contains(want), "{want}: {err:?}");
            assert_eq!(err.http_status(), 400);
        };
        for (token, size, sort, filter, want) in [
            ("", -1, "", "", "Invalid page size"),
            ("", 0, "colour", "", "Invalid sorting field"),
            ("", 0, "name sideways", "", "Invalid sorting field"),
            ("", 0, "", "{not json", "Invalid filter"),
            ("forged!!", 0, "", "", "Invalid page token"),
            ("eyJmb28iOjF9", 0, "", "", "Invalid page token"),
        ] {
            refused(token, size, sort, filter, want);
        }
        for (filter, want) in [
            (
                r#"{"predicates":[{"op":"EQUALS","key":"colour","string_value":"x"}]}"#,
                "unrecognized field",
            ),
            (
                r#"{"predicates":[{"op":"EQUALS","key":"name","long_value":"1"}]}"#,
                "needs string_value",
            ),
            (
                r#"{"predicates":[{"op":"EQUALS","key":"created_at","string_value":"yesterday"}]}"#,
                "needs timestamp_value",
            ),
            (
                r#"{"predicates":[{"op":"IN","key":"updated_at","string_values":{"values":["1"]}}]}"#,
                "needs timestamp_value",
            ),
            (
                r#"{"predicates":[{"op":"EQUALS","key":"name","int_value":1}]}"#,
                "needs string_value",
            ),
            (
                r#"{"predicates":[{"op":"EQUALS","key":"name","timestamp_value":"1970-01-01T00:00:20Z"}]}"#,
                "needs string_value",
            ),
            (
                r#"{"predicates":[{"op":"IN","key":"name","int_values":{"values":[1]}}]}"#,
                "needs string_value",
            ),
            (
                r#"{"predicates":[{"op":"IN","key":"name","long_values":{"values":["1"]}}]}"#,
                "needs string_value",
            ),
            (r#"{"predicates":[{"key":"name","string_value":"x"}]}"#, "has no op"),
            (
                r#"{"predicates":[{"op":"IS_SUBSTRING","key":"created_at","long_value":"1"}]}"#,
                "IS_SUBSTRING needs a string field",
            ),
            (
                r#"{"predicates":[{"op":"EQUALS","key":"name","string_values":{"values":["x"]}}]}"#,
                "takes a single value",
            ),
        ] {
            refused("", 0, "", filter, want);
        }
        let p = page(
            (0..3).map(|i| job(&format!("{i}"), "n", i)).collect(),
            &q("", 1, "name", ""),
        )
        .unwrap();
        let err = page(vec![], &q(&p.next_page_token, 1, "id", "")).err().unwrap();
        assert!(err.message.contains("does not match the sort_by"));
    }

    /// Every field KFP's ListJobs sorts by (with its old names), either direction, any case.
    #[test]
    fn every_sort_field_kfp_names_is_accepted() {
        for (sort_by, field, desc) in [
            ("id", Field::Id, false),
            ("recurring_run_id desc", Field::Id, true),
            ("display_name", Field::Name, false),
            ("name asc", Field::Name, false),
            ("NAME DESC", Field::Name, true),
            ("created_at", Field::CreatedAt, false),
            ("updated_at", Field::UpdatedAt, false),
            ("description desc", Field::Description, true),
            ("package_id", Field::PackageId, false),
            ("pipeline_id asc", Field::PackageId, false),
        ] {
            assert_eq!(parse_sort(sort_by).ok(), Some(Sort { field, desc }), "{sort_by}");
        }
    }

    /// A query scans every job of its scope (on a blocking thread) only when it has a filter,
    /// given or carried in its page token.
    #[test]
    fn a_query_is_filtered_when_its_filter_or_its_token_has_one() {
        let jobs: Vec<Job> = (0..3).map(|i| job(&format!("{i}"), "n", i)).collect();
        let filter = r#"{"predicates":[{"op":"EQUALS","key":"name","string_value":"n"}]}"#;
        let token_of = |filter: &str| page(jobs.clone(), &q("", 1, "", filter)).unwrap().next_page_token;
        let (plain_token, filtered_token) = (token_of(""), token_of(filter));
        assert!(!filtered("", ""));
        assert!(!filtered(" ", ""), "blank");
        assert!(!filtered("", &plain_token));
        assert!(filtered(filter, ""));
        assert!(filtered("", &filtered_token));
        assert!(!filtered("", "forged!!"), "refused by `page`, not scanned");
    }

    /// A page token carries its filter: the next page may repeat it (as KFP's clients do) or
    /// leave it out, and is refused with another one.
    #[test]
    fn a_page_token_carries_its_filter_and_refuses_another() {
        let jobs = vec![job("a", "n", 1), job("b", "m", 2), job("c", "n", 3)];
        let n = r#"{"predicates":[{"op":"EQUALS","key":"name","string_value":"n"}]}"#;
        let m = r#"{"predicates":[{"op":"EQUALS","key":"name","string_value":"m"}]}"#;
        let first = page(jobs.clone(), &q("", 1, "", n)).unwrap();
        assert_eq!(ids(&first), ["a"]);
        let token = first.next_page_token.as_str();
        for repeated in ["", n] {
            let next = page(jobs.clone(), &q(token, 1, "", repeated)).unwrap();
            assert_eq!(ids(&next), ["c"], "filter {repeated:?}");
        }
        let err = page(jobs, &q(token, 1, "", m)).err().unwrap();
        assert!(err.message.contains("does not match the filter"), "{err:?}");
    }

    #[test]
    fn filters_are_bounded() {
        let predicate = r#"{"op":"EQUALS","key":"name","string_value":"x"}"#;
        let many = format!(
            r#"{{"predicates":[{}]}}"#,
            vec![predicate; MAX_PREDICATES + 1].join(",")
        );
        let enough = format!(r#"{{"predicates":[{}]}}"#, vec![predicate; MAX_PREDICATES].join(","));
        let substring = |bytes: usize| {
            format!(
                r#"{{"predicates":[{{"op":"IS_SUBSTRING","key":"name","string_value":"{}"}}]}}"#,
                "x".repeat(bytes)
            )
        };
        let in_values = |n: usize| {
            let values: Vec<String> = (0..n).map(|i| format!("\"{i}\"")).collect();
            format!(
                r#"{{"predicates":[{{"op":"IN","key":"name","string_values":{{"values":[{}]}}}}]}}"#,
                values.join(",")
            )
        };
        let jobs = vec![job("a", "x", 1)];
        for at_the_bound in [enough, in_values(MAX_FILTER_VALUES), substring(MAX_FILTER_VALUE_BYTES)] {
            assert!(page(jobs.clone(), &q("", 0, "", &at_the_bound)).is_ok());
        }
        let (wide, long) = (in_values(MAX_FILTER_VALUES + 1), substring(MAX_FILTER_VALUE_BYTES + 1));
        for (filter, want) in [(many, "predicates"), (wide, "values"), (long, "longer than")] {
            let err = page(jobs.clone(), &q("", 0, "", &filter)).err().unwrap();
            assert!(err.message.contains(want), "{want}: {}", err.message);
            assert_eq!(err.http_status(), 400);
        }
    }

    #[test]
    fn page_size_is_clamped() {
        let jobs: Vec<Job> = (0..250).map(|i| job(&format!("{i:03}"), "n", i)).collect();
        assert_eq!(page(jobs.clone(), &q("", 1000, "", "")).unwrap().items.len(), 200);
        assert_eq!(page(jobs, &q("", 0, "", "")).unwrap().items.len(), 20);
    }
}
