//! `[[app]]` and `[[push_module]]`: the credentials of each app behind the gateway. An app is
//! what a push service knows a phone by (an FCM project, an APNs topic under a team's key), so
//! each has its own: the `app_server` role of a component wakes through the app its `app` key
//! names (the top-level `[fcm]` and `[apns]` without one), and the `push_modules` role through
//! the module a publish's `pushModule` names.

use serde::{Deserialize, Serialize};

use pushgate_apns::ApnsConfig;
use pushgate_fcm::FcmConfig;

/// One `[[app]]`: a further app served by `app_server` components that name it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// The name a `[[component]]`'s `app` key refers to.
    pub name: String,
    /// The app's FCM project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<FcmConfig>,
    /// The app's APNs key and topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsConfig>,
}

/// One `[[push_module]]`: an app behind the `push_modules` role, by the name its clients
/// send as `pushModule` (Monal: `monalProdiOS`; `monalProdiOS-sandbox` reaches the same
/// module's APNs sandbox). Exactly one of `apns` and `fcm`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PushModuleSettings {
    /// The `pushModule` value that selects it.
    pub name: String,
    /// Its APNs key and topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsConfig>,
    /// Its FCM project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<FcmConfig>,
}
