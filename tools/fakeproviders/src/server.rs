//! The part every fake shares: an axum server on loopback that records requests, plays scripted
//! replies and hands the rest to a provider-specific [`Provider`].

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{Mode, Received, Reply, Stats};

/// How the request body was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/x-www-form-urlencoded`, parsed.
    Form,
    /// `multipart/form-data`, parsed.
    Multipart,
    /// `application/json`, parsed.
    Json,
    /// Declared as one of the above but did not parse.
    Malformed,
    /// Any other content type, or none.
    Other,
}

/// A request as a provider sees it.
pub(crate) struct Incoming {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub kind: BodyKind,
    pub form: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
    /// The query string's parameters.
    pub query: Vec<(String, String)>,
}

impl Incoming {
    /// The first query parameter with this name.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first form field with this name, if the body was a form.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// HTTP Basic credentials, if any and well formed.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let value = self.headers.get("authorization")?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_string(), pass.to_string()))
    }

    /// A bearer token, if any.
    pub fn bearer(&self) -> Option<String> {
        let value = self.headers.get("authorization")?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    }
}

/// What a fake answers.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<(&'static str, String)>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, value: serde_json::Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(("application/json", value.to_string())),
        }
    }

    /// A plain-text answer.
    pub fn text(status: u16, text: &str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(("text/plain; charset=utf-8", text.to_string())),
        }
    }

    /// Add a response header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Answer {
        self.headers.push((name, value));
        self
    }

    fn into_response(self) -> Response {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        let body = match self.body {
            Some((content_type, text)) => {
                builder = builder.header("content-type", content_type);
                Body::from(text)
            }
            None => Body::empty(),
        };
        builder.body(body).unwrap_or_else(|_| {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

/// The provider-specific half of a fake.
pub(crate) trait Provider: Send + Sync + 'static {
    /// Validate and answer a request (no script in effect).
    fn answer(&self, req: &Incoming) -> Answer;
    /// Answer a scripted reply; `None` (for [`Reply::Slow`]) means "handle normally".
    fn scripted(&self, reply: &Reply) -> Option<Answer>;
    /// Who an accepted request was for, to count repeats per recipient.
    fn recipient(&self, _req: &Incoming) -> Option<String> {
        None
    }
}

/// Running counts behind [`Stats`].
#[derive(Default)]
struct Counts {
    stats: Stats,
    per_recipient: HashMap<String, u64>,
}

impl Counts {
    fn count(&mut self, status: u16, recipient: Option<String>, send: bool) {
        self.stats.requests += 1;
        *self.stats.by_status.entry(status).or_default() += 1;
        if !send {
            self.stats.lookups += 1;
            return;
        }
        if (200..300).contains(&status) {
            self.stats.accepted += 1;
            if let Some(r) = recipient {
                let n = self.per_recipient.entry(r).or_default();
                *n += 1;
                if *n == 1 {
                    self.stats.recipients += 1;
                } else {
                    self.stats.repeats += 1;
                }
            }
        }
    }
}

/// The panic payload that drops a connection in [`Mode::Reset`].
struct ConnectionReset;

pub(crate) struct Shared<P> {
    pub provider: P,
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    delay: Mutex<Duration>,
    mode: Mutex<Mode>,
    counts: Mutex<Counts>,
    recording: AtomicBool,
    arrived: Notify,
}

/// Lock, ignoring poisoning: a panicking test thread must not hide the requests from others.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake; the server stops when this is dropped.
pub(crate) struct Server<P> {
    pub shared: Arc<Shared<P>>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl<P: Provider> Server<P> {
    /// Bind `addr` and serve in the background.
    pub async fn start(addr: SocketAddr, provider: P) -> std::io::Result<Server<P>> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            provider,
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
            mode: Mutex::new(Mode::Ok),
            counts: Mutex::new(Counts::default()),
            recording: AtomicBool::new(true),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/__mode", get(get_mode::<P>).post(set_mode::<P>))
            .route("/__stats", get(get_stats::<P>))
            .fallback(handle::<P>)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // Errors here only happen when the listener dies; the tests will see refused
            // connections, which is the honest symptom.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Server { shared, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared.requests).clone()
    }

    pub fn script(&self, replies: Vec<Reply>) {
        lock(&self.shared.script).extend(replies);
    }

    pub fn clear_script(&self) {
        lock(&self.shared.script).clear();
    }

    pub fn set_delay(&self, d: Duration) {
        *lock(&self.shared.delay) = d;
    }

    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
        *lock(&self.shared.counts) = Counts::default();
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    pub fn mode(&self) -> Mode {
        lock(&self.shared.mode).clone()
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.counts).stats.clone()
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a request landing in between still wakes us.
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests();
            }
        }
    }
}

impl<P> Drop for Server<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_answer<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(v) => Answer::json(200, v).into_response(),
        Err(e) => Answer::text(500, &e.to_string()).into_response(),
    }
}

async fn get_mode<P: Provider>(State(shared): State<Arc<Shared<P>>>) -> Response {
    json_answer(&*lock(&shared.mode))
}

async fn set_mode<P: Provider>(State(shared): State<Arc<Shared<P>>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Mode>(&body) {
        Ok(mode) => {
            *lock(&shared.mode) = mode.clone();
            json_answer(&mode)
        }
        Err(e) => Answer::text(400, &format!("not a mode: {e}")).into_response(),
    }
}

async fn get_stats<P: Provider>(State(shared): State<Arc<Shared<P>>>) -> Response {
    json_answer(&lock(&shared.counts).stats)
}

