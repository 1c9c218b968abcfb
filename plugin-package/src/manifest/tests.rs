//! Unit tests of the manifest parser: every field, every rule and every
//! message, through [`Manifest::parse`] and `Manifest::load`.

use super::*;

/// Parses `text` as `plugin.toml` and compares the outcome, rendered as text, with `expected`:
/// `ok` for a manifest that passes, else the error's message.
fn check(text: &str, expected: &str) {
    let actual = match Manifest::parse(text, Path::new("plugins/demo/plugin.toml")) {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.to_string(),
    };
    assert_eq!(actual, expected, "\n--- manifest ---\n{text}");
}

const MINIMAL: &str = r#"
id = "demo"
name = "Demo"
version = "1.0.0"
api = "^0.2"
library = "libdemo.so"
"#;

/// `MINIMAL` followed by `extra`, so positions in expectations start at line 7.
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

const FULL: &str = r#"
id = "twilio"
name = "Twilio SMS"
version = "1.4.2"
description = "Sends SMS through Twilio."
authors = ["Ada <ada@example.com>", "Grace"]
license = "MIT OR Apache-2.0"
category = "communication"
api = "^0.2"
library = "libplugkit_twilio.so"
conflicts = { legacy-sms = "<2" }
provides = ["sms"]
requires = ["payment"]
permissions = ["network:outbound", "secrets:read", "network:outbound"]
required_tier = "pro"

[dependencies]
http-client = "^1.2"
metrics = { version = ">=0.3, <0.5", optional = true }

[[hooks]]
name = "message.send"
priority = 10
kind = "filter"
before = ["audit-log"]

[[hooks]]
name = "order.created"

[config.account_sid]
type = "string"
required = true
description = "Twilio account SID."

[config.auth_token]
type = "string"
required = true
sensitive = true

[config.timeout_seconds]
type = "float"
default = 5

[config.regions]
type = "list"
default = ["us1"]
"#;

#[test]
fn full_manifest_parses_into_every_field() {
    let manifest = Manifest::parse(FULL, Path::new("twilio/plugin.toml")).unwrap();
    assert_eq!(manifest.path, Path::new("twilio/plugin.toml"));
    assert_eq!(manifest.id, "twilio");
    assert_eq!(manifest.name, "Twilio SMS");
    assert_eq!(manifest.version, Version::new(1, 4, 2));
    assert_eq!(manifest.description, "Sends SMS through Twilio.");
    assert_eq!(manifest.authors, ["Ada <ada@example.com>", "Grace"]);
    assert_eq!(manifest.license.as_deref(), Some("MIT OR Apache-2.0"));
    assert_eq!(manifest.category.as_str(), "communication");
    assert_eq!(manifest.api, VersionReq::parse("^0.2").unwrap());
    assert_eq!(manifest.library, "libplugkit_twilio.so");
    assert_eq!(
        manifest.dependencies["http-client"],
        Dependency::new(VersionReq::parse("^1.2").unwrap(), false)
    );
    assert_eq!(
        manifest.dependencies["metrics"],
        Dependency::new(VersionReq::parse(">=0.3, <0.5").unwrap(), true)
    );
    assert_eq!(
        manifest.conflicts["legacy-sms"],
        VersionReq::parse("<2").unwrap()
    );
    assert_eq!(manifest.provides, ["sms"]);
    assert_eq!(manifest.requires, ["payment"]);
    assert_eq!(
        manifest.permissions.iter().copied().collect::<Vec<_>>(),
        [Permission::NetworkOutbound, Permission::SecretsRead]
    );
    assert_eq!(manifest.required_tier, "pro");
    assert_eq!(
        manifest.hooks,
        [
            Hook {
                name: "message.send".into(),
                priority: 10,
                kind: HookKind::Filter,
                before: vec!["audit-log".into()],
                after: vec![],
            },
            Hook {
                name: "order.created".into(),
                priority: 0,
                kind: HookKind::Event,
                before: vec![],
                after: vec![],
            },
        ]
    );
    let keys: Vec<&str> = manifest.config.iter().map(|(name, _)| name).collect();
    assert_eq!(
        keys,
        ["account_sid", "auth_token", "regions", "timeout_seconds"]
    );
    let token = manifest.config.get("auth_token").unwrap();
    assert!(token.required && token.sensitive && token.default.is_none());
    let timeout = manifest.config.get("timeout_seconds").unwrap();
    assert_eq!(timeout.value_type, ConfigType::Float);
    assert_eq!(timeout.default, Some(toml::Value::Integer(5)));
}

