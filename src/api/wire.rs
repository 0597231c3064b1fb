//! How much a protobuf message holds, counted on the wire before it is decoded (pure).
//!
//! prost allocates per element of a repeated field: an empty `ResourceReference` is two bytes
//! on the wire and about eighty once decoded, so a 4 MiB `CreateJobRequest` could cost
//! hundreds of MiB. This walks the encoded message with the schema (the descriptors the
//! service is built from) and counts its fields at every level, without allocating per field,
//! so a message with more fields than a valid request needs is refused before prost sees it.

use std::collections::HashMap;

use prost::Message as _;
use prost_types::{
    DescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};

/// What a field holds, as far as counting goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    /// A message (by its full name, e.g. `.api.Job`): walked.
    Message(String),
    /// Packed repeated numbers: one element per byte at most.
    Packed,
    /// A number, a string, bytes: one field.
    Single,
}

/// Every message type of a descriptor set: field number → what it holds.
#[derive(Debug, Default)]
pub struct Schema {
    messages: HashMap<String, HashMap<i32, Field>>,
    /// gRPC path (`/api.JobService/CreateJob`) → request message type.
    requests: HashMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the message has more than {0} fields, more than a valid request needs")]
    TooManyFields(usize),
    #[error("the message nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("the message is malformed: {0}")]
    Malformed(&'static str),
}

/// The most a message may hold.
#[derive(Clone, Copy, Debug)]
pub struct WireBounds {
    pub max_fields: usize,
    pub max_depth: usize,
}

impl Schema {
    /// From an encoded `FileDescriptorSet` (what `tonic::include_file_descriptor_set!` gives).
    pub fn from_descriptors(encoded: &[u8]) -> Result<Schema, prost::DecodeError> {
        let set = FileDescriptorSet::decode(encoded)?;
        let mut schema = Schema::default();
        for file in &set.file {
            let package = file.package.as_deref().unwrap_or_default();
            let prefix = if package.is_empty() {
                String::new()
            } else {
                format!(".{package}")
            };
            for message in &file.message_type {
                schema.add(&prefix, message);
            }
            for service in &file.service {
                let service_name = match package {
                    "" => service.name().to_string(),
                    package => format!("{package}.{}", service.name()),
                };
                for method in &service.method {
                    let path = format!("/{service_name}/{}", method.name());
                    schema.requests.insert(path, method.input_type().to_string());
                }
            }
        }
        Ok(schema)
    }

    fn add(&mut self, prefix: &str, message: &DescriptorProto) {
        let name = format!("{prefix}.{}", message.name());
        let fields = message
            .field
            .iter()
            .map(|f| {
                let kind = match f.r#type() {
                    Type::Message | Type::Group => Field::Message(f.type_name().to_string()),
                    Type::String | Type::Bytes => Field::Single,
                    _ if f.label() == Label::Repeated => Field::Packed,
                    _ => Field::Single,
                };
                (f.number(), kind)
            })
            .collect();
        self.messages.insert(name.clone(), fields);
        for nested in &message.nested_type {
            self.add(&name, nested);
        }
    }

    /// The request message type of a gRPC method, by its path.
    pub fn request_type(&self, path: &str) -> Option<&str> {
        self.requests.get(path).map(String::as_str)
    }

    /// Ok when `bytes`, a `message` (full name), stays within `bounds`.
    pub fn check(&self, message: &str, bytes: &[u8], bounds: WireBounds) -> Result<(), WireError> {
        let mut walk = Walk {
            schema: self,
            bounds,
            fields: 0,
        };
        walk.message(message, bytes, 1)
    }

    /// Ok when a gRPC request body (length-prefixed messages) stays within `bounds`.
    /// Compressed messages are refused: the API accepts none.
    pub fn check_grpc_body(&self, message: &str, mut body: &[u8], bounds: WireBounds) -> Result<(), WireError> {
        while !body.is_empty() {
            let [flag, a, b, c, d, rest @ ..] = body else {
                return Err(WireError::Malformed("a gRPC frame shorter than its header"));
            };
            if *flag != 0 {
                return Err(WireError::Malformed("compressed messages are not accepted"));
            }
            let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
            let (frame, after) = rest
                .split_at_checked(len)
                .ok_or(WireError::Malformed("a gRPC frame longer than the body"))?;
            self.check(message, frame, bounds)?;
            body = after;
        }
        Ok(())
    }
}

struct Walk<'a> {
    schema: &'a Schema,
    bounds: WireBounds,
    fields: usize,
}

