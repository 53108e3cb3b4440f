//! `loadgen`: the load generator as a command, for `scripts/scale-out`.
//!
//! - `loadgen run`: the mixed load of the library against `--base` until `--seconds` pass or SIGTERM/SIGINT
//!   arrives; writes the report (every answer and every acknowledged write) as JSON.
//! - `loadgen race`: rounds of concurrent creates of one name; exactly one may be acknowledged (201), the rest
//!   must be 409. Writes a report in the same shape, so `audit` checks its writes too.
//! - `loadgen audit`: checks a report against the stored rows, prints and publishes the figures, and exits 1 when
//!   an acknowledged write is lost, misplaced or duplicated, or the clients saw more than they may.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use loadgen::{Ack, Figures, Plan, Report, audit};

#[derive(Parser)]
#[command(name = "loadgen", about = "Bounded mixed load, same-name races and the audit of their writes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive the mixed load until --seconds pass or SIGTERM/SIGINT arrives; write the report as JSON.
    Run {
        /// Base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        base: String,
        /// Bearer token with both resource scopes; repeat for more owners (client i uses token i % count).
        #[arg(long = "token", required = true)]
        tokens: Vec<String>,
        /// Concurrent clients, each one request at a time.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Longest run; SIGTERM or SIGINT ends it sooner (each client finishes its request).
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// A request not answered within this many seconds counts as hung.
        #[arg(long, default_value_t = 10.0)]
        timeout_secs: f64,
        /// Prefix of the names created, unique per run.
        #[arg(long)]
        prefix: String,
        /// Where to write the report.
        #[arg(long)]
        report: PathBuf,
        /// Send creates with an Idempotency-Key, and send any request that got no answer (or a 502/503/504, or a
        /// 409 with Retry-After) again, a create with the same key, until it is answered for good.
        #[arg(long)]
        keyed: bool,
    },
    /// Rounds of --clients concurrent creates of one name each; exit 1 unless each round got exactly one 201 and
    /// only 409s besides.
    Race {
        /// Base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        base: String,
        /// Bearer token with both resource scopes (one owner: the name clashes only within an owner).
        #[arg(long)]
        token: String,
        /// Concurrent creates per round.
        #[arg(long, default_value_t = 24)]
        clients: usize,
        /// Rounds, each with a new name.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Prefix of the names created; round r creates `<prefix>-race-<r>`.
        #[arg(long)]
        prefix: String,
        /// Fail unless the answers came from at least this many replicas (counted by the `x-served-by` header
        /// the load balancer adds; 0 skips the check).
        #[arg(long, default_value_t = 0)]
        min_replicas: usize,
        /// Where to write the report.
        #[arg(long)]
        report: PathBuf,
    },
    /// Check a report against the stored rows; print and publish the figures; exit 1 on any loss.
    Audit {
        /// A report written by `run` or `race`.
        #[arg(long)]
        report: PathBuf,
        /// Stored rows of this run's names, one `id|name` a line (`psql -At`).
        #[arg(long)]
        rows: PathBuf,
        /// Scenario name in the published figures.
        #[arg(long)]
        scenario: String,
        /// A fault injected, in words; repeat for each.
        #[arg(long = "fault")]
        faults: Vec<String>,
        /// Recovery time to publish, in milliseconds.
        #[arg(long)]
        recovery_ms: Option<u64>,
        /// Requests that may have failed, as 5xx answers or closed connections without an answer (what the load
        /// balancer's retry policy lets through); requests that hung always fail the audit.
        #[arg(long, default_value_t = 0)]
        allow_failed: u64,
        /// Requests that got no answer must have been sent within this window, in ms after the load started
        /// (`FROM-TO`, e.g. around a fault).
        #[arg(long, value_parser = parse_window)]
        failures_between: Option<(u128, u128)>,
        /// Statuses other than 5xx that are expected (repeat); any other answer fails the audit.
        #[arg(long = "expect-status", default_values_t = [200u16, 201])]
        expect_status: Vec<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run { base, tokens, clients, seconds, timeout_secs, prefix, report, keyed } => {
                let plan = Plan {
                    base,
                    tokens,
                    clients: clients.max(1),
                    request_timeout: secs(timeout_secs)?,
                    name_prefix: prefix,
                    keyed,
                };
                run(&plan, secs(seconds)?, &report).await
            }
            Command::Race { base, token, clients, rounds, prefix, min_replicas, report } => {
                race(&base, &token, clients.max(2), rounds.max(1), &prefix, min_replicas, &report).await
            }
            Command::Audit {
                report,
                rows,
                scenario,
                faults,
                recovery_ms,
                allow_failed,
                failures_between,
                expect_status,
            } => check(&report, &rows, &scenario, &faults, recovery_ms, allow_failed, failures_between, &expect_status),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("loadgen: error: {message}");
    ExitCode::FAILURE
}

