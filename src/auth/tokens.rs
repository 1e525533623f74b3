//! Simple auth tokens (etcd `server/auth/simple_token.go`, `--auth-token=simple`): opaque
//! `<16 random ASCII letters>.<raft index>` strings mapped to a user name, member-local and
//! kept in memory only. A token lives `--auth-token-ttl` after its last use; deleting a user,
//! changing its password or disabling auth drops its tokens.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::limits::{SIMPLE_TOKEN_LETTERS, SIMPLE_TOKEN_SWEEP_EVERY, SIMPLE_TOKENS_MAX};

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A fresh random token prefix (etcd `genTokenPrefix`).
///
/// # Errors
/// The operating system's random source failed.
pub fn token_prefix() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SIMPLE_TOKEN_LETTERS];
    getrandom::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(LETTERS[usize::from(*b) % LETTERS.len()]))
        .collect())
}

#[derive(Debug)]
struct Entry {
    user: String,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Table {
    tokens: HashMap<String, Entry>,
    assigned: usize,
}

/// The token table.
#[derive(Debug)]
pub struct SimpleTokens {
    ttl: Duration,
    table: Mutex<Table>,
}

impl SimpleTokens {
    /// An empty table whose tokens live `ttl` after their last use.
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl,
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `token` for `user` (apply of Authenticate).
    pub fn assign(&self, token: String, user: String) {
        let now = Instant::now();
        let mut t = self.lock();
        t.assigned = t.assigned.wrapping_add(1);
        if t.assigned.is_multiple_of(SIMPLE_TOKEN_SWEEP_EVERY) || t.tokens.len() >= SIMPLE_TOKENS_MAX {
            t.tokens.retain(|_, e| e.deadline > now);
        }
        if t.tokens.len() >= SIMPLE_TOKENS_MAX
            && let Some(oldest) = t
                .tokens
                .iter()
                .min_by_key(|(_, e)| e.deadline)
                .map(|(k, _)| k.clone())
        {
            t.tokens.remove(&oldest);
        }
        t.tokens.insert(
            token,
            Entry {
                user,
                deadline: now + self.ttl,
            },
        );
    }

    /// The user of a live `token`, extending its life (etcd `tokenSimple.info` resets the TTL
    /// on use); `None` for unknown or expired tokens.
    pub fn user(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut t = self.lock();
        let entry = t.tokens.get_mut(token)?;
        if entry.deadline <= now {
            t.tokens.remove(token);
            return None;
        }
        entry.deadline = now + self.ttl;
        Some(entry.user.clone())
    }

    /// Drops every token of `user`.
    pub fn invalidate_user(&self, user: &str) {
        self.lock().tokens.retain(|_, e| e.user != user);
    }

    /// Drops every token (auth disabled).
    pub fn clear(&self) {
        self.lock().tokens.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_sixteen_ascii_letters() {
        let p = token_prefix().unwrap();
        assert_eq!(p.len(), SIMPLE_TOKEN_LETTERS);
        assert!(p.bytes().all(|b| b.is_ascii_alphabetic()));
        assert_ne!(p, token_prefix().unwrap());
    }

    #[test]
    fn tokens_expire_and_are_dropped_with_their_user() {
        let t = SimpleTokens::new(Duration::from_secs(60));
        t.assign("a.1".into(), "u".into());
        t.assign("b.2".into(), "v".into());
        assert_eq!(t.user("a.1").as_deref(), Some("u"));
        t.invalidate_user("u");
        assert_eq!(t.user("a.1"), None);
        assert_eq!(t.user("b.2").as_deref(), Some("v"));
        t.clear();
        assert_eq!(t.user("b.2"), None);
        let short = SimpleTokens::new(Duration::ZERO);
        short.assign("c.3".into(), "u".into());
        assert_eq!(short.user("c.3"), None, "a token past its TTL is invalid");
    }
}
