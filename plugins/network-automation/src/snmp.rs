//! SNMP v2c and v3 (USM, authPriv) GET, GETNEXT, GETBULK and a GETBULK
//! walk, over `snmp2`'s blocking UDP session on the calling thread.
//!
//! Invariants: no thread, no async runtime; a community or pass phrase never
//! appears in an error message.
//!
//! Failures a caller must tell apart map to distinct provider codes:
//! `snmp_timeout` (no answer: agent down, or a v2c community it ignores),
//! `snmp_auth_failed` (the v3 agent answered with a USM report or an
//! undecryptable reply), the RFC 3416 error-status name (e.g.
//! `noSuchName`) and `snmp_protocol` for malformed answers.

use std::time::Duration;

use plugin_api::network_automation::{SnmpOperation, SnmpRequest, SnmpValue, SnmpVersion, VarBind};
use plugin_api::{PluginError, Result, Secret};
use snmp2::v3::{Auth, AuthProtocol, Cipher, KeyExtension, Security};
use snmp2::{Oid, Pdu, SyncSession, Value};

/// What `snmp2` returns (its own alias is private).
type WireResult<T> = std::result::Result<T, snmp2::Error>;

/// Upper bound on rows one walk returns, so a looping agent cannot exhaust memory.
const MAX_WALK_ROWS: usize = 100_000;
/// Engine discovery may need a couple of resends (RFC 3414 §4) beyond the
/// configured retries.
const MAX_RESYNCS: u32 = 3;

/// A tenant's SNMP defaults, used where a request leaves a field empty.
pub(crate) struct SnmpDefaults {
    pub(crate) community: Option<Secret>,
    pub(crate) v3_user: Option<String>,
    pub(crate) auth_protocol: AuthProtocol,
    pub(crate) auth_password: Option<Secret>,
    pub(crate) priv_protocol: Cipher,
    pub(crate) priv_password: Option<Secret>,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) max_repetitions: u32,
}

impl std::fmt::Debug for SnmpDefaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpDefaults")
            .field("community", &self.community)
            .field("v3_user", &self.v3_user)
            .field("auth_protocol", &self.auth_protocol)
            .field("auth_password", &self.auth_password)
            .field("priv_protocol", &self.priv_protocol)
            .field("priv_password", &self.priv_password)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("max_repetitions", &self.max_repetitions)
            .finish()
    }
}

/// Parses `SHA`, `SHA-256`, `MD5`, ... (case and dashes ignored).
pub(crate) fn parse_auth_protocol(text: &str) -> std::result::Result<AuthProtocol, String> {
    Ok(match normalize(text).as_str() {
        "MD5" => AuthProtocol::Md5,
        "SHA" | "SHA1" => AuthProtocol::Sha1,
        "SHA224" => AuthProtocol::Sha224,
        "SHA256" => AuthProtocol::Sha256,
        "SHA384" => AuthProtocol::Sha384,
        "SHA512" => AuthProtocol::Sha512,
        _ => {
            return Err(format!(
                "unknown SNMPv3 auth protocol `{text}`; use MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512"
            ))
        }
    })
}

/// Parses `AES`, `AES-256`, `DES`, ... (case and dashes ignored).
pub(crate) fn parse_priv_protocol(text: &str) -> std::result::Result<Cipher, String> {
    Ok(match normalize(text).as_str() {
        "DES" => Cipher::Des,
        "AES" | "AES128" => Cipher::Aes128,
        "AES192" => Cipher::Aes192,
        "AES256" => Cipher::Aes256,
        _ => {
            return Err(format!(
                "unknown SNMPv3 privacy protocol `{text}`; use DES, AES, AES-192 or AES-256"
            ))
        }
    })
}

fn normalize(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Parses a dotted OID (`1.3.6.1.2.1.1.1.0`, a leading dot allowed).
pub(crate) fn parse_oid(text: &str) -> Result<Vec<u64>> {
    let trimmed = text.trim().trim_start_matches('.');
    let parts = trimmed
        .split('.')
        .map(|p| p.parse::<u64>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            PluginError::invalid_request(format!("`{text}` is not a dotted numeric OID"))
        })?;
    if parts.len() < 2 || parts[0] > 2 {
        return Err(PluginError::invalid_request(format!(
            "`{text}` is not a valid OID (it must start with 0, 1 or 2 and have at least two parts)"
        )));
    }
    Ok(parts)
}

