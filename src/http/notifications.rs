//! `/v1/notifications`: what people were told, over which channels, and how each try went (the
//! delivery log).

use super::extract::{ApiPath, ApiQuery, Caller, ToRead};
use crate::error::ApiError;
use crate::services::notifications::NotificationView;
use crate::state::AppState;
use crate::store::{DeliveryAttemptRecord, DeliveryRecord, NotificationFilter, NotificationRecord};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_notifications)).routes(routes!(get_notification))
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    #[serde(flatten)]
    pub delivery: DeliveryRecord,
    /// Every try, oldest first.
    pub log: Vec<DeliveryAttemptRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationOut {
    #[serde(flatten)]
    pub notification: NotificationRecord,
    /// One per channel that takes this kind of notification for this pipeline.
    pub deliveries: Vec<DeliveryOut>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationListOut {
    pub items: Vec<NotificationOut>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only this pipeline's (our id).
    pub pipeline_id: Option<String>,
    /// Only this kind, e.g. `pipeline.failed`, `config.rejected`.
    pub kind: Option<String>,
    /// From `next_before` of the previous page.
    pub before: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
}

fn out(view: NotificationView) -> NotificationOut {
    NotificationOut {
        notification: view.notification,
        deliveries: view
            .deliveries
            .into_iter()
            .map(|d| DeliveryOut { delivery: d.delivery, log: d.attempts })
            .collect(),
    }
}

/// Notifications, newest first, with each channel's delivery and its tries.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = NotificationListOut), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_notifications(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiQuery(query): ApiQuery<NotificationQuery>,
) -> Result<Json<NotificationListOut>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", "`limit` must be between 1 and 200"));
    }
    if let Some(kind) = &query.kind
        && crate::domain::notifications::NotificationKind::parse(kind).is_none()
    {
        return Err(ApiError::bad_parameter("kind", format!("{kind:?} is not a notification kind")));
    }
    let filter =
        NotificationFilter { pipeline_id: query.pipeline_id, kind: query.kind, before: query.before, limit: limit + 1 };
    let mut views = state.notification_service.list(&filter).await?;
    let next_before = (views.len() as i64 > limit).then(|| {
        views.truncate(limit as usize);
        views.last().map(|v| v.notification.id.clone()).unwrap_or_default()
    });
    Ok(Json(NotificationListOut { items: views.into_iter().map(out).collect(), next_before }))
}

/// One notification with its delivery log.
#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Notification id")),
    responses((status = 200, body = NotificationOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_notification(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NotificationOut>, ApiError> {
    Ok(Json(out(state.notification_service.get(&id).await?)))
}
