//! The outbox's files: endpoints, pending deliveries, dead letters and the
//! delivery log (see `webhook_state` for the layout). Every
//! method does its own IO and keeps no copy of a delivery in memory, so
//! what is on disk is the truth after a crash.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::clock::{now_millis, rfc3339};
use super::schedule::DEFAULT_SCHEDULE_MS;
use super::sign;
use crate::error::Problem;

/// `[webhooks.delivery]`: how events are delivered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Delays after failed attempts 1, 2, ... in ms (default: 5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 10 h); then the dead-letter list.
    #[serde(default = "default_schedule")]
    pub retry_schedule_ms: Vec<u64>,
    /// Each delay moves by up to this many percent either way (default 20).
    #[serde(default = "default_jitter")]
    pub jitter_percent: u32,
    /// How often the worker looks for due deliveries and new events (default 500 ms).
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
    /// Connect timeout per attempt (default 5 s).
    #[serde(default = "default_connect")]
    pub connect_timeout_ms: u64,
    /// Whole-attempt timeout (default 15 s).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The longest `Retry-After` honoured (default 24 h).
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_ms: u64,
}

fn default_schedule() -> Vec<u64> {
    DEFAULT_SCHEDULE_MS.to_vec()
}
fn default_jitter() -> u32 {
    20
}
fn default_poll() -> u64 {
    500
}
fn default_connect() -> u64 {
    5_000
}
fn default_timeout() -> u64 {
    15_000
}
fn default_max_retry_after() -> u64 {
    86_400_000
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_schedule_ms: default_schedule(),
            jitter_percent: default_jitter(),
            poll_ms: default_poll(),
            connect_timeout_ms: default_connect(),
            timeout_ms: default_timeout(),
            max_retry_after_ms: default_max_retry_after(),
        }
    }
}

/// `[[webhooks.endpoints]]`: an endpoint from the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredEndpoint {
    /// Its id (letters, digits, `-`, `_`).
    pub id: String,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// Event types it takes: exact names, `prefix.*`, or `*` (default).
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    /// Its `whsec_` secret, as a reference (`${env:VAR}`, `${file:/path}`).
    pub secret: String,
}

fn all_events() -> Vec<String> {
    vec!["*".to_owned()]
}

/// A signing secret of an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSecret {
    pub(crate) secret: String,
    pub(crate) created_at: String,
    /// Unix ms after which it no longer signs (an old secret in rotation).
    pub(crate) expires_at_ms: Option<u64>,
}

/// An endpoint as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Endpoint {
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    pub(crate) secrets: Vec<StoredSecret>,
    pub(crate) disabled: Option<String>,
    pub(crate) source: String,
    pub(crate) created_at: String,
}

impl Endpoint {
    /// Whether it takes events of `event_type`.
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|filter| {
            filter == "*"
                || filter == event_type
                || filter.strip_suffix(".*").is_some_and(|prefix| {
                    event_type
                        .strip_prefix(prefix)
                        .is_some_and(|r| r.starts_with('.'))
                })
        })
    }

    /// The keys that sign now: every secret not yet expired.
    pub(crate) fn keys(&self, now_ms: u64) -> Vec<Vec<u8>> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at_ms.is_none_or(|t| t > now_ms))
            .filter_map(|s| sign::key_of(&s.secret).ok())
            .collect()
    }

    /// The view for the API: secrets masked.
    pub(crate) fn view(&self) -> Value {
        let secrets: Vec<Value> = self
            .secrets
            .iter()
            .map(|s| {
                let tail: String = s
                    .secret
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                json!({"secret": format!("whsec_…{tail}"), "created_at": s.created_at,
                       "expires_at": s.expires_at_ms.map(rfc3339)})
            })
            .collect();
        json!({"id": self.id, "url": self.url, "events": self.events, "secrets": secrets,
               "disabled": self.disabled, "source": self.source, "created_at": self.created_at})
    }
}

/// One delivery of one message to one endpoint, as its outbox file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Delivery {
    /// `webhook-id`: the same on every attempt.
    pub(crate) message_id: String,
    pub(crate) endpoint: String,
    pub(crate) event_type: String,
    /// The exact body sent.
    pub(crate) body: String,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_ms: u64,
    pub(crate) created_ms: u64,
    /// Its place in the order of creation, across restarts: 1 + the
    /// highest in the outbox and dead-letter folders when the outbox opened
    /// (0 in files written before it existed, which sort first).
    #[serde(default)]
    pub(crate) seq: u64,
    pub(crate) last_error: Option<String>,
    /// Why it is a dead letter (dead letters only).
    #[serde(default)]
    pub(crate) dead_reason: Option<String>,
}

