//! `certctl`: look at a certificate file the way certgate sees it.
//!
//! It shows how a program uses `tls-core`: [`tls_core::Upload::parse`] for PEM text a user
//! would add (certificates with an optional key, or a public key), [`tls_core::Record::decode`]
//! for a record as the store keeps it (with an encrypted private key), certificate IDs, metadata,
//! validity at an instant, and decrypting a stored key with the encoding secret. It never prints
//! private key bytes.
//!
//! ```text
//! certctl id [--org ORG] [--at RFC3339] FILE
//!     the certificate ID alone: the org ID followed by the SHA-256 of the leaf's DER
//! certctl inspect [--org ORG] [--secret S] [--json] [--at RFC3339] [--warn-days N] FILE
//!     ID, fingerprint, names, dates, validity, key type, SPKI pin, chain length, and with
//!     --secret, whether a stored record's key decrypts; --json prints one JSON object
//! ```
//!
//! FILE may be `-` for standard input. A file holding an `ENCRYPTED PRIVATE KEY` (Tyk's format)
//! or `CERTGATE ENCRYPTED PRIVATE KEY` block is read as a stored record; anything else as an
//! upload, which is refused if a certificate has expired at `--at` (default: now). A refused file
//! exits with status 1 and `certctl: FILE: error` on standard error; usage errors exit with 2.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run -p certgate-examples --bin certctl -- inspect tls-core/tests/data/demo.pem
//! cargo run -p certgate-examples --bin certctl -- id --org org1 tls-core/tests/data/demo.pem
//! cargo run -p certgate-examples --bin certctl -- inspect --json --secret "$SECRET" stored.pem
//! ```

// The modules live in `certctl/`, beside this file.
#[path = "certctl/cli.rs"]
mod cli;
#[path = "certctl/clock.rs"]
mod clock;
#[path = "certctl/input.rs"]
mod input;
#[path = "certctl/report.rs"]
mod report;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = cli.command.file().display().to_string();
    match run(cli.command) {
        Ok(output) => match std::io::stdout().lock().write_all(output.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail("<stdout>", &e.to_string()),
        },
        Err(message) => fail(&file, &message),
    }
}

/// Runs a command and returns everything it prints, so that nothing reaches standard output
/// when it fails.
fn run(command: Command) -> Result<String, String> {
    match command {
        Command::Id(args) => {
            let now = args.at.unwrap_or_else(clock::now);
            let entry = input::load(&args.file, now)?;
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
