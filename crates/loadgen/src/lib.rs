//! A bounded concurrent load of mixed resource reads and writes against a running server. It records what the
//! clients saw (statuses, transport errors, requests that hung) and every write the server acknowledged, so the
//! reliability tests and `scripts/scale-out` can prove nothing acknowledged was lost and nothing was duplicated.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use api_types::ResourceView;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What the load does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The service's base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// Bearer tokens with both resource scopes; client `i` uses `tokens[i % len]` (one owner per token).
    pub tokens: Vec<String>,
    /// Concurrent clients, each one request at a time.
    pub clients: usize,
    /// A request not answered this long counts as hung (and is abandoned).
    pub request_timeout: Duration,
    /// Prefix of the names the clients create, unique per run so runs never collide.
    pub name_prefix: String,
    /// Send every create with an `Idempotency-Key` (its name), and send any request again (a create with the same
    /// key) until it is answered for good when it got no answer, a 502/503/504, or a 409 with `Retry-After` (a key
    /// in flight): what a client that must not lose or double a write does. Reads are safe to resend anyway.
    pub keyed: bool,
}

/// Most times a request of a keyed load is sent again before it counts as failed.
pub const KEYED_RETRIES: u32 = 40;

/// One write the server acknowledged with 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The id it answered.
    pub id: i64,
    /// The name created.
    pub name: String,
}

/// What the clients saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Requests sent.
    pub sent: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused or reset).
    pub transport_errors: u64,
    /// Of those, the ones refused at connect: the request never reached a server.
    pub refused: u64,
    /// Requests not answered within the plan's timeout.
    pub hung: u64,
    /// Error answers that were not `application/problem+json`.
    pub not_problem_json: u64,
    /// Writes acknowledged with 201.
    pub acknowledged: Vec<Ack>,
    /// Requests of a keyed load sent again (each resend counts; only the final answer is in `statuses`).
    #[serde(default)]
    pub retried: u64,
    /// Of the 201s, those marked `Idempotent-Replayed: true`: a resend answered with the first attempt's answer.
    #[serde(default)]
    pub replayed: u64,
    /// Names whose create got anything but 201 (they may or may not exist, but never twice).
    pub unacknowledged: Vec<String>,
    /// The slowest answer.
    pub slowest: Duration,
    /// When the first request got no answer (a transport error or a hang), to tell when a fault began to show.
    #[serde(skip)]
    pub first_error_at: Option<Instant>,
    /// The first hundred requests that got no answer: `<ms after the load started> ms: <read|create>: <why>`.
    #[serde(default)]
    pub error_samples: Vec<String>,
}

/// How many failed requests a report describes in `error_samples`.
const ERROR_SAMPLES: usize = 100;

impl Report {
    /// Answers with a status in `range`.
    pub fn count(&self, range: std::ops::RangeInclusive<u16>) -> u64 {
        self.statuses.iter().filter(|(s, _)| range.contains(s)).map(|(_, n)| n).sum()
    }

    /// Adds `other`'s counts and writes to these, e.g. of two loads run side by side.
    pub fn merge(&mut self, other: Self) {
        self.sent += other.sent;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.refused += other.refused;
        self.hung += other.hung;
        self.not_problem_json += other.not_problem_json;
        self.acknowledged.extend(other.acknowledged);
        self.retried += other.retried;
        self.replayed += other.replayed;
        self.unacknowledged.extend(other.unacknowledged);
        self.slowest = self.slowest.max(other.slowest);
        self.first_error_at = match (self.first_error_at, other.first_error_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.error_samples.extend(other.error_samples);
        self.error_samples.truncate(ERROR_SAMPLES);
    }

    /// Every report's counts and writes added up, e.g. of a scenario's phases.
    pub fn sum(reports: impl IntoIterator<Item = Self>) -> Self {
        reports.into_iter().fold(Self::default(), |mut total, report| {
            total.merge(report);
            total
        })
    }

    /// The counts without the lists of writes, for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "sent {}, statuses {:?}, transport errors {} ({} refused at connect), hung {}, not problem+json {}, \
             acknowledged {}, requests sent again {} (creates answered from their key {}), first errors {:?}",
            self.sent,
            self.statuses,
            self.transport_errors,
            self.refused,
            self.hung,
            self.not_problem_json,
            self.acknowledged.len(),
            self.retried,
            self.replayed,
            &self.error_samples[..self.error_samples.len().min(5)]
        )
    }
}

/// What a check of the stored rows against a report found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Acknowledged writes checked.
    pub checked: usize,
    /// Acknowledged writes missing from the database.
    pub lost: Vec<Ack>,
    /// Names stored more than once.
    pub duplicated: Vec<String>,
    /// Acknowledged writes stored under another id than the one answered.
    pub wrong_id: Vec<Ack>,
}

