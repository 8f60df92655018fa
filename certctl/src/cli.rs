//! Command-line arguments (clap derive).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use time::format_description::well_known::Rfc3339;
use tls_core::{KeyFormat, OffsetDateTime, OrgId};

/// Look at certificate files the way certgate sees them, and manage the certificates of a store
/// (a gateway's control API or Redis).
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
    /// Add a certificate (PEM file) to a store; prints its ID.
    Add(AddArgs),
    /// List certificate IDs, or with --detailed their metadata.
    List(ListArgs),
    /// Show certificates by ID (several IDs separated by commas or spaces).
    Get(GetArgs),
    /// Delete a certificate.
    Delete(DeleteArgs),
    /// Show which APIs use a certificate (needs --url: only a gateway knows).
    Apis(ApisArgs),
    /// A table of certificates by days remaining, soonest first.
    Expiry(ExpiryArgs),
    /// Re-encrypt every stored private key with a new secret and/or into --key-format (needs
    /// --redis). Resumable: run it again after an interruption.
    Rekey(RekeyArgs),
    /// Index every stored record of every org, as Tyk's first listing of an org does (needs
    /// --redis; SCANs the record keys once).
    Reindex(ReindexArgs),
    /// Heal the indexes after an interrupted write on a Redis Cluster: index every record,
    /// drop entries without a record (needs --redis).
    Repair(RepairArgs),
    /// Automatic (ACME) certificates of a gateway (needs --url).
    #[command(subcommand)]
    Acme(AcmeCommand),
}

/// The `acme` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AcmeCommand {
    /// Each managed name: its certificate, expiry, next renewal, failures and last error.
    Status(AcmeStatusArgs),
}

/// Arguments of `acme status`.
#[derive(Debug, Args)]
pub(crate) struct AcmeStatusArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Print the gateway's JSON (names, counts since start) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `repair`.
#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    #[command(flatten)]
    pub(crate) target: Target,
}

impl Command {
    /// The file the command reads, for the commands that read one.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Self::Id(input) => Some(&input.file),
            Self::Inspect(args) => Some(&args.input.file),
            _ => None,
        }
    }
}

/// Where the store commands find certificates: a gateway's control API, or Redis directly.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// Base URL of a gateway's control API, e.g. https://127.0.0.1:8443 or
    /// http://127.0.0.1:8080 (default: $CERTCTL_URL when --redis is not given).
    #[arg(long, value_name = "URL", conflicts_with = "redis")]
    pub(crate) url: Option<String>,
    /// The gateway's control API secret (X-Tyk-Authorization), with --url.
    #[arg(long, value_name = "S", env = "CERTCTL_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// With an https:// --url: trust only the CA certificates of this PEM file (default: the
    /// system's roots).
    #[arg(long, value_name = "FILE", env = "CERTCTL_CACERT")]
    pub(crate) cacert: Option<PathBuf>,
    /// With an https:// --url: do not verify the gateway's certificate (testing only).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// With an https:// --url: client certificate (PEM, with its chain) for a control API that
    /// requires mutual TLS.
    #[arg(long, value_name = "FILE", env = "CERTCTL_CERT", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", env = "CERTCTL_KEY", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Redis URL of the store (the layout Tyk uses): one node `redis://[user:pass@]host:port/db`,
    /// a Redis Cluster `redis+cluster://[user:pass@]host:port,host:port,...`, or Redis Sentinel
    /// `redis+sentinel://[user:pass@]sentinel:port,.../master_name[/db]`; `rediss...` for TLS
    /// (default: $CERTCTL_REDIS when --url is not given).
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,
    /// Password on the sentinels, with a redis+sentinel:// URL.
    #[arg(
        long,
        value_name = "S",
        env = "CERTCTL_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) sentinel_password: Option<String>,
    /// ACL user name on the sentinels, with a redis+sentinel:// URL.
    #[arg(long, value_name = "USER")]
    pub(crate) sentinel_username: Option<String>,
    /// With --redis: replicas that must have each write before it counts as done (WAIT).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) min_replicas_to_ack: u32,
    /// The secret that encrypts private keys at rest, with --redis.
    #[arg(
        long,
        value_name = "S",
        env = "CERTCTL_ENCODING_SECRET",
        hide_env_values = true
    )]
    pub(crate) encoding_secret: Option<String>,
    /// Prefix of the Redis keys, with --redis.
    #[arg(long, value_name = "PREFIX", default_value = "cert-")]
    pub(crate) redis_prefix: String,
    /// How private keys are encrypted when written, with --redis: `modern` (AES-256-GCM) or
    /// `legacy` (Tyk's format, for a store Tyk also reads).
    #[arg(long, value_name = "FORMAT", default_value = "modern", value_parser = parse_key_format)]
    pub(crate) key_format: KeyFormat,
}

/// Arguments of `add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Org ID that prefixes the certificate ID.
    #[arg(long, value_name = "ORG")]
    pub(crate) org: Option<OrgId>,
    /// With --redis: judge expiry at this instant instead of now (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub(crate) at: Option<OffsetDateTime>,
    /// PEM file: certificates with an optional private key, or one public key; `-` reads
    /// standard input.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Only this org's certificates (default: every org).
    #[arg(long, value_name = "ORG")]
    pub(crate) org: Option<OrgId>,
    /// Show subject, expiry, key and CA flags, and any problem reading a record.
    #[arg(long)]
    pub(crate) detailed: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Print a JSON array (null for a certificate that is not found) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Certificate IDs: ID[,ID...].
    #[arg(value_name = "ID", required = true)]
    pub(crate) ids: Vec<String>,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// The certificate ID.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
}

/// Arguments of `apis`.
#[derive(Debug, Args)]
pub(crate) struct ApisArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// The certificate ID.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
}

/// Arguments of `expiry`.
#[derive(Debug, Args)]
pub(crate) struct ExpiryArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Only this org's certificates (default: every org).
    #[arg(long, value_name = "ORG")]
    pub(crate) org: Option<OrgId>,
    /// Only certificates that expire within N days (expired ones included).
    #[arg(long, value_name = "N")]
    pub(crate) within_days: Option<u32>,
    /// Rows within this many days are yellow (expired ones red) on a terminal.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub(crate) warn_days: u32,
    /// Count days from this instant instead of now (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub(crate) at: Option<OffsetDateTime>,
}

/// Arguments of `rekey`.
#[derive(Debug, Args)]
pub(crate) struct RekeyArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// The new encoding secret; every key readable with --encoding-secret is re-encrypted
    /// (default: --encoding-secret itself, to change only the format with --key-format).
    #[arg(
        long,
        value_name = "S",
        env = "CERTCTL_NEW_SECRET",
        hide_env_values = true
    )]
    pub(crate) new_secret: Option<String>,
    /// An older secret some keys may still use (to finish an interrupted rekey).
    #[arg(long, value_name = "S")]
    pub(crate) previous_secret: Option<String>,
}

/// Arguments of `reindex`.
#[derive(Debug, Args)]
pub(crate) struct ReindexArgs {
    #[command(flatten)]
    pub(crate) target: Target,
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

fn parse_key_format(text: &str) -> Result<KeyFormat, String> {
    match text {
        "modern" => Ok(KeyFormat::Modern),
        "legacy" => Ok(KeyFormat::Legacy),
        other => Err(format!("{other:?}: expected modern or legacy")),
    }
}
