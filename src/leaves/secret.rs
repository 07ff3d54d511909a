//! A token, password or key, from a flag or a kubeconfig.

use std::fmt;

/// A secret whose `Debug` never shows the value, so that an `{:?}` in a log
/// line or a test failure cannot leak it. It has no `Display`.
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret("s3cr3t".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}
