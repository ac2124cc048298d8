//! The /api/v1 route table: every endpoint's method, path and handler, in one list that both
//! builds the router and is checked against the OpenAPI document.

use axum::extract::Request;
use axum::routing::{MethodRouter, get, post};

use super::errors::ApiError;
use super::{ApiContext, commands, queries};

/// One endpoint.
pub(crate) struct Route {
    /// "GET" or "POST".
    pub method: &'static str,
    /// The axum path (its `{param}` syntax is OpenAPI's too).
    pub path: &'static str,
    pub handler: MethodRouter<ApiContext>,
}

fn route(method: &'static str, path: &'static str, handler: MethodRouter<ApiContext>) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

impl Route {
    /// The handler, answering other methods with a JSON 405 that names the right one.
    pub fn into_method_router(self) -> MethodRouter<ApiContext> {
        let Route {
            method,
            path,
            handler,
        } = self;
        handler.fallback(move |request: Request| async move {
            ApiError::method_not_allowed(request.method().as_str(), path, method)
        })
    }
}

/// Every /api/v1 endpoint.
pub(crate) fn v1() -> Vec<Route> {
    vec![
        route("POST", "/api/v1/send", post(commands::send)),
        route("POST", "/api/v1/multicast", post(commands::multicast)),
        route("POST", "/api/v1/broadcast", post(commands::broadcast)),
        route("POST", "/api/v1/users/send", post(commands::send_to_users)),
        route("POST", "/api/v1/users/bind", post(commands::bind_user)),
        route("POST", "/api/v1/users/unbind", post(commands::unbind_user)),
        route("POST", "/api/v1/topics/publish", post(commands::publish)),
        route(
            "POST",
            "/api/v1/topics/subscribe",
            post(commands::subscribe),
        ),
        route(
            "POST",
            "/api/v1/topics/unsubscribe",
            post(commands::unsubscribe),
        ),
        route(
            "POST",
            "/api/v1/topics/delete",
            post(commands::delete_topics),
        ),
        route("POST", "/api/v1/session", post(commands::set_session)),
        route(
            "POST",
            "/api/v1/force-offline",
            post(commands::force_offline),
        ),
        route("GET", "/api/v1/online", get(queries::online)),
        route(
            "GET",
            "/api/v1/connections/{conn_id}",
            get(queries::connection),
        ),
        route("GET", "/api/v1/counts", get(queries::counts)),
        route("GET", "/api/v1/list/{kind}", get(queries::list)),
    ]
}
