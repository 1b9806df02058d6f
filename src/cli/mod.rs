//! The commands of the binary: their arguments (clap) and the dispatch to one small file per
//! command. Each file reads its input, calls the library (mostly [`consent_ledger::query`])
//! and formats the answer; none holds logic the HTTP API would need too.

mod check;
mod erase;
mod export;
mod history;
mod ingest;
mod init;
mod lint_template;
mod migrate;
mod proof;
mod rebuild;
mod retention;
mod rotate_master_key;
mod run;
mod schemas;
mod serve;
mod sign_webhook;
mod stats;
mod status;
mod verify;

use std::future::Future;
use std::io::{BufRead, BufReader, BufWriter, StdoutLock, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use consent_ledger::config::{MasterKeySource, Settings};
use consent_ledger::domain::contact::Contact;
use consent_ledger::domain::event::Purpose;
use consent_ledger::domain::tenant::TenantId;
use consent_ledger::ledger::{Ledger, LedgerError};
use consent_ledger::query::{self, ExportFormat};
use consent_ledger::rgpd::MasterKey;

#[derive(Parser)]
#[command(
    name = "consent-ledger",
    version,
    about = "Event-sourced consent ledger for WhatsApp and SMS marketing"
)]
pub struct Cli {
    /// Where the ledger and its output files live.
    #[arg(
        long,
        global = true,
        env = "CONSENT_LEDGER_DATA_DIR",
        default_value = "./data"
    )]
    data_dir: PathBuf,
    /// TOML config file (tenants, keywords, reply texts); built-in defaults without it.
    #[arg(long, global = true, env = "CONSENT_LEDGER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--purpose`: the domain's purposes by name, parsed here so the domain type carries no clap.
fn purpose_arg() -> impl TypedValueParser<Value = Purpose> {
    PossibleValuesParser::new(Purpose::ALL.map(Purpose::as_str))
        .try_map(|s| Purpose::parse(&s).ok_or("not a purpose"))
}