impl Delivery {
    pub(crate) fn file_name(&self) -> String {
        format!("{}.{}.json", self.message_id, self.endpoint)
    }

    pub(crate) fn view(&self) -> Value {
        let body: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        json!({"id": format!("{}.{}", self.message_id, self.endpoint), "message_id": self.message_id,
               "endpoint": self.endpoint, "event_type": self.event_type, "attempts": self.attempts,
               "next_attempt_at": rfc3339(self.next_attempt_ms), "created_at": rfc3339(self.created_ms),
               "last_error": self.last_error, "dead_reason": self.dead_reason, "payload": body})
    }
}

/// The outbox of one daemon.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    config: DeliveryConfig,
    /// Serializes changes to `endpoints.json` and moves between folders.
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    /// The next delivery's [`Delivery::seq`].
    next_seq: AtomicU64,
}

fn io_problem(action: &str, path: &Path, e: impl std::fmt::Display) -> Problem {
    Problem::internal(format!("cannot {action} {}: {e}", path.display()))
}

/// A delivery log's size at which it is rotated (one older file is kept).
pub(crate) const LOG_ROTATE_BYTES: u64 = 4 * 1024 * 1024;

/// `<log>.1`.
fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends `text` to `path` and syncs it; first moves a file of `limit`
/// bytes or more to `<path>.1`, replacing an older one.
fn append_rotating(path: &Path, text: &str, limit: u64) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= limit) {
        std::fs::rename(path, rotated(path))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// `n` bytes from the kernel's random source.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, Problem> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Problem::internal(format!("reading /dev/urandom: {e}")))?;
    Ok(bytes)
}

/// Whether `id` is a usable endpoint id.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks an endpoint URL: absolute `http`/`https` (WHATWG URL), a host,
/// no credentials, and not an address no receiver lives at: link-local
/// (169.254.0.0/16 and fe80::/10, where cloud metadata services answer),
/// unspecified, broadcast or multicast. Loopback and private addresses are
/// allowed: an ISP's own systems live there.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "endpoint url {url:?} contains spaces or control characters"
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        format!("endpoint url {url:?} is not an absolute URL ({e}); write https://host/path")
    })?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!(
            "endpoint url {url:?} must start with https:// or http://"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "endpoint url {url:?} carries credentials; authenticate the receiver by the signature instead"
        ));
    }
    let ip = match parsed.host() {
        None => return Err(format!("endpoint url {url:?} has no host")),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
    };
    let unusable = match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_unicast_link_local() || v6.is_unspecified() || v6.is_multicast()
        }
    };
    if unusable {
        return Err(format!(
            "endpoint url {url:?} points at {ip}, a link-local, unspecified, broadcast or \
             multicast address where no webhook receiver lives (link-local is where cloud \
             metadata services answer); give the receiver's own address or host name"
        ));
    }
    Ok(())
}

impl Outbox {
    /// Opens the outbox in `dir` (`<state dir>/webhooks`).
    pub(crate) fn open(dir: &Path, config: DeliveryConfig) -> anyhow::Result<Self> {
        for sub in ["outbox", "dead", "log"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        }
        if config.retry_schedule_ms.is_empty() {
            anyhow::bail!(
                "[webhooks.delivery] retry_schedule_ms is empty; give at least one delay"
            );
        }
        let path = dir.join("endpoints.json");
        let endpoints: BTreeMap<String, Endpoint> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("{} is not a list of webhook endpoints: {e}", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
        };
        let outbox = Self {
            dir: dir.to_owned(),
            config,
            endpoints: Mutex::new(endpoints),
            next_seq: AtomicU64::new(1),
        };
        let highest = ["outbox", "dead"]
            .into_iter()
            .flat_map(|folder| outbox.read_folder(folder))
            .map(|d| d.seq)
            .max()
            .unwrap_or(0);
        outbox.next_seq.store(highest + 1, Ordering::SeqCst);
        Ok(outbox)
    }

    /// The delivery settings.
    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Endpoint>> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn save_endpoints(&self, endpoints: &BTreeMap<String, Endpoint>) -> Result<(), Problem> {
        let path = self.dir.join("endpoints.json");
        let bytes = serde_json::to_vec_pretty(endpoints)
            .map_err(|e| Problem::internal(format!("encoding endpoints: {e}")))?;
        plugkit_durable::write_atomic(&path, &bytes, 0o600)
            .map_err(|e| io_problem("write", &path, e))
    }

