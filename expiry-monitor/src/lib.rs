//! The certificate expiry monitor (being written).