fn dotted(parts: &[u64]) -> String {
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn oid(parts: &[u64]) -> Result<Oid<'static>> {
    Oid::from(parts).map_err(|_| {
        PluginError::invalid_request(format!("OID `{}` cannot be encoded", dotted(parts)))
    })
}

/// How to authenticate, resolved from the request and the tenant defaults.
enum Credentials {
    Community(Secret),
    User {
        user: String,
        auth: Option<(AuthProtocol, Secret)>,
        privacy: Option<(Cipher, Secret)>,
    },
}

fn credentials(request: &SnmpRequest, defaults: &SnmpDefaults) -> Result<Credentials> {
    let target = &request.target;
    match target.version {
        SnmpVersion::V2c => {
            let community = target
                .community
                .as_ref()
                .map(|c| Secret::new(c.as_str()))
                .into_option()
                .or_else(|| defaults.community.clone())
                .ok_or_else(|| {
                    PluginError::invalid_request(
                        "SNMP v2c needs a community: pass one in the target or set \
                         `snmp_community` in the tenant's configuration",
                    )
                })?;
            Ok(Credentials::Community(community))
        }
        SnmpVersion::V3 => match target.user.as_ref().into_option() {
            Some(u) => {
                let auth_protocol = match u.auth_protocol.trim() {
                    "" => defaults.auth_protocol,
                    p => parse_auth_protocol(p).map_err(PluginError::invalid_request)?,
                };
                let priv_protocol = match u.priv_protocol.trim() {
                    "" => defaults.priv_protocol,
                    p => parse_priv_protocol(p).map_err(PluginError::invalid_request)?,
                };
                let auth = (!u.auth_password.is_empty())
                    .then(|| (auth_protocol, Secret::new(u.auth_password.as_str())));
                let privacy = (!u.priv_password.is_empty())
                    .then(|| (priv_protocol, Secret::new(u.priv_password.as_str())));
                Ok(Credentials::User {
                    user: u.user.to_string(),
                    auth,
                    privacy,
                })
            }
            None => {
                let user = defaults.v3_user.clone().ok_or_else(|| {
                    PluginError::invalid_request(
                        "SNMPv3 needs a user: pass one in the target or set `snmp_v3_user` \
                         in the tenant's configuration",
                    )
                })?;
                Ok(Credentials::User {
                    user,
                    auth: defaults
                        .auth_password
                        .clone()
                        .map(|p| (defaults.auth_protocol, p)),
                    privacy: defaults
                        .priv_password
                        .clone()
                        .map(|p| (defaults.priv_protocol, p)),
                })
            }
        },
    }
}

