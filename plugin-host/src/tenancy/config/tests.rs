//! Unit tests of layered configuration, with plain values.

use std::path::Path;

use serde_json::{json, Value};

use super::file::config_file_path;
use super::*;
use plugin_package::manifest::{ConfigType, Manifest};

const MANIFEST: &str = r#"
id = "demo"
name = "Demo"
version = "1.2.0"
api = "^0.2"
library = "libdemo.so"

[config.token]
type = "string"
required = true
sensitive = true
description = "API token."

[config.greeting]
type = "string"
default = "hello"

[config.port]
type = "integer"
default = 80
min = 1
max = 65535

[config.ratio]
type = "float"

[config.on]
type = "boolean"
default = true

[config.tags]
type = "list"
default = ["a"]
"#;

fn manifest() -> Manifest {
    Manifest::parse(MANIFEST, Path::new("plugins/demo/plugin.toml")).unwrap()
}

fn schema() -> Schema {
    Schema::from_manifest(&manifest().config).unwrap()
}

/// Layers `file`, `overrides` and `env` for tenant `acme` and renders
/// the outcome: the values (`key=value@source` lines, secrets redacted)
/// or the error message.
fn check(file: &str, overrides: Value, env: &[(&str, &str)], expected: &str) {
    let schema = schema();
    let config_dir = Path::new("config");
    let path = config_file_path(config_dir, "demo");
    let file = (!file.is_empty()).then(|| ConfigFile::parse("demo", "acme", &path, file));
    let file = match file.transpose() {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(e.to_string(), expected);
            return;
        }
    };
    let Value::Object(overrides) = overrides else {
        panic!("overrides must be an object")
    };
    let env = Environment::fixed(env.iter().copied());
    let actual = match layer(&Layers {
        plugin: "demo",
        tenant: "acme",
        schema: &schema,
        config_dir,
        file: file.as_ref(),
        overrides: &overrides,
        env: &env,
    }) {
        Ok(layered) => {
            let shown = layered.redacted();
            let sources = layered.sources();
            shown
                .iter()
                .map(|(k, v)| format!("{k}={v}@{}", sources[k]))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => e.to_string(),
    };
    assert_eq!(actual, expected);
}

const TOKEN: (&str, &str) = ("PLUGKIT_DEMO_TOKEN", "${env:DEMO_TOKEN}");

#[test]
fn later_layers_win() {
    check(
        "port = 8080\ngreeting = \"file\"\n",
        json!({ "greeting": "tenant" }),
        &[TOKEN, ("PLUGKIT_DEMO_PORT", "9090")],
        "greeting=\"tenant\"@the tenant's overrides\n\
         on=true@the manifest default\n\
         port=9090@environment variable `PLUGKIT_DEMO_PORT`\n\
         tags=[\"a\"]@the manifest default\n\
         token=\"<redacted>\"@environment variable `PLUGKIT_DEMO_TOKEN` via ${env:DEMO_TOKEN}",
    );
    check(
        "port = 8080\ntoken = \"${vault:demo#token}\"\nratio = 1\n",
        json!({}),
        &[],
        "greeting=\"hello\"@the manifest default\n\
         on=true@the manifest default\n\
         port=8080@config/plugins/demo.toml:1:8\n\
         ratio=1@config/plugins/demo.toml:3:9\n\
         tags=[\"a\"]@the manifest default\n\
         token=\"<redacted>\"@config/plugins/demo.toml:2:9 via ${vault:demo#token}",
    );
}

#[test]
fn environment_values_are_parsed_as_the_declared_type() {
    check(
        "",
        json!({ "token": "${file:/run/token}" }),
        &[
            ("PLUGKIT_DEMO_RATIO", "2.5"),
            ("PLUGKIT_DEMO_ON", "false"),
            ("PLUGKIT_DEMO_TAGS", "[\"x\", 1]"),
            ("PLUGKIT_DEMO_GREETING", "$${not a ref}"),
        ],
        "greeting=\"${not a ref}\"@environment variable `PLUGKIT_DEMO_GREETING`\n\
         on=false@environment variable `PLUGKIT_DEMO_ON`\n\
         port=80@the manifest default\n\
         ratio=2.5@environment variable `PLUGKIT_DEMO_RATIO`\n\
         tags=[\"x\",1]@environment variable `PLUGKIT_DEMO_TAGS`\n\
         token=\"<redacted>\"@the tenant's overrides via ${file:/run/token}",
    );
}

#[test]
fn every_problem_names_key_tenant_source_and_expected_type() {
    check(
        "port = \"eighty\"\ncolour = \"red\"\n",
        json!({ "ratio": "high", "token": "hunter2", "greting": "hi" }),
        &[("PLUGKIT_DEMO_ON", "yes")],
        "configuration of plugin `demo` for tenant `acme` has 6 problems; fix each and retry:\n  \
         key `colour` (set in config/plugins/demo.toml:2:10) is not in the plugin's [config] \
         schema, which declares `greeting`, `on`, `port`, `ratio`, `tags`, `token`; remove it \
         or fix its spelling\n  \
         key `port` (set in config/plugins/demo.toml:1:8) must be of type integer, found a \
         string; write an integer such as 42\n  \
         key `greting` (set in the tenant's overrides) is not in the plugin's [config] \
         schema, which declares `greeting`, `on`, `port`, `ratio`, `tags`, `token`; remove it \
         or fix its spelling\n  \
         key `ratio` (set in the tenant's overrides) must be of type float, found a string; \
         write a number such as 1.5\n  \
         key `token` is sensitive and the tenant's overrides are stored on disk, so it must \
         be a secret reference such as \"${vault:path#key}\", \"${env:VAR}\" or \
         \"${file:/path}\", never the value itself\n  \
         key `on` (set in environment variable `PLUGKIT_DEMO_ON`) must be of type boolean, \
         found text that does not parse as one; write true or false",
    );
}

