//! Objects as the API server stores them, decoded so that one bad object is reported instead
//! of failing a whole LIST or watch.
//!
//! The API server keeps values the Rust types cannot hold (an int32 field of 2^31 in a CRD,
//! nesting deeper than serde_json's 128 levels, a `status.phase` that is a number). A typed
//! LIST fails as a whole on such an object, so one bad object would stop every schedule.
//! Here `spec` and `status` are captured as raw JSON text (serde_json skips nested values
//! iteratively, with no depth limit) and decoded per object; metadata is read field by field,
//! skipping `managedFields` (as deep as the object itself) without parsing it.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::{
    Resource,
    api::ApiResource,
    core::{DynamicResourceScope, NamespaceResourceScope},
};
use serde::{Deserialize, Deserializer, de::IgnoredAny};
use serde_json::value::RawValue;

use crate::model::{
    crd::{ScheduledWorkflow, ScheduledWorkflowSpec, ScheduledWorkflowStatus},
    keys::{ARGO_COMPLETED_LABEL, LABEL_RUN_ID, OWN_ANNOTATION_PREFIX},
};

/// The metadata fields the operator reads. Everything else (notably `managedFields`) is
/// skipped unparsed.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaFields {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl MetaFields {
    /// `ObjectMeta` with only the annotations under our prefix (the rest, such as kubectl's
    /// `last-applied-configuration`, can be as large as the object).
    fn into_meta(self, keep_label: impl Fn(&str) -> bool) -> ObjectMeta {
        let own = |m: BTreeMap<String, String>, keep: &dyn Fn(&str) -> bool| -> Option<BTreeMap<String, String>> {
            let kept: BTreeMap<_, _> = m.into_iter().filter(|(k, _)| keep(k)).collect();
            (!kept.is_empty()).then_some(kept)
        };
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            uid: self.uid,
            resource_version: self.resource_version,
            generation: self.generation,
            creation_timestamp: self.creation_timestamp,
            deletion_timestamp: self.deletion_timestamp,
            labels: self.labels.and_then(|l| own(l, &keep_label)),
            annotations: self
                .annotations
                .and_then(|a| own(a, &|k: &str| k.starts_with(OWN_ANNOTATION_PREFIX))),
            owner_references: self.owner_references,
            ..Default::default()
        }
    }
}

/// Why a stored spec could not be read, with the field path (e.g.
/// `spec.successfulRunsHistoryLimit: invalid value: integer 2147483648, expected i32`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn decode<T: serde::de::DeserializeOwned>(field: &str, raw: Option<&RawValue>) -> Result<T, DecodeError> {
    let text = raw.map_or("{}", RawValue::get);
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            field.to_string()
        } else {
            format!("{field}.{path}")
        };
        DecodeError(format!("{at}: {}", without_position(&e.inner().to_string())))
    })
}

/// serde_json ends its messages with the position in the JSON text the API server sent, which
/// the user never sees and which moves when other fields change.
fn without_position(message: &str) -> &str {
    match message.rsplit_once(" at line ") {
        Some((text, position))
            if position
                .split_once(" column ")
                .is_some_and(|(l, c)| l.parse::<u64>().is_ok() && c.parse::<u64>().is_ok()) =>
        {
            text
        }
        _ => message,
    }
}

/// A `ScheduledWorkflow` as stored: metadata always, the spec when it decodes.
#[derive(Clone, Debug)]
pub struct SwfObject {
    pub metadata: ObjectMeta,
    pub spec: Result<ScheduledWorkflowSpec, DecodeError>,
    /// The stored status; empty when it cannot be decoded (see `status_error`).
    pub status: ScheduledWorkflowStatus,
    pub status_error: Option<DecodeError>,
    /// The stored spec has no `enabled` (or a null one): the schedule is disabled by default,
    /// as in KFP, which surprises users of CronJob (whose `suspend` defaults to false).
    pub enabled_unset: bool,
}

/// Only whether `spec.enabled` is there; every other field is skipped unparsed.
#[derive(Deserialize)]
struct EnabledProbe {
    enabled: Option<IgnoredAny>,
}

fn enabled_unset(spec: Option<&RawValue>) -> bool {
    spec.and_then(|s| serde_json::from_str::<EnabledProbe>(s.get()).ok())
        .is_some_and(|probe| probe.enabled.is_none())
}

