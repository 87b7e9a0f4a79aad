//! Bearer tokens: the tokens file, the check of one request, and the SSE stream ticket.
//!
//! The file has one token per line, optionally followed by the namespaces it may read:
//!
//! ```text
//! # comments and blank lines are ignored
//! s3cr3t-token-for-everything
//! web-token shop,checkout
//! ```
//!
//! Only SHA-256 digests of the tokens are kept. A presented token is hashed and compared with
//! every known digest in constant time, so neither the time taken nor an early exit tells
//! which token, or how much of one, matched.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::ofrep::hex;

/// A token is refused when shorter than this: a guessable token is no protection.
pub const MIN_TOKEN_BYTES: usize = 16;

/// One line of the tokens file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    digest: [u8; 32],
    /// `None`: every namespace.
    namespaces: Option<Vec<String>>,
}

impl TokenEntry {
    /// A short, non-secret name of the token for rate-limit keys and logs.
    pub fn id(&self) -> String {
        hex(&self.digest[..6])
    }

    fn allows(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|name| name == namespace))
    }
}

/// Why a tokens file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tokens file line {line}: {message}")]
pub struct TokensError {
    pub line: usize,
    pub message: String,
}

/// Parses the tokens file.
pub fn parse_tokens(text: &str) -> Result<Vec<TokenEntry>, TokensError> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let token = fields.next().unwrap_or_default();
        let scope = fields.next();
        if fields.next().is_some() {
            return Err(TokensError {
                line: line_number,
                message: "expected `token` or `token namespace1,namespace2`".into(),
            });
        }
        if token.len() < MIN_TOKEN_BYTES {
            return Err(TokensError {
                line: line_number,
                message: format!(
                    "the token is {} bytes; at least {MIN_TOKEN_BYTES} are required",
                    token.len()
                ),
            });
        }
        let namespaces = match scope {
            None => None,
            Some(list) => {
                let names: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect();
                if names.is_empty() {
                    return Err(TokensError {
                        line: line_number,
                        message: "an empty namespace list".into(),
                    });
                }
                Some(names)
            }
        };
        tokens.push(TokenEntry {
            digest: Sha256::digest(token.as_bytes()).into(),
            namespaces,
        });
    }
    Ok(tokens)
}

/// What the tokens say about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid, and allowed to read the namespace; carries the token's [`TokenEntry::id`].
    Allowed { id: String },
    /// No `Authorization: Bearer …` header (401).
    Missing,
    /// A bearer token that is not in the file (401).
    Invalid,
    /// A valid token not allowed for this namespace (403).
    Forbidden { id: String },
}

/// The index of the entry whose digest is `digest`, looked for in constant time.
fn find(tokens: &[TokenEntry], digest: &[u8; 32]) -> Option<usize> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, entry) in tokens.iter().enumerate() {
        let equal = entry.digest.ct_eq(digest);
        index.conditional_assign(&(i as u64), equal);
        found |= equal;
    }
    bool::from(found).then_some(index as usize)
}

