//! `authflow-bench`: a load harness for authflow. See `authflow-bench --help`.
#![forbid(unsafe_code)]

mod histogram;
mod load;
mod scenarios;
mod stack;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;

use crate::load::{Outcome, Plan};
use crate::scenarios::Scenario;
use crate::stack::{Backend, Stack};

/// Every error ends the run with a message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Load harness for authflow.
///
/// Starts the authorization server (on the chosen backend) and a resource server in this process, each on a
/// loopback port served by `axum::serve` with TCP_NODELAY as `authflow serve` does. The resource server is
/// a one-tool rmcp MCP server (streamable HTTP, stateless, JSON answers), at /mcp behind `BearerAuthLayer`
/// and at /open/mcp without it, for the tools-call scenarios. The harness then drives them with
/// keep-alive HTTP/1.1 connections, each with one request in flight, and prints requests per second and
/// p50/p99 latency per scenario next to the no-op ceiling.
///
/// The load client runs on the same Tokio runtime and the same cores as the servers: the figures are
/// what one machine does end to end, not what the server alone could do with the client elsewhere.
#[derive(Debug, Parser)]
#[command(name = "authflow-bench", version, after_help = EXAMPLES)]
struct Args {
    /// Storage of the authorization server. PostgreSQL is `AUTHFLOW_TEST_POSTGRES_URL` (default
    /// postgres://postgres@127.0.0.1:5432/test), in a fresh schema dropped at the end.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured time per scenario and run, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded load before each measurement.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Runs of every scenario, interleaved, every other run in reverse order (A B C, C B A, …) so no scenario
    /// always follows the same one. The table shows the median of each figure, and ratios as the median of
    /// each run's own ratio: the machine's speed drifts from run to run, and a ratio within one run cancels
    /// that.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Authorization codes to pre-mint for `authorization-code` (each is used once).
    #[arg(long, default_value_t = 100_000)]
    codes: usize,
    /// Tokio worker threads, shared by the servers and the load client (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Drive an already-running authorization server instead (e.g. `authflow serve`): `noop` always,
    /// `introspect` with --client-id, --client-secret and --token.
    #[arg(long)]
    target: Option<url::Url>,
    /// With --target: the introspecting client's id (client_secret_basic).
    #[arg(long, requires = "target")]
    client_id: Option<String>,
    /// With --target: that client's secret.
    #[arg(long, requires = "target", env = "AUTHFLOW_BENCH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// With --target: a live access token the client may introspect.
    #[arg(long, requires = "target", env = "AUTHFLOW_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

const EXAMPLES: &str = "Examples:
  authflow-bench                                         # every scenario on SQLite, 32 connections, 10 s each
  authflow-bench --backend postgres --runs 3             # median of three interleaved runs
  authflow-bench --scenario noop,introspect --connections 8 --duration 5s
  authflow-bench --target http://127.0.0.1:8000 --scenario noop";

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 10s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s or m)")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The allocator `authflow` runs with by default.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authflow-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authflow-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn run(args: Args) -> Result<(), Error> {
    let plan = Plan { connections: args.connections, warmup: args.warmup, duration: args.duration };
    let mut scenarios = if args.scenario.is_empty() { Scenario::ALL.to_vec() } else { args.scenario.clone() };
    scenarios.sort();
    scenarios.dedup();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores);
    println!(
        "authflow-bench: {} connections, {:?} warm-up + {:?} measured, {} run(s); {cores} cores, {threads} runtime threads",
        plan.connections, plan.warmup, plan.duration, args.runs
    );
    println!("load average before: {}", load_average());

    if let Some(target) = &args.target {
        let results = drive_target(target, &args, &scenarios, plan).await?;
        println!("target {target} (client in this process, server elsewhere)");
        print_table(&results);
        println!("load average after: {}", load_average());
        return Ok(());
    }

    println!(
        "NOTE: the servers and the load client share this process, one Tokio runtime and {cores} cores; \
         every figure includes the client's own cost."
    );
    let codes = if scenarios.contains(&Scenario::AuthorizationCode) { args.codes } else { 0 };
    eprintln!("starting the {:?} stack ({codes} codes to mint)…", args.backend);
    let mut stack = Stack::start(args.backend, codes).await?;
    let result = measure(&stack, &scenarios, plan, args.runs).await;
    stack.stop().await;
    let results = result?;
    println!("backend: {:?}", args.backend);
    print_table(&results);
    println!("load average after: {}", load_average());
    Ok(())
}

