//! The real relay over TLS on port 0: every upload check, idempotence,
//! equivocation evidence, paging, receipts, request authentication and
//! each class of bad input; then a canary scan of its data directory.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use amana_core::envelope::seal::{CaseChange, seal};
use amana_core::envelope::{EnvelopeHeader, Kind, SealedEnvelope};
use amana_core::keys::{DeviceKeys, EpochKey};
use amana_core::receipt::Receipt;
use amana_core::request_auth;
use amana_core::roster::{DeviceEntry, Role, Roster, RosterChange};
use amana_core::{CaseId, Digest, TeamId};
use amana_sync_server::api::{AppState, framing, system_clock};
use amana_sync_server::config::Limits;
use amana_sync_server::server;
use amana_sync_server::store::SqliteStore;
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

struct Relay {
    store: Arc<SqliteStore>,
    base: String,
    client: reqwest::Client,
    relay_key: VerifyingKey,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Everything the relay logged during this test binary's run.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(|| LogSink)
            .init();
    });
}

async fn start(limits: Limits) -> Relay {
    capture_logs();
    server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let transport = server::tls_from_pem(
        cert_pem.as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .await
    .unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("relay.sqlite")).unwrap());
    let key = amana_sync_server::relay_key::load_or_create(&dir.path().join("relay.key")).unwrap();
    let relay_key = key.verifying_key();
    let state = Arc::new(AppState::new(store.clone(), key, limits, system_clock()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, transport, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    Relay {
        store,
        base: format!("https://localhost:{port}"),
        client,
        relay_key,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Relay {
    /// `POST /v1/teams` with `token` (`AmanaTeam …`), or none.
    async fn create_with(&self, genesis: Vec<u8>, token: Option<String>) -> (u16, Vec<u8>) {
        let mut req = self
            .client
            .post(format!("{}/v1/teams", self.base))
            .header("content-type", framing::ROSTER_OP);
        if let Some(token) = token {
            req = req.header("authorization", format!("AmanaTeam {token}"));
        }
        let resp = req.body(genesis).send().await.unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
    }

    /// A token issued as `amana-relay team-token` would, valid an hour.
    fn issue_token(&self) -> String {
        use amana_sync_server::store::RelayStore;
        let token = amana_core::team_token::TeamToken::generate();
        let now = system_clock()();
        self.store
            .issue_team_token(token.hash(), now + 3600)
            .unwrap();
        token.to_text().to_string()
    }

    /// Creates a team with a fresh token.
    async fn create(&self, genesis: Vec<u8>) -> (u16, Vec<u8>) {
        let token = self.issue_token();
        self.create_with(genesis, Some(token)).await
    }

    async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self.dir
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        signer: Option<&DeviceKeys>,
        content_type: &str,
        body: Vec<u8>,
        ts_offset: i64,
    ) -> (u16, Vec<u8>) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .header("content-type", content_type);
        if let Some(keys) = signer {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let mut nonce = [0u8; 16];
            getrandom::getrandom(&mut nonce).unwrap();
            req = req.header(
                "authorization",
                request_auth::sign(keys, method, path, &body, (now + ts_offset) as u64, nonce),
            );
        }
        let resp = req.body(body).send().await.unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
    }

    async fn signed(
        &self,
        method: &str,
        path: &str,
        signer: &DeviceKeys,
        ct: &str,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        self.send(method, path, Some(signer), ct, body, 0).await
    }
}

fn code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("<none>").to_owned()
}

struct Team {
    roster: Roster,
    admin: DeviceKeys,
    field: DeviceKeys,
    epoch: EpochKey,
}

fn team() -> Team {
    let admin = DeviceKeys::generate();
    let field = DeviceKeys::generate();
    let epoch = EpochKey::generate(1);
    let roster = Roster::create(
        TeamId::random(),
        &admin,
        &amana_core::keys::ReceivingKey::generate(0).recipient(),
        Vec::new(),
        epoch.recipient(),
    )
    .unwrap();
    Team {
        roster,
        admin,
        field,
        epoch,
    }
}

