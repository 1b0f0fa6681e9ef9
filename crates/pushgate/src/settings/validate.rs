//! The checks that span sections or the list of components; each crate's section is checked
//! (and its `*_file` secret read) by the crate's own `check()` or `resolve_and_check()`.

use std::collections::HashSet;

use pushgate_apns::ApnsConfig;
use pushgate_core::push_module::SANDBOX_SUFFIX;
use pushgate_fcm::{FcmConfig, FcmConfigError};
use pushgate_xmpp::ComponentSettingsError;

use super::{RoleName, Settings};

/// One thing wrong with a key, before its source is known.
#[derive(Debug)]
pub(crate) struct Finding {
    /// The key, dotted (`component.secret`, `component[1].jid`).
    pub key: String,
    /// The key used to find where the value came from (`component` for array entries).
    pub lookup: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(
        &mut self,
        key: impl Into<String>,
        lookup: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(Finding {
            key: key.into(),
            lookup: lookup.into(),
            message: message.into(),
        });
    }
}

/// Reads the `*_file` secrets into their values, normalises `http.public_url`, and checks
/// every rule; returns what is wrong (nothing when the settings are usable). A crate's section
/// is checked (and its secret file read) by the crate itself; what needs more than one
/// section, or the whole list of components, is checked here.
pub(crate) fn resolve_and_check(settings: &mut Settings) -> Vec<Finding> {
    let mut findings = Findings::default();
    check_components(settings, &mut findings);
    check_database(settings, &mut findings);
    check_http(settings, &mut findings);
    if let Some(fcm) = &settings.fcm {
        check_fcm(fcm, "fcm", "fcm", &mut findings);
    }
    if let Some(apns) = &settings.apns {
        check_apns(apns, "apns", "apns", &mut findings);
    }
    check_apps(settings, &mut findings);
    check_push_modules(settings, &mut findings);
    check_app_server(settings, &mut findings);
    check_unified_push(settings, &mut findings);
    check_log(settings, &mut findings);
    findings.0
}

fn check_components(settings: &mut Settings, findings: &mut Findings) {
    let many = settings.component.len() > 1;
    if settings.component.is_empty() {
        findings.add(
            "component",
            "component",
            "at least one component is required",
        );
    }
    let mut seen = HashSet::new();
    for (index, component) in settings.component.iter_mut().enumerate() {
        // One table is `component.jid`; in a list each is `component[1].jid`, and figment
        // knows the source of the list only.
        let key = |field: &str| {
            if many {
                format!("component[{index}].{field}")
            } else {
                format!("component.{field}")
            }
        };
        let lookup = |field: &str| {
            if many {
                "component".to_owned()
            } else {
                format!("component.{field}")
            }
        };
        let problems = component.resolve_and_check();
        // A JID the crate refused is not compared; one it accepted is in normal form.
        if !problems.iter().any(|problem| problem.key() == "jid")
            && !seen.insert(component.jid.clone())
        {
            findings.add(
                key("jid"),
                lookup("jid"),
                format!(
                    "{} is configured twice; each link needs its own JID",
                    component.jid
                ),
            );
        }
        for problem in problems {
            let field = problem.key();
            let message = match problem {
                // Named as the operator finds the two keys in the file.
                ComponentSettingsError::SecretAndSecretFile => format!(
                    "set either {} or {}, not both",
                    key("secret"),
                    key("secret_file")
                ),
                other => other.to_string(),
            };
            findings.add(key(field), lookup(field), message);
        }
    }
}

fn check_database(settings: &Settings, findings: &mut Findings) {
    for problem in settings.database.check() {
        let key = format!("database.{}", problem.key());
        findings.add(key.clone(), key, problem.to_string());
    }
}

fn check_http(settings: &mut Settings, findings: &mut Findings) {
    if let Some(url) = settings.http.public_url.take() {
        match public_url(&url) {
            Ok(normalised) => settings.http.public_url = Some(normalised),
            Err(message) => {
                findings.add("http.public_url", "http.public_url", message);
                settings.http.public_url = Some(url);
            }
        }
    } else if !settings.unified_push.keys.is_empty() || settings.unified_push.keys_file.is_some() {
        findings.add(
            "http.public_url",
            "unified_push",
            "required when unified_push keys are set: endpoints are {public_url}/push/{token}",
        );
    }
    for problem in settings.http.check() {
        let key = format!("http.{}", problem.key());
        findings.add(key.clone(), key, problem.to_string());
    }
}