#[test]
fn numeric_config_keys_take_inclusive_bounds() {
    let parse = |extra: &str| Manifest::parse(&minimal_with(extra), Path::new("plugin.toml"));
    let manifest = parse("[config.calls]\ntype = \"integer\"\nmin = 1\nmax = 60\ndefault = 10\n")
        .expect("bounds parse");
    let calls = manifest.config.get("calls").expect("key");
    assert_eq!((calls.min, calls.max), (Some(1.0), Some(60.0)));
    let refused = |extra: &str, part: &str| {
        let error = parse(extra).expect_err("refused").to_string();
        assert!(error.contains(part), "{error}");
    };
    refused(
        "[config.name]\ntype = \"string\"\nmin = 1\n",
        "only integer and float keys take `min`/`max`",
    );
    refused(
        "[config.ratio]\ntype = \"float\"\nmin = 1.5\nmax = 0.5\n",
        "has `max` 0.5 below `min` 1.5",
    );
    refused(
        "[config.calls]\ntype = \"integer\"\nmax = 5\ndefault = 10\n",
        "is outside its `min`/`max`",
    );
}

#[test]
fn minimal_manifest_gets_defaults() {
    let manifest = Manifest::parse(MINIMAL, Path::new("plugin.toml")).unwrap();
    assert_eq!(manifest.category, Category::CUSTOM);
    assert_eq!(manifest.required_tier, "free");
    assert_eq!(manifest.description, "");
    assert!(manifest.dependencies.is_empty() && manifest.config.is_empty());
}

#[test]
fn a_category_the_host_does_not_know_is_an_error_not_a_silent_skip() {
    // Regression (issue 12): `analytics` used to be kept as an unknown
    // category that every lookup then skipped.
    check(
        &minimal_with("category = \"analytics\"\n"),
        "plugins/demo/plugin.toml:7:12: unknown category `analytics`, this host knows \
             `communication`, `payment`, `network-automation`, `crm`, `custom` (a new category \
             needs a host built with a plugin-api that declares it); fix this entry of the \
             plugin manifest.",
    );
    check(
        &minimal_with("category = \"network\"\n"),
        "plugins/demo/plugin.toml:7:12: unknown category `network`, this host knows \
             `communication`, `payment`, `network-automation`, `crm`, `custom` (a new category \
             needs a host built with a plugin-api that declares it); fix this entry of the \
             plugin manifest.",
    );
}

#[test]
fn unknown_keys_are_errors_with_line_column_and_the_known_keys() {
    check(
        &minimal_with("colour = \"red\"\n"),
        "plugins/demo/plugin.toml:7:1: unknown field `colour`, expected one of `id`, `name`, \
             `version`, `description`, `authors`, `license`, `category`, `api`, `library`, \
             `dependencies`, `conflicts`, `provides`, `requires`, `permissions`, `hooks`, \
             `config`, `required_tier`, `isolation`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[[hooks]]\nname = \"a\"\nprio = 1\n"),
        "plugins/demo/plugin.toml:9:1: unknown field `prio`, expected one of `name`, \
             `priority`, `kind`, `before`, `after`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[dependencies]\nother = { version = \"^1\", optinal = true }\n"),
        "plugins/demo/plugin.toml:8:9: unknown field `optinal`, expected `version` or \
             `optional`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[config.port]\ntyp = \"integer\"\n"),
        "plugins/demo/plugin.toml:8:1: unknown field `typ`, expected one of `type`, \
             `required`, `default`, `sensitive`, `description`, `min`, `max`; fix this entry of the \
             plugin manifest.",
    );
}

