//! Command-line arguments (clap derive).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use time::format_description::well_known::Rfc3339;
use tls_core::{OffsetDateTime, OrgId};

/// Look at certificate files the way certgate sees them.
#[derive(Debug, Parser)]
#[command(name = "certctl", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the certificate ID: the org ID followed by the SHA-256 of the leaf's DER.
    Id(Input),
    /// Print the metadata of an upload or a stored record.
    Inspect(InspectArgs),
}

impl Command {
    /// The file the command reads.
    pub(crate) fn file(&self) -> &Path {
        match self {
            Self::Id(input) => &input.file,
            Self::Inspect(args) => &args.input.file,
        }
    }
}

/// What every command reads.
#[derive(Debug, Args)]
pub(crate) struct Input {
    /// Org ID that prefixes the certificate ID (default: none, the ID is the bare fingerprint).
    #[arg(long, value_name = "ORG")]
    pub(crate) org: Option<OrgId>,
    /// Judge expiry and validity at this instant instead of now (RFC 3339, e.g.
    /// 2026-11-29T04:57:32Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub(crate) at: Option<OffsetDateTime>,
    /// PEM file: an upload (certificates with an optional private key, or a public key) or a
    /// stored record; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) input: Input,
    /// Encoding secret: for a stored record, report whether its private key decrypts.
    #[arg(long, value_name = "S")]
    pub(crate) secret: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A certificate expiring within this many days is "expiring soon".
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub(crate) warn_days: u32,
}

fn parse_instant(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|at| at.to_offset(time::UtcOffset::UTC))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2026-11-29T04:57:32Z: {e}"))
}