/// `http(s)://host[:port][/path]`, without query or fragment; a trailing `/` is dropped so
/// `{public_url}/push/{token}` never has `//`.
fn public_url(written: &str) -> Result<String, String> {
    let trimmed = written.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| format!("{written:?} must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "{written:?} must name a host (and no user:password@)"
        ));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "{written:?} must not hold a query, fragment or space"
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks FCM settings found at `prefix` (`fcm`, `app[0].fcm`); `lookup` is where figment
/// finds their source.
fn check_fcm(fcm: &FcmConfig, prefix: &str, lookup: &str, findings: &mut Findings) {
    // The FCM crate owns the rules for its settings and the key file (docs/protocol.md A.2 OAuth2).
    if let Err(error) = fcm.check() {
        let key = match &error {
            FcmConfigError::BadApiUrl { .. } => "api_url",
            FcmConfigError::ZeroDeadline => "request_deadline",
            FcmConfigError::ZeroConcurrency => "max_concurrent",
            FcmConfigError::ZeroConnections => "max_connections",
            FcmConfigError::BadProxy(_) => "proxy",
            FcmConfigError::NoServiceAccountFile | FcmConfigError::ServiceAccount(_) => {
                "service_account_file"
            }
        };
        findings.add(
            format!("{prefix}.{key}"),
            sub_lookup(lookup, key),
            error.to_string(),
        );
    }
}

/// Checks APNs settings found at `prefix`, the key file included.
fn check_apns(apns: &ApnsConfig, prefix: &str, lookup: &str, findings: &mut Findings) {
    // Required keys first, each named, so a new section gets every missing key in one run.
    let mut missing = false;
    for (key, value) in [
        ("key_id", &apns.key_id),
        ("team_id", &apns.team_id),
        ("topic", &apns.topic),
    ] {
        if value.is_empty() {
            missing = true;
            findings.add(
                format!("{prefix}.{key}"),
                sub_lookup(lookup, key),
                "is required",
            );
        }
    }
    if missing {
        return;
    }
    if let Err(error) = apns.check() {
        let key = error.key();
        findings.add(
            format!("{prefix}.{key}"),
            sub_lookup(lookup, key),
            error.to_string(),
        );
    }
}

/// The figment lookup of a key under `lookup`: a table's key is found by its own path, but
/// an entry of an array of tables only by the array's.
fn sub_lookup(lookup: &str, key: &str) -> String {
    if lookup.contains('[') || lookup == "app" || lookup == "push_module" {
        lookup.to_owned()
    } else {
        format!("{lookup}.{key}")
    }
}

fn check_apps(settings: &Settings, findings: &mut Findings) {
    let mut names = HashSet::new();
    for (index, app) in settings.app.iter().enumerate() {
        let prefix = format!("app[{index}]");
        if app.name.trim().is_empty() {
            findings.add(format!("{prefix}.name"), "app", "is required");
        } else if !names.insert(app.name.as_str()) {
            findings.add(
                format!("{prefix}.name"),
                "app",
                format!("{:?} is configured twice", app.name),
            );
        }
        if app.fcm.is_none() && app.apns.is_none() {
            findings.add(
                prefix.clone(),
                "app",
                "has neither fcm nor apns: it could wake no device",
            );
        }
        if let Some(fcm) = &app.fcm {
            check_fcm(fcm, &format!("{prefix}.fcm"), "app", findings);
        }
        if let Some(apns) = &app.apns {
            check_apns(apns, &format!("{prefix}.apns"), "app", findings);
        }
    }
    let many = settings.component.len() > 1;
    for (index, component) in settings.component.iter().enumerate() {
        let (key, lookup) = if many {
            (format!("component[{index}].app"), "component".to_owned())
        } else {
            ("component.app".to_owned(), "component.app".to_owned())
        };
        let Some(app) = &component.app else { continue };
        if !component.roles.contains(&RoleName::AppServer) {
            findings.add(
                key,
                lookup,
                "applies only to a component with the app_server role",
            );
        } else if !names.contains(app.as_str()) {
            findings.add(key, lookup, format!("{app:?} names no [[app]]"));
        }
    }
}

