//! Reliability under load: each scenario drives a bounded concurrent load of mixed reads and writes
//! (`loadgen`) against the real server, database and provider, injects a fault, and checks what clients saw and
//! that every acknowledged write is stored exactly once. Figures go to `RELIABILITY_OUT` (`scripts/reliability`).

mod database_outage;
mod ownership;
mod process;
mod provider_outage;
mod proxy;
mod scale_out;
