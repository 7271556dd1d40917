//! Scopes (RFC 6749 §3.3): a space-delimited set of scope tokens.
//!
//! ```text
//! scope       = scope-token *( SP scope-token )
//! scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
//! ```
//! Parsing is strict: an empty string, a leading, trailing or doubled space, or any character outside
//! `scope-token` is an error. An absent `scope` parameter is modelled as `Option::<Scope>::None` by callers;
//! an empty one is never silently replaced by a default.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest scope string accepted, to bound work on hostile input.
pub const MAX_SCOPE_LEN: usize = 4096;

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The string is empty.
    #[error("scope is empty")]
    Empty,
    /// A separator is not a single space between two tokens.
    #[error("scope tokens must be separated by single spaces")]
    BadSeparator,
    /// A character outside `%x21 / %x23-5B / %x5D-7E`.
    #[error("scope contains a character not allowed in a scope token")]
    BadCharacter,
    /// Longer than [`MAX_SCOPE_LEN`].
    #[error("scope is longer than {MAX_SCOPE_LEN} bytes")]
    TooLong,
}

/// A non-empty set of scope tokens, kept sorted and de-duplicated.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(BTreeSet<String>);

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

impl Scope {
    /// Parse a scope string strictly (see the module docs).
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        if s.is_empty() {
            return Err(ScopeError::Empty);
        }
        if s.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        let mut set = BTreeSet::new();
        for token in s.split(' ') {
            if token.is_empty() {
                return Err(ScopeError::BadSeparator);
            }
            if !token.bytes().all(is_scope_char) {
                return Err(ScopeError::BadCharacter);
            }
            set.insert(token.to_owned());
        }
        Ok(Scope(set))
    }

    /// A scope from tokens already known to be valid; `None` if any is invalid or there are none.
    pub fn from_tokens<I, S>(tokens: I) -> Option<Scope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set: BTreeSet<String> = tokens.into_iter().map(|t| t.as_ref().to_owned()).collect();
        let valid = !set.is_empty() && set.iter().all(|t| !t.is_empty() && t.bytes().all(is_scope_char));
        valid.then_some(Scope(set))
    }

    /// Whether `token` is in the set.
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tokens in both; `None` when they share none.
    pub fn intersection(&self, other: &Scope) -> Option<Scope> {
        let set: BTreeSet<String> = self.0.intersection(&other.0).cloned().collect();
        (!set.is_empty()).then_some(Scope(set))
    }

    /// The tokens of `required` missing from `self`.
    pub fn missing<'a>(&self, required: &'a Scope) -> Vec<&'a str> {
        required.0.iter().filter(|t| !self.0.contains(*t)).map(String::as_str).collect()
    }

    /// The tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Scope` has at least one token. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Scope::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_normalises() {
        let s = Scope::parse("notes:write notes:read notes:read").unwrap();
        assert_eq!(s.to_string(), "notes:read notes:write");
        assert_eq!(s.len(), 2);
        assert!(s.contains("notes:read"));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Scope::parse(""), Err(ScopeError::Empty));
        assert_eq!(Scope::parse(" a"), Err(ScopeError::BadSeparator));
        assert_eq!(Scope::parse("a "), Err(ScopeError::BadSeparator));
        assert_eq!(Scope::parse("a  b"), Err(ScopeError::BadSeparator));
        assert_eq!(Scope::parse("a\tb"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse("a\"b"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse("a\\b"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse("é"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse("a\n"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse(&"a".repeat(MAX_SCOPE_LEN + 1)), Err(ScopeError::TooLong));
    }

    #[test]
    fn set_operations() {
        let granted = Scope::parse("a b c").unwrap();
        let asked = Scope::parse("a c").unwrap();
        assert!(asked.is_subset_of(&granted));
        assert!(!granted.is_subset_of(&asked));
        assert_eq!(granted.intersection(&Scope::parse("c d").unwrap()).unwrap().to_string(), "c");
        assert_eq!(granted.intersection(&Scope::parse("d").unwrap()), None);
        assert_eq!(asked.missing(&Scope::parse("a b d").unwrap()), vec!["b", "d"]);
        assert_eq!(Scope::from_tokens(["x", "y"]).unwrap().to_string(), "x y");
        assert_eq!(Scope::from_tokens(Vec::<String>::new()), None);
        assert_eq!(Scope::from_tokens(["bad token"]), None);
    }

    #[test]
    fn serde_is_a_string_and_validates() {
        let s: Scope = serde_json::from_str("\"b a\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"a b\"");
        assert!(serde_json::from_str::<Scope>("\"\"").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(input in "\\PC{0,64}") {
            if let Ok(s) = Scope::parse(&input) {
                let again = Scope::parse(&s.to_string()).unwrap();
                prop_assert_eq!(again, s);
            }
        }

        #[test]
        fn valid_token_lists_parse(tokens in proptest::collection::vec("[!#-\\[\\]-~]{1,12}", 1..8)) {
            let joined = tokens.join(" ");
            let s = Scope::parse(&joined).unwrap();
            for t in &tokens { prop_assert!(s.contains(t)); }
        }
    }
}
