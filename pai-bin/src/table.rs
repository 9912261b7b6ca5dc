//! Plain-text tables for `pai get`, in kubectl's style: upper-case headers, left-aligned
//! columns three spaces apart, `-` for an empty cell, and short human durations.

/// Column gap, as kubectl uses.
const GAP: &str = "   ";

/// A table of text cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row; missing cells are empty and extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        for cell in &mut cells {
            if cell.is_empty() {
                "-".clone_into(cell);
            }
        }
        self.rows.push(cells);
    }

    /// The table as lines of text, each ending in a newline; no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str(GAP);
                }
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', w - width(cell)));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A limit: the number with thousands separators, or `-` when there is none.
pub fn limit(n: Option<u64>) -> String {
    n.map(thousands).unwrap_or_else(|| "-".to_owned())
}

/// A duration in the largest whole unit: `5s`, `12m`, `3h`, `2d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// When something last happened: `3m ago`, or `never` for no time at all.
pub fn ago(then_ms: Option<u64>, now_ms: u64) -> String {
    match then_ms {
        Some(then) if then > 0 => format!("{} ago", age(now_ms.saturating_sub(then) / 1_000)),
        _ => "never".to_owned(),
    }
}

/// A list of names joined by commas, or `fallback` when empty.
pub fn list(items: &[String], fallback: &str) -> String {
    if items.is_empty() {
        fallback.to_owned()
    } else {
        items.join(",")
    }
}

/// Pico-USD as dollars: `$0.0123`.
pub fn dollars(pico_usd: u128) -> String {
    // Four decimals are a hundredth of a cent: enough for per-day totals.
    let hundredths_of_cents = (pico_usd + 50_000_000) / 100_000_000;
    format!(
        "${}.{:04}",
        hundredths_of_cents / 10_000,
        hundredths_of_cents % 10_000
    )
}

/// Pico-USD as dollars to the micro-dollar, as `x-pai-cost-usd` shows a call: `$0.000495`.
pub fn usd(pico_usd: u128) -> String {
    format!("${}", crate::api::usd(pico_usd))
}

/// A dollar cap as people write them: two decimals (`$5.00`), more when the cap has more
/// (`$0.001`, `$0.0125`), up to a nano-dollar, so a cap below a cent never reads `$0.00`.
pub fn dollar_cap(usd: f64) -> String {
    let text = format!("{usd:.9}");
    let Some((whole, frac)) = text.split_once('.') else {
        return format!("${text}");
    };
    let frac = frac.trim_end_matches('0');
    format!("${whole}.{frac:0<2}")
}

/// A duration as hours and minutes: `5h 12m`, `12m`, `0m`.
pub fn hours_minutes(secs: u64) -> String {
    match (secs / 3_600, (secs % 3_600) / 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(limit(None), "-");
        assert_eq!(limit(Some(1_000_000)), "1,000,000");
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(5), "5s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60), "1m");
        assert_eq!(age(12 * 60 + 59), "12m");
        assert_eq!(age(3 * 3_600 + 1), "3h");
        assert_eq!(age(2 * 86_400 + 7), "2d");
    }

    #[test]
    fn last_used_reads_as_time_ago_or_never() {
        let now = 1_700_000_000_000;
        assert_eq!(ago(None, now), "never");
        assert_eq!(ago(Some(0), now), "never");
        assert_eq!(ago(Some(now - 180_000), now), "3m ago");
        assert_eq!(ago(Some(now - 4_000), now), "4s ago");
        // A clock that moved backwards is "0s ago", not a panic.
        assert_eq!(ago(Some(now + 10_000), now), "0s ago");
    }

    #[test]
    fn columns_line_up_and_empty_cells_show_a_dash() {
        let mut t = Table::new(&["NAME", "PROVIDER", "MAX/DAY"]);
        t.row(vec!["openai".into(), "openai".into(), thousands(1_000_000)]);
        t.row(vec!["local-llama".into(), "vllm".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME          PROVIDER   MAX/DAY\n\
             openai        openai     1,000,000\n\
             local-llama   vllm       -\n"
        );
    }

    #[test]
    fn dollars_round_to_a_hundredth_of_a_cent() {
        assert_eq!(dollars(0), "$0.0000");
        assert_eq!(dollars(12_345_678_900_000), "$12.3457");
        assert_eq!(dollars(1_000_000_000_000), "$1.0000");
        assert_eq!(usd(0), "$0.000000");
        assert_eq!(usd(495_000_000), "$0.000495");
        assert_eq!(usd(12_300_000_000), "$0.012300");
    }

    #[test]
    fn dollar_caps_show_every_digit_they_have() {
        assert_eq!(dollar_cap(5.0), "$5.00");
        assert_eq!(dollar_cap(0.5), "$0.50");
        assert_eq!(dollar_cap(0.001), "$0.001");
        assert_eq!(dollar_cap(0.0125), "$0.0125");
        assert_eq!(dollar_cap(0.000365), "$0.000365");
        assert_eq!(dollar_cap(1234.5), "$1234.50");
        assert_eq!(dollar_cap(0.0), "$0.00");
    }

    #[test]
    fn hours_and_minutes() {
        assert_eq!(hours_minutes(59), "0m");
        assert_eq!(hours_minutes(5 * 3_600 + 12 * 60 + 7), "5h 12m");
    }
}