/// Checks the `Authorization` header of a request for `namespace`.
pub fn check(tokens: &[TokenEntry], authorization: Option<&[u8]>, namespace: &str) -> Verdict {
    let Some(token) = authorization.and_then(bearer) else {
        return Verdict::Missing;
    };
    let digest: [u8; 32] = Sha256::digest(token).into();
    match find(tokens, &digest).and_then(|index| tokens.get(index)) {
        None => Verdict::Invalid,
        Some(entry) if entry.allows(namespace) => Verdict::Allowed { id: entry.id() },
        Some(entry) => Verdict::Forbidden { id: entry.id() },
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    let (scheme, rest) = header.split_at_checked(7)?;
    let token = rest.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

/// The stream ticket of a token for a namespace: what the SSE URL of a bulk answer carries
/// as `?access=`, because a browser's `EventSource` cannot send an `Authorization` header.
/// A digest of the token's digest and the namespace: it opens that namespace's event stream
/// only, reveals nothing of the token, and stops working when the token leaves the file.
fn ticket_of(entry: &TokenEntry, namespace: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"rollgate-relay sse ticket 1\0");
    hasher.update(entry.digest);
    hasher.update((namespace.len() as u64).to_be_bytes());
    hasher.update(namespace.as_bytes());
    hasher.finalize().into()
}

/// The ticket for the token `id` (from [`Verdict::Allowed`]) and `namespace`.
pub fn ticket(tokens: &[TokenEntry], id: &str, namespace: &str) -> Option<String> {
    tokens
        .iter()
        .find(|entry| entry.id() == id)
        .map(|entry| hex(&ticket_of(entry, namespace)))
}

/// Checks a stream ticket for `namespace`, in constant time over the tokens allowed for it.
pub fn check_ticket(tokens: &[TokenEntry], ticket: &str, namespace: &str) -> Verdict {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, entry) in tokens.iter().enumerate() {
        let expected = hex(&ticket_of(entry, namespace));
        let equal = if expected.len() == ticket.len() {
            expected.as_bytes().ct_eq(ticket.as_bytes())
        } else {
            subtle::Choice::from(0)
        };
        let equal = equal & subtle::Choice::from(u8::from(entry.allows(namespace)));
        index.conditional_assign(&(i as u64), equal);
        found |= equal;
    }
    match bool::from(found)
        .then(|| tokens.get(index as usize))
        .flatten()
    {
        Some(entry) => Verdict::Allowed { id: entry.id() },
        None => Verdict::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "# relay tokens\n\nall-namespaces-token-1\n  web-token-0123456789 shop,checkout \n";

    #[test]
    fn the_file_names_tokens_and_their_namespaces() {
        let tokens = parse_tokens(FILE).unwrap();
        assert_eq!(tokens.len(), 2);
        let check = |token: &str, namespace| {
            check(
                &tokens,
                Some(format!("Bearer {token}").as_bytes()),
                namespace,
            )
        };
        assert!(matches!(
            check("all-namespaces-token-1", "anything"),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            check("web-token-0123456789", "checkout"),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            check("web-token-0123456789", "billing"),
            Verdict::Forbidden { .. }
        ));
        assert_eq!(check("web-token-012345678", "shop"), Verdict::Invalid);
        assert_eq!(check("web-token-01234567890", "shop"), Verdict::Invalid);
        assert_eq!(super::check(&tokens, None, "shop"), Verdict::Missing);
        assert_eq!(
            super::check(&tokens, Some(b"Basic abc"), "shop"),
            Verdict::Missing
        );
        assert_eq!(
            super::check(&tokens, Some(b"Bearer "), "shop"),
            Verdict::Missing
        );
        assert!(matches!(
            super::check(&tokens, Some(b"bearer   all-namespaces-token-1 "), "x"),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_tokens("ok-token-0123456789\nshort\n")
                .unwrap_err()
                .line,
            2
        );
        let error = parse_tokens("a-long-enough-token a b").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("tokens file line 1: expected"),
            "{error}"
        );
        assert!(parse_tokens("a-long-enough-token ,").is_err());
        assert_eq!(parse_tokens("# nothing\n").unwrap(), []);
    }

    #[test]
    fn a_ticket_opens_one_namespace_of_one_live_token() {
        let tokens = parse_tokens(FILE).unwrap();
        let Verdict::Allowed { id } = check(&tokens, Some(b"Bearer web-token-0123456789"), "shop")
        else {
            panic!("token refused")
        };
        let ticket = ticket(&tokens, &id, "shop").unwrap();
        assert_eq!(ticket.len(), 64);
        assert!(!ticket.contains("web-token"));
        assert_eq!(
            check_ticket(&tokens, &ticket, "shop"),
            Verdict::Allowed { id: id.clone() }
        );
        assert_eq!(check_ticket(&tokens, &ticket, "checkout"), Verdict::Invalid);
        assert_eq!(
            check_ticket(&tokens, &ticket[..63], "shop"),
            Verdict::Invalid
        );
        // A ticket for a namespace outside the token's scope is never valid.
        let outside = hex(&ticket_of(&tokens[1], "billing"));
        assert_eq!(check_ticket(&tokens, &outside, "billing"), Verdict::Invalid);
        let rotated = parse_tokens("all-namespaces-token-1\n").unwrap();
        assert_eq!(check_ticket(&rotated, &ticket, "shop"), Verdict::Invalid);
    }
}