impl Audit {
    /// Nothing lost, duplicated or misplaced.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.wrong_id.is_empty()
    }
}

/// Checks `rows` (every stored `(id, name)` of this run's names) against what `report` says was acknowledged.
pub fn audit(report: &Report, rows: &[(i64, String)]) -> Audit {
    let mut by_name: HashMap<&str, Vec<i64>> = HashMap::new();
    for (id, name) in rows {
        by_name.entry(name).or_default().push(*id);
    }
    let mut audit = Audit { checked: report.acknowledged.len(), ..Audit::default() };
    audit.duplicated = by_name.iter().filter(|(_, ids)| ids.len() > 1).map(|(n, _)| (*n).to_owned()).collect();
    audit.duplicated.sort();
    for ack in &report.acknowledged {
        match by_name.get(ack.name.as_str()) {
            None => audit.lost.push(ack.clone()),
            Some(ids) if !ids.contains(&ack.id) => audit.wrong_id.push(ack.clone()),
            Some(_) => {}
        }
    }
    audit
}

/// Runs `plan` until `stop` turns true; each client finishes the request it is in, so every outcome is known.
pub async fn run(plan: &Plan, stop: watch::Receiver<bool>) -> Report {
    http_client::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(plan.request_timeout)
        .pool_max_idle_per_host(plan.clients)
        .build()
        .expect("a reqwest client builds");
    let plan = Arc::new(plan.clone());
    let start = Instant::now();
    let tasks: Vec<_> = (0..plan.clients)
        .map(|index| tokio::spawn(client_loop(plan.clone(), client.clone(), index, stop.clone(), start)))
        .collect();
    let mut report = Report::default();
    for task in tasks {
        report.merge(task.await.expect("a load client does not panic"));
    }
    report
}

/// Runs `plan` for `duration`.
pub async fn run_for(plan: &Plan, duration: Duration) -> Report {
    let (tx, rx) = watch::channel(false);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        let _ = tx.send(true);
    });
    let report = run(plan, rx).await;
    stopper.abort();
    report
}