#[test]
fn bad_values_are_errors_with_line_column_and_the_expected_form() {
    check(
        &MINIMAL.replace("1.0.0", "1.0"),
        "plugins/demo/plugin.toml:4:11: invalid version `1.0`: unexpected end of input while \
             parsing minor version number; expected a semantic version such as \"1.2.3\"; fix \
             this entry of the plugin manifest.",
    );
    check(
        &MINIMAL.replace("^0.2", "zero"),
        "plugins/demo/plugin.toml:5:7: invalid version requirement `zero`: unexpected \
             character 'z' while parsing major version number; expected a range such as \"^1.2\", \
             \">=1.0, <2\" or \"*\"; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[dependencies]\nother = \"one\"\n"),
        "plugins/demo/plugin.toml:8:9: invalid version requirement `one`: unexpected \
             character 'o' while parsing major version number; expected a range such as \"^1.2\", \
             \">=1.0, <2\" or \"*\"; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[dependencies]\nother = 5\n"),
        "plugins/demo/plugin.toml:8:9: invalid type: integer `5`, expected a version \
             requirement such as \"^1.2\" or a table such as { version = \"^1.2\", optional = true }; \
             fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("permissions = [\"storage:read\", \"network:inbound\"]\n"),
        "plugins/demo/plugin.toml:7:32: unknown permission `network:inbound`, expected one of \
             `network:outbound`, `secrets:read`, `storage:read`, `storage:write`, `hooks:emit`, \
             `metrics:write`, `process:spawn`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("category = \"Big Thing\"\n"),
        "plugins/demo/plugin.toml:7:12: unknown category `Big Thing`, this host knows \
             `communication`, `payment`, `network-automation`, `crm`, `custom` (a new category \
             needs a host built with a plugin-api that declares it); fix this entry of the \
             plugin manifest.",
    );
    check(
        &minimal_with("[[hooks]]\nname = \"a\"\nkind = \"action\"\n"),
        "plugins/demo/plugin.toml:9:8: unknown hook kind `action`, expected `filter` or \
             `event`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[[hooks]]\nname = \"a\"\npriority = \"high\"\n"),
        "plugins/demo/plugin.toml:9:12: invalid type: string \"high\", expected i32; fix \
             this entry of the plugin manifest.",
    );
    check(
        &minimal_with("[config.port]\ntype = \"int\"\n"),
        "plugins/demo/plugin.toml:8:8: unknown variant `int`, expected one of `string`, \
             `integer`, `float`, `boolean`, `list`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("conflicts = { old-sms = \"<1\", older-sms = \"one\" }\n"),
        "plugins/demo/plugin.toml:7:43: invalid version requirement `one`: unexpected \
             character 'o' while parsing major version number; expected a range such as \"^1.2\", \
             \">=1.0, <2\" or \"*\"; fix this entry of the plugin manifest.",
    );
    check(
        &MINIMAL.replace("\"1.0.0\"", "1"),
        "plugins/demo/plugin.toml:4:11: invalid type: integer `1`, expected a semantic \
             version such as \"1.2.3\"; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("authors = \"Ada\"\n"),
        "plugins/demo/plugin.toml:7:11: invalid type: string \"Ada\", expected a sequence; \
             fix this entry of the plugin manifest.",
    );
}

#[test]
fn missing_required_field_and_broken_toml_are_errors() {
    check(
        &MINIMAL.replace("library = \"libdemo.so\"\n", ""),
        "plugins/demo/plugin.toml:1:1: missing field `library`; fix this entry of the plugin manifest.",
    );
    check(
        &minimal_with("provides = [\"sms\"\n"),
        "plugins/demo/plugin.toml:7:18: unclosed array, expected `]`; fix this entry of the plugin manifest.",
    );
}

#[test]
fn id_must_follow_the_charset_rule() {
    let rule = "ids are 2 to 64 characters of a-z, 0-9 and `-`, starting with a letter";
    for bad in ["Demo", "d", "9lives", "demo_sms", "-demo", &"a".repeat(65)] {
        check(
            &MINIMAL.replace("\"demo\"", &format!("\"{bad}\"")),
            &format!(
                "plugin manifest plugins/demo/plugin.toml breaks 1 rule; fix it and reload:\n  \
                     plugins/demo/plugin.toml:2:6: invalid plugin id `{bad}`: {rule}, e.g. `twilio-sms`"
            ),
        );
    }
    for good in ["ab", "sms-2", "network-automation", &"a".repeat(64)] {
        check(&MINIMAL.replace("\"demo\"", &format!("\"{good}\"")), "ok");
    }
}

#[test]
fn each_semantic_rule_is_reported_at_its_entry() {
    let rule = |position: &str, message: &str| {
        format!(
            "plugin manifest plugins/demo/plugin.toml breaks 1 rule; fix it and reload:\n  \
                 plugins/demo/plugin.toml:{position}: {message}"
        )
    };
    check(
        &minimal_with("[[hooks]]\nname = \"a\"\n[[hooks]]\nname = \"b\"\n[[hooks]]\nname = \"a\"\n"),
        &rule(
            "12:8",
            "hook `a` is registered twice (first at line 8); keep one [[hooks]] entry per hook name",
        ),
    );
    check(
        &minimal_with("[config.port]\ntype = \"integer\"\ndefault = \"80\"\n"),
        &rule(
            "9:11",
            "default of config key `port` does not match its type: expected integer, found a \
                 string; change the default or the `type`",
        ),
    );
    check(
        &minimal_with("[config.port]\ntype = \"integer\"\nrequired = true\ndefault = 80\n"),
        &rule(
            "10:11",
            "config key `port` is required and also has a default; remove `default` or set \
                 `required = false`",
        ),
    );
    check(
        &minimal_with("[dependencies]\ndemo = \"^1\"\n"),
        &rule(
            "8:1",
            "plugin `demo` depends on itself; remove `demo` from [dependencies]",
        ),
    );
    check(
        &minimal_with("[dependencies]\nsms = \"^1\"\n[conflicts]\nsms = \"<1\"\n"),
        &rule(
            "10:1",
            "`sms` is both a dependency and a conflict; a plugin cannot need and refuse the \
                 same plugin, so remove it from [dependencies] or [conflicts]",
        ),
    );
    check(
        &minimal_with("[conflicts]\ndemo = \"*\"\n"),
        &rule(
            "8:1",
            "plugin `demo` conflicts with itself; remove `demo` from [conflicts]",
        ),
    );
    check(
        &MINIMAL.replace("libdemo.so", "../lib/libdemo.so"),
        &rule(
            "6:11",
            "`library = \"../lib/libdemo.so\"` must be a file name in the plugin's folder, \
                 such as \"libplugkit_twilio.so\", not a path",
        ),
    );
    check(
        &minimal_with("provides = [\"sms\"]\nrequires = [\"sms\"]\n"),
        &rule(
            "8:13",
            "plugin requires service `sms` that it provides itself; remove it from `requires`",
        ),
    );
    check(
        &minimal_with("[dependencies]\nBad_Id = \"^1\"\n"),
        &rule(
            "8:1",
            "invalid dependency id `Bad_Id`: ids are 2 to 64 characters of a-z, 0-9 and `-`, \
                 starting with a letter",
        ),
    );
}