#[test]
fn numbers_outside_their_bounds_are_refused_with_the_range() {
    check(
        "port = 0\n",
        json!({ "token": "${env:DEMO_TOKEN}" }),
        &[],
        "configuration of plugin `demo` for tenant `acme` has 1 problem; fix it and retry:\n  \
         key `port` (set in config/plugins/demo.toml:1:8) must be between 1 and 65535; write a \
         value in that range",
    );
}

#[test]
fn missing_required_keys_say_where_to_set_them() {
    check(
        "",
        json!({}),
        &[],
        "configuration of plugin `demo` for tenant `acme` has 1 problem; fix it and retry:\n  \
         required key `token` (string) is not set; set it in config/plugins/demo.toml, in the \
         tenant's overrides, or with the environment variable `PLUGKIT_DEMO_TOKEN`",
    );
}

#[test]
fn malformed_references_are_reported_without_their_text() {
    check(
        "",
        json!({ "token": "${vault:no-key}", "greeting": "${nope:x}" }),
        &[],
        "configuration of plugin `demo` for tenant `acme` has 2 problems; fix each and retry:\n  \
         key `greeting` (set in the tenant's overrides) is not a valid secret reference: \
         unknown scheme `nope`; write \"${env:VAR}\", \"${file:/path}\" or \
         \"${vault:path#key}\", or start a literal value with \"$${\"\n  \
         key `token` (set in the tenant's overrides) is not a valid secret reference: a vault \
         reference needs `#key` after the path; write \"${env:VAR}\", \"${file:/path}\" or \
         \"${vault:path#key}\", or start a literal value with \"$${\"",
    );
}

#[test]
fn file_syntax_errors_have_path_and_position_but_not_the_text() {
    check(
        "port = 80\ntoken = \"s3cr3t\n",
        json!({}),
        &[],
        "tenant `acme`: plugin `demo`: config/plugins/demo.toml:2:16: invalid basic string, expected `\"`; \
         fix the file",
    );
}

#[test]
fn secret_values_never_reach_errors_or_debug() {
    let secret = "hunter2-canary";
    let schema = schema();
    let overrides = json!({ "token": secret, "port": secret });
    let Value::Object(overrides) = overrides else {
        unreachable!()
    };
    let env = Environment::fixed([("PLUGKIT_DEMO_ON", secret), ("X", secret)]);
    let err = layer(&Layers {
        plugin: "demo",
        tenant: "acme",
        schema: &schema,
        config_dir: Path::new("config"),
        file: None,
        overrides: &overrides,
        env: &env,
    })
    .unwrap_err();
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(!format!("{err:?}").contains(secret), "{err:?}");
    assert!(!format!("{env:?}").contains(secret), "{env:?}");
    let file = ConfigFile::parse(
        "demo",
        "acme",
        Path::new("f.toml"),
        "token = \"hunter2-canary\"",
    )
    .unwrap();
    assert!(!format!("{file:?}").contains(secret));
}

#[test]
fn env_var_names_are_upper_case_with_underscores() {
    let cases = [
        ("tenant-echo", "api_key", "PLUGKIT_TENANT_ECHO_API_KEY"),
        ("sms", "from.number", "PLUGKIT_SMS_FROM_NUMBER"),
        ("a2", "b-c", "PLUGKIT_A2_B_C"),
    ];
    for (plugin, key, expected) in cases {
        assert_eq!(env_var_name(plugin, key), expected);
    }
}

#[test]
fn text_values_parse_as_their_type() {
    let cases: &[(&str, ConfigType, Option<Value>)] = &[
        ("x", ConfigType::String, Some(json!("x"))),
        (" 42 ", ConfigType::Integer, Some(json!(42))),
        ("4.2", ConfigType::Integer, None),
        ("4.2", ConfigType::Float, Some(json!(4.2))),
        ("NaN", ConfigType::Float, None),
        ("true", ConfigType::Boolean, Some(json!(true))),
        ("1", ConfigType::Boolean, None),
        ("[1, \"a\"]", ConfigType::List, Some(json!([1, "a"]))),
        ("a,b", ConfigType::List, None),
    ];
    for (raw, t, expected) in cases {
        assert_eq!(&parse_typed(raw, *t), expected, "{raw:?} as {t}");
    }
}

#[test]
fn example_is_valid_toml_that_changes_nothing_until_edited() {
    let example = example_toml(&manifest());
    let parsed = ConfigFile::parse("demo", "acme", Path::new("x"), &example).unwrap();
    assert!(parsed.values.is_empty(), "{example}");
    assert!(example.contains("# API token.\n# string, required, sensitive: use a secret reference · env PLUGKIT_DEMO_TOKEN\n# token = \"${vault:plugins/demo#token}\"\n"), "{example}");
    assert!(example.contains("# port = 80\n"), "{example}");
    assert!(example.contains("# ratio = 0.0\n"), "{example}");
    // Uncommenting every line gives a file the schema accepts.
    let uncommented: String = example
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect();
    check(
        &uncommented,
        json!({}),
        &[],
        "greeting=\"hello\"@config/plugins/demo.toml:1:12\n\
         on=true@config/plugins/demo.toml:2:6\n\
         port=80@config/plugins/demo.toml:3:8\n\
         ratio=0.0@config/plugins/demo.toml:4:9\n\
         tags=[\"a\"]@config/plugins/demo.toml:5:8\n\
         token=\"<redacted>\"@config/plugins/demo.toml:6:9 via ${vault:plugins/demo#token}",
    );
}
