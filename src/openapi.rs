//! The OpenAPI 3.1 document. Routes are registered through utoipa-axum, so every route has its
//! spec entry; `mlops openapi` prints this document and a test diffs it against
//! `openapi/openapi.json`.

use crate::app::AppState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mlops-orchestrator",
        description = "Control plane for machine-learning pipelines: provision, promote, serve and monitor models. \
                       Speaks the AWS MLOps Workload Orchestrator API (`/provisionpipeline`, `/pipelinestatus`) and a resource API under `/v1`."
    ),
    paths(crate::http::assets::put_asset, crate::http::assets::get_asset),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "compat", description = "The AWS MLOps Workload Orchestrator API, same bodies"),
        (name = "pipelines", description = "Pipelines, their stages, approvals and events"),
        (name = "endpoints", description = "Locally served real-time endpoints"),
        (name = "assets", description = "The assets bucket: model artifacts and data"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// All API routes with their spec, before state is attached.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(crate::http::routes())
}

/// The document as served at `/openapi.json` and committed in `openapi/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

pub fn document_json() -> String {
    let mut text = document().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
