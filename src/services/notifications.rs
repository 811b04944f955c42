//! Reading what people were told: notifications, their deliveries per channel and every try.

use super::ServiceError;
use crate::store::{DeliveryAttemptRecord, DeliveryRecord, DynStore, NotificationFilter, NotificationRecord};

#[derive(Clone)]
pub struct NotificationService {
    store: DynStore,
}

/// A delivery with its log of tries.
pub struct DeliveryView {
    pub delivery: DeliveryRecord,
    pub attempts: Vec<DeliveryAttemptRecord>,
}

pub struct NotificationView {
    pub notification: NotificationRecord,
    pub deliveries: Vec<DeliveryView>,
}

impl NotificationService {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    /// Newest first, with their deliveries.
    pub async fn list(&self, filter: &NotificationFilter) -> Result<Vec<NotificationView>, ServiceError> {
        let mut views = Vec::new();
        for notification in self.store.list_notifications(filter).await? {
            views.push(self.view(notification).await?);
        }
        Ok(views)
    }

    pub async fn get(&self, id: &str) -> Result<NotificationView, ServiceError> {
        let notification = self
            .store
            .notification(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("notification {id:?} not found")))?;
        self.view(notification).await
    }

    async fn view(&self, notification: NotificationRecord) -> Result<NotificationView, ServiceError> {
        let mut deliveries = Vec::new();
        for delivery in self.store.deliveries(&notification.id).await? {
            let attempts = self.store.delivery_attempts(&delivery.id).await?;
            deliveries.push(DeliveryView { delivery, attempts });
        }
        Ok(NotificationView { notification, deliveries })
    }
}
