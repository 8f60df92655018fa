//! Helpers shared by this crate's benches.

/// `count` indices in `0..n`, in a scrambled order (a fixed linear congruential sequence), so
/// that successive lookups do not touch neighbouring buckets.
pub(crate) fn probes(n: usize, count: usize) -> Vec<usize> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        })
        .collect()
}
