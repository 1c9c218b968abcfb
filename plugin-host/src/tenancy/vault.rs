//! `${vault:path#key}` through the KV version 2 HTTP API of Vault or
//! OpenBao, and what each of its answers means.
//!
//! A read answers more than "found" or "not found": the latest version may
//! be deleted (a 404 whose body still carries the version's metadata with a
//! `deletion_time`), destroyed for good, the server sealed, the token unknown
//! or its policy too narrow, the mount a KV version 1 engine (whose paths a
//! v2 read never finds) or no engine at all. Each gets its own error with the
//! next step. Where the read alone cannot tell (a bare 404, a 403), one more
//! question settles it: the mount's description, or the token's own lookup.
//!
//! Invariants: answers are classified by pure functions ([`classify_read`],
//! [`classify_mount`]) tested with the bodies a real OpenBao sends; a body
//! that holds a secret lives only in a [`SecretString`]; the token goes into
//! the `X-Vault-Token` header and nowhere else; text from the server is
//! cleaned (`crate::peer_text`) before it reaches a message.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::peer_text::one_line;
use crate::tenancy::secrets::{SecretError, SecretProvider, SecretRef, VaultConfig};

/// Largest answer read from Vault; a KV secret is small.
const MAX_ANSWER: u64 = 1 << 20;
/// Longest server text quoted in a message.
const MAX_QUOTE: usize = 300;

/// What a KV v2 read (`GET /v1/<mount>/data/<path>`) answered, apart from a
/// 200, which carries the secret and is read elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadAnswer {
    /// 404 with metadata and a `deletion_time`: the latest version was
    /// deleted (soft: `undelete` brings it back).
    Deleted { version: u64, at: String },
    /// 404 with metadata saying `destroyed`: that version is gone for good.
    Destroyed { version: u64 },
    /// 404 without metadata: nothing there, or the mount is not KV v2.
    Missing,
    /// 404 "no handler for route": no secrets engine at the mount.
    NoMount,
    /// 503 "Vault is sealed".
    Sealed,
    /// 403: the token is unknown, or its policy does not allow the read.
    Denied,
    /// Anything else, with the server's own words.
    Other { status: u16, errors: String },
}