fn secs(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{value} is not a number of seconds"))
}

fn write_report(path: &Path, report: &Report) -> Result<(), String> {
    let json = serde_json::to_string(report).map_err(|e| format!("cannot serialise the report: {e}"))?;
    std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn summary(report: &Report) -> String {
    let statuses: Vec<String> = report.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    let resent = if report.retried > 0 {
        format!(", sent again {} (creates answered from their key {})", report.retried, report.replayed)
    } else {
        String::new()
    };
    format!(
        "sent {}, answered {{{}}}, transport errors {}, hung {}, not problem+json {}, acknowledged writes {}{resent}, slowest {} ms",
        report.sent,
        statuses.join(", "),
        report.transport_errors,
        report.hung,
        report.not_problem_json,
        report.acknowledged.len(),
        report.slowest.as_millis()
    )
}

async fn run(plan: &Plan, longest: Duration, path: &Path) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(longest) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
    });
    let report = loadgen::run(plan, rx).await;
    stopper.abort();
    println!("load: {}", summary(&report));
    write_report(path, &report)
}

/// One answer of a race: its status, the replica that gave it, and the id when it was a 201.
struct RaceAnswer {
    status: Option<u16>,
    served_by: Option<String>,
    id: Option<i64>,
    problem: bool,
    elapsed: Duration,
}

#[allow(clippy::too_many_arguments)]
async fn race(
    base: &str,
    token: &str,
    clients: usize,
    rounds: usize,
    prefix: &str,
    min_replicas: usize,
    path: &Path,
) -> Result<(), String> {
    http_client::install_crypto_provider();
    let mut report = Report::default();
    let mut replicas = BTreeSet::new();
    let mut failures = Vec::new();
    for round in 0..rounds {
        let name = format!("{prefix}-race-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(clients));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                // A client (and so a connection) per request, so the load balancer spreads them over the replicas.
                let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build();
                let (barrier, url, token, name) =
                    (barrier.clone(), format!("{base}/api/resource/v1"), token.to_owned(), name.clone());
                tokio::spawn(async move {
                    let client = client.map_err(|e| format!("cannot build an HTTP client: {e}"))?;
                    barrier.wait().await;
                    let started = Instant::now();
                    let sent = client.post(url).bearer_auth(token).json(&serde_json::json!({ "name": name })).send();
                    let mut answer =
                        RaceAnswer { status: None, served_by: None, id: None, problem: false, elapsed: Duration::ZERO };
                    if let Ok(response) = sent.await {
                        answer.status = Some(response.status().as_u16());
                        answer.served_by =
                            response.headers().get("x-served-by").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        answer.problem = response
                            .headers()
                            .get(reqwest::header::CONTENT_TYPE)
                            .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                        if answer.status == Some(201) {
                            answer.id = response.json::<api_types::ResourceView>().await.ok().map(|view| view.id);
                        }
                    }
                    answer.elapsed = started.elapsed();
                    Ok::<_, String>(answer)
                })
            })
            .collect();
        let mut created = 0;
        let mut by_status = BTreeMap::<String, u64>::new();
        for task in tasks {
            let answer = task.await.map_err(|e| format!("a race client failed: {e}"))??;
            report.sent += 1;
            report.slowest = report.slowest.max(answer.elapsed);
            replicas.extend(answer.served_by);
            match answer.status {
                Some(status) => {
                    *report.statuses.entry(status).or_default() += 1;
                    *by_status.entry(status.to_string()).or_default() += 1;
                    if status >= 400 && !answer.problem {
                        report.not_problem_json += 1;
                    }
                }
                None => {
                    report.transport_errors += 1;
                    *by_status.entry("no answer".to_owned()).or_default() += 1;
                }
            }
            match (answer.status, answer.id) {
                (Some(201), Some(id)) => {
                    created += 1;
                    report.acknowledged.push(Ack { id, name: name.clone() });
                }
                _ => report.unacknowledged.push(name.clone()),
            }
        }
        let others_409 = by_status.iter().all(|(s, _)| s == "201" || s == "409");
        println!("race {name}: {clients} concurrent creates answered {by_status:?}");
        if created != 1 || !others_409 {
            failures.push(format!("{name}: {created} acknowledged creates, answers {by_status:?}"));
        }
    }
    println!("race: replicas that answered: {replicas:?}; {}", summary(&report));
    write_report(path, &report)?;
    if replicas.len() < min_replicas {
        failures.push(format!("answers came from {} replicas, fewer than {min_replicas}", replicas.len()));
    }
    if failures.is_empty() { Ok(()) } else { Err(format!("same-name race: {}", failures.join("; "))) }
}