async fn handle<P: Provider>(
    State(shared): State<Arc<Shared<P>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let mode = lock(&shared.mode).clone();
    if mode == Mode::Reset && lock(&shared.script).is_empty() {
        let incoming = parse(method, uri, headers, body).await;
        record(&shared, incoming, at, 0);
        // Unwinding the connection's task drops the socket before a byte of the answer is
        // written: the client sees the connection close, as on a reset. `resume_unwind`
        // skips the panic hook, so nothing is printed.
        std::panic::resume_unwind(Box::new(ConnectionReset));
    }
    // Run in a task of its own: when a client times out and hangs up, the provider still
    // finishes (and records) the request, exactly the ambiguous case a real provider creates.
    let work = tokio::spawn(process(shared, at, mode, method, uri, headers, body));
    match work.await {
        Ok(response) => response,
        Err(_) => Answer::text(500, "fake provider failed").into_response(),
    }
}

async fn process<P: Provider>(
    shared: Arc<Shared<P>>,
    at: Instant,
    mode: Mode,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scripted = lock(&shared.script).pop_front();
    let mut wait = *lock(&shared.delay);
    if let Some(Reply::Slow(d)) = &scripted {
        wait += *d;
    }
    // A script overrides the mode for its requests.
    let mode = if scripted.is_some() { Mode::Ok } else { mode };
    if let Mode::Hang { hang_ms } = mode {
        wait += Duration::from_millis(hang_ms);
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }

    let incoming = parse(method, uri, headers, body).await;
    let by_mode = match mode {
        Mode::Ok | Mode::Reset => None,
        Mode::Status { status } => Some(Reply::Status(status)),
        Mode::TooManyRequests { retry_after_secs } => {
            Some(Reply::TooManyRequests { retry_after_secs })
        }
        Mode::Hang { .. } => Some(Reply::Status(503)),
    };
    let answer = scripted
        .as_ref()
        .or(by_mode.as_ref())
        .and_then(|reply| shared.provider.scripted(reply))
        .unwrap_or_else(|| shared.provider.answer(&incoming));
    let status = answer.status;
    record(&shared, incoming, at, status);
    answer.into_response()
}

/// Count a request and, when recording, keep it.
fn record<P: Provider>(shared: &Shared<P>, incoming: Incoming, at: Instant, status: u16) {
    let recipient = if (200..300).contains(&status) {
        shared.provider.recipient(&incoming)
    } else {
        None
    };
    // Reads (Twilio's message list) are not sends.
    let send = incoming.method != Method::GET;
    lock(&shared.counts).count(status, recipient, send);
    if shared.recording.load(Ordering::Relaxed) {
        let received = Received {
            method: incoming.method.to_string(),
            path: incoming.path.clone(),
            headers: incoming
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            form: incoming.form,
            json: incoming.json,
            at,
            status,
        };
        lock(&shared.requests).push(received);
        shared.arrived.notify_waiters();
    }
}

/// The media type without parameters, lower case.
fn essence(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

async fn parse(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Incoming {
    let mut incoming = Incoming {
        method: method.clone(),
        path: uri.path().to_string(),
        headers: headers.clone(),
        kind: BodyKind::Other,
        form: Vec::new(),
        json: None,
        query: axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map(|q| q.0)
            .unwrap_or_default(),
    };
    // Rebuild a request so axum's own extractors do the decoding.
    let rebuild = || {
        let mut req = axum::http::Request::new(Body::from(body.clone()));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers.clone();
        req
    };
    match essence(&headers).as_str() {
        "application/x-www-form-urlencoded" => {
            match axum::extract::Form::<Vec<(String, String)>>::from_request(rebuild(), &()).await {
                Ok(axum::extract::Form(fields)) => {
                    incoming.kind = BodyKind::Form;
                    incoming.form = fields;
                }
                Err(_) => incoming.kind = BodyKind::Malformed,
            }
        }
        "multipart/form-data" => match Multipart::from_request(rebuild(), &()).await {
            Ok(mut mp) => {
                incoming.kind = BodyKind::Multipart;
                loop {
                    match mp.next_field().await {
                        Ok(Some(field)) => {
                            let name = field.name().unwrap_or("").to_string();
                            match field.bytes().await {
                                Ok(bytes) => incoming
                                    .form
                                    .push((name, String::from_utf8_lossy(&bytes).into_owned())),
                                Err(_) => {
                                    incoming.kind = BodyKind::Malformed;
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            incoming.kind = BodyKind::Malformed;
                            break;
                        }
                    }
                }
            }
            Err(_) => incoming.kind = BodyKind::Malformed,
        },
        "application/json" => match serde_json::from_slice(&body) {
            Ok(value) => {
                incoming.kind = BodyKind::Json;
                incoming.json = Some(value);
            }
            Err(_) => incoming.kind = BodyKind::Malformed,
        },
        _ => {}
    }
    incoming
}

/// `n` random bytes; good enough for ids, not for secrets.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        // A fresh RandomState has fresh keys, so hashing a counter gives unpredictable bytes
        // without a `rand` dependency.
        let v = std::collections::hash_map::RandomState::new()
            .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// `digits` random lower-case hex digits (Twilio SIDs use lower case).
pub(crate) fn random_hex(digits: usize) -> String {
    random_bytes(digits.div_ceil(2))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(digits)
        .collect()
}

/// The canonical reason phrase, lower case ("service unavailable").
pub(crate) fn reason(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_string()
}

/// Seconds since the Unix epoch.
pub(crate) fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
