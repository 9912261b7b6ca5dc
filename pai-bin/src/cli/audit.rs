//! `pai audit verify|tail|export`: the audit chain, through the admin API.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use pai_core::audit::AuditEvent;
use pai_core::timefmt::{parse_rfc3339, rfc3339};

use super::{now_ms, CliError};
use crate::admin::audit::{EntryPage, EntryView, VerifyReport};
use crate::client::{AdminClient, ClientOpts};
use crate::table::{self, Table};

/// `pai audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain and name the first entry that was changed, removed, inserted or
    /// reordered; exits 1 if there is one.
    Verify(VerifyArgs),
    /// The last entries: `pai audit tail -n 50`, `pai audit tail --follow`.
    Tail(TailArgs),
    /// Entries appended in a period, as JSON lines: `pai audit export --since 2026-11-01 --until 2026-12-01`.
    Export(ExportArgs),
}

/// Options of `pai audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also check that entry SEQ still has hash HASH (a head printed by an earlier verify and
    /// kept elsewhere): catches a chain rolled back with its head.
    #[arg(long, value_name = "SEQ:HASH")]
    expect: Option<String>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Options of `pai audit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// Keep printing entries as they are appended (every second), until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = TailFormat::Table)]
    output: TailFormat,
    #[command(flatten)]
    client: ClientOpts,
}

/// How `tail` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TailFormat {
    /// One line per entry, for people.
    Table,
    /// One JSON object per line.
    Jsonl,
}

/// Options of `pai audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Entries appended at or after this time: `2026-11-01`, `2026-11-01T08:00:00Z`, Unix
    /// milliseconds, or an age such as `24h` or `7d` [default: the first entry].
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Entries appended before this time, in the same forms [default: now].
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Output format: JSON lines (the only one; here so scripts can say so).
    #[arg(short = 'o', long, value_enum, default_value_t = ExportFormat::Jsonl)]
    output: ExportFormat,
    #[command(flatten)]
    client: ClientOpts,
}

/// How `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// One JSON object per line: the entry as stored (so hashes can be recomputed), its hash,
    /// and its event decoded.
    Jsonl,
}

/// Run `pai audit …`.
pub async fn run(command: AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Tail(args) => tail(args).await,
        AuditCommand::Export(args) => export(args).await,
    }
}

async fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let expect = args.expect.as_deref().map(parse_expect).transpose()?;
    let client = AdminClient::new(&args.client)?;
    let report: VerifyReport = client.get("/audit/verify").await?;
    let verified = match (report.verified, report.tamper) {
        (Some(verified), None) => verified,
        (_, Some(tamper)) => {
            return Err(CliError::msg(format!(
                "the audit chain does not verify ({:?}): {tamper}",
                tamper.kind
            )))
        }
        (None, None) => return Err(CliError::msg("the server gave no verdict")),
    };
    if let Some((seq, hash)) = expect {
        check_expected(&client, seq, &hash, verified.sealed_through).await?;
    }
    let sealed = match verified.sealed_through {
        0 => String::new(),
        n => format!("; entries 1 to {n} were pruned under a valid seal"),
    };
    println!(
        "audit chain verified: {} entries, {} checkpoints{sealed}",
        table::thousands(verified.entries),
        verified.checkpoints
    );
    println!("head: {}:{}", verified.head_seq, verified.head_hash);
    Ok(())
}

fn parse_expect(text: &str) -> Result<(u64, String), CliError> {
    let parsed = text.split_once(':').and_then(|(seq, hash)| {
        let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        Some((seq.parse().ok()?, hash.to_ascii_lowercase())).filter(|_| ok)
    });
    parsed.ok_or_else(|| {
        CliError::msg(format!(
            "--expect {text:?} is not SEQ:HASH (the `head:` line an earlier `pai audit verify` printed)"
        ))
    })
}

/// Entry `seq` of a verified chain has hash `hash`. In a verified chain an entry's position is
/// at least its sequence number, so the search starts there.
async fn check_expected(
    client: &AdminClient,
    seq: u64,
    hash: &str,
    sealed_through: u64,
) -> Result<(), CliError> {
    if seq <= sealed_through {
        return Err(CliError::msg(format!(
            "entry {seq} was pruned by retention (entries 1 to {sealed_through}); expect a later head"
        )));
    }
    let mut after = seq.saturating_sub(1);
    loop {
        let page: EntryPage = client.get(&format!("/audit?after={after}")).await?;
        if let Some(found) = page.entries.iter().find(|e| e.entry.seq == seq) {
            if found.hash == hash {
                return Ok(());
            }
            return Err(CliError::msg(format!(
                "entry {seq} has hash {}, not the {hash} expected: the chain was rewritten from there on",
                found.hash
            )));
        }
        match page.next {
            Some(next) => after = next,
            None => {
                return Err(CliError::msg(format!(
                    "the chain has no entry {seq} any more: it was rolled back to before it"
                )))
            }
        }
    }
}

async fn tail(args: TailArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.client)?;
    let page: EntryPage = client
        .get(&format!("/audit/tail?limit={}", args.lines.max(1)))
        .await?;
    let mut last = page.entries.last().map_or(0, |e| e.pos);
    print_entries(&page.entries, args.output, true)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let page: EntryPage = client.get(&format!("/audit?after={last}")).await?;
        if let Some(e) = page.entries.last() {
            last = e.pos;
            print_entries(&page.entries, args.output, false)?;
        }
    }
}

