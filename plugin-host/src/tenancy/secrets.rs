//! Secret references in configuration values — `${env:VAR}`,
//! `${file:/path}`, `${vault:path#key}` — and the providers that resolve
//! them at activation.
//!
//! Invariants: a resolved value lives in a [`SecretString`] and is exposed
//! only to build the JSON handed to the plugin; no error, log line or
//! `Debug` output carries a resolved value or the Vault token. Errors name
//! the reference, which is not secret.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use crate::tenancy::config::Environment;
use crate::tenancy::vault::VaultSecrets;

/// A parsed `${scheme:locator}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRef {
    scheme: Scheme,
    locator: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Env,
    File,
    Vault,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Env => "env",
            Scheme::File => "file",
            Scheme::Vault => "vault",
        }
    }
}

/// What a configuration string is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    /// A plain value.
    Literal,
    /// `$${...}`: the literal text `${...}`.
    Escaped(String),
    /// A reference to resolve.
    Secret(SecretRef),
    /// Starts like a reference but is not one; the reason never quotes the text.
    Malformed(String),
}

impl SecretRef {
    /// Classifies a configuration string.
    pub(crate) fn classify(text: &str) -> Reference {
        if let Some(rest) = text.strip_prefix("$${") {
            return Reference::Escaped(format!("${{{rest}"));
        }
        let Some(inner) = text.strip_prefix("${") else {
            return Reference::Literal;
        };
        let Some(inner) = inner.strip_suffix('}') else {
            return Reference::Malformed("a reference must end with `}`".to_owned());
        };
        let Some((scheme, locator)) = inner.split_once(':') else {
            return Reference::Malformed("a reference has the form `${scheme:locator}`".to_owned());
        };
        let scheme = match scheme {
            "env" => Scheme::Env,
            "file" => Scheme::File,
            "vault" => Scheme::Vault,
            other => {
                // The scheme is echoed only when it cannot be a pasted secret.
                let short_word =
                    other.len() <= 16 && other.chars().all(|c| c.is_ascii_lowercase() || c == '-');
                return Reference::Malformed(if short_word {
                    format!("unknown scheme `{other}`")
                } else {
                    "unknown scheme".to_owned()
                });
            }
        };
        match Self::check_locator(scheme, locator) {
            Ok(()) => Reference::Secret(SecretRef {
                scheme,
                locator: locator.to_owned(),
            }),
            Err(reason) => Reference::Malformed(reason.to_owned()),
        }
    }

    fn check_locator(scheme: Scheme, locator: &str) -> Result<(), &'static str> {
        match scheme {
            Scheme::Env => {
                let ok = !locator.is_empty()
                    && locator
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                ok.then_some(())
                    .ok_or("an env reference names a variable of letters, digits and `_`")
            }
            Scheme::File => Path::new(locator)
                .is_absolute()
                .then_some(())
                .ok_or("a file reference needs an absolute path"),
            Scheme::Vault => {
                let (path, key) = locator
                    .split_once('#')
                    .ok_or("a vault reference needs `#key` after the path")?;
                let path_ok = !path.is_empty()
                    && !path.starts_with('/')
                    && path.split('/').all(|seg| !seg.is_empty() && seg != "..")
                    && path
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
                if !path_ok {
                    return Err("a vault path is relative, like `tenants/acme`, made of \
                                letters, digits, `-`, `_`, `.` and `/`, without `..`");
                }
                if key.is_empty() {
                    return Err("a vault reference needs a key after `#`");
                }
                Ok(())
            }
        }
    }

    /// `env`, `file` or `vault`.
    #[cfg(test)]
    pub(crate) fn scheme(&self) -> &str {
        self.scheme.as_str()
    }

    /// What follows the scheme: a variable name, a path, or `path#key`.
    pub(crate) fn locator(&self) -> &str {
        &self.locator
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}:{}}}", self.scheme.as_str(), self.locator)
    }
}