#[derive(Subcommand)]
pub enum Command {
    /// The service: consume the inbound Kafka topic into the ledger, publish consent events
    /// and replies, until SIGTERM/SIGINT.
    Run {
        /// Also serve the HTTP API on this address (e.g. 0.0.0.0:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Serve the HTTP API (file mode, no Kafka consumer) until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on; port 0 picks a free port (the line "listening on ADDR"
        /// on stdout tells which).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Process inbound records (JSON lines) from FILE or stdin ("-").
    Ingest {
        #[arg(default_value = "-")]
        file: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Where rejected records go [default: DATA_DIR/dead-letter.jsonl].
        #[arg(long)]
        dead_letter: Option<PathBuf>,
    },
    /// The consent of one contact.
    Status {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        contact: String,
        #[arg(long, default_value = "marketing", value_parser = purpose_arg())]
        purpose: Purpose,
        #[arg(long)]
        json: bool,
    },
    /// Campaign audience filter: contacts (one per line) that may be sent to go to stdout.
    Check {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "marketing", value_parser = purpose_arg())]
        purpose: Purpose,
        #[arg(default_value = "-")]
        file: String,
    },
    /// Every event of one contact, oldest first.
    History {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        contact: String,
        #[arg(long)]
        json: bool,
    },
    /// The audit log: every event with its proof fields. With `--contact` and `--proof FILE`,
    /// the access export of one person (RGPD Art. 15) with the proofs `verify-export` checks.
    Export {
        #[arg(long)]
        tenant: Option<String>,
        /// The audit log: `jsonl` (default) or `csv`. An access export: `json` (default, the
        /// verifiable form), `html` or `text` (to send to the person).
        #[arg(long)]
        format: Option<String>,
        /// The person to export (any of their identifiers); needs `--tenant` and `--proof`.
        #[arg(long, requires = "proof")]
        contact: Option<String>,
        /// Where to write the access export.
        #[arg(long, requires = "contact")]
        proof: Option<PathBuf>,
    },
    /// Checks an access export with no access to the ledger: exit 0 intact, 1 changed, 2 not
    /// a proof file.
    VerifyExport {
        file: PathBuf,
        /// The ledger's public key (what `public-key` prints); without it the file is checked
        /// against the key it names, which proves integrity under that key only.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Prints the ledger's Ed25519 public key (base64 of its 32 bytes): what proofs are
    /// checked against.
    PublicKey,
    /// Re-hash the log and compare the consent view with a fold of the log.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the consent view from the log; with --from-kafka, an empty ledger from the
    /// record topic (scale-out).
    Rebuild {
        /// Fill this instance's empty ledger from `[kafka] topics.ledger` and `topics.keys`
        /// (a lost or new instance of scale-out), then stop.
        #[arg(long)]
        from_kafka: bool,
    },
    /// Opt-out statistics per campaign, with anomaly flags; optionally an HTML report.
    Stats {
        #[arg(long)]
        tenant: String,
        /// Count only sends and replies at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
        /// Also write the self-contained HTML report (charts and table) to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Check a WhatsApp message template (Meta's template JSON, from FILE or stdin "-"):
    /// a MARKETING one needs an opt-out footer and a STOP quick reply. Exit 1 when it is not
    /// compliant, 2 when the input is not a template.
    LintTemplate {
        #[arg(default_value = "-")]
        file: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a commented config file with the STOP automation set up for one tenant.
    Init {
        /// The customers' language: keywords and reply texts.
        #[arg(long, default_value = "fr", value_parser = PossibleValuesParser::new(
            consent_ledger::domain::keywords::KeywordSet::builtin_languages().iter().copied()))]
        language: String,
        #[arg(long, default_value = "my-shop")]
        tenant: String,
        /// Write to FILE instead of stdout; an existing FILE is kept unless --force.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// Convert a ledger written by an older consent-ledger to this version's storage layout.
    /// The converted ledger is built next to the old one and swapped in; the old one is kept
    /// as DATA_DIR/ledger.vN.bak. Safe to run again after a crash.
    Migrate,
    /// Sign a webhook body (FILE or stdin "-") as Meta does, or as Twilio does with
    /// --twilio-url, and print the signature header's value: to try the receivers with curl.
    SignWebhook {
        #[arg(default_value = "-")]
        file: String,
        /// The app secret (Meta) or auth token (Twilio): the value, or env:NAME to read it
        /// from the environment (keeps it out of the shell history).
        #[arg(long)]
        secret: String,
        /// Sign the form-encoded FILE as Twilio does for a POST to URL (public_url plus the
        /// query string, if any).
        #[arg(long, value_name = "URL")]
        twilio_url: Option<String>,
    },
    /// Erase a person (RGPD Art. 17): destroys the keys of every identifier linked to C,
    /// appends the `Erased` event (printed) and keeps each identifier on the suppression
    /// list, out of marketing until it opts in again. Exit 1 when the ledger never saw C.
    Erase {
        #[arg(long)]
        tenant: String,
        /// Any identifier of the person.
        #[arg(long)]
        contact: String,
        /// Why (kept in clear in the chain, with who asked: write no personal data in it).
        #[arg(long)]
        reason: String,
    },
    /// Erase the message texts of people whose last event is older than [rgpd]
    /// retention_days (default 1095), by destroying their text keys, and purge the originals
    /// of dead letters older than [rgpd] dead_letter_days (default 30). `serve` and `run` do
    /// the first at start and daily, `serve` and `ingest` the second at start; this runs both now.
    Retention {
        /// List what would be erased and purged; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrap every stored key under a new master key, in one transaction. Afterwards only the
    /// new key opens the ledger: the embedded default's DATA_DIR/master.key is replaced; a
    /// configured key must be changed on every instance.
    RotateMasterKey {
        /// The new key (base64 of 32 bytes), mode 0600; else CONSENT_LEDGER_NEW_MASTER_KEY.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// Write the JSON Schemas of every record type to DIR.
    Schemas {
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
}

/// An error that is the caller's fault: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A service that could not start because of its configuration (a webhook secret `env:NAME`
/// that is unset) is a usage error, exit 2; anything else that stops it is a failure, exit 1.
pub(crate) fn app_error(e: consent_ledger::app::AppError) -> anyhow::Error {
    use consent_ledger::api::webhooks::WebhookError;
    use consent_ledger::app::AppError;
    match e {
        AppError::Webhooks(WebhookError::Config(c)) => UsageError(c.to_string()).into(),
        other => other.into(),
    }
}

/// Logs go to stderr, so stdout stays the command's answer; the services log at info.
pub fn init_logging(command: &Command) {
    let default_level = match command {
        Command::Run { .. } | Command::Serve { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONSENT_LEDGER_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Prints a failure and turns it into the exit code: 2 for a usage error, else 1.
pub fn exit_code(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    // These need neither the config nor the ledger, so they work before either exists.
    match &cli.command {
        Command::Schemas { dir } => return schemas::run(dir),
        Command::SignWebhook {
            file,
            secret,
            twilio_url,
        } => return sign_webhook::run(file, secret, twilio_url.as_deref()),
        Command::LintTemplate { file, json } => return lint_template::run(file, *json),
        Command::Init {
            language,
            tenant,
            output,
            force,
        } => return init::run(language, tenant, output.as_deref(), *force),
        // Offline: the file and, at most, a key.
        Command::VerifyExport { file, public_key } => {
            return proof::verify_export(file, public_key.as_deref())
        }
        _ => {}
    }
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let (master, source) = settings
        .file
        .rgpd
        .master_key(&cli.data_dir)
        .map_err(|e| UsageError(e.to_string()))?;
    warn_embedded_master_key(&cli.command, &source);
    // The ledger cannot be opened before it is migrated; migrating needs its keys.
    if let Command::Migrate = &cli.command {
        return migrate::run(&cli.data_dir.join("ledger"), master);
    }
    if let Command::RotateMasterKey { new_key_file } = &cli.command {
        let new = rotate_master_key::new_key(new_key_file.as_deref())?;
        let old_check = master.key_check();
        let ledger = open_ledger(&cli.data_dir, master)?;
        return rotate_master_key::run(ledger, old_check, new, &source);
    }
    let ledger = open_ledger(&cli.data_dir, master)?;
    ledger.sign_with(
        settings
            .file
            .rgpd
            .signer(&cli.data_dir)
            .map_err(|e| UsageError(e.to_string()))?,
    );
    let result = match cli.command {
        Command::Serve { listen } => return serve::run(ledger, settings, &listen, &cli.data_dir),
        Command::Run { listen } => return run::run(ledger, settings, listen),
        Command::Rebuild { from_kafka: true } => return rebuild::from_kafka(ledger, &settings),
        Command::Ingest {
            file,
            json,
            dead_letter,
        } => ingest::run(&ledger, &settings, &cli.data_dir, &file, json, dead_letter),
        Command::Status {
            tenant,
            contact,
            purpose,
            json,
        } => status::run(&ledger, &settings, &tenant, &contact, purpose, json),
        Command::Check {
            tenant,
            purpose,
            file,
        } => check::run(&ledger, &settings, &tenant, purpose, &file),
        Command::History {
            tenant,
            contact,
            json,
        } => history::run(&ledger, &settings, &tenant, &contact, json),
        Command::Export {
            tenant,
            format,
            contact: Some(contact),
            proof: Some(proof),
        } => proof::export(
            &ledger,
            &settings,
            tenant.as_deref(),
            &contact,
            format.as_deref(),
            &proof,
        ),
        Command::Export { tenant, format, .. } => {
            let format = format
                .as_deref()
                .unwrap_or("jsonl")
                .parse::<ExportFormat>()
                .map_err(|e| UsageError(e.to_string()))?;
            export::run(&ledger, tenant.as_deref(), format)
        }
        Command::PublicKey => proof::public_key(&ledger),
        Command::Retention { dry_run } => {
            retention::run(&ledger, &settings, &cli.data_dir, dry_run)
        }
        Command::Erase {
            tenant,
            contact,
            reason,
        } => erase::run(
            &ledger,
            &settings,
            &cli.data_dir,
            &tenant,
            &contact,
            &reason,
        ),
        Command::Verify { json } => verify::run(&ledger, json),
        Command::Rebuild { from_kafka: false } => rebuild::run(&ledger),
        Command::Stats {
            tenant,
            since,
            json,
            html,
        } => stats::run(&ledger, &settings, &tenant, since.as_deref(), json, html),
        Command::Schemas { .. }
        | Command::SignWebhook { .. }
        | Command::LintTemplate { .. }
        | Command::Init { .. }
        | Command::VerifyExport { .. }
        | Command::RotateMasterKey { .. }
        | Command::Migrate => {
            unreachable!("handled above")
        }
    };
    // A command's own error is the one to report, before one from closing.
    let closed = close_for_exit(ledger);
    let code = result?;
    closed?;
    Ok(code)
}

/// The process ends with the command, so the ledger is made durable and then left to the
/// exit rather than dropped: fjall's drop waits for its monitor thread, which sleeps 250 ms at
/// a time, and every command paid up to a quarter of a second for it (a one-contact `check`
/// took 0.27 s, 0.07 s without it; BENCHMARKS.md, "HTTP check"). A flush or
/// compaction that fjall's threads have in flight at that moment is recovered at the next open
/// as after a crash, which the kill -9 tests exercise.
fn close_for_exit(ledger: Ledger) -> Result<()> {
    ledger.sync()?;
    std::mem::forget(ledger);
    Ok(())
}

/// Opens the ledger; a wrong master key is the caller's to fix (exit 2), like a bad option.
fn open_ledger(data_dir: &Path, master: MasterKey) -> Result<Ledger> {
    Ledger::open(&data_dir.join("ledger"), master).map_err(|e| match e {
        e @ LedgerError::WrongMasterKey { .. } => UsageError(e.to_string()).into(),
        e => e.into(),
    })
}

/// The embedded default's master key is for trying the product: said when it is created, and
/// at each start of a service, once.
fn warn_embedded_master_key(command: &Command, source: &MasterKeySource) {
    let MasterKeySource::Embedded { path, created } = source else {
        return;
    };
    let service = matches!(command, Command::Run { .. } | Command::Serve { .. });
    if *created || service {
        tracing::warn!(
            path = %path.display(),
            "the master key is the embedded default in the data dir; production keeps it elsewhere ([rgpd] master_key_file or CONSENT_LEDGER_MASTER_KEY) and backs it up apart from the data: without it no personal field can be read"
        );
    }
}

/// Buffered, because `check` and `export` write a line per contact or event.
fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::new(std::io::stdout().lock())
}

/// FILE, or stdin for "-".
fn open_input(file: &str) -> Result<Box<dyn BufRead>> {
    if file == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f =
        std::fs::File::open(file).map_err(|e| UsageError(format!("cannot open {file}: {e}")))?;
    // A directory opens fine on Unix and only fails at the first read, as a failure (1).
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(
            UsageError(format!("cannot open {file}: it is a directory, not a file")).into(),
        );
    }
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

/// `--tenant`: checked here, once, like the HTTP path and the config's tenant names.
fn tenant_arg(tenant: &str) -> Result<TenantId, UsageError> {
    TenantId::new(tenant).map_err(|e| UsageError(e.to_string()))
}

/// `--contact` of `status` and `history`, read with the tenant's region.
fn parse_contact(settings: &Settings, tenant: &TenantId, input: &str) -> Result<Contact> {
    let profile = settings.profile(tenant);
    query::contact(&profile, input).map_err(|e| UsageError(e.to_string()).into())
}

/// Runs a service (`serve`, `run`) on a multi-threaded runtime until it returns.
fn block_on(service: impl Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(service)
}

/// Scripts and tests that ask for port 0 read the real address from this line.
fn announce(listener: &tokio::net::TcpListener) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    Ok(())
}
