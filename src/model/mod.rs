//! The resource model: what the API server stores and what the operator reads from it. No I/O.
//!
//! - `crd`: the `ScheduledWorkflow` custom resource; `stored`: objects decoded so one bad
//!   object is reported, not a failed LIST; `runkind`: the kinds a tick can create;
//!   `manifest`: untrusted manifest text parsed with bounds; `names`: Kubernetes' naming
//!   rules; `keys`: every label and annotation key the operator reads or writes; `compact`:
//!   a JSON value kept as text (run templates, in the cache).
pub mod compact;
pub mod crd;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod runkind;
pub mod stored;