/// Runs one request against the device it names.
pub(crate) fn run(request: &SnmpRequest, defaults: &SnmpDefaults) -> Result<Vec<VarBind>> {
    if request.oids.is_empty() {
        return Err(PluginError::invalid_request(
            "an SNMP request needs at least one OID",
        ));
    }
    let oids = request
        .oids
        .iter()
        .map(|o| parse_oid(o.as_str()))
        .collect::<Result<Vec<_>>>()?;
    let timeout = match request.target.timeout_ms {
        0 => defaults.timeout,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let credentials = credentials(request, defaults)?;
    let mut client = Client::open(
        request.target.address.as_str(),
        &credentials,
        timeout,
        request.target.retries,
    )?;

    match request.operation {
        SnmpOperation::Get => {
            let encoded = oids.iter().map(|o| oid(o)).collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Oid<'_>> = encoded.iter().collect();
            client
                .call(|s| s.get_many(&refs).and_then(own))?
                .into_varbinds()
        }
        SnmpOperation::GetNext => {
            let mut out = Vec::with_capacity(oids.len());
            for parts in &oids {
                let encoded = oid(parts)?;
                out.extend(
                    client
                        .call(|s| s.getnext(&encoded).and_then(own))?
                        .into_varbinds()?,
                );
            }
            Ok(out)
        }
        SnmpOperation::GetBulk {
            non_repeaters,
            max_repetitions,
        } => {
            let encoded = oids.iter().map(|o| oid(o)).collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Oid<'_>> = encoded.iter().collect();
            client
                .call(|s| {
                    s.getbulk(&refs, non_repeaters, max_repetitions)
                        .and_then(own)
                })?
                .into_varbinds()
        }
        SnmpOperation::Walk => walk(&mut client, &oids[0], defaults.max_repetitions),
    }
}

/// Everything under `root`, in OID order, with GETBULK. Like `snmpwalk`,
/// falls back to a GET when `root` is itself an instance with no subtree.
fn walk(client: &mut Client, root: &[u64], max_repetitions: u32) -> Result<Vec<VarBind>> {
    let mut rows = Vec::new();
    let mut cursor = root.to_vec();
    'bulk: loop {
        let encoded = oid(&cursor)?;
        let response = client.call(|s| s.getbulk(&[&encoded], 0, max_repetitions).and_then(own))?;
        response.check_status()?;
        if response.varbinds.is_empty() {
            break;
        }
        for (parts, value) in response.varbinds {
            if value == SnmpValue::EndOfMibView || !parts.starts_with(root) {
                break 'bulk;
            }
            if parts <= cursor {
                return Err(PluginError::provider(
                    "snmp_protocol",
                    format!(
                        "agent at {} returned {} after {} during a walk (OIDs must increase)",
                        client.address,
                        dotted(&parts),
                        dotted(&cursor)
                    ),
                    false,
                ));
            }
            if rows.len() >= MAX_WALK_ROWS {
                return Err(PluginError::provider(
                    "snmp_walk_too_large",
                    format!(
                        "walk of {} at {} passed {MAX_WALK_ROWS} rows; walk a smaller subtree",
                        dotted(root),
                        client.address
                    ),
                    false,
                ));
            }
            cursor.clone_from(&parts);
            rows.push(VarBind {
                oid: dotted(&parts).into(),
                value,
            });
        }
    }
    if rows.is_empty() {
        let encoded = oid(root)?;
        let response = client.call(|s| s.get(&encoded).and_then(own))?;
        rows = response
            .into_varbinds()?
            .into_iter()
            .filter(|vb| {
                !matches!(
                    vb.value,
                    SnmpValue::NoSuchObject | SnmpValue::NoSuchInstance | SnmpValue::EndOfMibView
                )
            })
            .collect();
    }
    Ok(rows)
}

/// A response copied out of the session's receive buffer.
struct Response {
    error_status: u32,
    error_index: u32,
    varbinds: Vec<(Vec<u64>, SnmpValue)>,
}

impl Response {
    fn check_status(&self) -> Result<()> {
        if self.error_status == 0 {
            return Ok(());
        }
        let name = error_status_name(self.error_status);
        let at = self
            .error_index
            .checked_sub(1)
            .and_then(|i| self.varbinds.get(i as usize))
            .map(|(parts, _)| format!(" for {}", dotted(parts)))
            .unwrap_or_default();
        Err(PluginError::provider(
            name,
            format!(
                "agent answered {name} (error-status {}){at}",
                self.error_status
            ),
            false,
        ))
    }

    fn into_varbinds(self) -> Result<Vec<VarBind>> {
        self.check_status()?;
        Ok(self
            .varbinds
            .into_iter()
            .map(|(parts, value)| VarBind {
                oid: dotted(&parts).into(),
                value,
            })
            .collect())
    }
}

fn own(pdu: Pdu<'_>) -> WireResult<Response> {
    let mut varbinds = Vec::new();
    for (name, value) in pdu.varbinds {
        let parts: Vec<u64> = name.iter().ok_or(snmp2::Error::AsnIntOverflow)?.collect();
        varbinds.push((parts, snmp_value(value)?));
    }
    Ok(Response {
        error_status: pdu.error_status,
        error_index: pdu.error_index,
        varbinds,
    })
}