fn print_entries(entries: &[EntryView], format: TailFormat, header: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        TailFormat::Jsonl => entries
            .iter()
            .try_for_each(|e| write_json_line(&mut out, e)),
        TailFormat::Table => {
            let mut t = Table::new(&["SEQ", "TIME", "TYPE", "WHO", "WHAT"]);
            for e in entries {
                let (kind, who, what) = describe(e);
                t.row(vec![
                    e.entry.seq.to_string(),
                    rfc3339(e.entry.at_ms / 1_000),
                    kind,
                    who,
                    what,
                ]);
            }
            let text = t.render();
            let text = if header {
                &text[..]
            } else {
                text.split_once('\n').map_or("", |(_, rows)| rows)
            };
            out.write_all(text.as_bytes())
        }
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| CliError::msg(format!("cannot write the entries: {e}")))
}

/// Type, who and what, in a few words.
fn describe(e: &EntryView) -> (String, String, String) {
    match e.entry.event() {
        Some(AuditEvent::Call(c)) => {
            let tokens = c
                .usage
                .map(|u| format!(" {} in/{} out", u.input, u.output))
                .unwrap_or_default();
            let cost = c
                .cost_pico_usd
                .map(|p| format!(" {}", table::usd(p)))
                .unwrap_or_default();
            let guards: Vec<String> = c
                .guards
                .iter()
                .map(|g| format!(" guard {}={}", g.binding, g.verdict.as_str()))
                .collect();
            let who = match &c.client_ip {
                Some(ip) => format!("{} from {ip}", c.workload),
                None => c.workload.clone(),
            };
            let what = format!(
                "{} {}/{} {}{tokens}{cost}{}",
                c.operation,
                c.provider,
                c.model,
                c.status,
                guards.concat()
            );
            ("call".into(), who, what)
        }
        Some(AuditEvent::Admin(a)) => {
            let who = match &a.client_ip {
                Some(ip) => format!("{} from {ip}", a.actor),
                None => a.actor.clone(),
            };
            let target = match (&a.kind, &a.name) {
                (Some(kind), Some(name)) => format!(" {kind}/{name}"),
                _ => String::new(),
            };
            let outcome = a
                .outcome
                .as_deref()
                .map(|o| format!(" {o}"))
                .unwrap_or_default();
            (
                "admin".into(),
                who,
                format!("{}{target}{outcome}", a.action),
            )
        }
        Some(AuditEvent::Checkpoint(c)) => (
            "checkpoint".into(),
            String::new(),
            format!("through entry {}", c.through),
        ),
        None => (
            "?".into(),
            String::new(),
            "the entry's body is not an event".into(),
        ),
    }
}

/// One entry as a JSON line: the entry as stored, its hash, and its event decoded as `type`
/// (`call`, `admin`, `checkpoint`) and `event`.
fn write_json_line(out: &mut impl Write, e: &EntryView) -> std::io::Result<()> {
    let mut line = serde_json::to_value(e).map_err(std::io::Error::other)?;
    if let (Some(map), Some(event)) = (line.as_object_mut(), e.entry.event()) {
        let kind = event.kind();
        let mut tagged = serde_json::to_value(event).map_err(std::io::Error::other)?;
        if let Some(inner) = tagged.get_mut(kind).map(serde_json::Value::take) {
            map.insert("type".into(), kind.into());
            map.insert("event".into(), inner);
        }
    }
    serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

async fn export(args: ExportArgs) -> Result<(), CliError> {
    let ExportFormat::Jsonl = args.output;
    let now = now_ms();
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now, "--since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now, "--until"))
        .transpose()?;
    let client = AdminClient::new(&args.client)?;
    let mut filter = String::new();
    if let Some(s) = since {
        filter.push_str(&format!("&since_ms={s}"));
    }
    if let Some(u) = until {
        filter.push_str(&format!("&until_ms={u}"));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = 0;
    loop {
        let page: EntryPage = client.get(&format!("/audit?after={after}{filter}")).await?;
        for e in &page.entries {
            write_json_line(&mut out, e)
                .map_err(|e| CliError::msg(format!("cannot write the entries: {e}")))?;
        }
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    out.flush()
        .map_err(|e| CliError::msg(format!("cannot write the entries: {e}")))
}

/// A time as `--since`/`--until` take it, in Unix milliseconds.
fn parse_time(text: &str, now_ms: u64, flag: &str) -> Result<u64, CliError> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let unit_ms = |c: char| match c {
        'd' => Some(86_400_000u64),
        'h' => Some(3_600_000),
        'm' => Some(60_000),
        's' => Some(1_000),
        _ => None,
    };
    let age = text.chars().last().and_then(|c| {
        let n: u64 = text.strip_suffix(c)?.parse().ok()?;
        n.checked_mul(unit_ms(c)?)
    });
    if let Some(age) = age {
        return Ok(now_ms.saturating_sub(age));
    }
    parse_rfc3339(text).map(|secs| secs * 1_000).ok_or_else(|| {
        CliError::msg(format!(
            "{flag} {text:?} is not a time: give 2026-11-01, 2026-11-01T08:00:00Z, Unix milliseconds, or an age such as 24h or 7d"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form() {
        let now = 1_795_435_200_000;
        assert_eq!(
            parse_time("1700000000000", now, "--since").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_time("24h", now, "--since").unwrap(), now - 86_400_000);
        assert_eq!(
            parse_time("7d", now, "--since").unwrap(),
            now - 7 * 86_400_000
        );
        assert_eq!(
            parse_time("2026-11-23T12:00:00Z", now, "--since").unwrap(),
            now
        );
        let e = parse_time("last tuesday", now, "--until")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--until") && e.contains("24h"), "{e}");
    }

    #[test]
    fn expect_is_seq_and_a_sha256() {
        let hash = "ab".repeat(32);
        assert_eq!(
            parse_expect(&format!("12:{hash}")).unwrap(),
            (12, hash.clone())
        );
        assert!(parse_expect("12").is_err());
        assert!(parse_expect(&format!("x:{hash}")).is_err());
        assert!(parse_expect("12:abc").is_err());
    }
}
