//! `Str`: a validated UTF-8 string that is a cheap `Bytes` slice of the read buffer.
//!
//! Owns: the string type used for topics, client ids, usernames. Pure.

use bytes::Bytes;

/// An immutable UTF-8 string backed by `Bytes` (cloning is a refcount bump).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Str(Bytes);

// Hashes exactly like `str`, so `HashMap<Str, _>` can be looked up with a `&str`.
impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Str {
    /// Wraps bytes that are valid UTF-8; `None` otherwise.
    pub fn from_utf8(bytes: Bytes) -> Option<Str> {
        std::str::from_utf8(&bytes).ok()?;
        Some(Str(bytes))
    }

    /// A static string, without copying.
    pub const fn from_static(s: &'static str) -> Str {
        Str(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor (`from_utf8`, `from_static`, `From<String>`,
        // `From<&str>`) only accepts valid UTF-8, and the bytes are immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        Str(Bytes::from(s))
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
