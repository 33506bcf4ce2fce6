//! Progress display. The pipeline only sees a `Write` tap that counts plaintext bytes; this
//! module decides whether that becomes a bar (interactive terminal), a log line every
//! interval (the daemon, `--progress log`: journald and Kubernetes see a long job is alive)
//! or nothing (cron mails any output).

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown, decided once per process by the command line (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A bar on a terminal, nothing elsewhere.
    Auto,
    Bar,
    /// An info log line every interval.
    Log(Duration),
    Nothing,
}

static SHOW: OnceLock<Show> = OnceLock::new();

/// Set the process's progress display; the first call wins (tests and libraries call none).
pub fn configure(show: Show) {
    let _ = SHOW.set(show);
}

fn current() -> Show {
    *SHOW.get().unwrap_or(&Show::Auto)
}

/// Whether progress bars are shown: on a terminal (or asked for), and not with --quiet.
pub fn enabled(quiet: bool) -> bool {
    match current() {
        Show::Auto => !quiet && io::stderr().is_terminal(),
        Show::Bar => !quiet,
        Show::Log(_) | Show::Nothing => false,
    }
}

/// What a meter's count is heading for, when known: a restore's archive size from the
/// manifest, or a backup's guess from `pg_database_size` (indexes and free space are not
/// dumped, so said as an estimate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub bytes: u64,
    pub estimated: bool,
}

impl Total {
    /// "of 1.2 GiB", or "of ~1.2 GiB (estimated from the database size)".
    fn describe(&self) -> String {
        match self.estimated {
            false => format!("of {}", human_bytes(self.bytes)),
            true => format!(
                "of ~{} (estimated from the database size)",
                human_bytes(self.bytes)
            ),
        }
    }
}

/// Time left at the average rate so far: None before there is a rate to go by, and once the
/// count reached the total (an estimate that was too small says so instead of "0s left").
pub fn remaining(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done == 0 || done >= total || elapsed.is_zero() {
        return None;
    }
    let rate = done as f64 / elapsed.as_secs_f64();
    Some(Duration::from_secs_f64((total - done) as f64 / rate))
}

/// ", about 4m 05s left", ", past the estimate", or nothing: what the bar and the log line
/// append after the rate.
pub fn remaining_text(done: u64, total: Option<Total>, elapsed: Duration) -> String {
    let Some(t) = total else {
        return String::new();
    };
    match remaining(done, t.bytes, elapsed) {
        Some(left) => format!(", about {} left", human_duration(left.as_secs_f64())),
        None if done >= t.bytes && t.estimated => ", past the estimate".to_string(),
        None => String::new(),
    }
}

/// The log-line thread of a [`Meter`]: wakes every interval and logs the count; ends when the
/// meter is dropped.
struct Ticker {
    bytes: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
}

