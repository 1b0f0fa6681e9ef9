//! Measured numbers beside their targets, with an honest pass or miss.

/// One target and what was measured for it.
pub struct Verdict {
    what: String,
    measured: f64,
    target: f64,
    unit: &'static str,
    at_most: bool,
}

impl Verdict {
    /// A target the measurement must not exceed.
    pub fn at_most(what: String, measured: f64, target: f64, unit: &'static str) -> Self {
        Self {
            what,
            measured,
            target,
            unit,
            at_most: true,
        }
    }

    /// A target the measurement must reach.
    pub fn at_least(what: String, measured: f64, target: f64, unit: &'static str) -> Self {
        Self {
            what,
            measured,
            target,
            unit,
            at_most: false,
        }
    }

    /// Whether the target is met; a measurement that could not be made (NaN) is a miss.
    pub fn passed(&self) -> bool {
        if self.at_most {
            self.measured <= self.target
        } else {
            self.measured >= self.target
        }
    }
}

/// Prints the targets as a table.
pub fn print_targets(verdicts: &[Verdict]) {
    println!("targets:");
    for verdict in verdicts {
        let bound = if verdict.at_most { "≤" } else { "≥" };
        println!(
            "  {:<58} {:>10} {:<3} (target {bound} {} {})  {}",
            verdict.what,
            format_number(verdict.measured),
            verdict.unit,
            format_number(verdict.target),
            verdict.unit,
            if verdict.passed() { "pass" } else { "MISS" }
        );
    }
}

fn format_number(value: f64) -> String {
    if value.is_nan() {
        "n/a".to_owned()
    } else if value >= 1000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_missing_measurements() {
        assert!(Verdict::at_most("cpu".into(), 29.9, 30.0, "µs").passed());
        assert!(!Verdict::at_most("cpu".into(), 30.1, 30.0, "µs").passed());
        assert!(Verdict::at_least("rate".into(), 10_000.0, 10_000.0, "/s").passed());
        assert!(!Verdict::at_least("rate".into(), f64::NAN, 1.0, "/s").passed());
        assert!(!Verdict::at_most("rss".into(), f64::NAN, 1.0, "MB").passed());
        assert_eq!(format_number(f64::NAN), "n/a");
        assert_eq!(format_number(12_345.6), "12346");
    }
}
