//! How hard zstd looks for repeats, chosen from what the data has compressed to so far.
//!
//! At level 1 (zstd's `fast` strategy) most of zstd's time goes into looking up each position
//! of the input for an earlier match. On text that repeats (most tables) that search is where
//! the ratio comes from. On text that does not (hashes, UUIDs, tokens, random filler) the
//! lookups find almost nothing and the ratio comes from entropy-coding the literals instead:
//! the search is CPU taken from the server's `COPY` on a small machine. So the encoder watches
//! the ratio window by window and, where it falls under 3:1, sets zstd's `targetLength` to 3 (in
//! the fast strategy: step ahead faster after misses) with literal compression kept on; where
//! it climbs over 4:1 the full search comes back. Measured on pg_dump output with 84 random
//! characters per row (the benchmarks' dataset B): zstd 18% faster for 1.2% more bytes;
//! pgbench's compressible rows (86:1) never switch. Levels above 1 are a choice of ratio over
//! speed and keep the full search. The stored format does not change: any zstd decoder reads it.

/// Plaintext between two looks at the ratio. The first window is only a baseline: with zstd's
/// worker threads, output lags input by a few 2 MiB jobs.
pub(super) const WINDOW: u64 = 8 * 1024 * 1024;
/// Under this ratio (plain / compressed) the search steps ahead faster.
const FAST_BELOW: f64 = 3.0;
/// Over this ratio the full search comes back (apart from `FAST_BELOW`, so a table near the
/// edge does not flip the setting every window).
const FULL_ABOVE: f64 = 4.0;
/// zstd's `targetLength` for the fast strategy: its acceleration (0 is the level's own).
pub(super) const ACCELERATED: u32 = 3;

/// The search setting and the counters of the window being watched.
pub(super) struct Search {
    accelerated: bool,
    next: u64,
    from_plain: u64,
    from_compressed: u64,
    baseline_taken: bool,
}

impl Search {
    /// `None` where the level's search is kept whatever the data (levels other than 1).
    pub(super) fn new(level: i32) -> Option<Search> {
        (level == 1).then_some(Search {
            accelerated: false,
            next: WINDOW,
            from_plain: 0,
            from_compressed: 0,
            baseline_taken: false,
        })
    }

    /// After `plain` bytes in and `compressed` bytes out in all: the `targetLength` to set
    /// now, when it changes.
    pub(super) fn observe(&mut self, plain: u64, compressed: u64) -> Option<u32> {
        if plain < self.next {
            return None;
        }
        self.next = plain + WINDOW;
        let (dp, dc) = (plain - self.from_plain, compressed - self.from_compressed);
        self.from_plain = plain;
        self.from_compressed = compressed;
        if !std::mem::replace(&mut self.baseline_taken, true) || dc == 0 {
            return None;
        }
        let ratio = dp as f64 / dc as f64;
        if !self.accelerated && ratio < FAST_BELOW {
            self.accelerated = true;
            Some(ACCELERATED)
        } else if self.accelerated && ratio > FULL_ABOVE {
            self.accelerated = false;
            Some(0)
        } else {
            None
        }
    }

    /// [`Search::observe`], and the change, if any, made on `z` and logged.
    pub(super) fn adapt<W: std::io::Write>(
        &mut self,
        z: &mut zstd::stream::write::Encoder<'_, W>,
        plain: u64,
        compressed: u64,
    ) -> std::io::Result<()> {
        let Some(t) = self.observe(plain, compressed) else {
            return Ok(());
        };
        let how = if t == 0 {
            "searches fully again"
        } else {
            "steps ahead faster"
        };
        tracing::debug!(
            event = "zstd_search",
            target_length = t,
            at_bytes = plain,
            "zstd {how}"
        );
        z.set_parameter(zstd::stream::raw::CParameter::TargetLength(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed windows of the given ratios; the settings sent, in order.
    fn run(ratios: &[f64]) -> Vec<u32> {
        let mut s = Search::new(1).unwrap();
        let (mut plain, mut comp) = (0u64, 0u64);
        let mut sent = Vec::new();
        for r in ratios {
            plain += WINDOW;
            comp += (WINDOW as f64 / r) as u64;
            sent.extend(s.observe(plain, comp));
        }
        sent
    }

    #[test]
    fn hard_data_steps_faster_and_repeats_bring_the_search_back() {
        // The first window is the baseline only.
        assert_eq!(run(&[2.0]), Vec::<u32>::new());
        assert_eq!(run(&[2.0, 2.1]), vec![ACCELERATED]);
        // Between the two edges nothing flips.
        assert_eq!(run(&[2.0, 2.1, 3.5, 2.9, 3.9]), vec![ACCELERATED]);
        assert_eq!(
            run(&[2.0, 2.1, 3.5, 50.0, 2.5]),
            vec![ACCELERATED, 0, ACCELERATED]
        );
        // Compressible data never switches.
        assert_eq!(run(&[86.0; 20]), Vec::<u32>::new());
    }

    #[test]
    fn only_level_one_adapts() {
        assert!(Search::new(1).is_some());
        for level in [-3, 0, 2, 3, 19] {
            assert!(Search::new(level).is_none(), "level {level}");
        }
    }

    #[test]
    fn windows_are_counted_in_plaintext() {
        let mut s = Search::new(1).unwrap();
        // Nothing is decided before a whole window has gone in.
        assert_eq!(s.observe(WINDOW - 1, 1), None);
        assert_eq!(s.observe(WINDOW, WINDOW / 2), None);
        assert_eq!(s.observe(2 * WINDOW - 1, WINDOW), None);
        assert_eq!(s.observe(2 * WINDOW, WINDOW), Some(ACCELERATED));
    }
}
