#!/usr/bin/env bash
# Seeds the corpora and runs every fuzz target for SECONDS each (default 600), one after the
# other, niced, one job each; prints executions, coverage and crashes per target.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its nightly-only flags. Seeds come from the shared test vectors
# ($CERTGATE_VECTORS, or testdata/vectors in the repository) and from fuzz/seeds/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${1:-600}"
shift || true
all_targets=(upload_parse record_decode legacy_decrypt cert_id gateway_config api_definition control_api request_path)
targets=("${@:-${all_targets[@]}}")
vectors="${CERTGATE_VECTORS:-$here/../testdata/vectors}"
# control_api reads its certificates and PEM bodies from the vectors while it runs.
export CERTGATE_VECTORS="$vectors"
export RUSTC_BOOTSTRAP=1

seed() {
    local target="$1" dir="corpus/$1"
    mkdir -p "$dir"
    if [[ -d "seeds/$target" ]]; then
        cp seeds/"$target"/* "$dir"/
    fi
    [[ -d "$vectors" ]] || { echo "no vectors at $vectors: seeding from fuzz/seeds only" >&2; return; }
    case "$target" in
        upload_parse | record_decode)
            cp "$vectors"/*.pem "$dir"/ ;;
        legacy_decrypt)
            # IV (16 bytes) followed by the ciphertext of each legacy block in Tyk's records.
            for file in "$vectors"/*.tyk-stored.pem; do
                local iv body
                iv="$(sed -n 's/^DEK-Info: AES-256-CBC,\([0-9a-fA-F]*\).*/\1/p' "$file")"
                [[ -n "$iv" ]] || continue
                body="$(awk '/BEGIN ENCRYPTED PRIVATE KEY/{on=1; next} /END ENCRYPTED PRIVATE KEY/{on=0}
                             on && !/:/ && NF' "$file")"
                { printf '%s' "$iv" | xxd -r -p; printf '%s' "$body" | base64 -d; } \
                    > "$dir/$(basename "$file" .pem)"
            done ;;
        cert_id)
            grep -o '"expect_id": "[^"]*"' "$vectors/manifest.json" | cut -d'"' -f4 |
                while read -r id; do printf '%s' "$id" > "$dir/id-$id"; done ;;
        request_path)
            # The attack's path forms come from fuzz/seeds/request_path.
            ;;
        control_api)
            # Structured input: the target takes stored IDs and PEM bodies from the vectors
            # itself, so raw files would be no better a start than an empty corpus.
            ;;
    esac
}

# Build once, then run the binaries directly: `cargo fuzz run` would rebuild before each target
# whenever the crates under test change.
nice -n 10 cargo fuzz build --release
bin_dir="$here/target/$(rustc -vV | sed -n 's/^host: //p')/release"
mkdir -p logs
summary=()
for target in "${targets[@]}"; do
    seed "$target"
    log="logs/$target.log"
    echo "== $target: ${seconds}s" >&2
    status=0
    mkdir -p "artifacts/$target"
    nice -n 10 "$bin_dir/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -print_final_stats=1 "corpus/$target" >"$log" 2>&1 || status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    last="$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' || true)"
    crashes="$(find "artifacts/$target" -type f 2>/dev/null | wc -l)"
    line="$target: execs=${execs:-?} ${last:-cov: ?} crashes=$crashes exit=$status"
    echo "$line"
    summary+=("$line")
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
