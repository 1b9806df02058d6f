//! The `consent-ledger` command: parses arguments, calls the library, formats output.
//! Exit codes: 0 success, 1 failure (verify mismatch, storage error), 2 usage error.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use consent_ledger::config::Settings;
use consent_ledger::domain::analytics::TenantStats;
use consent_ledger::domain::contact::{self, Contact};
use consent_ledger::domain::event::Purpose;
use consent_ledger::ledger::Ledger;
use consent_ledger::pipeline::file::{ingest, FileSinks};
use consent_ledger::query::{self, Audience, ExportFormat, Repeats, Verdict};
use consent_ledger::report;
use consent_ledger::schemas;

mod serve;
mod service;

#[derive(Parser)]
#[command(
    name = "consent-ledger",
    version,
    about = "Event-sourced consent ledger for WhatsApp and SMS marketing"
)]
struct Cli {
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
    command: Command,
}

/// `--purpose`: the domain's purposes by name, parsed here so the domain type carries no clap.
fn purpose_arg() -> impl TypedValueParser<Value = Purpose> {
    PossibleValuesParser::new(Purpose::ALL.map(Purpose::as_str))
        .try_map(|s| Purpose::parse(&s).ok_or("not a purpose"))
}

/// `--format` of `export`: the query's formats by name.
fn export_format_arg() -> impl TypedValueParser<Value = ExportFormat> {
    PossibleValuesParser::new(ExportFormat::ALL.map(ExportFormat::as_str))
        .try_map(|s| s.parse::<ExportFormat>())
}

#[derive(Subcommand)]
enum Command {
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
    /// The audit log: every event with its proof fields.
    Export {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value = "jsonl", value_parser = export_format_arg())]
        format: ExportFormat,
    },
    /// Re-hash the log and compare the consent view with a fold of the log.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the consent view from the log.
    Rebuild,
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
    /// Write the JSON Schemas of every record type to DIR.
    Schemas {
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
}