/// Maps a wire value to the category's value type.
fn snmp_value(value: Value<'_>) -> WireResult<SnmpValue> {
    Ok(match value {
        Value::Integer(n) => SnmpValue::Integer(n),
        Value::Boolean(b) => SnmpValue::Integer(i64::from(b)),
        Value::OctetString(bytes) => SnmpValue::OctetString(bytes.to_vec().into()),
        Value::ObjectIdentifier(o) => {
            let parts: Vec<u64> = o.iter().ok_or(snmp2::Error::AsnIntOverflow)?.collect();
            SnmpValue::ObjectId(dotted(&parts).into())
        }
        Value::IpAddress([a, b, c, d]) => SnmpValue::IpAddress(format!("{a}.{b}.{c}.{d}").into()),
        Value::Counter32(n) => SnmpValue::Counter32(n),
        Value::Unsigned32(n) => SnmpValue::Gauge32(n),
        Value::Timeticks(n) => SnmpValue::TimeTicks(n),
        Value::Counter64(n) => SnmpValue::Counter64(n),
        Value::Opaque(bytes) => SnmpValue::Opaque(bytes.to_vec().into()),
        Value::Null => SnmpValue::Null,
        Value::NoSuchObject => SnmpValue::NoSuchObject,
        Value::NoSuchInstance => SnmpValue::NoSuchInstance,
        Value::EndOfMibView => SnmpValue::EndOfMibView,
        _ => return Err(snmp2::Error::AsnUnsupportedType),
    })
}

fn error_status_name(status: u32) -> &'static str {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    NAMES
        .get(status as usize)
        .copied()
        .unwrap_or("snmp_error_status")
}

/// A session plus what error messages need to say where and how.
struct Client {
    /// Boxed: the session holds a 64 KiB receive buffer inline.
    session: Box<SyncSession>,
    address: String,
    timeout: Duration,
    attempts: u32,
    /// `Some(user)` for v3.
    user: Option<String>,
    /// For v3 authPriv: the same user at authNoPriv, to tell a wrong
    /// privacy pass phrase from a dead agent (see [`Client::timeout_error`]).
    privacy_probe: Option<(String, AuthProtocol, Secret)>,
    /// Engine discovery succeeded: the agent is alive and speaks v3.
    discovered: bool,
}

impl Client {
    fn open(
        address: &str,
        credentials: &Credentials,
        timeout: Duration,
        retries: u32,
    ) -> Result<Self> {
        let address = if address.contains(':') {
            address.to_owned()
        } else {
            format!("{address}:161")
        };
        let io_error = |e: std::io::Error| {
            PluginError::provider(
                "snmp_connect_failed",
                format!("cannot open a UDP session to {address}: {e}"),
                true,
            )
        };
        let (session, user) = match credentials {
            Credentials::Community(community) => (
                Box::new(
                    SyncSession::new_v2c(
                        address.as_str(),
                        community.expose().as_bytes(),
                        Some(timeout),
                        1,
                    )
                    .map_err(io_error)?,
                ),
                None,
            ),
            Credentials::User {
                user,
                auth,
                privacy,
            } => {
                let security = security(user, auth.as_ref(), privacy.as_ref());
                (
                    Box::new(
                        SyncSession::new_v3(address.as_str(), Some(timeout), 1, security)
                            .map_err(io_error)?,
                    ),
                    Some(user.clone()),
                )
            }
        };
        let privacy_probe = match credentials {
            Credentials::User {
                user,
                auth: Some((protocol, password)),
                privacy: Some(_),
            } => Some((user.clone(), *protocol, password.clone())),
            _ => None,
        };
        let mut client = Self {
            session,
            address,
            timeout,
            attempts: retries.saturating_add(1),
            user,
            privacy_probe,
            discovered: false,
        };
        if client.user.is_some() {
            // Engine discovery: learns the agent's engine id, boots and time.
            client.call(|s| s.init())?;
            client.discovered = true;
        }
        Ok(client)
    }

    /// Runs `op`, resending after a timeout up to the configured retries.
    fn call<T>(&mut self, mut op: impl FnMut(&mut SyncSession) -> WireResult<T>) -> Result<T> {
        let mut timeouts = 0;
        let mut resyncs = 0;
        loop {
            match op(&mut self.session) {
                Ok(value) => return Ok(value),
                // A late answer to an earlier, timed-out request: resend.
                Err(snmp2::Error::Receive | snmp2::Error::RequestIdMismatch) => {
                    timeouts += 1;
                    if timeouts >= self.attempts {
                        return Err(self.timeout_error());
                    }
                }
                // The agent's engine time or boots moved; the session has
                // re-synchronized and the request must be sent again.
                Err(snmp2::Error::AuthUpdated) if resyncs < MAX_RESYNCS => resyncs += 1,
                Err(error) => return Err(self.error(error)),
            }
        }
    }