    /// Adds the configured endpoints that the state does not know yet
    /// (after that the state, changed through the API, wins).
    pub(crate) fn seed(
        &self,
        configured: &[ConfiguredEndpoint],
        resolve: &dyn Fn(&str) -> Result<String, String>,
    ) -> anyhow::Result<()> {
        let mut endpoints = self.lock();
        let mut changed = false;
        for c in configured {
            if endpoints.contains_key(&c.id) {
                continue;
            }
            let secret = resolve(&c.secret).map_err(|e| {
                anyhow::anyhow!("[[webhooks.endpoints]] `{}`: its secret: {e}", c.id)
            })?;
            let endpoint = self
                .new_endpoint(&c.id, &c.url, c.events.clone(), Some(secret), "config")
                .map_err(|p| anyhow::anyhow!("[[webhooks.endpoints]] `{}`: {}", c.id, p.error))?;
            endpoints.insert(c.id.clone(), endpoint);
            changed = true;
        }
        if changed {
            self.save_endpoints(&endpoints)
                .map_err(|p| anyhow::anyhow!(p.error))?;
        }
        Ok(())
    }

    fn new_endpoint(
        &self,
        id: &str,
        url: &str,
        events: Vec<String>,
        secret: Option<String>,
        source: &str,
    ) -> Result<Endpoint, Problem> {
        if !valid_id(id) {
            return Err(Problem::unprocessable(format!(
                "endpoint id {id:?} must be 1–64 letters, digits, `-` or `_`"
            )));
        }
        check_url(url).map_err(Problem::unprocessable)?;
        if events.is_empty() {
            return Err(Problem::unprocessable(
                "an endpoint needs at least one event type (`*` for all)",
            ));
        }
        let unknown = super::events::unknown_event_filters(&events);
        if !unknown.is_empty() {
            return Err(Problem::unprocessable(format!(
                "endpoint `{id}` subscribes to {} the daemon never sends: {}; use `*`, \
                 `<group>.*` or these types (GET /api/webhooks/event-types lists them): {}",
                if unknown.len() == 1 {
                    "an event type"
                } else {
                    "event types"
                },
                unknown
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                super::events::EVENT_TYPES.join(", ")
            )));
        }
        let secret = match secret {
            Some(s) => {
                sign::key_of(&s).map_err(|e| Problem::unprocessable(e.to_string()))?;
                s
            }
            None => sign::secret_from(&random_bytes(32)?),
        };
        let now = now_millis();
        Ok(Endpoint {
            id: id.to_owned(),
            url: url.to_owned(),
            events,
            secrets: vec![StoredSecret {
                secret,
                created_at: rfc3339(now),
                expires_at_ms: None,
            }],
            disabled: None,
            source: source.to_owned(),
            created_at: rfc3339(now),
        })
    }

    /// Creates an endpoint; returns its view with the secret shown once.
    pub(crate) fn create(
        &self,
        id: &str,
        url: &str,
        events: Vec<String>,
        secret: Option<String>,
    ) -> Result<Value, Problem> {
        let mut endpoints = self.lock();
        if endpoints.contains_key(id) {
            return Err(Problem::new(
                crate::error::ProblemKind::Conflict,
                format!("endpoint `{id}` exists; delete it first or choose another id"),
            ));
        }
        let endpoint = self.new_endpoint(id, url, events, secret, "api")?;
        let mut view = endpoint.view();
        view["secret"] = Value::from(endpoint.secrets[0].secret.clone());
        endpoints.insert(id.to_owned(), endpoint);
        self.save_endpoints(&endpoints)?;
        Ok(view)
    }

    /// Every endpoint, secrets masked.
    pub(crate) fn list(&self) -> Value {
        Value::from(self.lock().values().map(Endpoint::view).collect::<Vec<_>>())
    }

    fn unknown(id: &str) -> Problem {
        Problem::not_found(format!(
            "no webhook endpoint `{id}`; GET /api/webhooks/endpoints lists them"
        ))
    }

    /// One endpoint, secrets masked.
    pub(crate) fn get(&self, id: &str) -> Result<Value, Problem> {
        self.lock()
            .get(id)
            .map(Endpoint::view)
            .ok_or_else(|| Self::unknown(id))
    }

    /// The endpoint itself (for the worker).
    pub(crate) fn endpoint(&self, id: &str) -> Option<Endpoint> {
        self.lock().get(id).cloned()
    }

    /// Deletes an endpoint and drops its pending deliveries.
    pub(crate) fn delete(&self, id: &str) -> Result<Value, Problem> {
        let mut endpoints = self.lock();
        endpoints.remove(id).ok_or_else(|| Self::unknown(id))?;
        self.save_endpoints(&endpoints)?;
        let mut dropped = 0;
        for delivery in self.pending() {
            if delivery.endpoint == id {
                let path = self.dir.join("outbox").join(delivery.file_name());
                if std::fs::remove_file(&path).is_ok() {
                    dropped += 1;
                }
            }
        }
        Ok(json!({"deleted": id, "pending_dropped": dropped}))
    }