/// An error that is the caller's fault: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
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
    match run(cli) {
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

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Schemas { dir } = &cli.command {
        return write_schemas(dir);
    }
    // Neither needs the config or the ledger, so they work before either exists.
    if let Command::LintTemplate { file, json } = &cli.command {
        return lint_template(file, *json);
    }
    if let Command::Init {
        language,
        tenant,
        output,
        force,
    } = &cli.command
    {
        return init(language, tenant, output.as_deref(), *force);
    }
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let ledger = Ledger::open(&cli.data_dir.join("ledger"))?;
    if let Command::Serve { listen } = cli.command {
        return serve::serve(ledger, settings, &listen, &cli.data_dir);
    }
    if let Command::Run { listen } = cli.command {
        return service::run(ledger, settings, listen);
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match cli.command {
        Command::Ingest {
            file,
            json,
            dead_letter,
        } => {
            let mut sinks = FileSinks::in_dir(&cli.data_dir, dead_letter);
            let summary = ingest(&ledger, &settings, open_input(&file)?, &file, &mut sinks)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&summary)?)?;
            } else {
                writeln!(
                    out,
                    "read {} records: {} opted out, {} opted in, {} help, {} no change, {} possible opt-out, {} duplicates, {} rejected",
                    summary.read, summary.opted_out, summary.opted_in, summary.help, summary.no_change,
                    summary.possible_opt_out, summary.duplicates, summary.rejected
                )?;
                if summary.sent + summary.statuses > 0 {
                    writeln!(
                        out,
                        "campaign analytics: {} sent records, {} delivery statuses",
                        summary.sent, summary.statuses
                    )?;
                }
                if summary.rejected > 0 {
                    writeln!(
                        out,
                        "rejected records are in {}",
                        sinks.dead_letter.path().display()
                    )?;
                }
            }
        }
        Command::Status {
            tenant,
            contact,
            purpose,
            json,
        } => {
            let profile = settings.profile(&tenant);
            let contact = parse_contact(&tenant, &contact, &settings)?;
            let r = query::status(&ledger, &profile, &tenant, &contact, purpose)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else {
                let since = r
                    .since
                    .map(|s| format!(" since {}", s.to_rfc3339()))
                    .unwrap_or_default();
                let verdict = match &r.reason {
                    None => "may send".to_string(),
                    Some(reason) => format!("may NOT send ({reason})"),
                };
                writeln!(
                    out,
                    "{} {} {}: {}{} — {}",
                    r.tenant, r.contact, r.purpose, r.status, since, verdict
                )?;
            }
        }
        Command::Check {
            tenant,
            purpose,
            file,
        } => {
            contact::validate_tenant(&tenant).map_err(UsageError)?;
            let profile = settings.profile(&tenant);
            let mut audience = Audience::new(
                &ledger,
                &profile,
                &tenant,
                purpose,
                Repeats::ReportEachExclusion,
            );
            let mut err = std::io::stderr().lock();
            for line in open_input(&file)?.lines() {
                let line = line.context("cannot read the contact list")?;
                let input = line.trim();
                if input.is_empty() {
                    continue;
                }
                match audience.check(input)? {
                    Verdict::Allowed(c) => writeln!(out, "{c}")?,
                    Verdict::Excluded {
                        contact,
                        reason,
                        since,
                    } => {
                        let since = since.map(|s| s.to_rfc3339()).unwrap_or_default();
                        writeln!(err, "excluded\t{contact}\t{reason}\t{since}")?;
                    }
                    Verdict::Invalid { input, reason } => {
                        writeln!(err, "invalid\t{input}\t{reason}")?
                    }
                    Verdict::Duplicate(_) => {}
                }
            }
            out.flush()?;
            let c = audience.counts();
            writeln!(
                err,
                "checked {} contacts: {} allowed, {} excluded, {} invalid, {} duplicates",
                c.checked, c.allowed, c.excluded, c.invalid, c.duplicates
            )?;
        }
        Command::History {
            tenant,
            contact,
            json,
        } => {
            let contact = parse_contact(&tenant, &contact, &settings)?;
            let events = query::history(&ledger, &tenant, &contact)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&events)?)?;
            } else {
                if events.is_empty() {
                    writeln!(out, "no events for {} in tenant {}", contact, tenant)?;
                }
                for e in &events {
                    let purposes: Vec<&str> = e.purposes.iter().map(|p| p.as_str()).collect();
                    writeln!(
                        out,
                        "{}  {:<9} {:<25} {:<10} keyword={} message={} campaign={} event={}",
                        e.occurred_at.to_rfc3339(),
                        e.event_type.as_str(),
                        purposes.join(","),
                        serde_json::to_value(e.source.kind)?.as_str().unwrap_or(""),
                        e.source.keyword.as_deref().unwrap_or("-"),
                        e.source.message_id,
                        e.campaign_id.as_deref().unwrap_or("-"),
                        e.event_id
                    )?;
                }
            }
        }
        Command::Export { tenant, format } => {
            query::export(&ledger, tenant.as_deref(), None, format, &mut out)?;
        }
        Command::Verify { json } => {
            let report = ledger.verify()?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&report)?)?;
            } else if report.ok() {
                writeln!(
                    out,
                    "ok: {} events in {} partitions verify; the consent view of {} contacts matches the log",
                    report.events, report.partitions, report.contacts
                )?;
            } else {
                for p in &report.problems {
                    writeln!(out, "MISMATCH {p}")?;
                }
                writeln!(
                    out,
                    "verify failed: {} problems in {} events",
                    report.problems.len(),
                    report.events
                )?;
            }
            if !report.ok() {
                out.flush()?;
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Rebuild => {
            let r = ledger.rebuild()?;
            writeln!(
                out,
                "rebuilt the consent view of {} contacts from {} events ({} rows changed)",
                r.contacts, r.events, r.changed
            )?;
        }
        Command::Stats {
            tenant,
            since,
            json,
            html,
        } => {
            contact::validate_tenant(&tenant).map_err(UsageError)?;
            let since = match since.as_deref() {
                None => None,
                Some(s) => Some(query::parse_time(s).ok_or_else(|| {
                    UsageError(format!(
                        "--since {s:?} is not a time (RFC 3339 or YYYY-MM-DD)"
                    ))
                })?),
            };
            let profile = settings.profile(&tenant);
            let stats = query::stats(&ledger, &profile, &tenant, since)?;
            if let Some(path) = &html {
                std::fs::write(path, report::html(&stats))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
            } else {
                print_stats(&mut out, &stats)?;
            }
        }
        Command::Schemas { .. } | Command::Serve { .. } | Command::Run { .. } => {
            unreachable!("handled above")
        }
        Command::LintTemplate { .. } | Command::Init { .. } => {
            unreachable!("handled above")
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_stats(out: &mut impl Write, stats: &TenantStats) -> Result<()> {
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.2}%", r * 100.0));
    writeln!(
        out,
        "{:<24} {:>8} {:>9} {:>8} {:>8} {:>5} {:>8}  anomaly",
        "campaign", "sent", "delivered", "opt-outs", "rate", "help", "possible"
    )?;
    for c in &stats.campaigns {
        writeln!(
            out,
            "{:<24} {:>8} {:>9} {:>8} {:>8} {:>5} {:>8}  {}",
            c.campaign_id,
            c.sent,
            c.delivered
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
            c.opt_outs,
            pct(c.opt_out_rate),
            c.help_requests,
            c.possible_opt_outs,
            if c.anomaly.flagged {
                format!("FLAGGED: {}", c.anomaly.reasons.join("; "))
            } else {
                "-".to_string()
            }
        )?;
    }
    writeln!(
        out,
        "{} campaigns; tenant median opt-out rate {}",
        stats.campaigns.len(),
        pct(stats.median_opt_out_rate)
    )?;
    Ok(())
}

fn open_input(file: &str) -> Result<Box<dyn BufRead>> {
    if file == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f =
        std::fs::File::open(file).map_err(|e| UsageError(format!("cannot open {file}: {e}")))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

fn parse_contact(tenant: &str, input: &str, settings: &Settings) -> Result<Contact> {
    contact::validate_tenant(tenant).map_err(UsageError)?;
    let profile = settings.profile(tenant);
    query::contact(&profile, input).map_err(|e| UsageError(e.to_string()).into())
}

fn write_schemas(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, schema) in schemas::all() {
        let path = dir.join(name);
        std::fs::write(&path, schemas::render(&schema))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn lint_template(file: &str, json: bool) -> Result<ExitCode> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut open_input(file)?, &mut text)
        .map_err(|e| UsageError(format!("cannot read {file}: {e}")))?;
    let report = consent_ledger::domain::template::lint_str(&text)
        .map_err(|e| UsageError(format!("{file}: {e}")))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else if report.compliant {
        writeln!(
            out,
            "{} ({}, {}): compliant",
            report.template, report.language, report.category
        )?;
    } else {
        writeln!(
            out,
            "{} ({}, {}): NOT compliant, {} problem(s)",
            report.template,
            report.language,
            report.category,
            report.problems.len()
        )?;
        for p in &report.problems {
            writeln!(out, "{}  {}: {}", p.pointer, p.code, p.message)?;
            writeln!(out, "    fix: {}", p.suggestion)?;
        }
    }
    out.flush()?;
    Ok(if report.compliant {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn init(language: &str, tenant: &str, output: Option<&Path>, force: bool) -> Result<ExitCode> {
    let text = consent_ledger::init::config_file(language, tenant)
        .map_err(|e| UsageError(e.to_string()))?;
    let Some(path) = output else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    // create_new, not an exists() check: a file appearing in between is not overwritten either.
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            UsageError(format!(
                "{} already exists; use --force to overwrite it",
                path.display()
            ))
        } else {
            UsageError(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {}: edit the lines marked EDIT, then use it with --config {}",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