    /// The error for a request that got no answer.
    ///
    /// Net-SNMP (like RFC 3414 §3.2.8 allows) drops a request it cannot
    /// decrypt without a report, so a wrong privacy pass phrase looks like
    /// a timeout. When discovery worked, the same user is asked again at
    /// authNoPriv: an authenticated answer (even authorizationError) proves
    /// the agent is up and the auth key right, so the privacy key is wrong.
    fn timeout_error(&self) -> PluginError {
        if let (true, Some((user, protocol, password))) = (self.discovered, &self.privacy_probe) {
            if self.answers_without_privacy(user, *protocol, password) {
                return PluginError::provider(
                    "snmp_auth_failed",
                    format!(
                        "SNMPv3 request of user `{user}` to {} was dropped although the agent \
                         authenticates this user without privacy: the privacy pass phrase or \
                         protocol is wrong (the agent counts it in usmStatsDecryptionErrors)",
                        self.address
                    ),
                    false,
                );
            }
        }
        let why = match &self.user {
            Some(_) => "the agent is down or unreachable",
            None => {
                "the agent is down or unreachable, or it does not accept this community \
                 (v2c agents silently drop requests with a wrong community)"
            }
        };
        PluginError::provider(
            "snmp_timeout",
            format!(
                "no answer from {} after {} attempt(s) of {} ms: {why}",
                self.address,
                self.attempts,
                self.timeout.as_millis()
            ),
            true,
        )
    }

    fn answers_without_privacy(
        &self,
        user: &str,
        protocol: AuthProtocol,
        password: &Secret,
    ) -> bool {
        let credentials = Credentials::User {
            user: user.to_owned(),
            auth: Some((protocol, password.clone())),
            privacy: None,
        };
        // sysUpTime.0: any agent has it; an access error is an answer too.
        let Ok(sys_up_time) = Oid::from(&[1, 3, 6, 1, 2, 1, 1, 3, 0]) else {
            return false;
        };
        Client::open(&self.address, &credentials, self.timeout, 0)
            .and_then(|mut probe| probe.call(|s| s.get(&sys_up_time).map(|_| ())))
            .is_ok()
    }

    fn error(&self, error: snmp2::Error) -> PluginError {
        match error {
            snmp2::Error::AuthFailure(kind) => {
                let user = self.user.as_deref().unwrap_or_default();
                let hint = match kind {
                    snmp2::v3::AuthErrorKind::NotAuthenticated => {
                        "the agent rejected the request with an unauthenticated report \
                         (usmStatsWrongDigests, usmStatsUnknownUserNames or \
                         usmStatsUnsupportedSecLevels): check the user name, the auth \
                         pass phrase and the auth protocol"
                    }
                    snmp2::v3::AuthErrorKind::ReplyNotEncrypted
                    | snmp2::v3::AuthErrorKind::PayloadLengthMismatch
                    | snmp2::v3::AuthErrorKind::PrivLengthMismatch => {
                        "the agent could not decrypt the request or answered without \
                         privacy (usmStatsDecryptionErrors): check the privacy pass phrase \
                         and protocol"
                    }
                    snmp2::v3::AuthErrorKind::SignatureMismatch => {
                        "the agent's answer did not verify: check the auth pass phrase and protocol"
                    }
                    _ => "check the v3 user's security settings",
                };
                PluginError::provider(
                    "snmp_auth_failed",
                    format!(
                        "SNMPv3 authentication of user `{user}` at {} failed ({kind}): {hint}",
                        self.address
                    ),
                    false,
                )
            }
            snmp2::Error::AuthUpdated => PluginError::provider(
                "snmp_auth_failed",
                format!(
                    "SNMPv3 engine of {} kept changing its boots/time; it may be rebooting",
                    self.address
                ),
                true,
            ),
            snmp2::Error::Crypto(message) => PluginError::provider(
                "snmp_auth_failed",
                format!(
                    "SNMPv3 answer from {} could not be decrypted: {message}",
                    self.address
                ),
                false,
            ),
            snmp2::Error::Send => PluginError::provider(
                "snmp_send_failed",
                format!("cannot send to {}", self.address),
                true,
            ),
            other => PluginError::provider(
                "snmp_protocol",
                format!(
                    "malformed or unexpected answer from {}: {other}",
                    self.address
                ),
                false,
            ),
        }
    }
}

