//! The key store's tests: creation, refusals, rotation, bad requests, a
//! corrupt file, the last use saved at shutdown.

use super::*;

const T0: u64 = 1_800_000_000;

fn store() -> (KeyStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (KeyStore::open(dir.path()).expect("open"), dir)
}

fn new_key(scopes: &[Scope], expires: Option<u64>) -> NewKey {
    NewKey {
        name: "billing sync".to_owned(),
        scopes: scopes.to_vec(),
        expires_in_secs: expires,
    }
}

#[test]
fn a_created_key_authenticates_with_its_scopes_and_only_its_digest_is_stored() {
    let (keys, dir) = store();
    let made = keys
        .create(new_key(&[Scope::PluginsRead], None), T0)
        .expect("create");
    let caller = keys.authenticate(&made.secret, T0 + 1).expect("valid");
    assert_eq!(&*caller.id, made.key.id);
    assert!(caller.scopes.contains(Scope::PluginsRead));
    assert!(!caller.scopes.contains(Scope::PluginsWrite));
    let text = std::fs::read_to_string(dir.path().join(KEYS_FILE)).expect("file");
    assert!(
        !text.contains(&made.secret[5..]),
        "the secret is in the file"
    );
    assert!(text.contains(&hex(&Sha256::digest(made.secret.as_bytes()))));
    // Reopened, the key still works, and the last use was kept on the next write.
    let reopened = KeyStore::open(dir.path()).expect("reopen");
    reopened.authenticate(&made.secret, T0 + 2).expect("valid");
    let listed = reopened.list(T0 + 3);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "active");
    assert!(listed[0].last_used.is_some());
    assert_eq!(listed[0].hint, format::hint(&made.secret));
}

#[test]
fn the_last_use_is_saved_at_shutdown() {
    let (keys, dir) = store();
    keys.save_usage().expect("nothing to save");
    assert!(!dir.path().join(KEYS_FILE).exists());
    let made = keys
        .create(new_key(&[Scope::PluginsRead], None), T0)
        .expect("create");
    keys.authenticate(&made.secret, T0 + 5).expect("valid");
    keys.save_usage().expect("save");
    let reopened = KeyStore::open(dir.path()).expect("reopen");
    assert_eq!(reopened.list(T0 + 6)[0].last_used, Some(rfc3339(T0 + 5)));
}

#[test]
fn each_refusal_says_why() {
    let (keys, _dir) = store();
    let made = keys
        .create(new_key(&[Scope::PluginsRead], Some(60)), T0)
        .expect("create");
    let other = format::secret("abcdefghijklmnopqrstuvwxyz0123");
    assert!(matches!(
        keys.authenticate(&other, T0),
        Err(Refusal::Unknown)
    ));
    assert!(matches!(
        keys.authenticate("test-admin-token", T0),
        Err(Refusal::Malformed(ShapeError::Prefix))
    ));
    assert!(matches!(
        keys.authenticate(&made.secret, T0 + 60),
        Err(Refusal::Expired { .. })
    ));
    keys.authenticate(&made.secret, T0 + 59)
        .expect("not yet expired");
    keys.revoke(&made.key.id, T0 + 10).expect("revoke");
    let refused = keys
        .authenticate(&made.secret, T0 + 11)
        .expect_err("revoked");
    assert!(
        refused.to_string().contains(&made.key.id) && refused.to_string().contains("revoked"),
        "{refused}"
    );
    assert_eq!(keys.list(T0 + 11)[0].state, "revoked");
}

#[test]
fn after_a_rotation_both_secrets_work_until_the_grace_period_ends() {
    let (keys, _dir) = store();
    let made = keys
        .create(new_key(&[Scope::TenantsRead], None), T0)
        .expect("create");
    let rotated = keys
        .rotate(&made.key.id, Some(100), T0 + 10)
        .expect("rotate");
    assert_ne!(rotated.secret, made.secret);
    assert_eq!(rotated.key.id, made.key.id);
    assert_eq!(rotated.key.previous_secrets.len(), 1);
    keys.authenticate(&made.secret, T0 + 109)
        .expect("old in grace");
    keys.authenticate(&rotated.secret, T0 + 109).expect("new");
    assert!(matches!(
        keys.authenticate(&made.secret, T0 + 110),
        Err(Refusal::Retired { .. })
    ));
    keys.authenticate(&rotated.secret, T0 + 110)
        .expect("new still");
    // A second rotation forgets the retired secret and shortens no grace upward.
    let again = keys
        .rotate(&made.key.id, Some(0), T0 + 200)
        .expect("rotate");
    assert!(keys.authenticate(&rotated.secret, T0 + 200).is_err());
    keys.authenticate(&again.secret, T0 + 200).expect("newest");
    assert!(keys.list(T0 + 200)[0].previous_secrets.is_empty());
}