    /// Adds a new secret; the old ones keep signing for `grace_secs`.
    /// Returns the view with the new secret shown once.
    pub(crate) fn rotate(&self, id: &str, grace_secs: u64) -> Result<Value, Problem> {
        let mut endpoints = self.lock();
        let endpoint = endpoints.get_mut(id).ok_or_else(|| Self::unknown(id))?;
        let now = now_millis();
        let until = now.saturating_add(grace_secs.saturating_mul(1000));
        for old in &mut endpoint.secrets {
            old.expires_at_ms = Some(old.expires_at_ms.map_or(until, |t| t.min(until)));
        }
        endpoint
            .secrets
            .retain(|s| s.expires_at_ms.is_none_or(|t| t > now));
        let secret = sign::secret_from(&random_bytes(32)?);
        endpoint.secrets.push(StoredSecret {
            secret: secret.clone(),
            created_at: rfc3339(now),
            expires_at_ms: None,
        });
        let mut view = endpoint.view();
        view["secret"] = Value::from(secret);
        self.save_endpoints(&endpoints)?;
        Ok(view)
    }

    /// Enables (`None`) or disables an endpoint.
    pub(crate) fn set_disabled(&self, id: &str, reason: Option<String>) -> Result<Value, Problem> {
        let mut endpoints = self.lock();
        let endpoint = endpoints.get_mut(id).ok_or_else(|| Self::unknown(id))?;
        endpoint.disabled = reason;
        let view = endpoint.view();
        self.save_endpoints(&endpoints)?;
        Ok(view)
    }

    /// Queues `data` as an event of `event_type` for every enabled endpoint
    /// that wants it, under a new message id.
    pub fn emit(&self, event_type: &str, data: Value) {
        match random_bytes(12) {
            Ok(bytes) => {
                let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                self.emit_as(&format!("msg_{id}"), event_type, data);
            }
            Err(p) => tracing::error!("webhook event {event_type} not queued: {}", p.error),
        }
    }