async fn measure(
    stack: &Stack,
    scenarios: &[Scenario],
    plan: Plan,
    runs: usize,
) -> Result<Vec<(Scenario, Vec<Outcome>)>, Error> {
    let mut results: Vec<(Scenario, Vec<Outcome>)> = scenarios.iter().map(|s| (*s, Vec::new())).collect();
    for run in 0..runs.max(1) {
        for i in run_order(results.len(), run) {
            let (scenario, outcomes) = &mut results[i];
            let (addr, make) = scenarios::against(stack, *scenario);
            let outcome = load::run(addr, plan, make).await?;
            report_run(*scenario, run, &outcome);
            outcomes.push(outcome);
        }
    }
    Ok(results)
}

/// The order of `n` scenarios in run `run`: forward, then backward, and so on (ABBA), so that over two runs
/// each scenario has run as often early as late, and before as after its neighbours.
fn run_order(n: usize, run: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if run % 2 == 1 {
        order.reverse();
    }
    order
}

async fn drive_target(
    target: &url::Url,
    args: &Args,
    scenarios: &[Scenario],
    plan: Plan,
) -> Result<Vec<(Scenario, Vec<Outcome>)>, Error> {
    if target.scheme() != "http" {
        return Err("--target must be an http:// URL (TLS is the reverse proxy's business)".into());
    }
    let addr: SocketAddr = target
        .socket_addrs(|| Some(80))?
        .into_iter()
        .next()
        .or_else(|| "127.0.0.1:80".to_socket_addrs().ok()?.next())
        .ok_or("the target has no address")?;
    let base = target.path().trim_end_matches('/');
    let mut results = Vec::new();
    for scenario in scenarios {
        let make = match scenario {
            Scenario::Noop => scenarios::noop(addr, base),
            Scenario::Introspect => match (&args.client_id, &args.client_secret, &args.token) {
                (Some(id), Some(secret), Some(token)) => {
                    let basic = authflow_resource::introspection::basic_credentials(id, secret);
                    scenarios::introspect(addr, base, &basic, token)
                }
                _ => return Err("introspect against --target needs --client-id, --client-secret and --token".into()),
            },
            other => return Err(format!("--target supports noop and introspect, not {other:?}").into()),
        };
        let mut outcomes = Vec::new();
        for run in 0..args.runs.max(1) {
            let outcome = load::run(addr, plan, make.clone()).await?;
            report_run(*scenario, run, &outcome);
            outcomes.push(outcome);
        }
        results.push((*scenario, outcomes));
    }
    Ok(results)
}

fn report_run(scenario: Scenario, run: usize, o: &Outcome) {
    eprintln!(
        "  run {}: {:<33} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  errors {}{}  (load {})",
        run + 1,
        scenario.name(),
        o.rate,
        micros(o.latency.quantile(0.5)),
        micros(o.latency.quantile(0.99)),
        o.errors,
        if o.exhausted { "  [ran out of codes: shorter window]" } else { "" },
        load_average(),
    );
    if let Some(e) = &o.first_error {
        eprintln!("    first unexpected answer: {e}");
    }
}

