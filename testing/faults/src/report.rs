//! The table every command prints: case, adapter, outcome, figures.

use std::fmt;

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything it checks held.
    Pass,
    /// Something it checks did not hold: what.
    Fail(String),
    /// Not run: why (e.g. no nightly toolchain).
    Skip(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pass => f.write_str("PASS"),
            Self::Fail(_) => f.write_str("FAIL"),
            Self::Skip(_) => f.write_str("SKIP"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The case (the subcommand).
    pub case: &'static str,
    /// Which server (or fuzz target).
    pub subject: String,
    /// PASS, FAIL or SKIP.
    pub outcome: Outcome,
    /// What was measured.
    pub figures: String,
}

impl Row {
    /// A row; `failures` empty means PASS, else FAIL with them joined.
    pub fn new(
        case: &'static str,
        subject: impl Into<String>,
        failures: Vec<String>,
        figures: String,
    ) -> Self {
        let outcome = if failures.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail(failures.join("; "))
        };
        let row = Self {
            case,
            subject: subject.into(),
            outcome,
            figures,
        };
        row.progress();
        row
    }

    /// A row for a case that could not run at all (setup failed).
    pub fn error(case: &'static str, subject: impl Into<String>, error: String) -> Self {
        Self::new(case, subject, vec![error], String::new())
    }

    /// A skipped case.
    pub fn skip(case: &'static str, subject: impl Into<String>, why: String) -> Self {
        let row = Self {
            case,
            subject: subject.into(),
            outcome: Outcome::Skip(why),
            figures: String::new(),
        };
        row.progress();
        row
    }

    fn progress(&self) {
        eprintln!(
            "faults: {} / {}: {} {}",
            self.case, self.subject, self.outcome, self.figures
        );
        match &self.outcome {
            Outcome::Fail(why) => eprintln!("faults:   failed: {why}"),
            Outcome::Skip(why) => eprintln!("faults:   skipped: {why}"),
            Outcome::Pass => {}
        }
    }
}

/// Prints the table (stdout): one line per row, the failures and skips
/// spelled out below it.
pub fn print_table(rows: &[Row]) {
    let w_case = rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
    let w_subj = rows
        .iter()
        .map(|r| r.subject.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:<w_case$}  {:<w_subj$}  {:<7}  figures",
        "case", "adapter", "outcome"
    );
    println!("{}", "-".repeat(w_case + w_subj + 7 + 6 + 40));
    for r in rows {
        println!(
            "{:<w_case$}  {:<w_subj$}  {:<7}  {}",
            r.case,
            r.subject,
            r.outcome.to_string(),
            r.figures
        );
    }
    let notes: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("FAIL {} / {}: {why}", r.case, r.subject)),
            Outcome::Skip(why) => Some(format!("SKIP {} / {}: {why}", r.case, r.subject)),
            Outcome::Pass => None,
        })
        .collect();
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("{n}");
        }
    }
}

/// A count with thousands separators: 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