fn check_push_modules(settings: &Settings, findings: &mut Findings) {
    let mut names = HashSet::new();
    for (index, module) in settings.push_module.iter().enumerate() {
        let prefix = format!("push_module[{index}]");
        let name = module.name.as_str();
        if name.trim().is_empty() {
            findings.add(format!("{prefix}.name"), "push_module", "is required");
        } else if name.len() > pushgate_core::push_module::MAX_MODULE_NAME_LEN {
            findings.add(
                format!("{prefix}.name"),
                "push_module",
                format!(
                    "is longer than {} bytes",
                    pushgate_core::push_module::MAX_MODULE_NAME_LEN
                ),
            );
        } else if !names.insert(name) {
            findings.add(
                format!("{prefix}.name"),
                "push_module",
                format!("{name:?} is configured twice"),
            );
        }
        match (&module.apns, &module.fcm) {
            (Some(apns), None) => {
                check_apns(apns, &format!("{prefix}.apns"), "push_module", findings)
            }
            (None, Some(fcm)) => check_fcm(fcm, &format!("{prefix}.fcm"), "push_module", findings),
            _ => findings.add(prefix, "push_module", "needs exactly one of apns and fcm"),
        }
    }
    let config = &settings.push_modules;
    if let Some(default) = &config.default {
        let known = names.contains(default.as_str())
            || default
                .strip_suffix(SANDBOX_SUFFIX)
                .is_some_and(|base| names.contains(base));
        if !known {
            findings.add(
                "push_modules.default",
                "push_modules.default",
                format!("{default:?} names no [[push_module]]"),
            );
        }
    }
    if config.max_tracked_tokens == 0 {
        findings.add(
            "push_modules.max_tracked_tokens",
            "push_modules.max_tracked_tokens",
            "must be at least 1",
        );
    }
    let serving = settings
        .component
        .iter()
        .any(|component| component.roles.contains(&RoleName::PushModules));
    if serving && settings.push_module.is_empty() {
        findings.add(
            "push_module",
            "component",
            "the push_modules role needs at least one [[push_module]]",
        );
    }
    if serving && config.default.is_none() && settings.push_module.len() > 1 {
        findings.add(
            "push_modules.default",
            "push_module",
            "is required with several [[push_module]]: a publish without pushModule goes to it",
        );
    }
    let many = settings.component.len() > 1;
    for (index, component) in settings.component.iter().enumerate() {
        let both = component.roles.contains(&RoleName::PushModules)
            && component.roles.contains(&RoleName::AppServer);
        if both {
            let (key, lookup) = if many {
                (format!("component[{index}].roles"), "component".to_owned())
            } else {
                ("component.roles".to_owned(), "component.roles".to_owned())
            };
            findings.add(
                key,
                lookup,
                "app_server and push_modules both take publishes: give each its own component",
            );
        }
    }
}

fn check_app_server(settings: &Settings, findings: &mut Findings) {
    for problem in settings.app_server.check() {
        let key = format!("app_server.{}", problem.key());
        findings.add(key.clone(), key, problem.to_string());
    }
}

fn check_unified_push(settings: &mut Settings, findings: &mut Findings) {
    let up = &mut settings.unified_push;
    for problem in up.resolve_and_check() {
        findings.add(
            format!("unified_push.{}", problem.key()),
            format!("unified_push.{}", problem.setting()),
            problem.to_string(),
        );
    }
    // The crate refuses zero with the same words; a zero is not reported twice.
    let push_timeout = up.push_timeout;
    if !push_timeout.is_zero() && push_timeout >= settings.http.request_timeout {
        findings.add(
            "unified_push.push_timeout",
            "unified_push.push_timeout",
            "must be longer than zero and shorter than http.request_timeout",
        );
    }
    let serving = settings
        .component
        .iter()
        .filter(|component| component.roles.contains(&RoleName::UnifiedPush))
        .count();
    if !settings.unified_push.keys.is_empty() && serving > 1 {
        findings.add(
            "component",
            "component",
            "only one component may have the unified_push role: clients accept pushes from one JID",
        );
    }
    if settings.hands_over_pushes() {
        let up = &settings.unified_push;
        if up.push_timeout + pushgate_store::HANDOVER_MARGIN >= settings.http.request_timeout {
            findings.add(
                "unified_push.push_timeout",
                "unified_push.push_timeout",
                format!(
                    "with {} s for a handed-over push's answer to come back, must be shorter \
                     than http.request_timeout: with several instances, a POST handed to the \
                     instance that holds the link must be answered before it times out",
                    pushgate_store::HANDOVER_MARGIN.as_secs()
                ),
            );
        }
    }
}

fn check_log(settings: &Settings, findings: &mut Findings) {
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&settings.log.level) {
        findings.add(
            "log.level",
            "log.level",
            format!("{:?} is not a log filter: {error}", settings.log.level),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_lose_their_trailing_slash() {
        assert_eq!(
            public_url("https://up.example/"),
            Ok("https://up.example".to_owned())
        );
        assert_eq!(
            public_url("http://127.0.0.1:8080/up"),
            Ok("http://127.0.0.1:8080/up".to_owned())
        );
        assert!(public_url("ftp://up.example").is_err());
        assert!(public_url("https://").is_err());
        assert!(public_url("https://up.example/?a=b").is_err());
        assert!(public_url("https://u:p@up.example").is_err());
    }
}