/// A reference that could not be resolved. Never carries the value or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The variable, file, Vault path or key does not exist.
    #[error("secret `{reference}` was not found: {reason}")]
    NotFound {
        /// The reference, e.g. `${vault:tenants/acme#token}`.
        reference: String,
        /// What is missing and what to do.
        reason: String,
    },
    /// The store holds the secret's latest version as deleted (restorable).
    #[error("secret `{reference}` was deleted: {reason}")]
    Deleted {
        /// The reference.
        reference: String,
        /// Which version, when, and how to restore it.
        reason: String,
    },
    /// The store destroyed the secret's latest version for good.
    #[error("secret `{reference}` was destroyed: {reason}")]
    Destroyed {
        /// The reference.
        reference: String,
        /// Which version, and how to write it again.
        reason: String,
    },
    /// The configured mount is not a KV version 2 engine (a KV v1 mount,
    /// another engine, or none), so the path cannot be read as configured.
    #[error("secret `{reference}` cannot be read from this mount: {reason}")]
    WrongMount {
        /// The reference.
        reference: String,
        /// What the mount is and what to change.
        reason: String,
    },
    /// The store is sealed.
    #[error("secret `{reference}` is unavailable while the store is sealed: {reason}")]
    Sealed {
        /// The reference.
        reference: String,
        /// How to unseal.
        reason: String,
    },
    /// The store refused access.
    #[error("secret `{reference}` was refused: {reason}")]
    Denied {
        /// The reference.
        reference: String,
        /// Why and what to do.
        reason: String,
    },
    /// The store could not be reached or failed.
    #[error("secret `{reference}` is unavailable: {reason}")]
    Unavailable {
        /// The reference.
        reference: String,
        /// Why and what to do.
        reason: String,
    },
    /// The store answered something that is not a usable secret.
    #[error("secret `{reference}` is unusable: {reason}")]
    Invalid {
        /// The reference.
        reference: String,
        /// Why and what to do.
        reason: String,
    },
    /// A value that must be a reference is not one this resolver takes
    /// (a literal, a malformed reference, or a scheme it has no provider
    /// for). Never quotes the text, which may be a pasted secret.
    #[error("{reason}")]
    NotAReference {
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// No provider is configured for the reference's scheme.
    #[error(
        "secret `{reference}` needs a Vault, and none is configured; set \
         `PlatformConfig::vault` (address and token) or use an env or file reference"
    )]
    NoProvider {
        /// The reference.
        reference: String,
    },
}

/// Resolves references of one scheme.
pub(crate) trait SecretProvider: Send + Sync {
    /// The value `reference` points to.
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, SecretError>;
}

/// `${env:VAR}`.
pub(crate) struct EnvSecrets {
    pub(crate) env: Environment,
}

impl SecretProvider for EnvSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        self.env
            .var(reference.locator())
            .map(SecretString::from)
            .ok_or_else(|| SecretError::NotFound {
                reference: reference.to_string(),
                reason: format!(
                    "environment variable `{}` is not set (or not UTF-8); set it in the \
                     daemon's environment",
                    reference.locator()
                ),
            })
    }
}

/// `${file:/path}`: the whole file, one trailing newline removed.
pub(crate) struct FileSecrets;

impl SecretProvider for FileSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let path = reference.locator();
        match std::fs::read(path) {
            Ok(bytes) => {
                let mut text = String::from_utf8(bytes).map_err(|_| SecretError::Invalid {
                    reference: reference.to_string(),
                    reason: format!("{path} is not UTF-8 text; store the secret as text"),
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(SecretString::from(text))
            }
            Err(e) => {
                let reference = reference.to_string();
                Err(match e.kind() {
                    io::ErrorKind::NotFound => SecretError::NotFound {
                        reference,
                        reason: format!("{path} does not exist; create it or fix the path"),
                    },
                    io::ErrorKind::PermissionDenied => SecretError::Denied {
                        reference,
                        reason: format!(
                            "the host may not read {path}; give the daemon's user read access"
                        ),
                    },
                    _ => SecretError::Unavailable {
                        reference,
                        reason: format!("reading {path} failed: {e}"),
                    },
                })
            }
        }
    }
}

/// How to reach a Vault or OpenBao server (KV version 2).
#[derive(Clone, Debug)]
pub struct VaultConfig {
    /// Base address, e.g. `https://vault.example:8200`.
    pub addr: String,
    /// The token sent as `X-Vault-Token`. Never logged or shown.
    pub token: SecretString,
    /// The KV v2 mount; `secret` by default.
    pub mount: String,
    /// Limit for one whole request.
    pub timeout: Duration,
}

