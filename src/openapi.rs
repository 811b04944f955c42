//! The OpenAPI 3.1 document. Routes are registered through utoipa-axum, so every route has its
//! spec entry; `mlops openapi` prints this document and a test diffs it against
//! `openapi/openapi.json`.

use crate::state::AppState;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
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
    components(schemas(crate::domain::PipelineType)),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("sigv4" = [])),
    tags(
        (name = "compat", description = "The AWS MLOps Workload Orchestrator API, same bodies"),
        (name = "pipelines", description = "Pipelines, their stages, approvals and events"),
        (name = "endpoints", description = "Locally served real-time endpoints"),
        (name = "algorithms", description = "Custom algorithms built by byom_image_builder on the local target"),
        (name = "config", description = "Config sources: mlops-config.json from Git repositories and buckets, their revisions, the push webhook"),
        (name = "notifications", description = "What people were told (webhooks, SNS, e-mail), with each delivery's log"),
        (name = "monitors", description = "Model monitors on the local target: executions and run-now"),
        (name = "models", description = "The local target's model registry: model package groups, versions and their approval"),
        (name = "model-cards", description = "Model cards (SageMaker's schema): versions kept, PDF and HTML exports"),
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
        // OpenAPI has no scheme for AWS signatures: an Authorization header, described.
        components.add_security_scheme(
            "sigv4",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "AWS Signature Version 4 (`AWS4-HMAC-SHA256 Credential=…`, service `execute-api`) by an access key in \
                 `auth.access_keys`, as the solution's IAM-authorised API Gateway takes it",
            ))),
        );
    }
}

/// All API routes with their spec, before state is attached.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(crate::http::routes())
}

/// The router and its document, as served at `/openapi.json` and committed in
/// `openapi/openapi.json`.
pub fn split() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = api_router().split_for_parts();
    add_common_responses(&mut document);
    add_request_schemas(&mut document);
    (router, document)
}

pub fn document() -> utoipa::openapi::OpenApi {
    split().1
}

/// Responses every operation can give, so no handler has to list them: 401/403 wherever a token
/// is needed, 500 everywhere.
fn add_common_responses(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, security::SecurityRequirement};
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::error::PROBLEM_JSON,
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build()
    };
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        // Asset transfers are bounded by size, not time; invocations enforce their own body
        // limit and document it.
        let assets = path.starts_with("/v1/assets/");
        let invocation = path.ends_with("/invocations");
        for operation in operations.into_iter().flatten() {
            let json_body = operation.request_body.is_some() && !assets && !invocation;
            let public = operation.security.as_ref().is_some_and(|s| s.contains(&SecurityRequirement::default()));
            let responses = &mut operation.responses.responses;
            if !public {
                responses.entry("401".into()).or_insert_with(|| problem("Missing or invalid bearer token").into());
                responses.entry("403".into()).or_insert_with(|| {
                    problem("The caller's role may not do this, or a SigV4 signature does not verify").into()
                });
            }
            if json_body {
                responses
                    .entry("413".into())
                    .or_insert_with(|| problem("The body is larger than http.body_limit_bytes").into());
            }
            if !assets {
                responses.entry("503".into()).or_insert_with(|| {
                    problem("Timed out (http.request_timeout), or a dependency is unavailable").into()
                });
            }
            responses
                .entry("500".into())
                .or_insert_with(|| problem("Internal error (details are in the server log)").into());
        }
    }
}

/// The provisioning body, per `pipeline_type` (`oneOf` with a discriminator), as the request
/// readers define it (`domain::request::schema`), on both provisioning routes.
fn add_request_schemas(document: &mut utoipa::openapi::OpenApi) {
    use crate::domain::PipelineType;
    use utoipa::openapi::{RefOr, Schema};
    let components = document.components.get_or_insert_with(Default::default);
    let name = |t: PipelineType| {
        let pascal: String = t.as_str().split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
        format!("{pascal}Request")
    };
    let mut mapping = serde_json::Map::new();
    let mut refs = Vec::new();
    for t in PipelineType::ALL {
        let schema: RefOr<Schema> = serde_json::from_value(crate::domain::request::schema::request_schema(t))
            .expect("the request schema is a valid OpenAPI schema");
        components.schemas.insert(name(t), schema);
        let reference = format!("#/components/schemas/{}", name(t));
        mapping.insert(t.as_str().to_string(), reference.clone().into());
        refs.push(serde_json::json!({"$ref": reference}));
    }
    let one_of = serde_json::json!({
        "oneOf": refs,
        "discriminator": {"propertyName": "pipeline_type", "mapping": mapping},
        "description": "A provisioning request: the solution's body for one of the 12 pipeline types.",
    });
    let one_of: RefOr<Schema> = serde_json::from_value(one_of).expect("a valid oneOf schema");
    components.schemas.insert("ProvisionRequest".into(), one_of);
    for (path, method) in [("/provisionpipeline", "post"), ("/v1/pipelines", "post")] {
        let Some(item) = document.paths.paths.get_mut(path) else { continue };
        let operation = match method {
            "post" => item.post.as_mut(),
            _ => None,
        };
        if let Some(RefOr::T(body)) = operation.and_then(|o| o.request_body.as_mut())
            && let Some(RefOr::T(content)) = body.content.get_mut("application/json")
        {
            content.schema = Some(utoipa::openapi::Ref::from_schema_name("ProvisionRequest").into());
        }
    }
}

pub fn document_json() -> String {
    let mut text = document().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
