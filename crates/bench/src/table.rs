//! The result table: one row per figure, with its baseline from the same
//! run, the ratio, the target and whether it was met.

use std::fmt::Write as _;
use std::time::Duration;

/// Whether a figure meets its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the target.
    Met,
    /// Outside it.
    Missed,
    /// A figure given for context, with no target of its own.
    Context,
}

impl Verdict {
    /// `Met` if `ok`, else `Missed`.
    pub fn of(ok: bool) -> Verdict {
        if ok { Verdict::Met } else { Verdict::Missed }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Context => "",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// The measurement.
    pub value: String,
    /// The baseline measured in the same run.
    pub baseline: String,
    /// Measurement over baseline.
    pub ratio: String,
    /// The target.
    pub target: String,
    /// Met or missed.
    pub verdict: Verdict,
}

impl Row {
    /// A row with a target.
    pub fn new(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            baseline: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            verdict: Verdict::Context,
        }
    }

    /// Sets the baseline and the ratio.
    pub fn baseline(mut self, baseline: impl Into<String>, ratio: f64) -> Row {
        self.baseline = baseline.into();
        self.ratio = format!("{ratio:.2}×");
        self
    }

    /// Sets the baseline without a ratio.
    pub fn baseline_only(mut self, baseline: impl Into<String>) -> Row {
        self.baseline = baseline.into();
        self
    }

    /// Sets the target and whether it was met.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.verdict = Verdict::of(met);
        self
    }
}

/// The table as Markdown (readable in a terminal, pasted into the docs).
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| figure | measured | baseline (same run) | ratio | target | |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.value,
            r.baseline,
            r.ratio,
            r.target,
            r.verdict.label()
        );
    }
    out
}

/// Sorted samples and their percentiles.
#[derive(Clone, Debug)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// The samples, sorted.
    pub fn into_vec(self) -> Vec<Duration> {
        self.0
    }

    /// From unsorted samples.
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort();
        Samples(samples)
    }

    /// The `p`th percentile (nearest rank), 0 < p ≤ 100.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Bytes in a human unit.
pub fn bytes(n: f64) -> String {
    if n >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", n / (1024.0 * 1024.0))
    } else if n >= 10.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = Samples::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(s.p50(), Duration::from_millis(50));
        assert_eq!(s.p99(), Duration::from_millis(99));
        assert_eq!(s.percentile(100.0), Duration::from_millis(100));
        let one = Samples::new(vec![Duration::from_millis(7)]);
        assert_eq!(
            (one.p50(), one.p99()),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
    }
}