impl VaultConfig {
    /// A server at `addr`, KV v2 mounted at `secret/`, 10 s per request.
    pub fn new(addr: impl Into<String>, token: SecretString) -> Self {
        Self {
            addr: addr.into(),
            token,
            mount: "secret".to_owned(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Resolves a `${env:VAR}` or `${file:/path}` reference that is not plugin
/// configuration, such as an embedding daemon's own admin token, with the
/// same parsing, providers and errors as activation (so secrets have one
/// resolver). `${vault:…}` needs a platform's Vault and is refused here, as
/// are literals and `$${…}` escapes; errors never quote the value.
///
/// ```
/// use plugin_host::tenancy::{resolve_secret_reference, Environment};
/// use secrecy::ExposeSecret;
///
/// let env = Environment::fixed([("TOKEN", "s3cr3t")]);
/// let token = resolve_secret_reference("${env:TOKEN}", &env).unwrap();
/// assert_eq!(token.expose_secret(), "s3cr3t");
/// assert!(resolve_secret_reference("s3cr3t", &env).is_err());
/// ```
pub fn resolve_secret_reference(
    text: &str,
    env: &Environment,
) -> Result<SecretString, SecretError> {
    const SUPPORTED: &str = "only ${env:VAR} and ${file:/path} references are supported here";
    let reference = parse_reference(text, SUPPORTED)?;
    match reference.scheme {
        Scheme::Env => EnvSecrets { env: env.clone() }.resolve(&reference),
        Scheme::File => FileSecrets.resolve(&reference),
        Scheme::Vault => Err(SecretError::NotAReference {
            reason: format!(
                "`{reference}`: {SUPPORTED}; Vault references are resolved at plugin activation"
            ),
        }),
    }
}

/// `text` as a reference, or why it is not one (`supported` says what to
/// write); never quotes the text.
fn parse_reference(text: &str, supported: &str) -> Result<SecretRef, SecretError> {
    match SecretRef::classify(text) {
        Reference::Secret(reference) => Ok(reference),
        Reference::Literal | Reference::Escaped(_) => Err(SecretError::NotAReference {
            reason: format!("the value is not a reference; write one ({supported})"),
        }),
        Reference::Malformed(why) => Err(SecretError::NotAReference {
            reason: format!("the value is not a valid reference: {why} ({supported})"),
        }),
    }
}

impl crate::Platform {
    /// Resolves a `${env:VAR}`, `${file:/path}` or `${vault:path#key}`
    /// reference that is not plugin configuration (an embedding daemon's
    /// registry credentials, say) through this platform's own providers:
    /// the same environment and the same Vault (`PlatformConfig::vault`) as
    /// plugin activation, so secrets have one resolver. Literals and
    /// `$${…}` escapes are refused; errors name the reference, never the value.
    ///
    /// # Errors
    /// [`SecretError::NotAReference`] for a literal or malformed value,
    /// [`SecretError::NoProvider`] for `${vault:…}` without a Vault, and
    /// the provider's own error otherwise (not found, denied, sealed, …).
    pub fn resolve_secret(&self, text: &str) -> Result<SecretString, SecretError> {
        let reference =
            parse_reference(text, "write ${env:VAR}, ${file:/path} or ${vault:path#key}")?;
        self.inner.secrets.resolve(&reference)
    }
}

/// The providers a platform resolves references with.
pub(crate) struct SecretResolver {
    env: EnvSecrets,
    file: FileSecrets,
    vault: Option<VaultSecrets>,
}

impl fmt::Debug for SecretResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretResolver")
            .field("env", &self.env.env)
            .field("vault", &self.vault.as_ref().map(|v| &v.config.addr))
            .finish()
    }
}

impl SecretResolver {
    pub(crate) fn new(env: Environment, vault: Option<VaultConfig>) -> Self {
        Self {
            env: EnvSecrets { env },
            file: FileSecrets,
            vault: vault.map(VaultSecrets::new),
        }
    }

    /// Resolves one reference through the provider of its scheme.
    pub(crate) fn resolve(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let provider: &dyn SecretProvider = match reference.scheme {
            Scheme::Env => &self.env,
            Scheme::File => &self.file,
            Scheme::Vault => match &self.vault {
                Some(vault) => vault,
                None => {
                    return Err(SecretError::NoProvider {
                        reference: reference.to_string(),
                    })
                }
            },
        };
        provider.resolve(reference)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn check(text: &str, expected: &str) {
        let actual = match SecretRef::classify(text) {
            Reference::Literal => "literal".to_owned(),
            Reference::Escaped(s) => format!("escaped {s}"),
            Reference::Secret(r) => format!("ref {} {}", r.scheme(), r.locator()),
            Reference::Malformed(reason) => format!("malformed: {reason}"),
        };
        assert_eq!(actual, expected, "{text:?}");
    }

    #[test]
    fn references_are_recognised_and_checked() {
        check("plain", "literal");
        check("a ${env:X} inside", "literal");
        check("$${env:X}", "escaped ${env:X}");
        check("${env:API_KEY}", "ref env API_KEY");
        check("${file:/run/secrets/token}", "ref file /run/secrets/token");
        check(
            "${vault:tenants/acme#api_key}",
            "ref vault tenants/acme#api_key",
        );
        check("${env:X", "malformed: a reference must end with `}`");
        check(
            "${X}",
            "malformed: a reference has the form `${scheme:locator}`",
        );
        check("${aws:x}", "malformed: unknown scheme `aws`");
        check("${S3cr3t-Pa55:x}", "malformed: unknown scheme");
        check(
            "${env:}",
            "malformed: an env reference names a variable of letters, digits and `_`",
        );
        check(
            "${file:relative}",
            "malformed: a file reference needs an absolute path",
        );
        check(
            "${vault:tenants/acme}",
            "malformed: a vault reference needs `#key` after the path",
        );
        check(
            "${vault:a#}",
            "malformed: a vault reference needs a key after `#`",
        );
        for bad in [
            "${vault:/abs#k}",
            "${vault:a/../sys#k}",
            "${vault:a?b#k}",
            "${vault:a//b#k}",
        ] {
            assert!(
                matches!(SecretRef::classify(bad), Reference::Malformed(r) if r.starts_with("a vault path")),
                "{bad}"
            );
        }
    }

    fn reference(text: &str) -> SecretRef {
        match SecretRef::classify(text) {
            Reference::Secret(r) => r,
            other => panic!("{text} is {other:?}"),
        }
    }

    #[test]
    fn env_references_read_the_environment() {
        let resolver = SecretResolver::new(Environment::fixed([("TOKEN", "t0k")]), None);
        let value = resolver.resolve(&reference("${env:TOKEN}")).unwrap();
        assert_eq!(value.expose_secret(), "t0k");
        let err = resolver.resolve(&reference("${env:NOPE}")).unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            "secret `${env:NOPE}` was not found: environment variable `NOPE` is not set (or not \
             UTF-8); set it in the daemon's environment"
        );
        // The process environment, which cargo fills for every test run.
        let process = SecretResolver::new(Environment::process(), None);
        let name = process
            .resolve(&reference("${env:CARGO_PKG_NAME}"))
            .unwrap();
        assert_eq!(name.expose_secret(), "plugin-host");
    }

    #[test]
    fn file_references_read_the_file_without_its_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-secret\n").unwrap();
        let resolver =
            SecretResolver::new(Environment::fixed(Vec::<(String, String)>::new()), None);
        let text = format!("${{file:{}}}", path.display());
        let value = resolver.resolve(&reference(&text)).unwrap();
        assert_eq!(value.expose_secret(), "file-secret");
        let missing = format!("${{file:{}}}", dir.path().join("nope").display());
        let err = resolver.resolve(&reference(&missing)).unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains(&missing), "{err}");
    }

