//! Validation rules applied after a body decodes: id syntax and string lengths.

use std::fmt;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A body that decoded but breaks a contract rule; the queen answers it with `422`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The dotted path of the offending field, e.g. `worker.id`.
    pub field: &'static str,
    /// Why the value was refused.
    pub reason: String,
}

impl ValidationError {
    /// Creates an error for `field` with a short lowercase reason.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

/// Returns whether `s` is 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks the id rule for `field`.
pub fn check_id(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.is_empty() {
        Err(ValidationError::new(field, "must not be empty"))
    } else if s.len() > MAX_ID_LEN {
        Err(ValidationError::new(
            field,
            format!("must be at most {MAX_ID_LEN} characters"),
        ))
    } else if !is_valid_id(s) {
        Err(ValidationError::new(
            field,
            "may only contain letters, digits and . _ : -",
        ))
    } else {
        Ok(())
    }
}

/// Checks that a required string is 1..=`max` characters with no control characters.
pub fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    check_optional_text(field, s, max)
}

/// Checks that a string is at most `max` characters with no control characters; empty is allowed.
pub fn check_optional_text(
    field: &'static str,
    s: &str,
    max: usize,
) -> Result<(), ValidationError> {
    // Most values are short ASCII: no character can be a control character above U+007F
    // except U+0080..=U+009F, so one pass over the bytes settles them.
    if s.is_ascii() {
        return if s.len() > max {
            Err(ValidationError::new(
                field,
                format!("must be at most {max} characters"),
            ))
        } else if s.bytes().any(|b| b.is_ascii_control()) {
            Err(ValidationError::new(
                field,
                "must not contain control characters",
            ))
        } else {
            Ok(())
        };
    }
    if s.chars().count() > max {
        Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ))
    } else if s.chars().any(char::is_control) {
        Err(ValidationError::new(
            field,
            "must not contain control characters",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract_alphabet() {
        assert!(is_valid_id("gpu0-llama"));
        assert!(is_valid_id("studio.lan:9301_a"));
        assert!(is_valid_id(&"a".repeat(128)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"a".repeat(129)));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id("slash/no"));
        assert!(!is_valid_id("ümlaut"));
    }

    #[test]
    fn the_schema_pattern_names_exactly_the_control_characters() {
        assert_eq!(crate::TEXT_PATTERN, r"^[^\u0000-\u001F\u007F-\u009F]*$");
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            let excluded = c <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&c);
            assert_eq!(c.is_control(), excluded, "{c:?}");
        }
    }

    #[test]
    fn text_rejects_empty_long_and_control() {
        assert!(check_text("f", "", 4).is_err());
        assert!(check_text("f", "abcde", 4).is_err());
        assert!(check_text("f", "a\nb", 4).is_err());
        assert!(check_text("f", "abcd", 4).is_ok());
        assert!(check_optional_text("f", "", 4).is_ok());
        assert!(check_optional_text("f", "a\u{7f}", 4).is_err());
        assert!(check_optional_text("f", "a\u{85}", 4).is_err());
        assert!(check_optional_text("f", "äöüß", 4).is_ok());
        assert!(check_optional_text("f", "äöüßx", 4).is_err());
    }
}