/// Classifies a non-200 answer to a KV v2 read. Pure.
pub(crate) fn classify_read(status: u16, body: &str) -> ReadAnswer {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let errors = server_errors(&parsed).unwrap_or_else(|| one_line(body, MAX_QUOTE));
    match status {
        404 => {
            let metadata = parsed.pointer("/data/metadata");
            let version = metadata
                .and_then(|m| m.get("version"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let destroyed = metadata
                .and_then(|m| m.get("destroyed"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let deleted_at = metadata
                .and_then(|m| m.get("deletion_time"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            if destroyed {
                ReadAnswer::Destroyed { version }
            } else if let Some(at) = deleted_at {
                ReadAnswer::Deleted {
                    version,
                    at: one_line(at, 64),
                }
            } else if errors.contains("no handler for route") {
                ReadAnswer::NoMount
            } else {
                ReadAnswer::Missing
            }
        }
        503 if errors.to_ascii_lowercase().contains("sealed") => ReadAnswer::Sealed,
        401 | 403 => ReadAnswer::Denied,
        _ => ReadAnswer::Other { status, errors },
    }
}

/// What `GET /v1/sys/internal/ui/mounts/<mount>` says the mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// A KV engine of this version (`1` when the option is absent, as Vault
    /// treats it).
    Kv { version: String },
    /// Another kind of engine (`pki`, `transit`, …).
    Other { engine: String },
    /// The token may not see the mount, or the answer is unreadable.
    Unknown,
}

/// Classifies the mount description. Pure.
pub(crate) fn classify_mount(status: u16, body: &str) -> MountKind {
    if status != 200 {
        return MountKind::Unknown;
    }
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let Some(engine) = parsed.pointer("/data/type").and_then(Value::as_str) else {
        return MountKind::Unknown;
    };
    let engine = one_line(engine, 32);
    if engine != "kv" {
        return MountKind::Other { engine };
    }
    let version = parsed
        .pointer("/data/options/version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or("1");
    MountKind::Kv {
        version: one_line(version, 8),
    }
}

/// What the token's own lookup (`GET /v1/auth/token/lookup-self`) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenState {
    /// The server does not accept the token at all.
    Rejected,
    /// A valid token with these policies.
    Valid { policies: Vec<String> },
    /// The lookup itself failed or is unreadable.
    Unknown,
}

/// Classifies the token lookup. Pure; the answer's token id is not kept.
pub(crate) fn classify_token(status: u16, body: &str) -> TokenState {
    match status {
        401 | 403 => TokenState::Rejected,
        200 => {
            let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            match parsed.pointer("/data/policies").and_then(Value::as_array) {
                Some(list) => TokenState::Valid {
                    policies: list
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|p| one_line(p, 64))
                        .collect(),
                },
                None => TokenState::Unknown,
            }
        }
        _ => TokenState::Unknown,
    }
}

/// The `errors` array of a Vault error body, cleaned and joined; `None`
/// when the body has none (an empty array counts as none).
fn server_errors(parsed: &Value) -> Option<String> {
    let list = parsed.get("errors")?.as_array()?;
    let joined = list
        .iter()
        .filter_map(Value::as_str)
        .map(|e| one_line(e, MAX_QUOTE))
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (!joined.is_empty()).then_some(joined)
}

/// `${vault:path#key}` through the KV v2 HTTP API.
pub(crate) struct VaultSecrets {
    pub(crate) config: VaultConfig,
    agent: ureq::Agent,
}

impl VaultSecrets {
    pub(crate) fn new(config: VaultConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            // A redirect would resend the token to wherever it points.
            .max_redirects(0)
            .build()
            .into();
        Self { config, agent }
    }

    fn mount(&self) -> &str {
        self.config.mount.trim_matches('/')
    }

    /// GETs `/v1/<api_path>`; the body in a zeroized buffer.
    fn get(&self, api_path: &str) -> Result<(u16, SecretString), String> {
        let url = format!("{}/v1/{api_path}", self.config.addr.trim_end_matches('/'));
        let mut answer = self
            .agent
            .get(&url)
            .header("X-Vault-Token", self.config.token.expose_secret())
            .call()
            .map_err(|e| one_line(&e.to_string(), MAX_QUOTE))?;
        let status = answer.status().as_u16();
        let body = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map(SecretString::from)
            .map_err(|e| one_line(&e.to_string(), MAX_QUOTE))?;
        Ok((status, body))
    }

    /// Why a read of `at` found nothing: a mount of the wrong kind, or truly
    /// no secret there.
    fn missing(&self, reference: String, at: &str) -> SecretError {
        let mount = self.mount();
        let kind = self
            .get(&format!("sys/internal/ui/mounts/{mount}"))
            .map_or(MountKind::Unknown, |(status, body)| {
                classify_mount(status, body.expose_secret())
            });
        match kind {
            MountKind::Kv { version } if version != "2" => SecretError::WrongMount {
                reference,
                reason: format!(
                    "`{mount}/` is a KV version {version} engine, and plugkit reads KV \
                     version 2 (`{mount}/data/<path>`), so no secret is ever found there; \
                     upgrade the mount (`bao kv enable-versioning {mount}/`) or point the \
                     vault mount setting at a KV v2 engine and store the secret there"
                ),
            },
            MountKind::Other { engine } => SecretError::WrongMount {
                reference,
                reason: format!(
                    "`{mount}/` is a `{engine}` engine, not a KV version 2 one; point the \
                     vault mount setting at a KV v2 engine"
                ),
            },
            MountKind::Kv { .. } => SecretError::NotFound {
                reference,
                reason: format!(
                    "Vault has no secret at {at} (404, never written or all its metadata \
                     deleted); write it there (`bao kv put -mount={mount} <path> \
                     <key>=...`) or fix the path"
                ),
            },
            MountKind::Unknown => SecretError::NotFound {
                reference,
                reason: format!(
                    "Vault has no secret at {at} (404); write it there or fix the path \
                     (if `{mount}/` is a KV version 1 engine, a v2 read never finds \
                     anything: check with `bao secrets list -detailed`)"
                ),
            },
        }
    }

    /// Why the token may not read `at`: the server does not know it, or
    /// its policies do not grant the read.
    fn denied(&self, reference: String, at: &str, path: &str) -> SecretError {
        let mount = self.mount();
        let state = self
            .get("auth/token/lookup-self")
            .map_or(TokenState::Unknown, |(status, body)| {
                classify_token(status, body.expose_secret())
            });
        let reason = match state {
            TokenState::Rejected => format!(
                "Vault does not accept the configured token (403 for {at}, and for the \
                 token's own lookup): it is mistyped, expired or revoked; configure a valid \
                 token"
            ),
            TokenState::Valid { policies } => format!(
                "the token is valid, but its policies ({}) do not allow reading {at} \
                 (403); grant `read` on `{mount}/data/{path}` in one of them",
                if policies.is_empty() {
                    "none".to_owned()
                } else {
                    policies.join(", ")
                }
            ),
            TokenState::Unknown => format!(
                "Vault refused the token for {at} (403); check that the token is valid \
                 and its policy allows reading this path"
            ),
        };
        SecretError::Denied { reference, reason }
    }
}

impl SecretProvider for VaultSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let (path, key) =
            reference
                .locator()
                .split_once('#')
                .ok_or_else(|| SecretError::Invalid {
                    reference: reference.to_string(),
                    reason: "a vault reference needs `#key` after the path".to_owned(),
                })?;
        let addr = &self.config.addr;
        let mount = self.mount();
        let at = format!("{mount}/data/{path} on {addr}");
        let fail_ref = reference.to_string();
        let (status, body) =
            self.get(&format!("{mount}/data/{path}"))
                .map_err(|e| SecretError::Unavailable {
                    reference: fail_ref.clone(),
                    reason: format!(
                        "cannot reach Vault at {addr}: {e}; check that it runs and the address \
                     is right"
                    ),
                })?;
        if status != 200 {
            // A non-200 body holds no secret value (a deleted version's data is null).
            return Err(match classify_read(status, body.expose_secret()) {
                ReadAnswer::Deleted { version, at: when } => SecretError::Deleted {
                    reference: fail_ref,
                    reason: format!(
                        "the latest version ({version}) of {at} was deleted at {when}; \
                         restore it (`bao kv undelete -mount={mount} -versions={version} \
                         {path}`) or write a new version"
                    ),
                },
                ReadAnswer::Destroyed { version } => SecretError::Destroyed {
                    reference: fail_ref,
                    reason: format!(
                        "the latest version ({version}) of {at} was destroyed and cannot be \
                         recovered; write the secret again (`bao kv put -mount={mount} \
                         {path} {key}=...`)"
                    ),
                },
                ReadAnswer::Missing => self.missing(fail_ref, &at),
                ReadAnswer::NoMount => SecretError::WrongMount {
                    reference: fail_ref,
                    reason: format!(
                        "Vault at {addr} has no secrets engine mounted at `{mount}/` (404, \
                         no handler for route); enable one (`bao secrets enable \
                         -path={mount} kv-v2`) or fix the vault mount setting"
                    ),
                },
                ReadAnswer::Sealed => SecretError::Sealed {
                    reference: fail_ref,
                    reason: format!(
                        "Vault at {addr} is sealed (503) and serves no secrets until it is \
                         unsealed (`bao operator unseal`); then activate the plugin again"
                    ),
                },
                ReadAnswer::Denied => self.denied(fail_ref, &at, path),
                ReadAnswer::Other { status, errors } => SecretError::Unavailable {
                    reference: fail_ref,
                    reason: format!(
                        "Vault answered {status} for {at}: {errors}; check its health and logs"
                    ),
                },
            });
        }
        let parsed: Value =
            serde_json::from_str(body.expose_secret()).map_err(|_| SecretError::Invalid {
                reference: fail_ref.clone(),
                reason: format!(
                    "Vault's answer for {at} is not JSON; is {addr} a Vault or OpenBao server?"
                ),
            })?;
        let Some(data) = parsed.pointer("/data/data").and_then(Value::as_object) else {
            return Err(SecretError::WrongMount {
                reference: fail_ref,
                reason: format!(
                    "Vault's answer for {at} has no `data.data`: `{mount}/` answers like a KV \
                     version 1 engine holding a secret named `data/{path}`; point the vault \
                     mount setting at a KV version 2 engine"
                ),
            });
        };
        match data.get(key) {
            Some(Value::String(s)) => Ok(SecretString::from(s.as_str())),
            Some(Value::Null) | None => Err(SecretError::NotFound {
                reference: fail_ref,
                reason: format!(
                    "the secret at {at} has no key `{key}`; add it or fix the key after `#`"
                ),
            }),
            Some(other) => Ok(SecretString::from(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies as OpenBao 2.x sends them (see tests/all/tenants.rs for the
    // same answers from a live server).
    const DELETED: &str = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":null,"metadata":{"created_time":"2026-11-30T17:41:59.135703908Z","custom_metadata":null,"deletion_time":"2026-11-30T17:41:59.156524011Z","destroyed":false,"version":2}},"wrap_info":null,"warnings":null,"auth":null}"#;
    const DESTROYED: &str = r#"{"data":{"data":null,"metadata":{"created_time":"2026-11-30T17:41:59.218741518Z","custom_metadata":null,"deletion_time":"","destroyed":true,"version":1}}}"#;

    fn check_read(status: u16, body: &str, expected: ReadAnswer) {
        assert_eq!(classify_read(status, body), expected, "{status} {body}");
    }

    // Issue 14, item 5: a deleted latest version was reported as "no secret".
    #[test]
    fn each_kv2_read_refusal_is_told_apart() {
        check_read(
            404,
            DELETED,
            ReadAnswer::Deleted {
                version: 2,
                at: "2026-11-30T17:41:59.156524011Z".to_owned(),
            },
        );
        check_read(404, DESTROYED, ReadAnswer::Destroyed { version: 1 });
        check_read(404, r#"{"errors":[]}"#, ReadAnswer::Missing);
        check_read(404, "", ReadAnswer::Missing);
        check_read(
            404,
            r#"{"errors":["no handler for route \"nomount/data/t\". route entry not found."]}"#,
            ReadAnswer::NoMount,
        );
        check_read(503, r#"{"errors":["Vault is sealed"]}"#, ReadAnswer::Sealed);
        check_read(
            403,
            r#"{"errors":["permission denied"]}"#,
            ReadAnswer::Denied,
        );
        check_read(
            403,
            r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#,
            ReadAnswer::Denied,
        );
        check_read(
            503,
            r#"{"errors":["Vault is in standby mode"]}"#,
            ReadAnswer::Other {
                status: 503,
                errors: "Vault is in standby mode".to_owned(),
            },
        );
        // A proxy's page: colour codes and carriage returns do not survive.
        check_read(
            502,
            "\x1b[31mBad Gateway\x1b[0m\r\nupstream down\r\n",
            ReadAnswer::Other {
                status: 502,
                errors: "Bad Gateway upstream down".to_owned(),
            },
        );
        check_read(
            429,
            r#"{"errors":["request path \"secret/data/a\":\r\n rate limit quota exceeded"]}"#,
            ReadAnswer::Other {
                status: 429,
                errors: "request path \"secret/data/a\": rate limit quota exceeded".to_owned(),
            },
        );
    }

    #[test]
    fn mount_descriptions_say_engine_and_kv_version() {
        let mount = |body: &str| classify_mount(200, body);
        let kv = |v: &str| MountKind::Kv {
            version: v.to_owned(),
        };
        assert_eq!(
            mount(r#"{"data":{"type":"kv","options":{"version":"1"},"path":"kv1/"}}"#),
            kv("1")
        );
        assert_eq!(mount(r#"{"data":{"type":"kv","options":null}}"#), kv("1"));
        assert_eq!(
            mount(r#"{"data":{"type":"kv","options":{"version":"2"}}}"#),
            kv("2")
        );
        assert_eq!(
            mount(r#"{"data":{"type":"transit","options":null}}"#),
            MountKind::Other {
                engine: "transit".to_owned()
            }
        );
        assert_eq!(
            classify_mount(
                403,
                r#"{"errors":["preflight capability check returned 403"]}"#
            ),
            MountKind::Unknown
        );
        assert_eq!(mount("not json"), MountKind::Unknown);
    }

    #[test]
    fn token_lookups_tell_a_rejected_token_from_a_narrow_policy() {
        assert_eq!(
            classify_token(403, r#"{"errors":["permission denied"]}"#),
            TokenState::Rejected
        );
        assert_eq!(
            classify_token(
                200,
                r#"{"data":{"id":"s.secret","policies":["default","limited"]}}"#
            ),
            TokenState::Valid {
                policies: vec!["default".to_owned(), "limited".to_owned()]
            }
        );
        assert_eq!(classify_token(500, ""), TokenState::Unknown);
    }
}
