//! The host's file formats: `plugin.toml`, the layered plugin configuration
//! and minisign signature files.

use std::io::Cursor;
use std::path::Path;

use anyhow::Context as _;
use plugin_host::package::manifest::Manifest;
use plugin_host::package::signature::{Expected, SignedClaims};
use serde_json::{Map, Value};

use super::{lossy, read_dir_files, toml_tokens};
use crate::engine::{fields, join, Outcome, Target};

/// Every `plugin.toml` in the workspace, and the manifest corpus.
fn manifest_files(workspace: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut files = Vec::new();
    for parent in ["plugins", "tests/fixtures"] {
        for entry in std::fs::read_dir(workspace.join(parent))? {
            let path = entry?.path().join("plugin.toml");
            if path.is_file() {
                files.push(std::fs::read(&path)?);
            }
        }
    }
    files.extend(read_dir_files(
        &workspace.join("robustness/corpus/manifest"),
    )?);
    Ok(files)
}

/// `Manifest::parse`, then what the tools build from a manifest.
pub(crate) fn manifest(workspace: &Path) -> anyhow::Result<Target> {
    let path = Path::new("plugins/fuzzed/plugin.toml");
    Ok(Target {
        name: "manifest",
        focus: None,
        seeds: manifest_files(workspace)?,
        dictionary: toml_tokens(&[
            "id",
            "name",
            "version",
            "api",
            "library",
            "category",
            "dependencies",
            "conflicts",
            "provides",
            "requires",
            "permissions",
            "required_tier",
            "[[hooks]]",
            "priority",
            "kind",
            "before",
            "after",
            "[config.",
            "type",
            "default",
            "sensitive",
            "optional",
            "\"^0.1\"",
            "\">=1.0.0-alpha.1+build, <2\"",
            "\"network:outbound\"",
            "\"filter\"",
            "\"event\"",
            "\"list\"",
            "\"float\"",
        ]),
        run: Box::new(move |input| {
            let text = lossy(input);
            match Manifest::parse(&text, path) {
                Ok(manifest) => {
                    let example = plugin_host::tenancy::example_toml(&manifest);
                    std::hint::black_box((format!("{manifest:?}"), example));
                    Outcome::Handled("parsed")
                }
                Err(error) => {
                    let message = error.to_string();
                    if !message.contains(&path.display().to_string()) {
                        return Outcome::Fault {
                            key: format!("manifest error without the file: {}", variant(&error)),
                            message,
                        };
                    }
                    Outcome::Handled("refused")
                }
            }
        }),
    })
}

/// The variant name of an error, from its `Debug` form.
fn variant(error: &impl std::fmt::Debug) -> String {
    format!("{error:?}")
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect()
}

