//! Pure ListJobs logic: `sort_by`, `filter`, `page_size` and keyset page tokens.
//!
//! Pages are cut by a cursor (the sort value and id of the last job returned), not by an offset:
//! jobs created or deleted between two page requests never cause a duplicate or a skipped
//! survivor. `total_size` counts every job that matches the filter.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{
    error::ApiError,
    proto::{Filter, Job, predicate},
};

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    Description,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "id" | "recurring_run_id" => Field::Id,
            "name" | "display_name" => Field::Name,
            "created_at" => Field::CreatedAt,
            "updated_at" => Field::UpdatedAt,
            "description" => Field::Description,
            _ => return None,
        })
    }
}

/// A job's value for sorting and filtering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Str(String),
}

fn value(job: &Job, field: Field) -> Value {
    match field {
        Field::Id => Value::Str(job.id.clone()),
        Field::Name => Value::Str(job.name.clone()),
        Field::Description => Value::Str(job.description.clone()),
        Field::CreatedAt => Value::Int(job.created_at.as_ref().map_or(0, |t| t.seconds)),
        Field::UpdatedAt => Value::Int(job.updated_at.as_ref().map_or(0, |t| t.seconds)),
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
}

/// Parses the `filter` parameter (a JSON `api.Filter`; proto or camelCase names).
fn parse_filter(filter: &str) -> Result<Vec<Check>, ApiError> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    let parsed: Filter = serde_json::from_str(filter).map_err(|e| ApiError::invalid(format!("Invalid filter: {e}")))?;
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
        let list_op = op == predicate::Op::In;
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
            _ if list_op && values.is_empty() => {
                return Err(ApiError::invalid("Invalid filter: IN needs at least one value"));
            }
            _ if !list_op && !single => {
                return Err(ApiError::invalid(format!(
                    "Invalid filter: {} takes a single value",
                    op.as_str_name()
                )));
            }
            _ => {}
        }
        checks.push(Check { field, op, values });
    }
    Ok(checks)
}

fn matches(job: &Job, checks: &[Check]) -> bool {
    use predicate::Op::*;
    checks.iter().all(|c| {
        let v = value(job, c.field);
        let x = &c.values[0];
        match c.op {
            Equals => &v == x,
            NotEquals => &v != x,
            GreaterThan => &v > x,
            GreaterThanEquals => &v >= x,
            LessThan => &v < x,
            LessThanEquals => &v <= x,
            In => c.values.contains(&v),
            IsSubstring => matches!((&v, x), (Value::Str(s), Value::Str(sub)) if s.contains(sub.as_str())),
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

pub struct Page {
    pub jobs: Vec<Job>,
    pub total_size: i32,
    pub next_page_token: String,
}

/// Sorts, filters and cuts one page out of every job in scope.
pub fn page(mut jobs: Vec<Job>, q: &Query) -> Result<Page, ApiError> {
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
    let (sort, filter, after) = if q.page_token.is_empty() {
        (parse_sort(q.sort_by)?, q.filter.to_string(), None)
    } else {
        let token = decode(q.page_token)?;
        // A token replaces sort and filter; if they are given too they must agree (KFP).
        if !q.sort_by.is_empty() && parse_sort(q.sort_by)? != token.sort {
            return Err(ApiError::invalid(
                "page token does not match the sort_by of the request",
            ));
        }
        if !q.filter.is_empty() && q.filter != token.filter {
            return Err(ApiError::invalid("page token does not match the filter of the request"));
        }
        if token.scope != q.scope {
            return Err(ApiError::invalid(
                "page token does not match the resource_reference_key of the request",
            ));
        }
        (token.sort, token.filter.clone(), Some((token.after, token.after_id)))
    };
    let checks = parse_filter(&filter)?;
    jobs.retain(|j| matches(j, &checks));
    let total_size = jobs.len() as i32;
    let key = |j: &Job| (value(j, sort.field), j.id.clone());
    jobs.sort_by(|a, b| {
        let ord = key(a).cmp(&key(b));
        if sort.desc { ord.reverse() } else { ord }
    });
    if let Some(cursor) = after {
        jobs.retain(|j| {
            let k = key(j);
            if sort.desc { k < cursor } else { k > cursor }
        });
    }
    let more = jobs.len() > size;
    jobs.truncate(size);
    let next_page_token = match (more, jobs.last()) {
        (true, Some(last)) => encode(&Token {
            sort,
            filter,
            scope: q.scope.to_string(),
            after: value(last, sort.field),
            after_id: last.id.clone(),
        }),
        _ => String::new(),
    };
    Ok(Page {
        jobs,
        total_size,
        next_page_token,
    })
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

    fn ids(p: &Page) -> Vec<&str> {
        p.jobs.iter().map(|j| j.id.as_str()).collect()
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
            run(r#"{"predicates":[{"op":"IS_SUBSTRING","key":"name","stringValue":"mm"}]}"#),
            vec!["c"]
        );
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
        for (token, size, sort, filter, want) in [
            ("", -1, "", "", "Invalid page size"),
            ("", 0, "colour", "", "Invalid sorting field"),
            ("", 0, "name sideways", "", "Invalid sorting field"),
            ("", 0, "", "{not json", "Invalid filter"),
            (
                "",
                0,
                "",
                r#"{"predicates":[{"op":"EQUALS","key":"colour","string_value":"x"}]}"#,
                "unrecognized field",
            ),
            (
                "",
                0,
                "",
                r#"{"predicates":[{"op":"EQUALS","key":"name","long_value":"1"}]}"#,
                "needs string_value",
            ),
            ("forged!!", 0, "", "", "Invalid page token"),
            ("eyJmb28iOjF9", 0, "", "", "Invalid page token"),
        ] {
            let err = page(jobs.clone(), &q(token, size, sort, filter))
                .err()
                .unwrap_or_else(|| panic!("{want}: no error"));
            assert!(err.message.contains(want), "{want}: {err:?}");
            assert_eq!(err.http_status(), 400);
        }
        let p = page(
            (0..3).map(|i| job(&format!("{i}"), "n", i)).collect(),
            &q("", 1, "name", ""),
        )
        .unwrap();
        let err = page(vec![], &q(&p.next_page_token, 1, "id", "")).err().unwrap();
        assert!(err.message.contains("does not match the sort_by"));
    }

    #[test]
    fn page_size_is_clamped() {
        let jobs: Vec<Job> = (0..250).map(|i| job(&format!("{i:03}"), "n", i)).collect();
        assert_eq!(page(jobs.clone(), &q("", 1000, "", "")).unwrap().jobs.len(), 200);
        assert_eq!(page(jobs, &q("", 0, "", "")).unwrap().jobs.len(), 20);
    }
}
