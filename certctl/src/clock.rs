//! The CLI's one reading of the wall clock; everything else takes the instant as an argument.

use tls_core::OffsetDateTime;

/// The current time, used when `--at` is not given.
#[allow(clippy::disallowed_methods, reason = "the CLI's clock")]
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
