//! `pushgate check-config` as an operator runs it: the real binary, a settings file and
//! environment variables, stdout and the exit code.

mod common;

use common::{KEY_A, KEY_B, MINIMAL, Workdir};

/// Keeps the lines of `[section]` from check-config's output.
fn section<'a>(output: &'a str, header: &str) -> Vec<&'a str> {
    output
        .lines()
        .skip_while(|line| *line != header)
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn defaults_fill_every_key_the_file_leaves_out() {
    let dir = Workdir::new();
    let file = dir.write("pushgate.toml", MINIMAL);
    let out = dir
        .run(
            &["check-config", "--config", file.to_str().expect("utf-8")],
            &[],
        )
        .ok();
    let component = section(&out, "[[component]]");
    assert!(component.contains(&r#"jid = "push.example.test""#), "{out}");
    assert!(component.contains(&r#"host = "127.0.0.1""#), "{out}");
    assert!(component.contains(&"port = 5347"), "{out}");
    assert!(component.contains(&r#"keepalive_idle = "10s""#), "{out}");
    let database = section(&out, "[database]");
    assert!(
        database.contains(&r#"url = "sqlite://pushgate.db?mode=rwc""#),
        "{out}"
    );
    let http = section(&out, "[http]");
    assert!(http.contains(&r#"listen = "127.0.0.1:8080""#), "{out}");
    let up = section(&out, "[unified_push]");
    assert!(up.contains(&r#"registration_ttl = "7days""#), "{out}");
    let log = section(&out, "[log]");
    assert_eq!(log, [r#"level = "info""#, r#"format = "pretty""#]);
    assert_eq!(section(&out, "[runtime]"), ["worker_threads = 1"]);
    assert!(
        !out.contains("[fcm]"),
        "no FCM section unless configured: {out}"
    );
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let dir = Workdir::new();
    let file = dir.write(
        "settings.toml",
        &format!(
            "{MINIMAL}\n[http]\nlisten = \"127.0.0.1:9000\"\n[database]\nmax_connections = 3\n"
        ),
    );
    let out = dir
        .run(
            &["check-config", "-c", file.to_str().expect("utf-8")],
            &[
                ("PUSHGATE_HTTP__LISTEN", "127.0.0.1:9100"),
                (
                    "PUSHGATE_DATABASE__URL",
                    "postgres://pushgate@db.example/pushgate",
                ),
                ("PUSHGATE_LOG__FORMAT", "json"),
                ("PUSHGATE_RUNTIME__WORKER_THREADS", "4"),
            ],
        )
        .ok();
    assert_eq!(section(&out, "[runtime]"), ["worker_threads = 4"]);
    let http = section(&out, "[http]");
    assert!(
        http.contains(&r#"listen = "127.0.0.1:9100""#),
        "env beats file: {out}"
    );
    let database = section(&out, "[database]");
    assert!(
        database.contains(&"max_connections = 3"),
        "file beats default: {out}"
    );
    assert!(
        database.contains(&r#"url = "postgres://pushgate@db.example/pushgate""#),
        "{out}"
    );
    assert!(
        database.contains(&r#"acquire_timeout = "5s""#),
        "default kept: {out}"
    );
    assert!(
        section(&out, "[log]").contains(&r#"format = "json""#),
        "{out}"
    );
}

#[test]
fn the_file_comes_from_the_flag_then_pushgate_config_then_the_working_directory() {
    let dir = Workdir::new();
    let by_flag = dir.write(
        "flag.toml",
        &MINIMAL.replace("push.example.test", "flag.example.test"),
    );
    let by_env = dir.write(
        "env.toml",
        &MINIMAL.replace("push.example.test", "env.example.test"),
    );
    dir.write(
        "pushgate.toml",
        &MINIMAL.replace("push.example.test", "cwd.example.test"),
    );
    let env = [("PUSHGATE_CONFIG", by_env.to_str().expect("utf-8"))];

    let out = dir
        .run(
            &["check-config", "--config", by_flag.to_str().expect("utf-8")],
            &env,
        )
        .ok();
    assert!(out.contains("flag.example.test"), "{out}");
    let out = dir.run(&["check-config"], &env).ok();
    assert!(out.contains("env.example.test"), "{out}");
    let out = dir.run(&["check-config"], &[]).ok();
    assert!(out.contains("cwd.example.test"), "{out}");
}

#[test]
fn without_any_file_the_environment_alone_suffices() {
    let dir = Workdir::new();
    let out = dir
        .run(
            &["check-config"],
            &[
                ("PUSHGATE_COMPONENT__JID", "push.example.test"),
                ("PUSHGATE_COMPONENT__SECRET", "12345"),
            ],
        )
        .ok();
    assert!(out.contains("built-in defaults + environment"), "{out}");
    assert!(out.contains(r#"jid = "push.example.test""#), "{out}");
}

#[test]
fn a_missing_settings_file_is_an_error_naming_it() {
    let dir = Workdir::new();
    let err = dir
        .run(&["check-config", "--config", "absent.toml"], &[])
        .config_error();
    assert!(
        err.contains("absent.toml") && err.contains("--config"),
        "{err}"
    );
    let err = dir
        .run(&["check-config"], &[("PUSHGATE_CONFIG", "gone.toml")])
        .config_error();
    assert!(
        err.contains("gone.toml") && err.contains("PUSHGATE_CONFIG"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_in_the_file_names_the_key_and_the_file() {
    let dir = Workdir::new();
    let file = dir.write("pushgate.toml", &format!("{MINIMAL}keepalive = \"5s\"\n"));
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(err.contains("`component.keepalive`"), "{err}");
    assert!(
        err.contains(file.file_name().and_then(|n| n.to_str()).expect("name")),
        "{err}"
    );
    assert!(
        err.contains("keepalive_idle"),
        "lists the known keys: {err}"
    );

    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}[statsd]\nhost = \"x\"\n"),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`statsd`") && err.contains("pushgate.toml"),
        "{err}"
    );

    // A known section with a bad value names the key instead.
    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}[metrics]\nlisten = \"x\"\n"),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`metrics.listen` (from pushgate.toml)"),
        "{err}"
    );
}

#[test]
fn an_unknown_environment_key_names_the_variable() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_HTTP__LISTN", "127.0.0.1:1")],
        )
        .config_error();
    assert!(err.contains("`http.listn`"), "{err}");
    assert!(
        err.contains("environment variable PUSHGATE_HTTP__LISTN"),
        "{err}"
    );
}

#[test]
fn only_section_and_key_variables_are_settings() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let kubernetes = [
        ("PUSHGATE_PORT", "tcp://10.0.0.1:8080"),
        ("PUSHGATE_SERVICE_HOST", "10.0.0.1"),
        ("PUSHGATE_SERVICE_PORT", "8080"),
        ("PUSHGATE_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
    ];
    let out = dir.run(&["check-config"], &kubernetes).ok();
    assert!(out.contains("[database]"), "{out}");
    // A misspelt section is still an error that names the variable.
    let mut misspelt = kubernetes.to_vec();
    misspelt.push(("PUSHGATE_DATABSE__URL", "sqlite://x.db"));
    let err = dir.run(&["check-config"], &misspelt).config_error();
    assert!(err.contains("PUSHGATE_DATABSE__URL"), "{err}");
}

#[test]
fn a_bad_value_names_the_key_and_where_it_came_from() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let err = dir
        .run(&["check-config"], &[("PUSHGATE_COMPONENT__PORT", "many")])
        .config_error();
    assert!(
        err.contains("`component.port` (from environment variable PUSHGATE_COMPONENT__PORT)"),
        "{err}"
    );

    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}[fcm]\nservice_account_file = \"sa.json\"\npriority = \"urgent\"\n"),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`fcm.priority`") && err.contains("high, normal"),
        "{err}"
    );

    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}[unified_push]\nkeys = [\"{KEY_A}\", \"c2hvcnQ=\"]\nregistration_ttl = \"7d\"\n[http]\npublic_url = \"https://up.example\"\n"),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`unified_push.keys[1]` (from pushgate.toml)"),
        "{err}"
    );
    assert!(err.contains("decodes to 5 bytes"), "{err}");

    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_UNIFIED_PUSH__REGISTRATION_TTL", "1h")],
        )
        .config_error();
    assert!(err.contains("`unified_push.registration_ttl` (from environment variable PUSHGATE_UNIFIED_PUSH__REGISTRATION_TTL)"), "{err}");

    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_COMPONENT__KEEPALIVE_IDLE", "soon")],
        )
        .config_error();
    assert!(
        err.contains("`component.keepalive_idle`") && err.contains("soon"),
        "{err}"
    );
}

#[test]
fn rule_violations_are_all_reported_at_once() {
    let dir = Workdir::new();
    dir.write(
        "pushgate.toml",
        r#"
[component]
jid = "alice@example.test"
secret = ""
[database]
url = "redis://localhost"
[http]
public_url = "ftp://up.example"
[log]
level = "very=loud=please"
"#,
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    for key in [
        "component.jid",
        "component.secret",
        "database.url",
        "http.public_url",
        "log.level",
    ] {
        assert!(
            err.contains(&format!("`{key}` (from pushgate.toml)")),
            "{key}: {err}"
        );
    }
}

#[test]
fn secrets_can_come_from_files_with_the_trailing_newline_dropped() {
    let dir = Workdir::new();
    let secret = dir.write("component.secret", "from-a-file\n");
    let keys = dir.write("up.keys", &format!("{KEY_A}\n{KEY_B}\n"));
    dir.write(
        "pushgate.toml",
        &format!(
            "[component]\njid = \"push.example.test\"\nsecret_file = \"{}\"\n[unified_push]\nkeys_file = \"{}\"\n[http]\npublic_url = \"https://up.example\"\n",
            secret.display(),
            keys.display()
        ),
    );
    let out = dir.run(&["check-config"], &[]).ok();
    let up = section(&out, "[unified_push]").join("\n");
    assert_eq!(
        up.matches(r#""<redacted>""#).count(),
        2,
        "both keys read: {out}"
    );
    assert!(!out.contains("from-a-file"), "{out}");

    // A file that holds only a newline is an empty secret.
    std::fs::write(&secret, "\n").expect("write");
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`component.secret`") && err.contains("must not be empty"),
        "{err}"
    );

    // A bad key inside keys_file is named by its line.
    std::fs::write(&secret, "ok").expect("write");
    std::fs::write(&keys, format!("{KEY_A}\nnot base64!\n")).expect("write");
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(err.contains("`unified_push.keys_file[1]`"), "{err}");
}

#[test]
fn a_secret_and_its_file_together_are_an_error() {
    let dir = Workdir::new();
    let secret = dir.write("component.secret", "a");
    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}secret_file = \"{}\"\n", secret.display()),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`component.secret_file` (from pushgate.toml)"),
        "{err}"
    );
    assert!(err.contains("not both"), "{err}");

    let keys = dir.write("up.keys", KEY_A);
    dir.write("pushgate.toml", MINIMAL);
    let err = dir
        .run(
            &["check-config"],
            &[
                ("PUSHGATE_UNIFIED_PUSH__KEYS", KEY_B),
                (
                    "PUSHGATE_UNIFIED_PUSH__KEYS_FILE",
                    keys.to_str().expect("utf-8"),
                ),
                ("PUSHGATE_HTTP__PUBLIC_URL", "https://up.example"),
            ],
        )
        .config_error();
    assert!(
        err.contains("environment variable PUSHGATE_UNIFIED_PUSH__KEYS_FILE"),
        "{err}"
    );
}

#[test]
fn several_components_are_an_array_of_tables_with_distinct_jids() {
    let dir = Workdir::new();
    dir.write(
        "pushgate.toml",
        r#"
[[component]]
jid = "p2.example.test"
secret = "one"
[[component]]
jid = "up.example.test"
port = 5348
secret = "two"
"#,
    );
    let out = dir.run(&["check-config"], &[]).ok();
    assert_eq!(out.matches("[[component]]").count(), 2, "{out}");
    assert!(
        out.contains(r#"jid = "p2.example.test""#) && out.contains(r#"jid = "up.example.test""#),
        "{out}"
    );
    assert!(out.contains("port = 5348"), "{out}");

    let text = std::fs::read_to_string(dir.path().join("pushgate.toml")).expect("read");
    dir.write(
        "pushgate.toml",
        &text.replace("up.example.test", "p2.example.test"),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`component[1].jid`") && err.contains("twice"),
        "{err}"
    );
}

#[test]
fn check_config_never_prints_a_secret() {
    let dir = Workdir::new();
    dir.write(
        "pushgate.toml",
        &format!(
            r#"
[component]
jid = "push.example.test"
secret = "component-secret-value"
[database]
url = "postgres://pushgate:database-password@db.example/pushgate"
[unified_push]
keys = ["{KEY_A}", "{KEY_B}"]
[http]
public_url = "https://up.example/"
"#
        ),
    );
    let run = dir.run(&["check-config"], &[]);
    let all = format!("{}{}", run.stdout, run.stderr);
    let out = run.ok();
    for secret in ["component-secret-value", "database-password", KEY_A, KEY_B] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(out.contains(r#"secret = "<redacted>""#), "{out}");
    assert!(
        out.contains(r#"url = "postgres://pushgate:<redacted>@db.example/pushgate""#),
        "{out}"
    );
    assert!(
        out.contains(r#"public_url = "https://up.example""#),
        "trailing slash dropped: {out}"
    );
}

#[test]
fn version_and_usage() {
    let dir = Workdir::new();
    let out = dir.run(&["--version"], &[]).ok();
    assert_eq!(
        out.trim(),
        format!("pushgate {}", env!("CARGO_PKG_VERSION"))
    );
    let run = dir.run(&["frobnicate"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

#[test]
fn the_shipped_example_is_valid_once_its_placeholder_key_is_replaced() {
    let example = include_str!("../../../config/pushgate.toml");
    let dir = Workdir::new();
    dir.write("pushgate.toml", example);
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`unified_push.keys[0]`"),
        "the placeholder is refused: {err}"
    );

    dir.write(
        "pushgate.toml",
        &example.replace("REPLACE-WITH-openssl-rand-base64-32=", KEY_A),
    );
    let out = dir.run(&["check-config"], &[]).ok();
    assert!(out.contains(r#"jid = "push.example.org""#), "{out}");
}

#[test]
fn fcm_settings_are_checked_including_the_service_account_key() {
    let dir = Workdir::new();
    let key = dir.write("sa.json", include_str!("data/service-account.json"));
    let fcm = format!("[fcm]\nservice_account_file = \"{}\"\n", key.display());
    dir.write("pushgate.toml", &format!("{MINIMAL}{fcm}"));
    let out = dir
        .run(&["check-config"], &[("PUSHGATE_FCM__PRIORITY", "normal")])
        .ok();
    let section = section(&out, "[fcm]");
    assert!(
        section.contains(&r#"api_url = "https://fcm.googleapis.com""#),
        "{out}"
    );
    assert!(section.contains(&"collapse = true"), "{out}");
    assert!(section.contains(&r#"priority = "normal""#), "{out}");
    assert!(section.contains(&r#"request_deadline = "10s""#), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");

    std::fs::write(&key, r#"{"type": "service_account"}"#).expect("write");
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`fcm.service_account_file` (from pushgate.toml)"),
        "{err}"
    );
    assert!(err.contains("sa.json"), "names the key file: {err}");

    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_FCM__API_URL", "fcm.example")],
        )
        .config_error();
    assert!(
        err.contains("`fcm.api_url` (from environment variable PUSHGATE_FCM__API_URL)"),
        "{err}"
    );
}

#[test]
fn roles_limits_and_push_timeout_are_checked() {
    let dir = Workdir::new();
    let up = format!(
        "[unified_push]\nkeys = [\"{KEY_A}\"]\n[http]\npublic_url = \"https://up.example\"\n"
    );
    // Two links may not both carry UnifiedPush: clients accept pushes from one JID only.
    dir.write(
        "pushgate.toml",
        &format!(
            "[[component]]\njid = \"p2.example.test\"\nsecret = \"a\"\n\
             [[component]]\njid = \"up.example.test\"\nsecret = \"b\"\n{up}"
        ),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("only one component may have the unified_push role"),
        "{err}"
    );

    // One role each is the two-JID setup of p2 and up side by side.
    dir.write(
        "pushgate.toml",
        &format!(
            "[[component]]\njid = \"p2.example.test\"\nsecret = \"a\"\nroles = [\"app_server\"]\n\
             [[component]]\njid = \"up.example.test\"\nsecret = \"b\"\nroles = [\"unified_push\"]\n{up}"
        ),
    );
    let out = dir.run(&["check-config"], &[]).ok();
    assert!(out.contains(r#"roles = ["app_server"]"#), "{out}");
    assert!(out.contains(r#"roles = ["unified_push"]"#), "{out}");

    dir.write("pushgate.toml", &format!("{MINIMAL}{up}"));
    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_UNIFIED_PUSH__PUSH_TIMEOUT", "30s")],
        )
        .config_error();
    assert!(err.contains("`unified_push.push_timeout`"), "{err}");
    assert!(err.contains("shorter than http.request_timeout"), "{err}");

    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_UNIFIED_PUSH__ENDPOINT_RATE", "0")],
        )
        .config_error();
    assert!(err.contains("`unified_push.endpoint_rate`"), "{err}");

    // Several instances on PostgreSQL: a push handed to the link's holder must be answered
    // before the HTTP request times out (9.5 s + 1 s is not under 10 s).
    let postgres = [
        (
            "PUSHGATE_DATABASE__URL",
            "postgres://pushgate@db.example/pushgate",
        ),
        ("PUSHGATE_UNIFIED_PUSH__PUSH_TIMEOUT", "9500ms"),
    ];
    let err = dir.run(&["check-config"], &postgres).config_error();
    assert!(err.contains("`unified_push.push_timeout`"), "{err}");
    assert!(err.contains("handed-over push"), "{err}");
    // The same on SQLite, where one instance hands nothing over, is fine; and so is a
    // `shared` link (every instance holds its own).
    dir.run(
        &["check-config"],
        &[("PUSHGATE_UNIFIED_PUSH__PUSH_TIMEOUT", "9500ms")],
    )
    .ok();
    let shared = [
        postgres[0],
        postgres[1],
        ("PUSHGATE_COMPONENT__MODE", "shared"),
    ];
    dir.run(&["check-config"], &shared).ok();

    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_COMPONENT__ROLES", "[\"pubsub\"]")],
        )
        .config_error();
    assert!(err.contains("component"), "{err}");
    assert!(err.contains("app_server"), "{err}");

    let out = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_HTTP__TRUST_FORWARDED_FOR", "true")],
        )
        .ok();
    assert!(
        section(&out, "[http]").contains(&"trust_forwarded_for = true"),
        "{out}"
    );
    let app_server = section(&out, "[app_server]");
    assert!(
        app_server.contains(&r#"purge_dead_after = "30days""#),
        "{out}"
    );
}

#[test]
fn devices_per_account_has_a_default_a_floor_and_an_override() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let out = dir.run(&["check-config"], &[]).ok();
    assert!(
        section(&out, "[app_server]").contains(&"max_devices_per_account = 32"),
        "{out}"
    );
    let out = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_APP_SERVER__MAX_DEVICES_PER_ACCOUNT", "5")],
        )
        .ok();
    assert!(
        section(&out, "[app_server]").contains(&"max_devices_per_account = 5"),
        "{out}"
    );
    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_APP_SERVER__MAX_DEVICES_PER_ACCOUNT", "0")],
        )
        .config_error();
    assert!(
        err.contains("`app_server.max_devices_per_account`"),
        "{err}"
    );
    assert!(err.contains("must be at least 1"), "{err}");
}

#[test]
fn xml_limits_have_defaults_floors_and_overrides() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let out = dir.run(&["check-config"], &[]).ok();
    let component = section(&out, "[[component]]");
    for line in [
        "max_stanza_bytes = 262144",
        "max_depth = 32",
        "max_attribute_bytes = 4096",
        "max_name_bytes = 512",
        "max_attributes = 64",
        "max_elements = 256",
        "max_form_fields = 64",
        "max_field_values = 16",
        "max_request_bytes_in_flight = 4194304",
    ] {
        assert!(component.contains(&line), "{line}: {out}");
    }

    let out = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_COMPONENT__MAX_ELEMENTS", "1000")],
        )
        .ok();
    assert!(
        section(&out, "[[component]]").contains(&"max_elements = 1000"),
        "{out}"
    );

    // Below the floors the push stanzas themselves would be refused.
    let err = dir
        .run(
            &["check-config"],
            &[
                ("PUSHGATE_COMPONENT__MAX_DEPTH", "4"),
                ("PUSHGATE_COMPONENT__MAX_FORM_FIELDS", "2"),
                ("PUSHGATE_COMPONENT__MAX_REQUEST_BYTES_IN_FLIGHT", "8192"),
            ],
        )
        .config_error();
    assert!(err.contains("`component.max_depth`"), "{err}");
    assert!(err.contains("must be at least 12"), "{err}");
    assert!(err.contains("`component.max_form_fields`"), "{err}");
    assert!(
        err.contains("`component.max_request_bytes_in_flight`"),
        "{err}"
    );
}

#[test]
fn the_database_cache_has_defaults_and_a_bounded_ttl() {
    let dir = Workdir::new();
    dir.write("pushgate.toml", MINIMAL);
    let out = dir.run(&["check-config"], &[]).ok();
    let database = section(&out, "[database]");
    assert!(database.contains(&r#"cache_ttl = "1m""#), "{out}");
    assert!(database.contains(&"cache_entries = 100000"), "{out}");

    let out = dir
        .run(
            &["check-config"],
            &[
                ("PUSHGATE_DATABASE__CACHE_TTL", "0s"),
                ("PUSHGATE_DATABASE__CACHE_ENTRIES", "0"),
            ],
        )
        .ok();
    let database = section(&out, "[database]");
    assert!(database.contains(&r#"cache_ttl = "0s""#), "{out}");
    assert!(database.contains(&"cache_entries = 0"), "{out}");

    let err = dir
        .run(&["check-config"], &[("PUSHGATE_DATABASE__CACHE_TTL", "2h")])
        .config_error();
    assert!(err.contains("`database.cache_ttl`"), "{err}");
    assert!(err.contains("at most 1h"), "{err}");

    let err = dir
        .run(
            &["check-config"],
            &[("PUSHGATE_DATABASE__CACHE_TTL", "soon")],
        )
        .config_error();
    assert!(err.contains("cache_ttl"), "{err}");
}

#[test]
fn the_fcm_proxy_is_unset_by_default_follows_the_environment_and_is_checked() {
    let dir = Workdir::new();
    let key = dir.write("sa.json", include_str!("data/service-account.json"));
    let fcm = format!("[fcm]\nservice_account_file = \"{}\"\n", key.display());
    dir.write("pushgate.toml", &format!("{MINIMAL}{fcm}"));
    let out = dir.run(&["check-config"], &[]).ok();
    let printed = section(&out, "[fcm]");
    assert!(printed.contains(&"proxy_from_environment = true"), "{out}");
    assert!(
        !printed.iter().any(|line| line.starts_with("proxy =")),
        "no proxy unless configured: {out}"
    );

    let out = dir
        .run(
            &["check-config"],
            &[
                (
                    "PUSHGATE_FCM__PROXY",
                    "http://pushgate:proxy-password@proxy.example:3128",
                ),
                ("PUSHGATE_FCM__PROXY_FROM_ENVIRONMENT", "false"),
            ],
        )
        .ok();
    let printed = section(&out, "[fcm]");
    assert!(
        printed.contains(&r#"proxy = "http://pushgate:<redacted>@proxy.example:3128""#),
        "{out}"
    );
    assert!(printed.contains(&"proxy_from_environment = false"), "{out}");
    assert!(!out.contains("proxy-password"), "{out}");

    let run = dir.run(
        &["check-config"],
        &[(
            "PUSHGATE_FCM__PROXY",
            "ftp://user:ftp-password@proxy.example",
        )],
    );
    assert!(!run.stderr.contains("ftp-password"), "{}", run.stderr);
    let err = run.config_error();
    assert!(
        err.contains("`fcm.proxy` (from environment variable PUSHGATE_FCM__PROXY)"),
        "{err}"
    );
}

#[test]
fn sections_owned_by_their_crates_still_refuse_unknown_keys_by_variable() {
    let dir = Workdir::new();
    let key = dir.write("sa.json", include_str!("data/service-account.json"));
    dir.write(
        "pushgate.toml",
        &format!(
            "{MINIMAL}[fcm]\nservice_account_file = \"{}\"\n",
            key.display()
        ),
    );
    for (variable, key) in [
        ("PUSHGATE_FCM__PROXI", "`fcm.proxi`"),
        ("PUSHGATE_DATABASE__URLL", "`database.urll`"),
        ("PUSHGATE_APP_SERVER__PURGE", "`app_server.purge`"),
        (
            "PUSHGATE_FCM__HTTP2_PRIOR_KNOWLEDGE",
            "`fcm.http2_prior_knowledge`",
        ),
    ] {
        let err = dir
            .run(&["check-config"], &[(variable, "1")])
            .config_error();
        assert!(err.contains(key), "{variable}: {err}");
        assert!(
            err.contains(&format!("environment variable {variable}")),
            "{variable}: {err}"
        );
    }
}

/// `[apns]` lines for the test key at `key`.
fn apns_section(key: &std::path::Path) -> String {
    format!(
        "[apns]\nkey_file = \"{}\"\nkey_id = \"TESTKEY001\"\nteam_id = \"TESTTEAM01\"\ntopic = \"im.example.app\"\n",
        key.display()
    )
}

#[test]
fn apns_settings_are_checked_including_the_p8_key() {
    let dir = Workdir::new();
    let key = dir.write(
        "AuthKey_TESTKEY001.p8",
        include_str!("data/AuthKey_TESTKEY001.p8"),
    );
    dir.write("pushgate.toml", &format!("{MINIMAL}{}", apns_section(&key)));
    let out = dir.run(&["check-config"], &[]).ok();
    let apns = section(&out, "[apns]");
    for line in [
        r#"environment = "production""#,
        r#"payload = "alert""#,
        r#"alert_title = "New message""#,
        r#"expiration = "1day""#,
        "collapse = true",
        r#"request_deadline = "10s""#,
    ] {
        assert!(apns.contains(&line), "{line}: {out}");
    }
    assert!(!out.contains("PRIVATE KEY"), "{out}");

    // A key file that is no key, a key of the wrong kind, an id of the wrong shape: each named.
    let garbage = dir.write("garbage.p8", "this is not a key\n");
    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}{}", apns_section(&garbage)),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`apns.key_file` (from pushgate.toml)"),
        "{err}"
    );
    assert!(err.contains("PRIVATE KEY"), "says what it expected: {err}");
    let rsa = dir.write("rsa.p8", include_str!("data/rsa-key.pem"));
    dir.write("pushgate.toml", &format!("{MINIMAL}{}", apns_section(&rsa)));
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`apns.key_file`") && err.contains("P-256"),
        "{err}"
    );
    let missing = dir.path().join("AuthKey_NOPE.p8");
    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}{}", apns_section(&missing)),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`apns.key_file`") && err.contains("cannot be read"),
        "{err}"
    );
    dir.write("pushgate.toml", &format!("{MINIMAL}{}", apns_section(&key)));
    let err = dir
        .run(&["check-config"], &[("PUSHGATE_APNS__KEY_ID", "KEY")])
        .config_error();
    assert!(
        err.contains("`apns.key_id` (from environment variable PUSHGATE_APNS__KEY_ID)"),
        "{err}"
    );
    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}[apns]\nkey_file = \"{}\"\n", key.display()),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    for key in ["apns.key_id", "apns.team_id", "apns.topic"] {
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
}

#[test]
fn apps_and_push_modules_are_checked_entry_by_entry() {
    let dir = Workdir::new();
    let key = dir.write(
        "AuthKey_TESTKEY001.p8",
        include_str!("data/AuthKey_TESTKEY001.p8"),
    );
    let account = dir.write("sa.json", include_str!("data/service-account.json"));
    let apns = apns_section(&key).replace("[apns]\n", "");
    let good = format!(
        "[[component]]\njid = \"p2.example.test\"\nsecret = \"a\"\nroles = [\"app_server\"]\napp = \"quicksy\"\n\
         [[component]]\njid = \"monal.example.test\"\nsecret = \"b\"\nroles = [\"push_modules\"]\n\
         [[app]]\nname = \"quicksy\"\n[app.fcm]\nservice_account_file = \"{}\"\n[app.apns]\n{apns}\
         [[push_module]]\nname = \"monalProdiOS\"\n[push_module.apns]\n{apns}",
        account.display()
    );
    dir.write("pushgate.toml", &good);
    let out = dir.run(&["check-config"], &[]).ok();
    assert!(
        out.contains("[[app]]") && out.contains("[[push_module]]"),
        "{out}"
    );
    assert!(out.contains(r#"app = "quicksy""#), "{out}");

    // A service account without project_id, in an app.
    let broken = dir.write(
        "broken.json",
        r#"{"type": "service_account", "client_email": "a@b", "private_key": "x"}"#,
    );
    dir.write(
        "pushgate.toml",
        &good.replace(
            &account.display().to_string(),
            &broken.display().to_string(),
        ),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(err.contains("`app[0].fcm.service_account_file`"), "{err}");

    // A component naming an app that does not exist.
    dir.write(
        "pushgate.toml",
        &good.replace("app = \"quicksy\"", "app = \"nope\""),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`component[0].app`") && err.contains("\"nope\""),
        "{err}"
    );

    // A module with both services, a second module and no default, a 1,000-character name.
    let both = good.replace(
        "[push_module.apns]\n",
        &format!(
            "[push_module.fcm]\nservice_account_file = \"{}\"\n[push_module.apns]\n",
            account.display()
        ),
    );
    dir.write("pushgate.toml", &both);
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(
        err.contains("`push_module[0]`") && err.contains("exactly one"),
        "{err}"
    );
    let two = format!("{good}[[push_module]]\nname = \"other\"\n[push_module.apns]\n{apns}");
    dir.write("pushgate.toml", &two);
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(err.contains("`push_modules.default`"), "{err}");
    dir.write(
        "pushgate.toml",
        &format!("{two}[push_modules]\ndefault = \"monalProdiOS\"\n"),
    );
    dir.run(&["check-config"], &[]).ok();
    let long = good.replace("monalProdiOS", &"m".repeat(1000));
    dir.write("pushgate.toml", &long);
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(err.contains("`push_module[0].name`"), "{err}");

    // The token-in-node role and the app server both take publishes: not on one component.
    dir.write(
        "pushgate.toml",
        &good.replace(
            "roles = [\"push_modules\"]",
            "roles = [\"push_modules\", \"app_server\"]",
        ),
    );
    let err = dir.run(&["check-config"], &[]).config_error();
    assert!(err.contains("`component[1].roles`"), "{err}");
}
