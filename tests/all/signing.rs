//! Signature verification before `dlopen` (issue 8), with a real fixture
//! library: under `require` only exactly what a trusted key signed, for the
//! plugin id and version being loaded, reaches the loader; under
//! `allow-unsigned` anything loads, loudly.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use plugin_host::package::signature::{SignatureStatus, SignedClaims, TrustPolicy};
use plugin_host::{Host, HostConfig, HostError, LoadOptions};
use plugkit_tests::{artifacts, with_log_capture};
use tempfile::TempDir;

const ID: &str = "fixture-good";
const VERSION: &str = "0.1.0";

struct Signer {
    public: minisign::PublicKey,
    secret: minisign::SecretKey,
}

impl Signer {
    fn new() -> Signer {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().expect("key pair");
        Signer {
            public: pair.pk,
            secret: pair.sk,
        }
    }

    fn public_line(&self) -> String {
        self.public.to_base64()
    }

    /// A signature in minisign's legacy format (algorithm `Ed`: ed25519 over
    /// the library itself, not its BLAKE2b hash), as `minisign -S -l` and
    /// old minisign releases write it. Valid, but refused by plugkit.
    fn sign_legacy(&self, library: &[u8], comment: &str) -> String {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;

        // An unencrypted minisign secret key: algorithm, KDF and checksum
        // headers (54 bytes), the key id (8), then ed25519's seed and public key.
        let secret = self.secret.to_bytes();
        let key_id = &secret[54..62];
        let seed: [u8; 32] = secret[62..94].try_into().expect("seed");
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let signature = key.sign(library).to_bytes();
        let mut global = signature.to_vec();
        global.extend_from_slice(comment.as_bytes());
        let global = key.sign(&global).to_bytes();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        format!(
            "untrusted comment: legacy signature\n{}\ntrusted comment: {comment}\n{}\n",
            b64(&[b"Ed".as_slice(), key_id, &signature].concat()),
            b64(&global)
        )
    }

    fn sign(&self, library: &[u8], comment: &str) -> String {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(library),
            Some(comment),
            Some("test signature"),
        )
        .expect("sign")
        .into_string()
    }
}

/// A host whose runtime directory (where private copies are staged) is `runtime`.
struct Setup {
    host: Host,
    runtime: PathBuf,
    dir: TempDir,
}

fn setup(trust: TrustPolicy) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = dir.path().join("runtime");
    let host = Host::new(HostConfig::with_runtime_dir(&runtime).trust(trust)).expect("host");
    Setup { host, runtime, dir }
}

fn require(signers: &[&Signer]) -> TrustPolicy {
    TrustPolicy::Require {
        trusted_keys: signers.iter().map(|s| s.public_line()).collect(),
    }
}

/// Installs the fixture library in `<dir>/plugins/fixture-good/`, signed by
/// `signer` with `comment` (the right claims when `None`).
fn install(setup: &Setup, signer: Option<&Signer>, comment: Option<String>) -> PathBuf {
    let folder = setup.dir.path().join("plugins").join(ID);
    std::fs::create_dir_all(&folder).expect("mkdir");
    let source = artifacts().library("fixture-good");
    let library = folder.join(source.file_name().expect("file name"));
    std::fs::copy(source, &library).expect("copy library");
    if let Some(signer) = signer {
        let bytes = std::fs::read(&library).expect("read library");
        let comment =
            comment.unwrap_or_else(|| SignedClaims::new(ID, VERSION, &bytes).trusted_comment());
        std::fs::write(signature_of(&library), signer.sign(&bytes, &comment)).expect("sign");
    }
    library
}

fn signature_of(library: &Path) -> PathBuf {
    let mut path = library.as_os_str().to_owned();
    path.push(".minisig");
    PathBuf::from(path)
}

fn options() -> LoadOptions {
    LoadOptions {
        expected_id: Some(ID.to_owned()),
        expected_version: Some(VERSION.to_owned()),
        ..LoadOptions::default()
    }
}

fn flip_one_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

