//! Registry credentials from Vault: a real OpenBao holds the login of a
//! real docker-registry that requires one (htpasswd, its own config on
//! 127.0.0.1); `[provisioning]` names them as `${vault:path#key}` and the
//! daemon resolves them through the platform's resolver and `[vault]`.

use isp_daemon::vault::VaultSection;
use plugkit_testkit::openbao::OpenBao;
use serde_json::json;

use crate::provisioning::{version_of, Fixture};
use crate::support::TestDaemon;

const USER: &str = "plugkit-fleet";
const PASSWORD: &str = "pw-from-vault-7c1e";

#[test]
fn registry_credentials_come_from_vault_and_a_registry_with_a_login_refuses_without_them() {
    let bao = OpenBao::start().expect("openbao");
    bao.put_secret(
        "registry/plugkit",
        &json!({"username": USER, "password": PASSWORD}),
    )
    .expect("secret");
    let fixture = Fixture::with_login(USER, PASSWORD);
    let v1 = fixture.publish_reloadable("1.0.0", "fixture-reload-v1");
    fixture.publish_pro_catalog(1, "1.0.0", &v1);
    let secrets = tempfile::tempdir().expect("temp dir");
    let token_file = secrets.path().join("vault-token");
    std::fs::write(&token_file, format!("{}\n", bao.root_token())).expect("token file");
    let vault = VaultSection {
        addr: bao.addr(),
        token: format!("${{file:{}}}", token_file.display()),
        mount: None,
        timeout: None,
    };
    let start = |username: Option<&str>, password: Option<&str>| {
        let base = fixture.provisioned("pro");
        let vault = vault.clone();
        let (username, password) = (username.map(str::to_owned), password.map(str::to_owned));
        TestDaemon::start_with(
            move |config| {
                base(config);
                config.vault = Some(vault);
                if let Some(p) = config.provisioning.as_mut() {
                    p.username = username;
                    p.password = password;
                }
            },
            None,
        )
    };

    let daemon = start(
        Some("${vault:registry/plugkit#username}"),
        Some("${vault:registry/plugkit#password}"),
    );
    let answer = daemon.post_empty("/api/provisioning/refresh").expect(200);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(version_of(&daemon, "reloadable").as_deref(), Some("1.0.0"));
    drop(daemon);

    // A key Vault does not hold: refused naming the reference, not a value.
    let daemon = start(
        Some("${vault:registry/plugkit#username}"),
        Some("${vault:registry/plugkit#passwd}"),
    );
    // Regression (new-user trial): this was a 500; it is the configuration
    // to fix, a 409 that says what to do next.
    let problem = daemon.post_empty("/api/provisioning/refresh").expect_error(
        409,
        "[provisioning] password: secret `${vault:registry/plugkit#passwd}`",
    );
    assert!(!problem.to_string().contains(PASSWORD), "{problem}");
    assert!(
        problem
            .to_string()
            .contains("POST /api/provisioning/refresh"),
        "{problem}"
    );
    drop(daemon);

    // A Vault that does not answer: a 502 (the store, not the configuration).
    let base = fixture.provisioned("pro");
    let unreachable = VaultSection {
        addr: "http://127.0.0.1:9".to_owned(),
        ..vault.clone()
    };
    let daemon = TestDaemon::start_with(
        move |config| {
            base(config);
            config.vault = Some(unreachable);
            if let Some(p) = config.provisioning.as_mut() {
                p.username = Some("${vault:registry/plugkit#username}".to_owned());
                p.password = Some("${vault:registry/plugkit#password}".to_owned());
            }
        },
        None,
    );
    daemon
        .post_empty("/api/provisioning/refresh")
        .expect_error(502, "[provisioning] username");
    drop(daemon);

    // No credentials: the registry refuses, and the refresh says which registry.
    let daemon = start(None, None);
    let problem = daemon
        .post_empty("/api/provisioning/refresh")
        .expect_error(502, "keep serving");
    assert!(
        problem["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&fixture.registry.url()),
        "{problem}"
    );
    assert_eq!(version_of(&daemon, "reloadable"), None);

    // Only one of the two: refused before anything is asked.
    let daemon = start(Some("${vault:registry/plugkit#username}"), None);
    daemon
        .post_empty("/api/provisioning/refresh")
        .expect_error(409, "only one of username and password");
}