#[derive(Deserialize)]
struct RawObject {
    #[serde(default)]
    metadata: MetaFields,
    spec: Option<Box<RawValue>>,
    status: Option<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for SwfObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawObject::deserialize(d)?;
        let (status, status_error) = match decode("status", raw.status.as_deref()) {
            Ok(s) => (s, None),
            Err(e) => (ScheduledWorkflowStatus::default(), Some(e)),
        };
        Ok(SwfObject {
            metadata: raw.metadata.into_meta(|_| true),
            spec: decode("spec", raw.spec.as_deref()),
            status,
            status_error,
            enabled_unset: enabled_unset(raw.spec.as_deref()),
        })
    }
}

impl SwfObject {
    /// Builds one from a typed object (tests, and objects the operator itself created).
    pub fn from_typed(swf: ScheduledWorkflow) -> Self {
        SwfObject {
            metadata: swf.metadata,
            spec: Ok(swf.spec),
            status: swf.status.unwrap_or_default(),
            status_error: None,
            enabled_unset: false,
        }
    }
}

impl Resource for SwfObject {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ScheduledWorkflow::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ScheduledWorkflow::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ScheduledWorkflow::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ScheduledWorkflow::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Labels of a run the operator reads (ours, KFP's and Argo's completion label).
fn run_label_kept(key: &str) -> bool {
    key.starts_with(OWN_ANNOTATION_PREFIX) || key == LABEL_RUN_ID || key == ARGO_COMPLETED_LABEL
}

/// The longest message kept per run (Argo messages can be long; status lists them).
const MAX_MESSAGE: usize = 1024;

/// A run as the operator caches it: the metadata it plans with and the status fields any
/// known kind uses to say it has finished. The rest of the object is never parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunObject {
    pub metadata: ObjectMeta,
    pub status: RunStatusFields,
}

/// The union of the status fields the classification reads, each decoded leniently: a value
/// of the wrong type reads as absent.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatusFields {
    /// Argo: Pending, Running, Succeeded, Failed, Error.
    #[serde(default, deserialize_with = "lenient::string")]
    pub phase: Option<String>,
    #[serde(default, deserialize_with = "lenient::message")]
    pub message: Option<String>,
    /// Argo's start and finish times.
    #[serde(default, deserialize_with = "lenient::time")]
    pub started_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "lenient::time")]
    pub finished_at: Option<Timestamp>,
    /// Job and Tekton start and completion times.
    #[serde(default, deserialize_with = "lenient::time")]
    pub start_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "lenient::time")]
    pub completion_time: Option<Timestamp>,
    #[serde(default, deserialize_with = "lenient::conditions")]
    pub conditions: Vec<RunCondition>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCondition {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub type_: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::message")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient::time")]
    pub last_transition_time: Option<Timestamp>,
}

#[derive(Deserialize)]
struct RawRun {
    #[serde(default)]
    metadata: MetaFields,
    #[serde(default, deserialize_with = "lenient::object")]
    status: RunStatusFields,
}

impl<'de> Deserialize<'de> for RunObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRun::deserialize(d)?;
        Ok(RunObject {
            metadata: raw.metadata.into_meta(run_label_kept),
            status: raw.status,
        })
    }
}

impl Resource for RunObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.kind)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.group)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.version)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.api_version)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.plural)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Field deserializers that read a value of the wrong type as absent instead of failing the
/// whole object. Nested values they skip are skipped by serde_json without recursion.
mod lenient {
    use std::marker::PhantomData;

    use serde::de::{self, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};

    use super::*;

    macro_rules! absent_for_scalars {
        () => {
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
        };
    }

    fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    struct StringOrAbsent;