    #[test]
    fn vault_references_need_a_configured_vault() {
        let resolver = SecretResolver::new(Environment::process(), None);
        let err = resolver.resolve(&reference("${vault:a#b}")).unwrap_err();
        assert!(matches!(err, SecretError::NoProvider { .. }), "{err}");
    }

    #[test]
    fn unreachable_vault_is_unavailable_and_the_token_stays_hidden() {
        let port = plugkit_testkit::process::free_tcp_port().unwrap();
        let token = "hvs.token-canary";
        let config = VaultConfig::new(format!("http://127.0.0.1:{port}"), token.into());
        assert!(!format!("{config:?}").contains(token));
        let resolver = SecretResolver::new(Environment::process(), Some(config));
        assert!(!format!("{resolver:?}").contains(token));
        let err = resolver
            .resolve(&reference("${vault:tenants/acme#api_key}"))
            .unwrap_err();
        assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("secret `${vault:tenants/acme#api_key}` is unavailable: cannot reach Vault at http://127.0.0.1:"), "{text}");
        assert!(!text.contains(token) && !format!("{err:?}").contains(token));
    }

    // Issue 12, item 6: the daemon's own settings (its admin token) are
    // resolved by this resolver too; it had its own copy before.
    #[test]
    fn references_outside_plugin_configuration_resolve_from_the_environment_and_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        let env = Environment::fixed([("TOKEN", "from-env")]);
        let check = |text: &str, expected: Result<&str, &str>| {
            let got = resolve_secret_reference(text, &env)
                .map(|s| s.expose_secret().to_owned())
                .map_err(|e| e.to_string());
            match expected {
                Ok(value) => assert_eq!(got.as_deref(), Ok(value), "{text}"),
                Err(part) => {
                    let message = got.expect_err(text);
                    assert!(message.contains(part), "{text}: {message}");
                    assert!(!message.contains("from-env"), "{message}");
                }
            }
        };
        check("${env:TOKEN}", Ok("from-env"));
        check(&format!("${{file:{}}}", file.display()), Ok("from-file"));
        check("${env:MISSING}", Err("`MISSING`"));
        check("${file:relative}", Err("absolute path"));
        check("${vault:a#b}", Err("only ${env:VAR} and ${file:/path}"));
        check("TOKEN", Err("not a reference"));
        let pasted = resolve_secret_reference("hunter2-plaintext", &env).unwrap_err();
        assert!(!pasted.to_string().contains("hunter2"), "{pasted}");
    }
}
