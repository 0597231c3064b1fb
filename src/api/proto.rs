//! Generated code for KFP's v1beta1 API (`proto/`), with proto3-JSON serde impls.
#![allow(clippy::all, missing_docs)]
include!(concat!(env!("OUT_DIR"), "/api.rs"));
include!(concat!(env!("OUT_DIR"), "/api.serde.rs"));
