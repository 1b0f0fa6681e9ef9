//! The FCM sender's settings from `[fcm]`.

use pushgate_fcm::{AndroidPriority, FcmConfig};

use crate::settings::{FcmPriority, FcmSettings};

/// [`FcmConfig`] from the `[fcm]` section.
pub fn fcm_config(settings: &FcmSettings) -> FcmConfig {
    FcmConfig {
        service_account_file: Some(settings.service_account_file.clone()),
        api_url: settings.api_url.clone(),
        collapse: settings.collapse,
        priority: match settings.priority {
            FcmPriority::High => AndroidPriority::High,
            FcmPriority::Normal => AndroidPriority::Normal,
        },
        request_deadline: settings.request_deadline.get(),
        max_concurrent: settings.max_concurrent,
        max_connections: settings.max_connections,
        ..FcmConfig::default()
    }
}