fn security(
    user: &str,
    auth: Option<&(AuthProtocol, Secret)>,
    privacy: Option<&(Cipher, Secret)>,
) -> Security {
    match auth {
        None => Security::new(user.as_bytes(), b"").with_auth(Auth::NoAuthNoPriv),
        Some((auth_protocol, auth_password)) => {
            let level = match privacy {
                None => Auth::AuthNoPriv,
                Some((cipher, priv_password)) => Auth::AuthPriv {
                    cipher: *cipher,
                    privacy_password: priv_password.expose().as_bytes().to_vec(),
                },
            };
            Security::new(user.as_bytes(), auth_password.expose().as_bytes())
                .with_auth_protocol(*auth_protocol)
                .with_auth(level)
                // Net-SNMP's AES-192/256 key localization (only used when
                // the auth digest is shorter than the privacy key).
                .with_key_extension_method(KeyExtension::Blumenthal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_oid(text: &str, expected: Option<&[u64]>) {
        match (parse_oid(text), expected) {
            (Ok(parts), Some(e)) => assert_eq!(parts, e, "{text}"),
            (Err(_), None) => {}
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_dotted_oids() {
        check_oid("1.3.6.1.2.1.1.1.0", Some(&[1, 3, 6, 1, 2, 1, 1, 1, 0]));
        check_oid(".1.3.6.1", Some(&[1, 3, 6, 1]));
        check_oid(" 1.3 ", Some(&[1, 3]));
        check_oid("1", None);
        check_oid("", None);
        check_oid("3.1", None);
        check_oid("1.3.x", None);
        check_oid("1..3", None);
        check_oid("sysDescr.0", None);
    }

    #[test]
    fn parses_protocol_names() {
        assert_eq!(parse_auth_protocol("SHA"), Ok(AuthProtocol::Sha1));
        assert_eq!(parse_auth_protocol("sha-256"), Ok(AuthProtocol::Sha256));
        assert_eq!(parse_auth_protocol("MD5"), Ok(AuthProtocol::Md5));
        assert!(parse_auth_protocol("SHA3").is_err());
        assert_eq!(parse_priv_protocol("AES"), Ok(Cipher::Aes128));
        assert_eq!(parse_priv_protocol("aes_256"), Ok(Cipher::Aes256));
        assert_eq!(parse_priv_protocol("DES"), Ok(Cipher::Des));
        assert!(parse_priv_protocol("3DES").is_err());
    }

    #[test]
    fn maps_wire_values() {
        let oid = Oid::from(&[1, 3, 6, 1, 4]).expect("valid");
        let cases = [
            (Value::Integer(-3), SnmpValue::Integer(-3)),
            (
                Value::OctetString(b"lo"),
                SnmpValue::OctetString(b"lo".to_vec().into()),
            ),
            (
                Value::ObjectIdentifier(oid),
                SnmpValue::ObjectId("1.3.6.1.4".into()),
            ),
            (
                Value::IpAddress([127, 0, 0, 1]),
                SnmpValue::IpAddress("127.0.0.1".into()),
            ),
            (Value::Counter32(7), SnmpValue::Counter32(7)),
            (Value::Unsigned32(8), SnmpValue::Gauge32(8)),
            (Value::Timeticks(9), SnmpValue::TimeTicks(9)),
            (Value::Counter64(u64::MAX), SnmpValue::Counter64(u64::MAX)),
            (Value::Null, SnmpValue::Null),
            (Value::NoSuchObject, SnmpValue::NoSuchObject),
            (Value::NoSuchInstance, SnmpValue::NoSuchInstance),
            (Value::EndOfMibView, SnmpValue::EndOfMibView),
        ];
        for (wire, expected) in cases {
            assert_eq!(snmp_value(wire).ok(), Some(expected));
        }
    }

    #[test]
    fn names_error_statuses() {
        assert_eq!(error_status_name(2), "noSuchName");
        assert_eq!(error_status_name(16), "authorizationError");
        assert_eq!(error_status_name(99), "snmp_error_status");
    }
}
