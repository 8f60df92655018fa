//! The reverse proxy and upstream TLS (being written).