#[test]
fn all_semantic_problems_are_reported_together_in_file_order() {
    let text = r#"
id = "Demo"
name = "Demo"
version = "1.0.0"
api = "^0.2"
library = "libdemo.so"
[dependencies]
Demo = "^1"
[[hooks]]
name = "a"
[[hooks]]
name = "a"
[config.port]
type = "boolean"
required = true
default = 1
"#;
    check(
        text,
        "plugin manifest plugins/demo/plugin.toml breaks 6 rules; fix each and reload:\n  \
             plugins/demo/plugin.toml:2:6: invalid plugin id `Demo`: ids are 2 to 64 characters of \
             a-z, 0-9 and `-`, starting with a letter, e.g. `twilio-sms`\n  \
             plugins/demo/plugin.toml:8:1: invalid dependency id `Demo`: ids are 2 to 64 \
             characters of a-z, 0-9 and `-`, starting with a letter\n  \
             plugins/demo/plugin.toml:8:1: plugin `Demo` depends on itself; remove `Demo` from \
             [dependencies]\n  \
             plugins/demo/plugin.toml:12:8: hook `a` is registered twice (first at line 10); keep \
             one [[hooks]] entry per hook name\n  \
             plugins/demo/plugin.toml:16:11: config key `port` is required and also has a \
             default; remove `default` or set `required = false`\n  \
             plugins/demo/plugin.toml:16:11: default of config key `port` does not match its \
             type: expected boolean, found an integer; change the default or the `type`",
    );
}

#[test]
fn positions_count_characters_not_bytes() {
    let text = MINIMAL.replace("name = \"Demo\"", "name = \"Démo ✓\" ; colour = 1");
    // The `;` is byte 20 of its line but character 17.
    check(
        &text,
        "plugins/demo/plugin.toml:3:17: unexpected key or value, expected newline, `#`; fix \
             this entry of the plugin manifest.",
    );
}

// Issue 14, item 5: a manifest saved as UTF-16 or Latin-1 was reported
// as a file the host may not read ("check that the file exists").
#[test]
fn a_manifest_that_is_not_utf8_says_so_and_a_byte_order_mark_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.toml");
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(MINIMAL.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    std::fs::write(&path, utf16).unwrap();
    let message = Manifest::load(&path).unwrap_err().to_string();
    assert!(
        message.contains("it is UTF-16 text") && message.ends_with("save it as UTF-8 text."),
        "{message}"
    );
    let mut latin1 = MINIMAL.as_bytes().to_vec();
    latin1.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&path, latin1).unwrap();
    let message = Manifest::load(&path).unwrap_err().to_string();
    assert!(message.contains("it is not UTF-8 text (byte"), "{message}");
    std::fs::write(&path, format!("\u{feff}{MINIMAL}")).unwrap();
    assert!(Manifest::load(&path).is_ok());
    let message = Manifest::load(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("point at the file, not its folder"),
        "{message}"
    );
}

#[test]
fn load_reports_an_unreadable_file_with_its_path() {
    let missing = Path::new("/nonexistent/plugkit/plugin.toml");
    let error = Manifest::load(missing).unwrap_err();
    assert!(matches!(error, ManifestError::Read { .. }));
    assert_eq!(error.path(), missing);
    assert!(
        error
            .to_string()
            .starts_with("cannot read plugin manifest /nonexistent/plugkit/plugin.toml: "),
        "{error}"
    );
}