/// Asserts that `load` was refused for its signature before anything was
/// staged or mapped, and that the message names the plugin, the file and
/// what to do; returns the message.
fn assert_refused_before_load(
    setup: &Setup,
    library: &Path,
    result: Result<String, HostError>,
) -> String {
    let error = match result {
        Err(e @ HostError::SignatureRejected { .. }) => e,
        other => panic!("expected SignatureRejected, got {other:?}"),
    };
    let message = error.to_string();
    assert!(message.contains(&format!("plugin `{ID}`")), "{message}");
    assert!(
        message.contains(&library.display().to_string()),
        "{message}"
    );
    assert!(message.contains("cargo xtask install-plugin"), "{message}");
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let runtime = setup.runtime.display().to_string();
    assert!(
        !maps.contains(&library.display().to_string()) && !maps.contains(&runtime),
        "a refused library is mapped:\n{}",
        maps.lines()
            .filter(|l| l.contains(&runtime) || l.contains(&library.display().to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let staged = std::fs::read_dir(&setup.runtime)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(staged.is_empty(), "nothing may be staged: {staged:?}");
    assert!(setup.host.plugin_ids().is_empty());
    message
}

#[test]
fn signed_fixture_loads_under_require() {
    let signer = Signer::new();
    let setup = setup(require(&[&signer]));
    let library = install(&setup, Some(&signer), None);
    let id = setup
        .host
        .load(&library, options())
        .expect("signed library loads");
    setup.host.initialize(&id).expect("initialize");
    let key_id =
        plugin_host::package::minisig::public_key_id(&signer.public_line()).expect("key id");
    assert_eq!(
        setup.host.status(&id).expect("status").signature,
        SignatureStatus::Verified { key_id }
    );
}

#[test]
fn one_flipped_byte_is_refused_before_any_load() {
    let signer = Signer::new();
    let setup = setup(require(&[&signer]));
    let library = install(&setup, Some(&signer), None);
    flip_one_byte(&library);
    let result = setup.host.load(&library, options());
    let message = assert_refused_before_load(&setup, &library, result);
    assert!(
        message.contains("modified or corrupted after it was signed"),
        "{message}"
    );
}

// Issue 14, item 5: a legacy (non-prehashed) signature is a valid format
// that plugkit refuses, and says so, instead of suggesting tampering.
#[test]
fn a_legacy_non_prehashed_signature_is_refused_as_a_format_not_as_tampering() {
    let signer = Signer::new();
    let setup = setup(require(&[&signer]));
    let library = install(&setup, Some(&signer), None);
    let bytes = std::fs::read(&library).expect("read library");
    let comment = SignedClaims::new(ID, VERSION, &bytes).trusted_comment();
    let legacy = signer.sign_legacy(&bytes, &comment);
    // It is a genuine legacy signature: minisign's own verifier accepts it
    // when legacy signatures are allowed.
    let public = minisign_verify::PublicKey::from_base64(&signer.public_line()).expect("key");
    let decoded = minisign_verify::Signature::decode(&legacy).expect("decodes");
    public
        .verify(&bytes, &decoded, true)
        .expect("a valid legacy signature");
    std::fs::write(signature_of(&library), &legacy).expect("write signature");

    let result = setup.host.load(&library, options());
    let message = assert_refused_before_load(&setup, &library, result);
    assert!(
        message.contains("legacy non-prehashed format")
            && message.contains("nothing suggests tampering")
            && message.contains("cargo xtask sign")
            && message.contains("minisign -S"),
        "{message}"
    );
    assert!(!message.contains("modified or corrupted"), "{message}");
}

// The neighbours: the library changed, the signature file edited, a key
// file put where the signature belongs. Each names its own cause.
#[test]
fn a_changed_library_an_edited_signature_and_a_misplaced_key_are_told_apart() {
    let signer = Signer::new();
    let setup = setup(require(&[&signer]));
    let library = install(&setup, Some(&signer), None);
    let signature = std::fs::read_to_string(signature_of(&library)).expect("signature");

    // The trusted comment edited (a claim added), the library untouched.
    let edited = signature.replacen(
        "trusted comment: plugkit",
        "trusted comment: plugkit note=edited",
        1,
    );
    std::fs::write(signature_of(&library), edited).expect("write");
    let message =
        assert_refused_before_load(&setup, &library, setup.host.load(&library, options()));
    assert!(
        message.contains("the .minisig file was edited or damaged")
            && !message.contains("modified or corrupted"),
        "{message}"
    );

    // The public key file copied over the signature.
    std::fs::write(
        signature_of(&library),
        format!(
            "untrusted comment: minisign public key\n{}\n",
            signer.public_line()
        ),
    )
    .expect("write");
    let message =
        assert_refused_before_load(&setup, &library, setup.host.load(&library, options()));
    assert!(
        message.contains("holds a minisign public key, not a signature"),
        "{message}"
    );

    // The signature restored and the library changed: tampering it is.
    std::fs::write(signature_of(&library), &signature).expect("write");
    flip_one_byte(&library);
    let message =
        assert_refused_before_load(&setup, &library, setup.host.load(&library, options()));
    assert!(
        message.contains("modified or corrupted after it was signed"),
        "{message}"
    );
}

#[test]
fn signature_from_an_untrusted_key_is_refused() {
    let (trusted, stranger) = (Signer::new(), Signer::new());
    let setup = setup(require(&[&trusted]));
    let library = install(&setup, Some(&stranger), None);
    let result = setup.host.load(&library, options());
    let message = assert_refused_before_load(&setup, &library, result);
    assert!(message.contains("not one of the trusted keys"), "{message}");
}

#[test]
fn relabelled_package_is_refused() {
    let signer = Signer::new();
    let bytes = std::fs::read(artifacts().library("fixture-good")).expect("read");
    // A valid signature of these very bytes, but claiming another id, or another version.
    for (comment, needle) in [
        (
            SignedClaims::new("dep-a", VERSION, &bytes).trusted_comment(),
            "signature is for id `dep-a`",
        ),
        (
            SignedClaims::new(ID, "0.0.9", &bytes).trusted_comment(),
            "signature is for version `0.0.9`",
        ),
        (
            format!("timestamp:1555779966\tfile:{ID}"),
            "does not carry the plugkit claims",
        ),
    ] {
        let setup = setup(require(&[&signer]));
        let library = install(&setup, Some(&signer), Some(comment));
        let result = setup.host.load(&library, options());
        let message = assert_refused_before_load(&setup, &library, result);
        assert!(message.contains(needle), "{message}");
    }
    // Without a manifest to compare with, the library's embedded identity is the reference.
    let setup = setup(require(&[&signer]));
    let comment = SignedClaims::new("dep-a", VERSION, &bytes).trusted_comment();
    let library = install(&setup, Some(&signer), Some(comment));
    let result = setup.host.load(&library, LoadOptions::default());
    let message = match result {
        Err(e @ HostError::SignatureRejected { .. }) => e.to_string(),
        other => panic!("expected SignatureRejected, got {other:?}"),
    };
    assert!(
        message.contains("but the library says `fixture-good`"),
        "{message}"
    );
}

#[test]
fn unsigned_library_is_refused_under_require_and_loads_loudly_when_allowed() {
    let signer = Signer::new();
    let setup_require = setup(require(&[&signer]));
    let library = install(&setup_require, None, None);
    let result = setup_require.host.load(&library, options());
    let message = assert_refused_before_load(&setup_require, &library, result);
    assert!(message.contains("not signed"), "{message}");

    with_log_capture(|log| {
        let setup = setup(TrustPolicy::AllowUnsigned);
        let library = install(&setup, None, None);
        let id = setup
            .host
            .load(&library, options())
            .expect("loads when allowed");
        assert!(matches!(
            setup.host.status(&id).expect("status").signature,
            SignatureStatus::Unverified { .. }
        ));
        let warnings = log.matching("LOADING AN UNVERIFIED PLUGIN");
        assert_eq!(warnings.len(), 1, "{:#?}", log.lines());
        assert!(
            warnings[0].contains("WARN") && warnings[0].contains(ID),
            "{}",
            warnings[0]
        );
    });
}

#[test]
fn start_installed_under_require_starts_signed_plugins_and_reports_tampered_ones() {
    let signer = Signer::new();
    let setup = setup(require(&[&signer]));
    let library = install(&setup, Some(&signer), None);
    let manifest = format!(
        "id = \"{ID}\"\nname = \"{ID}\"\nversion = \"{VERSION}\"\napi = \"^0.2\"\nlibrary = \"{}\"\n",
        library.file_name().expect("name").to_string_lossy()
    );
    let folder = library.parent().expect("folder");
    std::fs::write(folder.join("plugin.toml"), manifest).expect("manifest");
    let plugins = setup.dir.path().join("plugins");

    let report = setup.host.start_installed(std::slice::from_ref(&plugins));
    assert_eq!(report.started, [ID], "{:#?}", report.problems());
    assert!(setup.host.stop_all().is_empty());

    flip_one_byte(&library);
    let fresh = self::setup(require(&[&signer]));
    let report = fresh.host.start_installed(&[plugins]);
    assert!(report.started.is_empty());
    assert!(
        matches!(&report.failed[..], [(id, HostError::SignatureRejected { .. })] if id == ID),
        "{:#?}",
        report.problems()
    );
}

/// The signature binds the installed manifest too: a `plugin.toml` edited
/// after signing (here: a permission added) is refused before any load.
#[test]
fn an_installed_manifest_edited_after_signing_is_refused() {
    let signer = Signer::new();
    let setup = setup(require(&[&signer]));
    let library = install(&setup, None, None);
    let folder = library.parent().expect("folder").to_owned();
    let manifest = format!(
        "id = \"{ID}\"\nname = \"{ID}\"\nversion = \"{VERSION}\"\napi = \"^0.2\"\nlibrary = \"{}\"\n",
        library.file_name().expect("name").to_string_lossy()
    );
    std::fs::write(folder.join("plugin.toml"), &manifest).expect("manifest");
    let bytes = std::fs::read(&library).expect("library");
    let comment = SignedClaims::new(ID, VERSION, &bytes)
        .with_manifest(manifest.as_bytes())
        .trusted_comment();
    std::fs::write(signature_of(&library), signer.sign(&bytes, &comment)).expect("sign");
    let plugins = setup.dir.path().join("plugins");

    let report = setup.host.start_installed(std::slice::from_ref(&plugins));
    assert_eq!(report.started, [ID], "{:#?}", report.problems());
    assert!(setup.host.stop_all().is_empty());

    std::fs::write(
        folder.join("plugin.toml"),
        format!("{manifest}permissions = [\"secrets:read\"]\n"),
    )
    .expect("edit manifest");
    let fresh = self::setup(require(&[&signer]));
    let report = fresh.host.start_installed(&[plugins]);
    assert!(report.started.is_empty());
    match &report.failed[..] {
        [(id, err @ HostError::SignatureRejected { .. })] if id == ID => {
            assert!(err.to_string().contains("plugin.toml was changed"), "{err}");
        }
        other => panic!("expected SignatureRejected, got {other:#?}"),
    }
}