fn parse_window(text: &str) -> Result<(u128, u128), String> {
    let (from, to) = text.split_once('-').ok_or("expected FROM-TO in milliseconds")?;
    let parse = |ms: &str| ms.trim().parse::<u128>().map_err(|_| format!("{ms:?} is not a number of milliseconds"));
    Ok((parse(from)?, parse(to)?))
}

fn read_rows(path: &Path) -> Result<Vec<(i64, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (id, name) =
                line.split_once('|').ok_or_else(|| format!("{}: not `id|name`: {line}", path.display()))?;
            let id = id.parse().map_err(|_| format!("{}: not an id: {line}", path.display()))?;
            Ok((id, name.to_owned()))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check(
    report_path: &Path,
    rows: &Path,
    scenario: &str,
    faults: &[String],
    recovery_ms: Option<u64>,
    allow_failed: u64,
    failures_between: Option<(u128, u128)>,
    expect_status: &[u16],
) -> Result<(), String> {
    let text =
        std::fs::read_to_string(report_path).map_err(|e| format!("cannot read {}: {e}", report_path.display()))?;
    let report: Report =
        serde_json::from_str(&text).map_err(|e| format!("{} is not a report: {e}", report_path.display()))?;
    let rows = read_rows(rows)?;
    let audit = audit(&report, &rows);
    let faults: Vec<&str> = faults.iter().map(String::as_str).collect();
    let figures = Figures::new(scenario, &report, &audit, &faults, recovery_ms.map(Duration::from_millis));
    println!("audit {scenario}: {}", summary(&report));
    for sample in &report.error_samples {
        println!("audit {scenario}: no answer at {sample}");
    }
    println!(
        "audit {scenario}: {} acknowledged writes checked against {} stored rows: {} lost, {} stored under another id, {} names stored twice",
        audit.checked,
        rows.len(),
        audit.lost.len(),
        audit.wrong_id.len(),
        audit.duplicated.len()
    );
    figures.publish();
    let mut problems = Vec::new();
    if !audit.is_clean() {
        problems.push(format!(
            "lost {:?}, stored under another id {:?}, duplicated {:?}",
            audit.lost, audit.wrong_id, audit.duplicated
        ));
    }
    let failed = report.count(500..=599) + report.transport_errors;
    if failed > allow_failed {
        problems.push(format!(
            "{failed} requests failed ({} answered 5xx, {} closed without an answer), {allow_failed} allowed",
            report.count(500..=599),
            report.transport_errors
        ));
    }
    let unexpected: Vec<String> = report
        .statuses
        .iter()
        .filter(|(s, _)| !(500..=599).contains(*s) && !expect_status.contains(s))
        .map(|(s, n)| format!("{s} x{n}"))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("unexpected answers: {}", unexpected.join(", ")));
    }
    if let Some((from, to)) = failures_between {
        let outside: Vec<&String> = report
            .error_samples
            .iter()
            .filter(|sample| {
                let at = sample.split(' ').next().and_then(|ms| ms.parse::<u128>().ok());
                !at.is_some_and(|at| (from..=to).contains(&at))
            })
            .collect();
        if !outside.is_empty() {
            problems.push(format!("requests failed outside {from}-{to} ms: {outside:?}"));
        }
    }
    if report.hung > 0 {
        problems.push(format!("{} requests hung", report.hung));
    }
    if report.not_problem_json > 0 {
        problems.push(format!("{} error answers were not problem+json", report.not_problem_json));
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("audit {scenario}: {}", problems.join("; "))) }
}