/// Layering: manifest defaults < `config/plugins/<id>.toml` < tenant
/// overrides < `PLUGKIT_<ID>_<KEY>`. Fields: plugin id, the file, the
/// overrides (JSON object), the environment (`NAME=value` lines).
pub(crate) fn config(workspace: &Path) -> anyhow::Result<Target> {
    let manifests: Vec<Manifest> = ["twilio", "stripe", "network-automation"]
        .iter()
        .map(|id| Manifest::load(&workspace.join("plugins").join(id).join("plugin.toml")))
        .collect::<Result<_, _>>()?;
    let demo: toml::Table = toml::from_str(
        &std::fs::read_to_string(workspace.join("isp-daemon/src/demo.toml"))
            .context("reading the demo configuration")?,
    )?;
    let mut seeds = Vec::new();
    for manifest in &manifests {
        let id = manifest.id.as_str();
        let example =
            std::fs::read_to_string(workspace.join(format!("config/plugins/{id}.toml.example")))?;
        // The example as shipped (all commented out) and with every key set.
        let uncommented: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(key, _)| {
                        !key.is_empty()
                            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        // Each demo tenant's settings of this plugin, as overrides.
        let tenants = demo.get("tenants").and_then(toml::Value::as_table);
        let mut overrides: Vec<String> = tenants
            .into_iter()
            .flat_map(|t| t.values())
            .filter_map(|tenant| tenant.get("plugins")?.get(id))
            .filter_map(|settings| serde_json::to_string(settings).ok())
            .collect();
        overrides.push("{}".to_owned());
        let env: String = manifest
            .config
            .iter()
            .map(|(key, spec)| {
                let value = match spec.value_type.as_str() {
                    "integer" => "42",
                    "float" => "1.5",
                    "boolean" => "true",
                    "list" => "[\"a\", 1]",
                    _ if spec.sensitive => "${env:FUZZ_SECRET}",
                    _ => "text",
                };
                format!("{}={value}\n", plugin_host::tenancy::env_var_name(id, key))
            })
            .collect();
        for file in [example.as_str(), uncommented.as_str()] {
            for o in &overrides {
                seeds.push(join(&[id.as_bytes(), file.as_bytes(), o.as_bytes(), b""]));
            }
            seeds.push(join(&[
                id.as_bytes(),
                file.as_bytes(),
                b"{}",
                env.as_bytes(),
            ]));
        }
    }
    Ok(Target {
        name: "config",
        focus: Some(1),
        seeds,
        dictionary: toml_tokens(&[
            "\"${env:",
            "\"${file:/",
            "\"${vault:",
            "#",
            "}\"",
            "$${env:X}",
            "PLUGKIT_",
            "_TOKEN=",
            "{\"",
            "\":",
            "[1, \"a\"]",
            "true",
            "1.5e3",
        ]),
        run: Box::new(move |input| {
            let parts = fields(input);
            let part = |i: usize| parts.get(i).map(|p| lossy(p)).unwrap_or_default();
            let id = part(0);
            let manifest = manifests
                .iter()
                .find(|m| m.id == id)
                .unwrap_or(&manifests[0]);
            let file = part(1);
            let overrides: Map<String, Value> = serde_json::from_str(&part(2)).unwrap_or_default();
            let env: Vec<(String, String)> = part(3)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let report =
                plugin_host::tenancy::layered_config_report(manifest, &file, &overrides, &env);
            let shown = match &report {
                Ok(text) | Err(text) => text,
            };
            match leaked_secret(&lossy(input), manifest, &file, &overrides, &env, shown) {
                Some(key) => Outcome::Fault {
                    key: format!("the value of sensitive key `{key}` is shown"),
                    message: shown.chars().take(400).collect(),
                },
                None if report.is_ok() => Outcome::Handled("layered"),
                None => Outcome::Handled("refused"),
            }
        }),
    })
}

/// A sensitive key whose literal value (from any layer) appears in `shown`.
fn leaked_secret(
    input: &str,
    manifest: &Manifest,
    file: &str,
    overrides: &Map<String, Value>,
    env: &[(String, String)],
    shown: &str,
) -> Option<String> {
    let file: toml::Table = toml::from_str(file).unwrap_or_default();
    for (key, _) in manifest.config.iter().filter(|(_, s)| s.sensitive) {
        let var = plugin_host::tenancy::env_var_name(&manifest.id, key);
        let values = [
            file.get(key).and_then(|v| v.as_str()).map(str::to_owned),
            overrides
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            env.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone()),
        ];
        for value in values.into_iter().flatten() {
            // Short values match by chance (`true`, a key name); references
            // are shown on purpose, they are not secrets.
            // A value that is also written elsewhere in the input (another
            // key's value, a comment) may be shown legitimately.
            let distinctive = value.len() >= 12
                && !value.contains("${")
                && input.matches(value.as_str()).count() <= 1
                && !manifest
                    .config
                    .iter()
                    .any(|(k, _)| k.contains(value.as_str()));
            if distinctive && shown.contains(value.as_str()) {
                return Some(key.to_owned());
            }
        }
    }
    None
}

/// A signature field that asks the harness to sign, with the trusted
/// comment that follows.
const RESIGN: &str = "SIGN ";

/// A signing key for the seeds, made up per run as `cargo xtask keygen` does.
struct Signer {
    public: minisign::PublicKey,
    secret: minisign::SecretKey,
}

impl Signer {
    fn new() -> anyhow::Result<Self> {
        let pair = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| anyhow::anyhow!("generating a key pair: {e}"))?;
        Ok(Self {
            public: pair.pk,
            secret: pair.sk,
        })
    }

    fn sign(&self, library: &[u8], comment: &str) -> anyhow::Result<String> {
        Ok(minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(library),
            Some(comment),
            Some("plugkit signature by the robustness run"),
        )
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?
        .into_string())
    }
}

