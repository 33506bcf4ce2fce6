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

/// The log-line thread of a [`Meter`]: wakes every interval and logs the count; ends when the
/// meter is dropped.
struct Ticker {
    bytes: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
}

impl Ticker {
    fn start(label: &str, every: Duration) -> Ticker {
        let bytes = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel::<()>();
        let (count, label, t0) = (bytes.clone(), label.to_string(), Instant::now());
        std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let n = count.load(Ordering::Relaxed);
                let secs = t0.elapsed().as_secs_f64();
                let rate = (n as f64 / secs.max(0.001)) as u64;
                tracing::info!(
                    phase = %label,
                    bytes = n,
                    bytes_per_second = rate,
                    "progress: {label}: {} ({}/s) after {}",
                    human_bytes(n),
                    human_bytes(rate),
                    human_duration(secs)
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
        let bar = show.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} {bytes} ({bytes_per_sec}) {elapsed}",
                )
                .expect("valid template"),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        let ticker = match current() {
            Show::Log(every) => Some(Ticker::start(label, every)),
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
}