    /// [`Outbox::emit`] under `message_id` (the same id for the same
    /// event, so queuing it twice queues it once).
    pub(crate) fn emit_as(&self, message_id: &str, event_type: &str, data: Value) {
        let now = now_millis();
        let body = json!({"type": event_type, "timestamp": rfc3339(now), "data": data}).to_string();
        let targets: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.disabled.is_none() && e.wants(event_type))
            .map(|e| e.id.clone())
            .collect();
        for endpoint in targets {
            let delivery = Delivery {
                message_id: message_id.to_owned(),
                endpoint,
                event_type: event_type.to_owned(),
                body: body.clone(),
                attempts: 0,
                next_attempt_ms: now,
                created_ms: now,
                seq: 0,
                last_error: None,
                dead_reason: None,
            };
            let path = self.dir.join("outbox").join(delivery.file_name());
            if path.exists() {
                continue;
            }
            let delivery = Delivery {
                seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
                ..delivery
            };
            if let Err(p) = self.write_delivery(&path, &delivery) {
                tracing::error!("webhook event {event_type} not queued: {}", p.error);
            }
        }
    }

    fn write_delivery(&self, path: &Path, delivery: &Delivery) -> Result<(), Problem> {
        let bytes = serde_json::to_vec(delivery)
            .map_err(|e| Problem::internal(format!("encoding a delivery: {e}")))?;
        plugkit_durable::write_atomic(path, &bytes, 0o600).map_err(|e| io_problem("write", path, e))
    }

    fn read_folder(&self, folder: &str) -> Vec<Delivery> {
        let dir = self.dir.join(folder);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut deliveries: Vec<Delivery> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.') && name.ends_with(".json")
            })
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                match serde_json::from_slice(&bytes) {
                    Ok(d) => Some(d),
                    Err(err) => {
                        tracing::error!(
                            "{} is not a webhook delivery ({err}); left in place",
                            e.path().display()
                        );
                        None
                    }
                }
            })
            .collect();
        // The order of creation: by sequence number, not by time (events
        // queued in the same millisecond, a clock set back across a restart)
        // nor by message id (`msg_audit_10000_…` sorts before `…_9999_…`).
        deliveries.sort_by(|a, b| {
            (a.seq, a.created_ms, &a.message_id).cmp(&(b.seq, b.created_ms, &b.message_id))
        });
        deliveries
    }

    /// Pending deliveries, oldest first.
    pub(crate) fn pending(&self) -> Vec<Delivery> {
        self.read_folder("outbox")
    }

    /// Dead letters, oldest first.
    pub(crate) fn dead(&self) -> Vec<Delivery> {
        self.read_folder("dead")
    }

    /// Done: the endpoint answered 2xx. Only now is the file removed.
    pub(crate) fn delivered(&self, delivery: &Delivery) -> Result<(), Problem> {
        let path = self.dir.join("outbox").join(delivery.file_name());
        std::fs::remove_file(&path).map_err(|e| io_problem("remove", &path, e))?;
        plugkit_durable::sync_dir(&self.dir.join("outbox"))
            .map_err(|e| io_problem("sync", &path, e))
    }

    /// Stores the next attempt of a failed delivery.
    pub(crate) fn reschedule(&self, delivery: &Delivery) -> Result<(), Problem> {
        let path = self.dir.join("outbox").join(delivery.file_name());
        self.write_delivery(&path, delivery)
    }

    /// Moves a delivery to the dead-letter list with `reason`.
    pub(crate) fn bury(&self, delivery: &Delivery, reason: &str) -> Result<(), Problem> {
        let mut dead = delivery.clone();
        dead.dead_reason = Some(reason.to_owned());
        let path = self.dir.join("dead").join(dead.file_name());
        self.write_delivery(&path, &dead)?;
        self.delivered(delivery)
    }

    /// Puts a dead letter back in the outbox, due now, attempts reset.
    pub(crate) fn replay(&self, id: &str) -> Result<Value, Problem> {
        let found = self
            .dead()
            .into_iter()
            .find(|d| format!("{}.{}", d.message_id, d.endpoint) == id)
            .ok_or_else(|| {
                Problem::not_found(format!(
                    "no dead letter `{id}`; GET /api/webhooks/dead-letters lists them"
                ))
            })?;
        match self.endpoint(&found.endpoint) {
            None => return Err(Self::unknown(&found.endpoint)),
            Some(e) if e.disabled.is_some() => {
                return Err(Problem::new(
                    crate::error::ProblemKind::Conflict,
                    format!(
                        "endpoint `{}` is disabled ({}); enable it with POST /api/webhooks/endpoints/{}/enable first",
                        e.id,
                        e.disabled.unwrap_or_default(),
                        e.id
                    ),
                ))
            }
            Some(_) => {}
        }
        let mut again = found.clone();
        again.attempts = 0;
        again.next_attempt_ms = now_millis();
        again.dead_reason = None;
        let path = self.dir.join("outbox").join(again.file_name());
        self.write_delivery(&path, &again)?;
        let dead_path = self.dir.join("dead").join(found.file_name());
        std::fs::remove_file(&dead_path).map_err(|e| io_problem("remove", &dead_path, e))?;
        Ok(again.view())
    }

    /// Appends one attempt to the endpoint's delivery log (synced); at
    /// [`LOG_ROTATE_BYTES`] the log moves to `<endpoint>.jsonl.1`.
    pub(crate) fn log_attempt(&self, endpoint: &str, line: &Value) {
        let path = self.dir.join("log").join(format!("{endpoint}.jsonl"));
        if let Err(e) = append_rotating(&path, &format!("{line}\n"), LOG_ROTATE_BYTES) {
            tracing::error!("cannot append to {}: {e}", path.display());
        }
    }

    /// The last `limit` attempts to `endpoint`, newest first.
    pub(crate) fn log(&self, endpoint: &str, limit: usize) -> Result<Value, Problem> {
        if !self.lock().contains_key(endpoint) {
            return Err(Self::unknown(endpoint));
        }
        let path = self.dir.join("log").join(format!("{endpoint}.jsonl"));
        let mut text = String::new();
        for file in [rotated(&path), path.clone()] {
            match std::fs::read_to_string(&file) {
                Ok(t) => text.push_str(&t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_problem("read", &file, e)),
            }
        }
        let lines: Vec<Value> = text
            .lines()
            .rev()
            .take(limit)
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok(Value::from(lines))
    }

    /// Creates the audit cursor at `audit_log`'s current end when there is
    /// none yet (0 for a log not written yet).
    pub(crate) fn start_cursor(&self, audit_log: &Path) -> anyhow::Result<()> {
        let path = self.dir.join("audit-cursor.json");
        if path.exists() {
            return Ok(());
        }
        let offset = std::fs::metadata(audit_log).map_or(0, |m| m.len());
        let cursor = json!({"offset": offset}).to_string();
        plugkit_durable::write_atomic(&path, cursor.as_bytes(), 0o600)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }

    /// The folder the worker keeps its audit cursor in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;