/// `verify_signature` as the host runs it before loading. Fields: the
/// `.minisig` text, trusted keys (one per line, or a `.pub` file), the
/// library bytes, the `plugin.toml` bytes, the expected id and version.
pub(crate) fn signature(workspace: &Path) -> anyhow::Result<Target> {
    let signer = Signer::new()?;
    let manifest = std::fs::read(workspace.join("plugins/twilio/plugin.toml"))?;
    // A stand-in library: the ELF check reads it, so it starts like one.
    let mut library = b"\x7fELF\x02\x01\x01\0".to_vec();
    // Every byte value but the field separator.
    library.extend(
        (0u8..=255)
            .cycle()
            .filter(|b| *b != crate::engine::FIELD_SEPARATOR)
            .take(2048),
    );
    let key_line = signer.public.to_base64();
    let pub_file = signer.public.to_box()?.into_string();
    let other_key = Signer::new()?.public.to_base64();
    let bound = SignedClaims::new("twilio", "0.1.0", &library).with_manifest(&manifest);
    let unbound = SignedClaims::new("twilio", "0.1.0", &library);
    let mut seeds = Vec::new();
    for (claims, keys) in [
        (&bound, key_line.clone()),
        (&unbound, pub_file.clone()),
        (&bound, format!("{other_key}\n{key_line}")),
    ] {
        let signature = signer.sign(&library, &claims.trusted_comment())?;
        seeds.push(join(&[
            signature.as_bytes(),
            keys.as_bytes(),
            &library,
            &manifest,
            b"twilio",
            b"0.1.0",
        ]));
    }
    // Signed by another tool: a trusted comment that is not plugkit's.
    let foreign = signer.sign(&library, "timestamp:1700000000\tfile:libplugkit_twilio.so")?;
    seeds.push(join(&[
        foreign.as_bytes(),
        key_line.as_bytes(),
        &library,
        &manifest,
        b"twilio",
        b"0.1.0",
    ]));
    // `SIGN <comment>` in the signature field: the harness signs the
    // (mutated) library with that trusted comment, so the claim checks
    // behind the cryptography (hash, id, version, manifest) are reached.
    for comment in [
        bound.trusted_comment(),
        unbound.trusted_comment(),
        "plugkit id=stripe version=0.1.0 sha256=00 extra=1".to_owned(),
    ] {
        seeds.push(join(&[
            format!("{RESIGN}{comment}").as_bytes(),
            key_line.as_bytes(),
            &library,
            &manifest,
            b"twilio",
            b"0.1.0",
        ]));
    }
    Ok(Target {
        name: "signature",
        focus: Some(0),
        seeds,
        dictionary: [
            "untrusted comment: ",
            "trusted comment: ",
            "plugkit ",
            "id=",
            "version=",
            "sha256=",
            "manifest-sha256=",
            "RWQ",
            "RUQ",
            "RWS",
            "==",
            "\n",
            "\r\n",
            "\t",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect(),
        run: Box::new(move |input| {
            let parts = fields(input);
            let part = |i: usize| parts.get(i).copied().unwrap_or_default();
            let signature = match lossy(part(0)) {
                text if text.starts_with(RESIGN) => signer
                    .sign(part(2), &text[RESIGN.len()..])
                    .unwrap_or_default(),
                text => text.into_owned(),
            };
            let keys: Vec<String> = match lossy(part(1)).into_owned() {
                text if text.contains("untrusted comment:") => vec![text],
                text => text.lines().map(str::to_owned).collect(),
            };
            let (id, version) = (lossy(part(4)), lossy(part(5)));
            let expected = Expected::plugin(&id, &version).manifest(part(3));
            let verdict = plugin_host::package::signature::verify_signature(
                part(2),
                &signature,
                &keys,
                &expected,
            );
            let message = match &verdict {
                Ok(verified) => format!("{verified:?}"),
                Err(error) => error.to_string(),
            };
            for key in &keys {
                let _ = std::hint::black_box(plugin_host::package::minisig::public_key_id(key));
            }
            if let Some(comment) = signature
                .lines()
                .find_map(|l| l.strip_prefix("trusted comment: "))
            {
                let _ = std::hint::black_box(SignedClaims::parse(comment));
            }
            std::hint::black_box(message);
            Outcome::Handled(if verdict.is_ok() {
                "verified"
            } else {
                "refused"
            })
        }),
    })
}
