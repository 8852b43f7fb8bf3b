//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`.

/// Registers the discovery routes.
pub fn configure(_cfg: &mut actix_web::web::ServiceConfig) {}
