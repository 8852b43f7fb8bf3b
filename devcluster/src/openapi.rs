//! OpenAPI documents: `/openapi/v2`, `/openapi/v3` and one document per group-version.

/// Registers the OpenAPI routes.
pub fn configure(_cfg: &mut actix_web::web::ServiceConfig) {}
