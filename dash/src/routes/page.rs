//! The page and its env-list fragment (what htmx polls): the same templates render both
//! ([`crate::render`]).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::error::DashError;
use crate::identity::User;
use crate::render::Render;
use crate::state::AppState;
use crate::views::FormView;

/// `?show=mine` or `?show=all` (the default).
#[derive(Debug, Deserialize, Default)]
pub struct Show {
    #[serde(default)]
    pub show: Option<String>,
}

impl Show {
    fn mine_only(&self) -> bool {
        self.show.as_deref() == Some("mine")
    }
}

pub async fn page(
    request: HttpRequest,
    user: User,
    show: web::Query<Show>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    Render::new(&request, &user, &state).page(show.mine_only(), FormView::default(), None, 200)
}

pub async fn env_list(
    request: HttpRequest,
    user: User,
    show: web::Query<Show>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashError> {
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok());
    Render::new(&request, &user, &state).env_list(show.mine_only(), if_none_match)
}