impl Walk<'_> {
    fn count(&mut self, n: usize) -> Result<(), WireError> {
        self.fields = self.fields.saturating_add(n);
        if self.fields > self.bounds.max_fields {
            return Err(WireError::TooManyFields(self.bounds.max_fields));
        }
        Ok(())
    }

    fn message(&mut self, name: &str, mut bytes: &[u8], depth: usize) -> Result<(), WireError> {
        if depth > self.bounds.max_depth {
            return Err(WireError::TooDeep(self.bounds.max_depth));
        }
        let fields = self.schema.messages.get(name);
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let number = i32::try_from(key >> 3).map_err(|_| WireError::Malformed("a field number out of range"))?;
            self.count(1)?;
            match key & 7 {
                0 => {
                    varint(&mut bytes)?;
                }
                1 => bytes = skip(bytes, 8)?,
                5 => bytes = skip(bytes, 4)?,
                2 => {
                    let len = usize::try_from(varint(&mut bytes)?)
                        .map_err(|_| WireError::Malformed("a length out of range"))?;
                    let (value, rest) = bytes
                        .split_at_checked(len)
                        .ok_or(WireError::Malformed("a length beyond the message"))?;
                    match fields.and_then(|f| f.get(&number)) {
                        Some(Field::Message(inner)) => self.message(inner, value, depth + 1)?,
                        Some(Field::Packed) => self.count(value.len())?,
                        _ => {}
                    }
                    bytes = rest;
                }
                _ => return Err(WireError::Malformed("groups and unknown wire types are not accepted")),
            }
        }
        Ok(())
    }
}

fn skip(bytes: &[u8], n: usize) -> Result<&[u8], WireError> {
    bytes
        .get(n..)
        .ok_or(WireError::Malformed("a fixed-size field beyond the message"))
}

fn varint(bytes: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in 0..10 {
        let [b, rest @ ..] = *bytes else {
            return Err(WireError::Malformed("a varint beyond the message"));
        };
        *bytes = rest;
        value |= u64::from(b & 0x7f) << (7 * shift);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Malformed("a varint longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::{CreateJobRequest, Job, Parameter, PipelineSpec, ResourceKey, ResourceReference};

    fn schema() -> Schema {
        Schema::from_descriptors(super::super::DESCRIPTORS).unwrap()
    }

    const BOUNDS: WireBounds = WireBounds {
        max_fields: 1000,
        max_depth: 32,
    };

    fn create(job: Job) -> Vec<u8> {
        CreateJobRequest { job: Some(job) }.encode_to_vec()
    }

    #[test]
    fn methods_map_to_their_request_types() {
        let s = schema();
        assert_eq!(
            s.request_type("/api.JobService/CreateJob"),
            Some(".api.CreateJobRequest")
        );
        assert_eq!(s.request_type("/api.JobService/ListJobs"), Some(".api.ListJobsRequest"));
        assert_eq!(s.request_type("/api.JobService/Nothing"), None);
        assert!(
            s.messages.contains_key(".google.protobuf.Value"),
            "imported types are walked too (runtime_config's values nest)"
        );
    }

    #[test]
    fn fields_are_counted_at_every_level() {
        let s = schema();
        let job = Job {
            name: "n".into(),
            resource_references: vec![
                ResourceReference {
                    key: Some(ResourceKey {
                        r#type: 1,
                        id: "ns".into(),
                    }),
                    ..Default::default()
                };
                3
            ],
            pipeline_spec: Some(PipelineSpec {
                workflow_manifest: "x".repeat(100_000),
                parameters: vec![Parameter::default(); 2],
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = create(job);
        // job, name, 3 × (reference, key, type, id), pipeline_spec, manifest, 2 parameters
        let tight = WireBounds {
            max_fields: 18,
            max_depth: 8,
        };
        assert_eq!(s.check(".api.CreateJobRequest", &bytes, tight), Ok(()));
        let tighter = WireBounds {
            max_fields: 17,
            ..tight
        };
        assert_eq!(
            s.check(".api.CreateJobRequest", &bytes, tighter),
            Err(WireError::TooManyFields(17))
        );
    }

    #[test]
    fn many_empty_elements_are_refused_before_decoding() {
        let s = schema();
        let job = Job {
            resource_references: vec![ResourceReference::default(); 100_000],
            ..Default::default()
        };
        let bytes = create(job);
        assert!(bytes.len() < 250_000, "{} bytes on the wire", bytes.len());
        assert_eq!(
            s.check(".api.CreateJobRequest", &bytes, BOUNDS),
            Err(WireError::TooManyFields(1000))
        );
    }

    #[test]
    fn grpc_frames_are_checked_and_compression_refused() {
        let s = schema();
        let message = create(Job::default());
        let mut frame = vec![0u8];
        frame.extend((message.len() as u32).to_be_bytes());
        frame.extend(&message);
        assert_eq!(s.check_grpc_body(".api.CreateJobRequest", &frame, BOUNDS), Ok(()));
        frame[0] = 1;
        assert!(s.check_grpc_body(".api.CreateJobRequest", &frame, BOUNDS).is_err());
        assert!(
            s.check_grpc_body(".api.CreateJobRequest", &[0, 0, 0, 1], BOUNDS)
                .is_err()
        );
        assert!(
            s.check_grpc_body(".api.CreateJobRequest", &[0, 0, 0, 0, 9], BOUNDS)
                .is_err()
        );
    }

    #[test]
    fn any_bytes_are_judged_without_a_panic() {
        let s = schema();
        for bytes in [
            &b""[..],
            &[0xff; 11],
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0x0b],
            &[0x09, 1],
        ] {
            let _ = s.check(".api.CreateJobRequest", bytes, BOUNDS);
        }
        assert_eq!(
            s.check(".api.Unknown", &create(Job::default()), BOUNDS),
            Ok(()),
            "an unknown type is counted, not walked"
        );
    }
}
