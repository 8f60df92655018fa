//! The `gateway` binary (being written).

fn main() {}
