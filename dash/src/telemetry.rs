//! One log line per request, in a span that carries the route, the signed-in user and the env
//! the request is about (tracing-actix-web's root span, with two fields of ours).

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};

use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

/// The root span of every request: tracing-actix-web's fields plus `user` (recorded by the
/// identity extractor) and `env` (the `{name}` of the route, recorded once routed).
pub struct DashRootSpan;

impl RootSpanBuilder for DashRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(
            request,
            user = tracing::field::Empty,
            env = tracing::field::Empty
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let status = match outcome {
            Ok(response) => {
                // Known once routed: the `{name}` of the route.
                if let Some(env) = response.request().match_info().get("name") {
                    span.record("env", env);
                }
                response.response().status().as_u16()
            }
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        tracing::info!(parent: &span, status, "request");
    }
}
