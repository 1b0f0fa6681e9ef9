//! The `[fcm]` settings and the service-account key file as `pushgate check-config` sees them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pushgate_fcm::{
    AndroidPriority, FcmConfig, FcmConfigError, PrivateKeyProblem, ServiceAccount,
    ServiceAccountError, ServiceAccountProblem,
};
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("data/service-account.json");

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/service-account.json")
}

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture is JSON")
}

fn problem(json: &str) -> ServiceAccountProblem {
    match ServiceAccount::from_json(json) {
        Err(ServiceAccountError::Invalid {
            file: None,
            problem,
        }) => problem,
        other => panic!("expected an invalid key, got {other:?}"),
    }
}

fn with(field: &str, value: Value) -> String {
    let mut account = fixture();
    account[field] = value;
    account.to_string()
}

fn without(field: &str) -> String {
    let mut account = fixture();
    account.as_object_mut().expect("object").remove(field);
    account.to_string()
}

#[test]
fn google_s_key_file_is_read_field_by_field() {
    let account = ServiceAccount::from_file(&fixture_path()).expect("valid key file");
    assert_eq!(account.project_id, "pushgate-test");
    assert_eq!(
        account.private_key_id,
        "5f1c0ffee0ddba11d15ea5e5c0de0123456789ab"
    );
    assert_eq!(
        account.client_email,
        "pushgate@pushgate-test.iam.gserviceaccount.com"
    );
    assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
    assert_eq!(
        account.private_key.pem(),
        fixture()["private_key"].as_str().expect("key")
    );
    assert_eq!(ServiceAccount::from_json(FIXTURE).expect("valid"), account);
}

#[test]
fn a_local_token_uri_is_allowed_for_tests_against_a_fake() {
    let account =
        ServiceAccount::from_json(&with("token_uri", json!("http://127.0.0.1:4000/token")))
            .expect("valid");
    assert_eq!(account.token_uri, "http://127.0.0.1:4000/token");
}

#[test]
fn each_missing_field_is_named() {
    for field in [
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "token_uri",
    ] {
        assert_eq!(
            problem(&without(field)),
            ServiceAccountProblem::MissingField { field },
        );
    }
}

#[test]
fn each_field_of_the_wrong_type_or_empty_is_named() {
    for field in [
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "token_uri",
    ] {
        assert_eq!(
            problem(&with(field, json!(42))),
            ServiceAccountProblem::NotAString { field },
        );
        assert_eq!(
            problem(&with(field, json!(null))),
            ServiceAccountProblem::NotAString { field },
        );
        assert_eq!(
            problem(&with(field, json!(" "))),
            ServiceAccountProblem::EmptyField { field },
        );
    }
}

#[test]
fn other_credential_types_are_refused() {
    assert_eq!(
        problem(&with("type", json!("authorized_user"))),
        ServiceAccountProblem::NotAServiceAccount {
            found: "authorized_user".to_owned()
        }
    );
    let long = "x".repeat(1000);
    assert_eq!(
        problem(&with("type", json!(long))),
        ServiceAccountProblem::NotAServiceAccount {
            found: "something else".to_owned()
        }
    );
}

#[test]
fn bad_values_are_named_by_field() {
    for (field, value, expected) in [
        (
            "project_id",
            "my project",
            ServiceAccountProblem::BadProjectId,
        ),
        ("project_id", "a/b", ServiceAccountProblem::BadProjectId),
        (
            "client_email",
            "nobody",
            ServiceAccountProblem::BadClientEmail,
        ),
        (
            "client_email",
            "@example.test",
            ServiceAccountProblem::BadClientEmail,
        ),
        (
            "token_uri",
            "oauth2.googleapis.com/token",
            ServiceAccountProblem::BadTokenUri,
        ),
        (
            "token_uri",
            "ftp://oauth2.googleapis.com/token",
            ServiceAccountProblem::BadTokenUri,
        ),
        (
            "token_uri",
            "file:///etc/passwd",
            ServiceAccountProblem::BadTokenUri,
        ),
        (
            "private_key",
            "not a key",
            ServiceAccountProblem::BadPrivateKey(PrivateKeyProblem::NotPem),
        ),
        (
            "private_key",
            include_str!("data/test-rsa-pkcs1-key.pem"),
            ServiceAccountProblem::BadPrivateKey(PrivateKeyProblem::Pkcs1),
        ),
        (
            "private_key",
            include_str!("data/test-ec-key.pem"),
            ServiceAccountProblem::BadPrivateKey(PrivateKeyProblem::NotRsa),
        ),
    ] {
        let found = problem(&with(field, json!(value)));
        assert_eq!(found, expected, "{field} = {value:?}");
        assert_eq!(found.field(), Some(field));
    }
}

