//! The dashboard's one error type: every failure a route can have, its HTTP answer, and a
//! fixed label for `/metrics`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::decide::Refusal;

/// What can go wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum DashError {
    /// No identity in the trusted headers.
    #[error("you are not signed in")]
    NotSignedIn,
    /// A mutating request without a valid CSRF token, or from another origin.
    #[error("the form expired or came from another site: reload the page and try again")]
    Forbidden,
    /// The action is refused (shown in place with the user's input).
    #[error("{0}")]
    Refused(Refusal),
    /// The Kubernetes API failed or did not answer.
    #[error("the cluster did not answer ({0}): try again in a moment")]
    Cluster(#[from] kube::Error),
    /// A template failed to render.
    #[error("the page could not be rendered: {0}")]
    Template(#[from] tera::Error),
    /// Anything else (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DashError {
    /// A short, fixed label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DashError::NotSignedIn => "not_signed_in",
            DashError::Forbidden => "forbidden",
            DashError::Refused(_) => "refused",
            DashError::Cluster(_) => "cluster",
            DashError::Template(_) => "template",
            DashError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for DashError {
    fn status_code(&self) -> StatusCode {
        match self {
            DashError::NotSignedIn => StatusCode::UNAUTHORIZED,
            DashError::Forbidden => StatusCode::FORBIDDEN,
            DashError::Refused(refusal) => {
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::CONFLICT)
            }
            DashError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
            DashError::Template(_) | DashError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A small self-contained page (no template: it must work when templates do not).
    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if matches!(self, DashError::Template(_) | DashError::Internal(_)) {
            tracing::error!(error = %self, "request failed");
        }
        let action = match self {
            DashError::NotSignedIn => r#"<p><a href="/oauth2/sign_in?rd=%2F">Sign in</a></p>"#,
            _ => r#"<p><a href="/">Back to the dashboard</a></p>"#,
        };
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{status} · ephemerator</title><link rel=\"stylesheet\" href=\"/assets/app.css\">\
             </head><body><main class=\"notice\"><h1>{title}</h1><p>{message}</p>{action}</main>\
             </body></html>",
            status = status.as_u16(),
            title = tera::escape_html(status.canonical_reason().unwrap_or("Error")),
            message = tera::escape_html(&self.to_string()),
        );
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}
