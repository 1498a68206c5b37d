//! Validated identifiers: past the boundary, ids are `Id`, never bare strings.

use std::{borrow::Borrow, fmt, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validate::{MAX_ID_LEN, ValidationError, check_id};

/// A hive or worker id that satisfies the contract: 1–128 characters of `[A-Za-z0-9._:-]`.
///
/// Cheap to clone (shared), ordered by its text so registries list entries sorted by id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(Arc<str>);

impl Id {
    /// Parses `s` under the id rule, naming `field` in the error.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, ValidationError> {
        check_id(field, s)?;
        Ok(Self(Arc::from(s)))
    }

    /// Turns a machine's host name into a valid id, the default hive id: surrounding whitespace
    /// is dropped, characters outside `[A-Za-z0-9._:-]` become `-`, the result is cut to the id
    /// limit, and an empty one becomes `localhost`.
    pub fn from_host_name(host_name: &str) -> Self {
        let id: String = host_name
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(MAX_ID_LEN)
            .collect();
        if id.is_empty() {
            Self(Arc::from("localhost"))
        } else {
            Self(Arc::from(id))
        }
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Id::parse("id", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::is_valid_id;

    fn host_id(host_name: &str) -> String {
        Id::from_host_name(host_name).as_str().to_owned()
    }

    #[test]
    fn host_names_become_valid_ids() {
        assert_eq!(host_id("studio.lan"), "studio.lan");
        assert_eq!(host_id("my host/1"), "my-host-1");
        assert_eq!(host_id("my host"), "my-host");
        assert_eq!(host_id("  "), "localhost");
        assert_eq!(host_id(""), "localhost");
        assert_eq!(host_id(&"x".repeat(300)).len(), MAX_ID_LEN);
        assert!(is_valid_id(&host_id("ümlaut")));
    }
}