#[test]
fn text_that_is_not_a_json_object_is_refused() {
    assert_eq!(
        problem("{\n  \"type\": \"service_account\",\n  oops"),
        ServiceAccountProblem::NotJson { line: 3, column: 3 }
    );
    assert_eq!(problem("[]"), ServiceAccountProblem::NotAnObject);
    assert_eq!(
        problem("\"-----BEGIN PRIVATE KEY-----\""),
        ServiceAccountProblem::NotAnObject
    );
    assert!(matches!(problem(""), ServiceAccountProblem::NotJson { .. }));
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");

    let missing = dir.path().join("absent.json");
    let error = ServiceAccount::from_file(&missing).expect_err("no such file");
    assert!(matches!(error, ServiceAccountError::Read { .. }));
    assert_eq!(error.path(), Some(missing.as_path()));
    assert!(error.to_string().contains("absent.json"), "{error}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, without("client_email")).expect("write");
    let error = ServiceAccount::from_file(&broken).expect_err("incomplete key");
    assert_eq!(error.path(), Some(broken.as_path()));
    assert_eq!(error.field(), Some("client_email"));
    let message = error.to_string();
    assert!(
        message.contains("broken.json") && message.contains("`client_email`"),
        "{message}"
    );
}

#[test]
fn the_private_key_never_appears_in_errors_or_debug_output() {
    let pem = fixture()["private_key"].as_str().expect("key").to_owned();
    let body_line = pem.lines().nth(1).expect("a base64 line").to_owned();

    let account = ServiceAccount::from_json(FIXTURE).expect("valid");
    let debug = format!("{account:?}");
    assert!(!debug.contains(&body_line), "{debug}");
    assert!(debug.contains("PrivateKeyPem(…)"), "{debug}");

    let mut outputs = Vec::new();
    for json in [
        with("client_email", json!("nobody")),
        with("type", json!(pem.clone())),
        with(
            "private_key",
            json!(pem.replace("PRIVATE KEY", "RSA PRIVATE KEY")),
        ),
        FIXTURE.replace("\"type\"", "\"type\" oops"),
        without("token_uri"),
    ] {
        let error = ServiceAccount::from_json(&json).expect_err("invalid");
        outputs.push(error.to_string());
        outputs.push(format!("{error:?}"));
    }
    for output in outputs {
        assert!(!output.contains(&body_line), "{output}");
    }
}

#[test]
fn the_defaults_are_p2_s_with_a_high_priority() {
    let config = FcmConfig::default();
    assert_eq!(config.service_account_file, None);
    assert_eq!(config.api_url, "https://fcm.googleapis.com");
    assert!(config.collapse);
    assert_eq!(config.priority, AndroidPriority::High);
    assert_eq!(config.request_deadline, Duration::from_secs(10));
    assert!(config.max_concurrent > 0);
    assert!(config.validate().is_ok());
}

#[test]
fn the_send_url_is_the_v1_messages_send_of_the_project() {
    let mut config = FcmConfig::default();
    assert_eq!(
        config.send_url("pushgate-test"),
        "https://fcm.googleapis.com/v1/projects/pushgate-test/messages:send"
    );
    config.api_url = "http://127.0.0.1:8080/".to_owned();
    assert!(config.validate().is_ok());
    assert_eq!(
        config.send_url("p"),
        "http://127.0.0.1:8080/v1/projects/p/messages:send"
    );
}

#[test]
fn unusable_settings_are_refused() {
    for url in [
        "",
        "fcm.googleapis.com",
        "ftp://fcm.googleapis.com",
        "https://",
        "https://fcm.googleapis.com/?x=1",
        "https://fcm.googleapis.com/#top",
    ] {
        let config = FcmConfig {
            api_url: url.to_owned(),
            ..FcmConfig::default()
        };
        assert!(
            matches!(config.validate(), Err(FcmConfigError::BadApiUrl { .. })),
            "{url:?}"
        );
    }
    let config = FcmConfig {
        request_deadline: Duration::ZERO,
        ..FcmConfig::default()
    };
    assert!(matches!(
        config.validate(),
        Err(FcmConfigError::ZeroDeadline)
    ));
    let config = FcmConfig {
        max_concurrent: 0,
        ..FcmConfig::default()
    };
    assert!(matches!(
        config.validate(),
        Err(FcmConfigError::ZeroConcurrency)
    ));
}

#[test]
fn check_reads_the_configured_key_file() {
    let config = FcmConfig {
        service_account_file: Some(fixture_path()),
        ..FcmConfig::default()
    };
    assert_eq!(config.check().expect("valid").project_id, "pushgate-test");

    assert!(matches!(
        FcmConfig::default().check(),
        Err(FcmConfigError::NoServiceAccountFile)
    ));

    let config = FcmConfig {
        service_account_file: Some(PathBuf::from("/nonexistent/pushgate/key.json")),
        ..FcmConfig::default()
    };
    let error = config.check().expect_err("missing file");
    assert!(matches!(
        error,
        FcmConfigError::ServiceAccount(ServiceAccountError::Read { .. })
    ));
    assert!(error.to_string().contains("/nonexistent/pushgate/key.json"));

    let config = FcmConfig {
        api_url: "nope".to_owned(),
        service_account_file: Some(fixture_path()),
        ..FcmConfig::default()
    };
    assert!(matches!(
        config.check(),
        Err(FcmConfigError::BadApiUrl { .. })
    ));
}

#[test]
fn priorities_are_written_as_fcm_reads_them() {
    assert_eq!(AndroidPriority::High.as_str(), "high");
    assert_eq!(AndroidPriority::Normal.to_string(), "normal");
    assert_eq!(AndroidPriority::parse("HIGH"), Some(AndroidPriority::High));
    assert_eq!(
        AndroidPriority::parse("normal"),
        Some(AndroidPriority::Normal)
    );
    assert_eq!(AndroidPriority::parse("urgent"), None);
    assert_eq!(AndroidPriority::default(), AndroidPriority::High);
}
