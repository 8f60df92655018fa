//! `certctl`: look at a certificate file the way certgate sees it, and manage the certificates
//! of a store.
//!
//! It shows how a program uses `tls-core`: [`tls_core::Upload::parse`] for PEM text a user
//! would add (certificates with an optional key, or a public key), [`tls_core::Record::decode`]
//! for a record as the store keeps it (with an encrypted private key), certificate IDs, metadata,
//! validity at an instant, and decrypting a stored key with the encoding secret. It never prints
//! private key bytes. The store commands show `cert-store` over Redis (`--redis`) and a client
//! of a gateway's `/tyk/certs` control API (`--url`).
//!
//! ```text
//! certctl id [--org ORG] [--at RFC3339] FILE
//!     the certificate ID alone: the org ID followed by the SHA-256 of the leaf's DER; an
//!     expired certificate has an ID too (printed, with a note on standard error)
//! certctl inspect [--org ORG] [--secret S] [--json] [--at RFC3339] [--warn-days N] FILE
//!     ID, fingerprint, names, dates, validity, key type, SPKI pin, chain length, and with
//!     --secret, whether a stored record's key decrypts; --json prints one JSON object
//!
//! certctl add [--org ORG] [--at RFC3339] TARGET FILE      prints the new ID
//! certctl list [--org ORG] [--detailed] [--json] TARGET
//! certctl get [--json] TARGET ID[,ID...]
//! certctl delete TARGET ID
//! certctl apis TARGET ID                                  (--url only)
//! certctl expiry [--org ORG] [--within-days N] [--warn-days N] [--at RFC3339] TARGET
//!     a table by days remaining, soonest first; red/yellow/green on a terminal
//! certctl rekey [--new-secret S] [--key-format F] TARGET  (--redis only)
//!     re-encrypts every key with the new secret (default: the current one) in the format
//!     of --key-format: `legacy` makes a certgate store readable by Tyk nodes, `modern` back;
//!     resumable (records already done are left alone)
//! certctl reindex TARGET                                  (--redis only)
//!     Tyk's index migration for every org: indexes records no index lists (SCAN, once)
//! certctl acme status [--json] TARGET                     (--url only)
//!     each name the gateway obtains certificates for by ACME: certificate ID, expiry, next
//!     renewal (or retry), consecutive failures and the last error; then the counts since start
//!
//! TARGET is a gateway:  --url https://HOST:PORT (or http://) --secret S
//!                       [--cacert FILE | --insecure] [--cert FILE --key FILE]
//!        or Redis:      --redis redis://HOST:PORT/DB --encoding-secret S
//!                       [--redis-prefix cert-] [--key-format modern|legacy]
//! ```
//!
//! The environment can stand in for the flags: `CERTCTL_URL` or `CERTCTL_REDIS` (used when
//! neither --url nor --redis is given), `CERTCTL_SECRET`, `CERTCTL_CACERT`, `CERTCTL_CERT`,
//! `CERTCTL_KEY`, `CERTCTL_ENCODING_SECRET`, `CERTCTL_NEW_SECRET`. An https:// gateway is
//! verified against the system's roots, or only against `--cacert`; `--cert`/`--key` answer a
//! control API that requires mutual TLS (`security.control_api_use_mutual_tls`).
//!
//! FILE may be `-` for standard input. A file holding an `ENCRYPTED PRIVATE KEY` (Tyk's format)
//! or `CERTGATE ENCRYPTED PRIVATE KEY` block is read as a stored record; anything else as an
//! upload, which is refused if a certificate has expired at `--at` (default: now). A refused file
//! exits with status 1 and `certctl: FILE: error` on standard error; a failed store command
//! exits with 1 and `certctl: error`; usage errors exit with 2.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run -p certgate-certctl -- inspect tls-core/tests/data/demo.pem
//! cargo run -p certgate-certctl -- id --org org1 tls-core/tests/data/demo.pem
//! cargo run -p certgate-certctl -- inspect --json --secret "$SECRET" stored.pem
//! cargo run -p certgate-certctl -- add --url http://127.0.0.1:8080 \
//!     --secret "$SECRET" --org org1 tls-core/tests/data/demo.pem
//! cargo run -p certgate-certctl -- expiry --within-days 30 \
//!     --redis redis://127.0.0.1:6379/0 --encoding-secret "$ENCODING_SECRET"
//! ```

// The modules live in `certctl/`, beside this file.
mod acme_status;
mod cli;
mod clock;
mod gateway;
mod input;
mod report;
mod store;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(file) = cli.command.file().map(|f| f.display().to_string()) else {
        return run_store(cli.command);
    };
    match run(cli.command) {
        Ok(output) => match std::io::stdout().lock().write_all(output.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail("<stdout>", &e.to_string()),
        },
        Err(message) => fail(&file, &message),
    }
}

/// Runs a store command: prints what it found, then its problems, one `certctl: ` line each.
fn run_store(command: Command) -> ExitCode {
    let outcome = match store::run(command) {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("certctl: {}", report::printable(&message));
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::io::stdout()
        .lock()
        .write_all(outcome.stdout.as_bytes())
    {
        return fail("<stdout>", &e.to_string());
    }
    for problem in &outcome.problems {
        eprintln!("certctl: {}", report::printable(problem));
    }
    if outcome.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs a command and returns everything it prints, so that nothing reaches standard output
/// when it fails.
fn run(command: Command) -> Result<String, String> {
    match command {
        Command::Id(args) => {
            let now = args.at.unwrap_or_else(clock::now);
            let (entry, refusal) = input::load_for_id(&args.file, now)?;
            if let Some(refusal) = refusal {
                eprintln!(
                    "certctl: note: {}: {}; `add` would refuse it, the ID is printed so it can be found and removed",
                    report::printable(&args.file.display().to_string()),
                    report::printable(&refusal)
                );
            }
            Ok(format!("{}\n", entry.id(&args.org.unwrap_or_default())))
        }
        Command::Inspect(args) => {
            let now = args.input.at.unwrap_or_else(clock::now);
            let entry = input::load(&args.input.file, now)?;
            let options = report::Options {
                org: args.input.org.unwrap_or_default(),
                now,
                warning: tls_core::Duration::days(i64::from(args.warn_days)),
                secret: args.secret.map(tls_core::EncodingSecret::new),
            };
            let report = report::Report::new(&entry, &options);
            if args.json {
                Ok(format!("{}\n", report.to_json()?))
            } else {
                Ok(report.to_text())
            }
        }
        _ => Err("not a file command".to_owned()),
    }
}

fn fail(file: &str, message: &str) -> ExitCode {
    eprintln!(
        "certctl: {}: {}",
        report::printable(file),
        report::printable(message)
    );
    ExitCode::FAILURE
}