impl Team {
    fn path(&self, what: &str) -> String {
        format!("/v1/teams/{}/{what}", self.roster.team())
    }

    fn add_field_op(&mut self) -> Vec<u8> {
        let entry = DeviceEntry {
            signing_key: self.field.verifying_key(),
            recipient: amana_core::keys::ReceivingKey::generate(0).recipient(),
            role: Role::Field,
            label: Vec::new(),
        };
        self.roster
            .append(RosterChange::AddDevice(entry), &self.admin)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    fn envelope(&self, by: &DeviceKeys, seq: u64, prev: Digest, text: &str) -> SealedEnvelope {
        let header = EnvelopeHeader {
            kind: Kind::Changes,
            team: self.roster.team(),
            device: by.device_id(),
            seq,
            prev,
            epoch: 1,
            body_len: 0,
        };
        let change = CaseChange {
            case: CaseId::from_bytes([5; 16]),
            change: text.as_bytes().to_vec(),
        };
        let context = amana_core::envelope::seal::SealContext::under(&self.roster, 0);
        let changes = [change];
        let contents = amana_core::envelope::seal::Contents::changes(context, &changes);
        seal(header, &contents, &self.epoch.recipient(), by).unwrap()
    }

    fn chain(&self, by: &DeviceKeys, n: u64, text: &str) -> Vec<SealedEnvelope> {
        let mut prev = Digest::ZERO;
        (1..=n)
            .map(|seq| {
                let env = self.envelope(by, seq, prev, &format!("{text} {seq}"));
                prev = env.id();
                env
            })
            .collect()
    }
}

async fn setup(relay: &Relay) -> Team {
    let mut t = team();
    let genesis = t.roster.ops()[0].as_bytes().to_vec();
    let (status, body) = relay.create(genesis).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let op = t.add_field_op();
    let (status, body) = relay
        .signed("POST", &t.path("roster"), &t.admin, framing::ROSTER_OP, op)
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    t
}

fn batch(envs: &[SealedEnvelope]) -> Vec<u8> {
    framing::join(
        &envs
            .iter()
            .map(|e| e.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_info_roster_and_receipts_over_tls() {
    let relay = start(Limits::default()).await;
    let (status, _) = relay
        .send("GET", "/healthz", None, "text/plain", Vec::new(), 0)
        .await;
    assert_eq!(status, 200);
    let (_, info) = relay
        .send("GET", "/v1/relay", None, "text/plain", Vec::new(), 0)
        .await;
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["relay_key"], hex::encode(relay.relay_key.as_bytes()));

    let t = setup(&relay).await;
    let (status, body) = relay
        .signed("GET", &t.path("roster"), &t.field, "", Vec::new())
        .await;
    assert_eq!(status, 200);
    let ops = framing_split(&body);
    assert_eq!(
        Roster::verify_pinned(&ops, t.roster.genesis_hash())
            .unwrap()
            .head(),
        t.roster.head()
    );
    // A device holding the roster asks only for what follows it.
    let (status, body) = relay
        .signed(
            "GET",
            &t.path(&format!("roster?after={}", ops.len() - 1)),
            &t.field,
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(
        (status, framing_split(&body)),
        (200, ops[ops.len() - 1..].to_vec())
    );
    let (status, body) = relay
        .signed(
            "GET",
            &t.path(&format!("roster?after={}", ops.len())),
            &t.field,
            "",
            Vec::new(),
        )
        .await;
    assert_eq!((status, body.len()), (200, 0), "nothing new: an empty list");
    // One that holds more than the relay has is told so (a rollback).
    let (status, body) = relay
        .signed(
            "GET",
            &t.path(&format!("roster?after={}", ops.len() + 1)),
            &t.field,
            "",
            Vec::new(),
        )
        .await;
    let refusal: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 409);
    assert_eq!(refusal["error"]["code"], "roster_behind");
    assert_eq!(refusal["roster_len"], ops.len());

    let envs = t.chain(&t.field, 3, "hello");
    let (status, body) = relay
        .signed(
            "POST",
            &t.path("envelopes"),
            &t.field,
            framing::ENVELOPES,
            batch(&envs),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    for (i, item) in v["accepted"].as_array().unwrap().iter().enumerate() {
        let receipt = Receipt::verify(
            &hex::decode(item["receipt"].as_str().unwrap()).unwrap(),
            &relay.relay_key,
        )
        .unwrap();
        assert_eq!(receipt.seq, i as u64 + 1);
        assert_eq!(receipt.envelope, envs[i].id());
        assert_eq!(receipt.cursor, i as u64 + 1);
    }
    // The receipts endpoint gives the same receipts back.
    let path = format!("{}?device={}", t.path("receipts"), t.field.device_id());
    let (status, body) = relay.signed("GET", &path, &t.admin, "", Vec::new()).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["receipts"].as_array().unwrap().len(), 3);
    relay.stop().await;
}

fn framing_split(body: &[u8]) -> Vec<Vec<u8>> {
    framing::split(body, 10_000).unwrap()
}

/// Decodes a page: (next cursor, more, envelope count, envelopes).
fn parse_page(body: &[u8]) -> (u64, bool, Vec<Vec<u8>>) {
    let next = u64::from_be_bytes(body[0..8].try_into().unwrap());
    let more = body[8] == 1;
    let heads = u32::from_be_bytes(body[9..13].try_into().unwrap()) as usize;
    let mut at = 13 + heads * 56;
    let count = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
    at += 4;
    let mut envs = Vec::new();
    for _ in 0..count {
        let len = u32::from_be_bytes(body[at + 8..at + 12].try_into().unwrap()) as usize;
        envs.push(body[at + 12..at + 12 + len].to_vec());
        at += 12 + len;
    }
    (next, more, envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotence_equivocation_gaps_and_paging() {
    let relay = start(Limits::default()).await;
    let t = setup(&relay).await;
    let envelopes_path = t.path("envelopes");
    let up = |envs: Vec<SealedEnvelope>, by: &'static str| {
        let signer = if by == "field" { &t.field } else { &t.admin };
        relay.signed(
            "POST",
            &envelopes_path,
            signer,
            framing::ENVELOPES,
            batch(&envs),
        )
    };
    let envs = t.chain(&t.field, 40, "page");
    assert_eq!(up(envs.clone(), "field").await.0, 200);
    // The same bytes again: success, stored once.
    let (status, body) = up(envs[..5].to_vec(), "field").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["accepted"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["duplicate"] == true)
    );
    // Different bytes at seq 3: 409 equivocation, evidence kept.
    let fork = t.envelope(&t.field, 3, envs[1].id(), "forked");
    let (status, body) = up(vec![fork], "field").await;
    assert_eq!((status, code(&body)), (409, "equivocation".into()));
    // A gap.
    let far = t.envelope(&t.field, 50, envs[39].id(), "far");
    let (status, body) = up(vec![far], "field").await;
    assert_eq!((status, code(&body)), (409, "seq_gap".into()));
    // Another device's envelope uploaded by this one.
    let admin_env = t.envelope(&t.admin, 1, Digest::ZERO, "admin");
    let (status, body) = up(vec![admin_env], "field").await;
    assert_eq!((status, code(&body)), (403, "not_signer".into()));

    // Page through everything, 7 at a time.
    let mut cursor = 0;
    let mut got = Vec::new();
    loop {
        let path = format!("{}?after={cursor}&limit=7", t.path("envelopes"));
        let (status, body) = relay.signed("GET", &path, &t.admin, "", Vec::new()).await;
        assert_eq!(status, 200);
        let (next, more, envs) = parse_page(&body);
        got.extend(envs);
        cursor = next;
        if !more {
            break;
        }
    }
    assert_eq!(
        got,
        envs.iter()
            .map(|e| e.as_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_authentication() {
    let relay = start(Limits::default()).await;
    let mut t = setup(&relay).await;
    let path = t.path("roster");
    let (status, body) = relay.send("GET", &path, None, "", Vec::new(), 0).await;
    assert_eq!((status, code(&body)), (401, "unauthenticated".into()));
    // A device whose clock is six hours off learns the relay's time.
    let (status, body) = relay
        .send("GET", &path, Some(&t.field), "", Vec::new(), -6 * 3600)
        .await;
    assert_eq!((status, code(&body)), (401, "clock_skew".into()));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["server_time"].as_u64().unwrap() > 1_700_000_000);
    // A stranger.
    let stranger = DeviceKeys::generate();
    let (status, body) = relay.signed("GET", &path, &stranger, "", Vec::new()).await;
    assert_eq!((status, code(&body)), (403, "not_a_team_device".into()));
    // A replayed request: the same signed header twice.
    let header = request_auth::sign(
        &t.field,
        "GET",
        &path,
        b"",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        [9; 16],
    );
    for expected in [200, 401] {
        let resp = relay
            .client
            .get(format!("{}{}", relay.base, path))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), expected);
    }
    // A signature over another path.
    let bad = request_auth::sign(
        &t.field,
        "GET",
        "/v1/other",
        b"",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        [8; 16],
    );
    let resp = relay
        .client
        .get(format!("{}{}", relay.base, path))
        .header("authorization", bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(code(&resp.bytes().await.unwrap()), "bad_request_signature");
    // Revoked device: refused, and its envelopes above last_seq too.
    let revoke = t
        .roster
        .append(
            RosterChange::RevokeDevice {
                device: t.field.device_id(),
                last_seq: 0,
                last_id: amana_core::Digest::ZERO,
            },
            &t.admin,
        )
        .unwrap()
        .as_bytes()
        .to_vec();
    let (status, _) = relay
        .signed("POST", &path, &t.admin, framing::ROSTER_OP, revoke)
        .await;
    assert_eq!(status, 201);
    let (status, body) = relay.signed("GET", &path, &t.field, "", Vec::new()).await;
    assert_eq!((status, code(&body)), (403, "revoked_device".into()));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_specific_4xx_and_stores_nothing() {
    let limits = Limits {
        max_batch: 3,
        max_request_bytes: 64 * 1024,
        ..Limits::default()
    };
    let relay = start(limits).await;
    let t = setup(&relay).await;
    let envs = t.chain(&t.field, 4, "x");
    let envelopes_path = t.path("envelopes");
    let post =
        |ct: &'static str, body: Vec<u8>| relay.signed("POST", &envelopes_path, &t.field, ct, body);

    assert_eq!(
        code(&post("application/json", batch(&envs[..1])).await.1),
        "unsupported_media_type"
    );
    let (status, body) = post(framing::ENVELOPES, vec![0, 0, 0, 50, 1]).await;
    assert_eq!((status, code(&body)), (400, "bad_batch".into()));
    assert_eq!(
        code(&post(framing::ENVELOPES, batch(&envs)).await.1),
        "bad_batch"
    );
    // Plaintext JSON where an envelope belongs.
    let header = EnvelopeHeader {
        kind: Kind::Changes,
        team: t.roster.team(),
        device: t.field.device_id(),
        seq: 1,
        prev: Digest::ZERO,
        epoch: 1,
        body_len: 0,
    };
    let plain = SealedEnvelope::sign(header, br#"{"survivor":"CANARY-PLAIN"}"#, &t.field).unwrap();
    let (status, body) = post(framing::ENVELOPES, batch(&[plain])).await;
    assert_eq!((status, code(&body)), (400, "body_not_age".into()));
    // Truncated envelope.
    let mut cut = envs[0].as_bytes().to_vec();
    cut.truncate(cut.len() - 5);
    let (status, body) = post(framing::ENVELOPES, framing::join(&[cut])).await;
    assert_eq!((status, code(&body)), (400, "envelope_truncated".into()));
    // Bad envelope signature.
    let mut flipped = envs[0].as_bytes().to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let (status, body) = post(framing::ENVELOPES, framing::join(&[flipped])).await;
    assert_eq!(
        (status, code(&body)),
        (400, "bad_envelope_signature".into())
    );
    // Too large a body: refused with 413 as soon as the length is known
    // (the relay may close before the client finishes writing).
    let huge = vec![0u8; 200 * 1024];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let auth = request_auth::sign(&t.field, "POST", &envelopes_path, &huge, now, [3; 16]);
    let sent = relay
        .client
        .post(format!("{}{}", relay.base, envelopes_path))
        .header("content-type", framing::ENVELOPES)
        .header("authorization", auth)
        // The relay may close this connection: keep it out of the pool so
        // the next request does not find it dead.
        .header("connection", "close")
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    // Unknown team, bad team id, unknown route.
    let other = team();
    let (status, body) = relay
        .signed("GET", &other.path("roster"), &other.admin, "", Vec::new())
        .await;
    assert_eq!((status, code(&body)), (404, "unknown_team".into()));
    let (status, body) = relay
        .send("GET", "/v1/teams/nothex/roster", None, "", Vec::new(), 0)
        .await;
    assert_eq!((status, code(&body)), (400, "bad_team_id".into()));
    assert_eq!(
        relay.send("GET", "/v2/x", None, "", Vec::new(), 0).await.0,
        404
    );
    // Garbage genesis, and a second creation of the same team.
    let (status, body) = relay.create(b"garbage".to_vec()).await;
    assert_eq!((status, code(&body)), (400, "invalid_roster_op".into()));
    let genesis = t.roster.ops()[0].as_bytes().to_vec();
    let (status, body) = relay.create(genesis).await;
    assert_eq!((status, code(&body)), (409, "team_exists".into()));
    // Random bytes on the socket, and a half-open connection.
    for junk in [
        &b"\x16\x03\x01garbage that is not TLS"[..],
        b"GET / HTTP/1.1\r\n",
    ] {
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
        let _ = raw.write_all(junk);
    }
    // Nothing was stored by any of this, and the relay still serves.
    let (status, body) = relay
        .signed(
            "GET",
            &format!("{}?after=0", t.path("envelopes")),
            &t.admin,
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(parse_page(&body).2.is_empty());
    relay.stop().await;
}

/// Every file in `dir` containing `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).ok()?;
            bytes
                .windows(needle.len())
                .any(|w| w == needle)
                .then(|| path.display().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_data_holds_no_canary() {
    let relay = start(Limits::default()).await;
    let t = setup(&relay).await;
    let canaries = ["CANARY-RELAY-91c3", "كناري-المرحل-٤٢"];
    let mut prev = Digest::ZERO;
    let mut envs = Vec::new();
    for seq in 1..=20 {
        let env = t.envelope(
            &t.field,
            seq,
            prev,
            &format!("{} {} {seq}", canaries[0], canaries[1]),
        );
        prev = env.id();
        envs.push(env);
    }
    let (status, _) = relay
        .signed(
            "POST",
            &t.path("envelopes"),
            &t.field,
            framing::ENVELOPES,
            batch(&envs),
        )
        .await;
    assert_eq!(status, 200);
    // While running (WAL present) and after shutdown.
    for canary in canaries {
        assert_eq!(
            files_containing(relay.dir.path(), canary.as_bytes()),
            Vec::<String>::new()
        );
    }
    let dir = relay.stop().await;
    for canary in canaries {
        assert_eq!(
            files_containing(dir.path(), canary.as_bytes()),
            Vec::<String>::new()
        );
    }
    // The scan can fail: the relay's own team id is in its database.
    assert!(!files_containing(dir.path(), t.roster.team().as_bytes()).is_empty());
    // The logs record the upload, but no body and no authorization header.
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(logs.contains("envelopes accepted"), "logs were captured");
    for forbidden in [canaries[0], canaries[1], "Amana device=", "sig="] {
        assert!(!logs.contains(forbidden), "logs contain {forbidden:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_and_size_checks_over_http() {
    let limits = Limits {
        max_envelope_bytes: 1500,
        ..Limits::default()
    };
    let relay = start(limits).await;
    let t = setup(&relay).await;
    let path = t.path("envelopes");
    let first = t.envelope(&t.field, 1, Digest::ZERO, "one");
    let first_id = first.id();
    assert_eq!(
        relay
            .signed("POST", &path, &t.field, framing::ENVELOPES, batch(&[first]))
            .await
            .0,
        200
    );
    // seq 2 chained to something other than the stored head.
    let wrong = t.envelope(&t.field, 2, Digest::of(b"elsewhere"), "two");
    let (status, body) = relay
        .signed("POST", &path, &t.field, framing::ENVELOPES, batch(&[wrong]))
        .await;
    assert_eq!((status, code(&body)), (409, "prev_mismatch".into()));
    // An envelope body over the configured limit.
    let mut noise = vec![0u8; 4000];
    getrandom::getrandom(&mut noise).unwrap();
    let incompressible = hex::encode(noise);
    let big = t.envelope(&t.field, 2, first_id, &incompressible);
    let (status, body) = relay
        .signed("POST", &path, &t.field, framing::ENVELOPES, batch(&[big]))
        .await;
    assert_eq!((status, code(&body)), (413, "envelope_oversized".into()));
    // A huge request header is refused with a 4xx, and the relay goes on.
    let resp = relay
        .client
        .get(format!("{}/healthz", relay.base))
        .header("x-padding", "a".repeat(200 * 1024))
        .send()
        .await;
    if let Ok(resp) = resp {
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    assert_eq!(
        relay
            .send("GET", "/healthz", None, "", Vec::new(), 0)
            .await
            .0,
        200
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    use std::io::Read;
    let limits = Limits {
        header_timeout_secs: 1,
        ..Limits::default()
    };
    let relay = start(limits).await;
    let port = relay.port();
    let closed = tokio::task::spawn_blocking(move || {
        // A TCP connection that never finishes its TLS handshake.
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        raw.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let _ = raw.read(&mut buf);
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed < std::time::Duration::from_secs(25),
        "half-open connection kept for {closed:?}"
    );
    assert_eq!(
        relay
            .send("GET", "/healthz", None, "", Vec::new(), 0)
            .await
            .0,
        200
    );
    relay.stop().await;
}

/// Team creation needs a token the operator issued: none, a malformed one,
/// an unknown one, a used one and an expired one are refused, and nothing
/// is created. (Before: anyone could create teams until `max_teams`.)
#[tokio::test]
async fn creating_a_team_needs_a_single_use_token() {
    let relay = start(Limits::default()).await;
    let genesis = |t: &Team| t.roster.ops()[0].as_bytes().to_vec();
    let t = team();
    let (status, body) = relay.create_with(genesis(&t), None).await;
    assert_eq!((status, code(&body)), (401, "team_token_required".into()));
    for bad in [
        "amana-team-nothex".to_owned(),
        amana_core::team_token::TeamToken::generate()
            .to_text()
            .to_string(),
    ] {
        let (status, body) = relay.create_with(genesis(&t), Some(bad)).await;
        assert_eq!((status, code(&body)), (403, "team_token_invalid".into()));
    }
    let token = relay.issue_token();
    let (status, _) = relay.create_with(genesis(&t), Some(token.clone())).await;
    assert_eq!(status, 201);
    let (status, body) = relay.create_with(genesis(&team()), Some(token)).await;
    assert_eq!(
        (status, code(&body)),
        (403, "team_token_invalid".into()),
        "single use"
    );
    use amana_sync_server::store::RelayStore;
    let expired = amana_core::team_token::TeamToken::generate();
    relay.store.issue_team_token(expired.hash(), 1).unwrap();
    let (status, body) = relay
        .create_with(genesis(&team()), Some(expired.to_text().to_string()))
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, "team_token_invalid".into()),
        "expired"
    );
    let dir = relay.stop().await;
    let store = SqliteStore::open(&dir.path().join("relay.sqlite")).unwrap();
    assert!(store.roster(t.roster.team()).is_ok());
    let teams: i64 = rusqlite::Connection::open(dir.path().join("relay.sqlite"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0))
        .unwrap();
    assert_eq!(teams, 1, "only the team with a valid token");
}