impl Ticker {
    fn start(label: &str, every: Duration, total: Option<Total>) -> Ticker {
        let bytes = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel::<()>();
        let (count, label, t0) = (bytes.clone(), label.to_string(), Instant::now());
        let of = total
            .map(|t| format!(" {}", t.describe()))
            .unwrap_or_default();
        std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let n = count.load(Ordering::Relaxed);
                let elapsed = t0.elapsed();
                let rate = (n as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
                let left = remaining(n, total.map_or(0, |t| t.bytes), elapsed);
                tracing::info!(
                    phase = %label,
                    bytes = n,
                    bytes_per_second = rate,
                    total_bytes = total.map(|t| t.bytes),
                    total_estimated = total.map(|t| t.estimated),
                    seconds_left = left.map(|d| d.as_secs()),
                    "progress: {label}: {}{of} ({}/s) after {}{}",
                    human_bytes(n),
                    human_bytes(rate),
                    human_duration(elapsed.as_secs_f64()),
                    remaining_text(n, total, elapsed)
                );
            }
        });
        Ticker {
            bytes,
            stop: Some(stop),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// Counts bytes and, when enabled, shows bytes, rate and elapsed time.
pub struct Meter {
    bar: Option<ProgressBar>,
    ticker: Option<Ticker>,
    pub bytes: u64,
}

impl Meter {
    pub fn new(label: &str, show: bool) -> Self {
        Self::with_total(label, show, None)
    }

    /// A meter that also shows how much is left of `total` (bar and log line).
    pub fn with_total(label: &str, show: bool, total: Option<Total>) -> Self {
        let bar = show.then(|| bar(label, total));
        let ticker = match current() {
            Show::Log(every) => Some(Ticker::start(label, every, total)),
            _ => None,
        };
        Meter {
            bar,
            ticker,
            bytes: 0,
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Write for Meter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        if let Some(t) = &self.ticker {
            t.bytes.store(self.bytes, Ordering::Relaxed);
        }
        if let Some(b) = &self.bar {
            b.inc(buf.len() as u64);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A spinner with bytes and rate; with a total, also "of N" and the time left.
fn bar(label: &str, total: Option<Total>) -> ProgressBar {
    let template = match total {
        None => "{spinner} {prefix} {bytes} ({bytes_per_sec}) {elapsed}".to_string(),
        Some(t) => format!(
            "{{spinner}} {{prefix}} {{bytes}} {} ({{bytes_per_sec}}) {{elapsed}}{{left}}",
            t.describe()
        ),
    };
    let b = ProgressBar::new_spinner();
    b.set_style(
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .with_key(
                "left",
                move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&remaining_text(s.pos(), total, s.elapsed()));
                },
            ),
    );
    b.set_prefix(label.to_string());
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// Whether a meter shows anything (a bar asked for, or log lines): only then is a total
/// worth a query.
pub fn shown(show: bool) -> bool {
    show || matches!(current(), Show::Log(_))
}

/// A count of steps out of a known total (TOC entries restored), shown on a terminal only.
#[derive(Clone)]
pub struct Steps(Option<ProgressBar>);

impl Steps {
    pub fn new(label: &str, total: u64, show: bool) -> Self {
        Steps(show.then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {pos}/{len} {wide_bar} {elapsed}")
                    .expect("valid template"),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        }))
    }

    pub fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Two taps as one.
pub struct Tee<A, B>(pub A, pub B);

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// "0.8s", "12.3s", "4m 05s", "26h 03m", "3d 04h": the one way pgdr prints a duration
/// (RTO, RPO, ages, restore phases), so the same span reads the same in every message.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let t = s.round() as u64;
    if t < 3600 {
        format!("{}m {:02}s", t / 60, t % 60)
    } else if t < 48 * 3600 {
        format!("{}h {:02}m", t / 3600, (t % 3600) / 60)
    } else {
        format!("{}d {:02}h", t / 86400, (t % 86400) / 3600)
    }
}

/// [`human_duration`] of an age or a gap given as a chrono duration.
pub fn human_age(d: chrono::Duration) -> String {
    human_duration(d.num_milliseconds() as f64 / 1000.0)
}

/// "1.2 GiB" for reports.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(0.84), "0.8s");
        assert_eq!(human_duration(3.25), "3.2s");
        assert_eq!(human_duration(59.94), "59.9s");
        assert_eq!(human_duration(245.0), "4m 05s");
        assert_eq!(human_duration(725.0), "12m 05s");
        assert_eq!(human_duration(3.0 * 3600.0 + 720.0), "3h 12m");
        assert_eq!(human_duration(26.0 * 3600.0 + 180.0), "26h 03m");
        assert_eq!(human_duration(3.0 * 86400.0 + 4.0 * 3600.0), "3d 04h");
        assert_eq!(human_age(chrono::Duration::hours(27)), "27h 00m");
        assert_eq!(human_age(chrono::Duration::seconds(-5)), "0.0s");
    }

    #[test]
    fn time_left_goes_by_the_average_rate() {
        let s = Duration::from_secs;
        // 100 of 400 bytes in 10 s: 300 more at 10 B/s.
        assert_eq!(remaining(100, 400, s(10)), Some(s(30)));
        assert_eq!(remaining(1 << 30, 4 << 30, s(60)), Some(s(180)));
        // No rate yet, nothing left, or past an estimate: no number.
        assert_eq!(remaining(0, 400, s(10)), None);
        assert_eq!(remaining(100, 400, Duration::ZERO), None);
        assert_eq!(remaining(400, 400, s(10)), None);
        assert_eq!(remaining(500, 400, s(10)), None);
        let exact = Some(Total {
            bytes: 400,
            estimated: false,
        });
        let estimate = Total {
            bytes: 400,
            estimated: true,
        };
        let guess = Some(estimate);
        assert_eq!(remaining_text(100, exact, s(10)), ", about 30.0s left");
        assert_eq!(remaining_text(100, guess, s(250)), ", about 12m 30s left");
        assert_eq!(remaining_text(500, guess, s(10)), ", past the estimate");
        assert_eq!(remaining_text(400, exact, s(10)), "");
        assert_eq!(remaining_text(100, None, s(10)), "");
        assert_eq!(
            estimate.describe(),
            "of ~400 B (estimated from the database size)"
        );
    }
}
