//! devcluster: an in-memory Kubernetes API server, a faithful subset of the real API for
//! ephemerator's tests and local run.

pub mod discovery;
pub mod openapi;
pub mod patch;
pub mod resources;