async fn client_loop(
    plan: Arc<Plan>,
    client: reqwest::Client,
    index: usize,
    stop: watch::Receiver<bool>,
    start: Instant,
) -> Report {
    let token = &plan.tokens[index % plan.tokens.len()];
    let mut report = Report::default();
    let mut last_id: Option<i64> = None;
    let mut n = 0u64;
    while !*stop.borrow() {
        let started = Instant::now();
        let create_name = n.is_multiple_of(3).then(|| format!("{}-c{index}-{n}", plan.name_prefix));
        let request = || match (&create_name, last_id) {
            (Some(name), _) => {
                let create =
                    client.post(format!("{}/api/resource/v1", plan.base)).json(&serde_json::json!({ "name": name }));
                if plan.keyed { create.header("Idempotency-Key", name.as_str()) } else { create }
            }
            (None, Some(id)) if n % 3 == 1 => client.get(format!("{}/api/resource/v1/{id}", plan.base)),
            (None, _) => client.get(format!("{}/api/resource/v1?limit=20", plan.base)),
        };
        report.sent += 1;
        let mut outcome = request().bearer_auth(token).send().await;
        if plan.keyed {
            let mut resends = 0;
            while resends < KEYED_RETRIES && worth_resending(&outcome) {
                resends += 1;
                report.retried += 1;
                if let Ok(response) = outcome {
                    let _ = response.bytes().await;
                }
                tokio::time::sleep(Duration::from_millis(50 * u64::from(resends.min(10)))).await;
                outcome = request().bearer_auth(token).send().await;
            }
        }
        n += 1;
        report.slowest = report.slowest.max(started.elapsed());
        match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                *report.statuses.entry(status).or_default() += 1;
                let is_problem = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                if status >= 400 && !is_problem {
                    report.not_problem_json += 1;
                }
                let replayed = response.headers().get("idempotent-replayed").is_some_and(|value| value == "true");
                match (status, create_name) {
                    (201, Some(name)) => match response.json::<ResourceView>().await {
                        Ok(view) => {
                            report.replayed += u64::from(replayed);
                            last_id = Some(view.id);
                            report.acknowledged.push(Ack { id: view.id, name });
                        }
                        // A 201 whose body did not arrive is not an acknowledgement the client could act on.
                        Err(_) => report.unacknowledged.push(name),
                    },
                    (_, Some(name)) => report.unacknowledged.push(name),
                    _ => {
                        let _ = response.bytes().await;
                    }
                }
            }
            Err(error) => {
                report.first_error_at.get_or_insert_with(Instant::now);
                if report.error_samples.len() < ERROR_SAMPLES {
                    let mut why = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        why.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    let what = if create_name.is_some() { "create" } else { "read" };
                    report.error_samples.push(format!("{} ms: {what}: {why}", (started - start).as_millis()));
                }
                if error.is_timeout() {
                    report.hung += 1;
                } else {
                    report.transport_errors += 1;
                    report.refused += u64::from(error.is_connect());
                }
                if let Some(name) = create_name {
                    report.unacknowledged.push(name);
                }
                // Don't spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    report
}

/// Whether a keyed create's outcome leaves it unknown or not yet done: no answer, a gateway's or the server's
/// "try again", or its key in flight.
fn worth_resending(outcome: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match outcome {
        Err(_) => true,
        Ok(response) => {
            matches!(response.status().as_u16(), 502..=504)
                || (response.status() == reqwest::StatusCode::CONFLICT
                    && response.headers().contains_key(reqwest::header::RETRY_AFTER))
        }
    }
}

/// How long each phase of a reliability scenario runs: `RELIABILITY_PHASE_SECS`, 2 by default (the test
/// command); `scripts/reliability` sets more for the published figures.
pub fn phase() -> Duration {
    let secs = std::env::var("RELIABILITY_PHASE_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.5))
}

/// One scenario's figures, as `RELIABILITY.md` tabulates them.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Short name, e.g. `database outage (PostgreSQL)`.
    pub scenario: String,
    /// Requests sent by the clients.
    pub sent: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer or hung: errors the clients saw beyond HTTP statuses.
    pub client_errors: u64,
    /// Error answers that were not problem+json (must be 0).
    pub not_problem_json: u64,
    /// Faults injected, in words.
    pub faults: Vec<String>,
    /// Time from the fault's end to the first success, where there is one.
    pub recovery_ms: Option<u128>,
    /// Acknowledged writes checked against the database.
    pub writes_checked: usize,
    /// Acknowledged writes missing (must be 0).
    pub writes_lost: usize,
    /// Names stored twice (must be 0).
    pub duplicates: usize,
}

impl Figures {
    /// Figures of `report` and its `audit`.
    pub fn new(scenario: &str, report: &Report, audit: &Audit, faults: &[&str], recovery: Option<Duration>) -> Self {
        Self {
            scenario: scenario.to_owned(),
            sent: report.sent,
            statuses: report.statuses.clone(),
            client_errors: report.transport_errors + report.hung,
            not_problem_json: report.not_problem_json,
            faults: faults.iter().map(|f| (*f).to_owned()).collect(),
            recovery_ms: recovery.map(|d| d.as_millis()),
            writes_checked: audit.checked,
            writes_lost: audit.lost.len() + audit.wrong_id.len(),
            duplicates: audit.duplicated.len(),
        }
    }

    /// Prints the figures and, when `RELIABILITY_OUT` names a directory, writes them there as JSON for
    /// `scripts/reliability` to tabulate.
    pub fn publish(&self) {
        let json = serde_json::to_string(self).expect("figures serialise");
        println!("reliability figures: {json}");
        if let Ok(dir) = std::env::var("RELIABILITY_OUT") {
            let file: String = self.scenario.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            let _ = std::fs::create_dir_all(&dir);
            std::fs::write(std::path::Path::new(&dir).join(format!("{file}.json")), json).expect("write figures");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(acks: &[(i64, &str)]) -> Report {
        Report {
            acknowledged: acks.iter().map(|(id, name)| Ack { id: *id, name: (*name).to_owned() }).collect(),
            ..Report::default()
        }
    }

    #[test]
    fn audit_finds_lost_duplicated_and_misplaced_writes() {
        let rows = [(1, "a".to_owned()), (2, "b".to_owned()), (3, "b".to_owned()), (9, "c".to_owned())];
        let audit = audit(&report(&[(1, "a"), (2, "b"), (4, "c"), (5, "d")]), &rows);
        assert_eq!(audit.checked, 4);
        assert_eq!(audit.lost, [Ack { id: 5, name: "d".to_owned() }]);
        assert_eq!(audit.duplicated, ["b"]);
        assert_eq!(audit.wrong_id, [Ack { id: 4, name: "c".to_owned() }]);
        assert!(!audit.is_clean());
    }

    #[test]
    fn audit_of_every_write_stored_once_is_clean() {
        let rows = [(1, "a".to_owned()), (2, "b".to_owned()), (3, "unacknowledged".to_owned())];
        assert!(audit(&report(&[(1, "a"), (2, "b")]), &rows).is_clean());
    }
}