    impl<'de> Visitor<'de> for StringOrAbsent {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|_| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|_| None)
        }
        absent_for_scalars!();
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(StringOrAbsent)
    }

    pub fn message<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(string(d)?.map(|mut m| {
            if m.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
                m.push('…');
            }
            m
        }))
    }

    pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(string(d)?.and_then(|s| s.parse().ok()))
    }

    /// A struct whose fields are all lenient; anything but an object reads as its default.
    struct ObjectOrDefault<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjectOrDefault<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<T, E> {
            Ok(T::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            skip_seq(seq).map(|_| T::default())
        }
        absent_for_scalars!();
    }

    pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
        d.deserialize_any(ObjectOrDefault(PhantomData))
    }

    /// At most this many conditions are kept per run.
    const MAX_CONDITIONS: usize = 16;

    struct Conditions;

    struct Element;

    impl<'de> de::DeserializeSeed<'de> for Element {
        type Value = RunCondition;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RunCondition, D::Error> {
            object(d)
        }
    }

    impl<'de> Visitor<'de> for Conditions {
        type Value = Vec<RunCondition>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of conditions")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(c) = seq.next_element_seed(Element)? {
                if out.len() < MAX_CONDITIONS {
                    out.push(c);
                }
            }
            Ok(out)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|_| Vec::new())
        }
        absent_for_scalars!();
    }

    pub fn conditions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RunCondition>, D::Error> {
        d.deserialize_any(Conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn a_spec_without_enabled_is_told_from_one_with_enabled_false() {
        let unset = |spec: &str| {
            let text = format!(r#"{{"metadata": {{"name": "s"}}, "spec": {spec}}}"#);
            serde_json::from_str::<SwfObject>(&text).unwrap().enabled_unset
        };
        assert!(unset(r#"{"trigger": {}}"#));
        assert!(unset(r#"{"enabled": null}"#));
        assert!(!unset(r#"{"enabled": false}"#));
        assert!(!unset(r#"{"enabled": true, "trigger": {}}"#));
    }

    #[test]
    fn an_undecodable_spec_is_reported_with_its_field_and_the_list_still_decodes() {
        let list = format!(
            r#"[{{"metadata": {{"name": "bad", "uid": "u1"}}, "spec": {{"successfulRunsHistoryLimit": 2147483648}}}},
                {{"metadata": {{"name": "deep", "uid": "u2"}}, "spec": {{"runTemplate": {{"apiVersion": "v1", "kind": "X", "spec": {}}}}}}},
                {{"metadata": {{"name": "good", "uid": "u3", "managedFields": [{{"fieldsV1": {}}}]}}, "spec": {{"enabled": true}}, "status": {{"conditions": "nope"}}}}]"#,
            nested(200),
            nested(300)
        );
        let objs: Vec<SwfObject> = serde_json::from_str(&list).unwrap();
        assert_eq!(objs.len(), 3);
        let err = objs[0].spec.as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("spec.successfulRunsHistoryLimit: invalid value: integer `2147483648`"),
            "{err}"
        );
        assert!(
            !err.contains(" at line "),
            "no position that moves with other fields: {err}"
        );
        let err = objs[1].spec.as_ref().unwrap_err().to_string();
        assert!(err.contains("recursion limit exceeded"), "{err}");
        assert!(objs[2].spec.as_ref().unwrap().enabled);
        assert!(
            objs[2]
                .status_error
                .as_ref()
                .unwrap()
                .0
                .starts_with("status.conditions")
        );
        assert_eq!(objs[2].metadata.name.as_deref(), Some("good"));
    }

    #[test]
    fn runs_decode_leniently_and_keep_only_what_planning_needs() {
        let text = format!(
            r#"{{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
              "metadata": {{"name": "r", "uid": "u", "labels": {{"scheduledworkflows.kubeflow.org/workflowEpoch": "10", "team": "x",
                  "workflows.argoproj.io/completed": "true"}},
                "annotations": {{"kubectl.kubernetes.io/last-applied-configuration": "{{}}", "scheduledworkflows.kubeflow.org/runNowRequest": "a"}},
                "managedFields": [{{"fieldsV1": {deep}}}]}},
              "spec": {deep},
              "status": {{"phase": 7, "message": "{long}", "startedAt": "not a time", "finishedAt": "2026-01-01T00:00:00Z",
                "conditions": [{{"type": "Complete", "status": "True"}}, 5, "x"], "nodes": {deep}}}}}"#,
            deep = nested(500),
            long = "m".repeat(5000)
        );
        let run: RunObject = serde_json::from_str(&text).unwrap();
        let labels = run.metadata.labels.unwrap();
        assert_eq!(labels.len(), 2, "{labels:?}");
        assert_eq!(run.metadata.annotations.unwrap().len(), 1);
        assert_eq!(run.status.phase, None, "a number is not a phase");
        assert!(run.status.message.unwrap().len() <= MAX_MESSAGE + 3);
        assert_eq!(run.status.started_at, None);
        assert_eq!(run.status.finished_at, Some("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(run.status.conditions.len(), 3);
        assert_eq!(run.status.conditions[0].type_.as_deref(), Some("Complete"));
        let odd: RunObject = serde_json::from_str(r#"{"metadata": {"name": "x"}, "status": "weird"}"#).unwrap();
        assert_eq!(odd.status, RunStatusFields::default());
    }
}
