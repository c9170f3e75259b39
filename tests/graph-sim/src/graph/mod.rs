//! Microsoft Graph v1.0: the routes the service uses.

pub mod batch;
pub mod context;
pub mod directory;
pub mod error;
pub mod messages;
pub mod render;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::{get, post};
use http::StatusCode;

use crate::core::Sim;
use crate::middleware::observe_graph;
use error::GraphError;

/// Graph's answer to a path it does not serve.
async fn unknown_segment(request: Request) -> GraphError {
    let path = request.uri().path();
    match path.strip_prefix("/v1.0/") {
        Some(rest) => {
            let segment = rest.split('/').next().unwrap_or_default();
            GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
        }
        None => GraphError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No route for '{path}'."),
        ),
    }
}

async fn method_not_allowed() -> GraphError {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

/// The Graph routes, wrapped in the request log.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1.0/organization", get(directory::organization))
        .route("/v1.0/domains", get(directory::domains))
        .route("/v1.0/me", get(directory::me))
        .route("/v1.0/users", get(directory::users))
        .route("/v1.0/users/{user}", get(directory::user))
        .route("/v1.0/users/{user}/messages", get(messages::list))
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages",
            get(messages::list_folder),
        )
        .route(
            "/v1.0/users/{user}/messages/{message}",
            get(messages::get).delete(messages::delete),
        )
        .route(
            "/v1.0/users/{user}/messages/{message}/permanentDelete",
            post(messages::permanent_delete),
        )
        .route(
            "/v1.0/users/{user}/messages/{message}/move",
            post(messages::move_message),
        )
        .route("/v1.0/$batch", post(batch::batch))
        .fallback(unknown_segment)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            observe_graph,
        ))
        .with_state(sim)
}