#[test]
fn bad_requests_change_nothing() {
    let (keys, dir) = store();
    let check = |result: Result<RotatedKey, KeyStoreError>, part: &str| {
        let error = result.expect_err("refused").to_string();
        assert!(error.contains(part), "{error:?} lacks {part:?}");
    };
    check(keys.create(new_key(&[], None), T0), "at least one");
    check(
        keys.create(new_key(&[Scope::AuditRead], Some(0)), T0),
        "above 0",
    );
    // Regression (new-user trial): `u64::MAX` was stored, and every later
    // list and revoke panicked formatting the expiry.
    for huge in [MAX_EXPIRY_SECS + 1, i64::MAX as u64, u64::MAX] {
        check(
            keys.create(new_key(&[Scope::AuditRead], Some(huge)), T0),
            "at most 315360000 (10 years)",
        );
    }
    assert!(keys.list(T0).is_empty());
    let mut unnamed = new_key(&[Scope::AuditRead], None);
    unnamed.name = "  ".to_owned();
    check(keys.create(unnamed, T0), "`name`");
    // Regression (new-user trial): control characters were stored and
    // echoed into lists and logs.
    let mut control = new_key(&[Scope::AuditRead], None);
    control.name = "\u{0}\n<script>".to_owned();
    check(keys.create(control, T0), "control characters");
    check(keys.rotate("key_nope", None, T0), "no API key `key_nope`");
    let made = keys
        .create(new_key(&[Scope::AuditRead], None), T0)
        .expect("create");
    check(
        keys.rotate(&made.key.id, Some(MAX_GRACE_SECS + 1), T0),
        "at most",
    );
    keys.revoke(&made.key.id, T0).expect("revoke");
    check(keys.rotate(&made.key.id, None, T0), "create a new key");
    assert_eq!(keys.list(T0).len(), 1);
    assert!(!dir.path().join(".api-keys.json.tmp").exists());
}

#[test]
fn a_corrupt_key_file_is_named_and_left_as_it_is() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(KEYS_FILE);
    for text in [
        "{not json",
        r#"{"format": 9, "keys": []}"#,
        r#"{"format": 1, "keys": [{"id": "key_a", "name": "x", "scopes": ["plugins:read"], "created": 1, "secrets": [{"sha256": "zz", "hint": "ispk_…", "created": 1}]}]}"#,
        r#"{"format": 1, "keys": [{"id": "key_a", "name": "x", "scopes": ["root"], "created": 1, "secrets": []}]}"#,
    ] {
        std::fs::write(&path, text).expect("write");
        let error = KeyStore::open(dir.path()).expect_err("corrupt").to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("move it aside"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), text);
    }
}

#[test]
fn a_key_stored_with_an_expiry_past_the_year_9999_lists_and_revokes() {
    // What a daemon before the expiry limit wrote for `expires_in_secs`
    // = `u64::MAX`: listing it, revoking it and deleting it panicked.
    let dir = tempfile::tempdir().expect("temp dir");
    let made = {
        let keys = KeyStore::open(dir.path()).expect("open");
        keys.create(new_key(&[Scope::AuditRead], Some(60)), T0)
            .expect("create")
    };
    let path = dir.path().join(KEYS_FILE);
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("file")).expect("json");
    file["keys"][0]["expires"] = serde_json::Value::from(u64::MAX);
    std::fs::write(&path, file.to_string()).expect("write");

    let keys = KeyStore::open(dir.path()).expect("reopen");
    let listed = keys.list(T0);
    assert_eq!(listed[0].expires.as_deref(), Some("9999-12-31T23:59:59Z"));
    keys.authenticate(&made.secret, T0 + 1)
        .expect("not expired");
    let revoked = keys.revoke(&made.key.id, T0 + 2).expect("revoke");
    assert_eq!(revoked.state, "revoked");
}