fn micros(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Medians over the runs: requests per second, p50, p99 (seconds), errors.
fn medians(outcomes: &[Outcome]) -> (f64, f64, f64, u64) {
    let of = |f: &dyn Fn(&Outcome) -> f64| median(outcomes.iter().map(f).collect());
    (
        of(&|o| o.rate),
        of(&|o| o.latency.quantile(0.5).as_secs_f64()),
        of(&|o| o.latency.quantile(0.99).as_secs_f64()),
        outcomes.iter().map(|o| o.errors).sum(),
    )
}

/// The median over the runs of `of`'s rate divided by `base`'s rate in the same run, with the lowest and
/// highest of those ratios; `None` without runs to pair.
fn paired_ratio(of: &[Outcome], base: &[Outcome]) -> Option<(f64, f64, f64)> {
    let ratios: Vec<f64> = of.iter().zip(base).filter(|(_, b)| b.rate > 0.0).map(|(o, b)| o.rate / b.rate).collect();
    let low = ratios.iter().copied().reduce(f64::min)?;
    let high = ratios.iter().copied().reduce(f64::max)?;
    Some((median(ratios), low, high))
}

fn print_table(results: &[(Scenario, Vec<Outcome>)]) {
    let find = |s| results.iter().find(|(x, _)| *x == s).map(|(_, o)| o.as_slice());
    let ceiling = find(Scenario::Noop);
    println!();
    println!("| scenario | req/s | p50 | p99 | vs ceiling | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (scenario, outcomes) in results {
        let (rate, p50, p99, errors) = medians(outcomes);
        let ratio = ceiling.and_then(|c| paired_ratio(outcomes, c)).map_or("—".to_owned(), |(r, low, high)| {
            if outcomes.len() > 1 {
                format!("{:.0} % ({:.0}–{:.0})", 100.0 * r, 100.0 * low, 100.0 * high)
            } else {
                format!("{:.0} %", 100.0 * r)
            }
        });
        println!(
            "| {} | {:.0} | {} | {} | {ratio} | {errors} |",
            scenario.name(),
            rate,
            micros(Duration::from_secs_f64(p50)),
            micros(Duration::from_secs_f64(p99)),
        );
    }
    if let (Some(with), Some(without)) = (find(Scenario::ToolsCall), find(Scenario::ToolsCallOpen)) {
        let (with_median, without_median) = (medians(with), medians(without));
        if let Some((r, low, high)) = paired_ratio(with, without) {
            println!(
                "\nBearerAuthLayer (cached token): {:+.1} % req/s (runs from {:+.1} to {:+.1} %), p50 {:+.0} µs, \
                 p99 {:+.0} µs vs unprotected",
                100.0 * (r - 1.0),
                100.0 * (low - 1.0),
                100.0 * (high - 1.0),
                (with_median.1 - without_median.1) * 1e6,
                (with_median.2 - without_median.2) * 1e6,
            );
        }
    }
    if results.iter().any(|(_, o)| o.iter().any(|o| o.errors > 0)) {
        println!("WARNING: some requests got unexpected answers (see above); their latencies are not counted.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn runs_alternate_their_order() {
        assert_eq!(run_order(3, 0), [0, 1, 2]);
        assert_eq!(run_order(3, 1), [2, 1, 0]);
        assert_eq!(run_order(3, 2), [0, 1, 2]);
        assert_eq!(run_order(0, 1), [] as [usize; 0]);
    }

    fn outcome(rate: f64) -> Outcome {
        Outcome { rate, latency: Default::default(), errors: 0, first_error: None, exhausted: false }
    }

    #[test]
    fn ratios_pair_each_run_with_its_own_base() {
        // The machine doubled its speed between the runs; each run's ratio is 50 %, the ratio of the
        // medians is not.
        let of = [outcome(10.0), outcome(20.0), outcome(10.0)];
        let base = [outcome(20.0), outcome(40.0), outcome(20.0)];
        assert_eq!(paired_ratio(&of, &base), Some((0.5, 0.5, 0.5)));
        let uneven = [outcome(30.0), outcome(20.0), outcome(10.0)];
        assert_eq!(paired_ratio(&uneven, &base), Some((0.5, 0.5, 1.5)));
        assert_eq!(paired_ratio(&of, &[outcome(0.0)]), None);
        assert_eq!(paired_ratio(&[], &[]), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
