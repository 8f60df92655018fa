//! Sessions of the certificate page: random tokens kept only as their SHA-256, a CSRF token per
//! session, absolute expiry on the store's clock, and a limit on failed sign-ins.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

/// Most live sessions; the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;
/// Failed sign-ins allowed per client address per window.
const FAILURES_PER_CLIENT: u32 = 5;
/// Failed sign-ins allowed from everyone together per window.
const FAILURES_OVERALL: u32 = 50;
/// The window of the sign-in limit.
const FAILURE_WINDOW: Duration = Duration::minutes(1);

/// A signed-in session.
#[derive(Clone, Debug)]
pub(super) struct Session {
    /// The token forms must carry for a change.
    pub(super) csrf: String,
    /// When the session ends.
    pub(super) expires: OffsetDateTime,
}

/// Live sessions by the SHA-256 of their token.
#[derive(Debug)]
pub(super) struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<Failures>,
    rng: SystemRandom,
}

#[derive(Debug, Default)]
struct Failures {
    window_start: Option<OffsetDateTime>,
    overall: u32,
    by_client: HashMap<String, u32>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
            rng: SystemRandom::new(),
        }
    }

    fn random_token(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).ok()?;
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A new session: its token (for the cookie only) and the session. `None` when the system
    /// has no randomness to give.
    pub(super) fn create(&self, now: OffsetDateTime) -> Option<(String, Session)> {
        let token = self.random_token()?;
        let session = Session {
            csrf: self.random_token()?,
            expires: now + self.ttl,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(hash, _)| *hash)
        {
            live.remove(&oldest);
        }
        live.insert(token_hash(&token), session.clone());
        Some((token, session))
    }

    /// The live session of `token`; an expired one is forgotten.
    pub(super) fn find(&self, token: &str, now: OffsetDateTime) -> Option<Session> {
        let hash = token_hash(token);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(&hash) {
            Some(session) if session.expires > now => Some(session.clone()),
            Some(_) => {
                live.remove(&hash);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub(super) fn end(&self, token: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token_hash(token));
    }

    /// Seconds to wait before `client` may try to sign in again; `None` when it may now.
    pub(super) fn sign_in_blocked(&self, client: &str, now: OffsetDateTime) -> Option<i64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let start = failures.roll(now);
        let blocked = failures.overall >= FAILURES_OVERALL
            || failures.by_client.get(client).copied().unwrap_or(0) >= FAILURES_PER_CLIENT;
        blocked.then(|| (start + FAILURE_WINDOW - now).whole_seconds().max(1))
    }

    /// Counts a failed sign-in of `client`.
    pub(super) fn sign_in_failed(&self, client: &str, now: OffsetDateTime) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.roll(now);
        failures.overall = failures.overall.saturating_add(1);
        if failures.by_client.len() < MAX_SESSIONS || failures.by_client.contains_key(client) {
            let count = failures.by_client.entry(client.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
        }
    }
}

impl Failures {
    /// Starts a new window when the current one is over; the window's start.
    fn roll(&mut self, now: OffsetDateTime) -> OffsetDateTime {
        match self.window_start {
            Some(start) if now < start + FAILURE_WINDOW && now >= start => start,
            _ => {
                *self = Self {
                    window_start: Some(now),
                    ..Self::default()
                };
                now
            }
        }
    }
}

/// Constant-time equality of two tokens.
pub(super) fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sessions_expire_and_end() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let sessions = Sessions::new(Duration::minutes(10));
        let (token, session) = sessions.create(now).unwrap();
        assert_eq!(token.len(), 43);
        assert_ne!(token, session.csrf);
        assert!(sessions.find(&token, now + Duration::minutes(9)).is_some());
        assert!(sessions.find("other", now).is_none());
        assert!(sessions.find(&token, now + Duration::minutes(10)).is_none());
        let (token, _) = sessions.create(now).unwrap();
        sessions.end(&token);
        assert!(sessions.find(&token, now).is_none());
    }

    #[test]
    fn failed_sign_ins_are_limited_per_client_for_a_minute() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let sessions = Sessions::new(Duration::minutes(10));
        for _ in 0..FAILURES_PER_CLIENT {
            assert_eq!(sessions.sign_in_blocked("1.2.3.4", now), None);
            sessions.sign_in_failed("1.2.3.4", now);
        }
        assert_eq!(sessions.sign_in_blocked("1.2.3.4", now), Some(60));
        assert_eq!(sessions.sign_in_blocked("5.6.7.8", now), None);
        assert_eq!(
            sessions.sign_in_blocked("1.2.3.4", now + Duration::seconds(61)),
            None
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
