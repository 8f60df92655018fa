//! The overview's chart: certificates expiring per day over the next 90 days, as SVG bars
//! drawn on the server (no script, styled by the page's stylesheet).

use std::fmt::Write as _;

/// Days the chart covers.
pub(super) const DAYS: usize = 90;

const WIDTH: usize = 720;
const HEIGHT: usize = 180;
const BAR: usize = WIDTH / DAYS;
const TOP: usize = 16;
const AXIS: usize = 24;

/// Counts per day from now: day 0 is the next 24 hours.
#[derive(Debug)]
pub(super) struct Expiries {
    pub(super) per_day: Vec<u32>,
}

impl Expiries {
    /// The total over the chart.
    pub(super) fn total(&self) -> u32 {
        self.per_day.iter().sum()
    }

    /// The SVG. Bars inside the warning window get the `warn` class.
    pub(super) fn svg(&self, warning_days: i64) -> String {
        let max = self.per_day.iter().copied().max().unwrap_or(0).max(1);
        let plot = HEIGHT - TOP - AXIS;
        let mut out = String::with_capacity(8 * 1024);
        let _ = write!(
            out,
            "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"chart-title\" \
             xmlns=\"http://www.w3.org/2000/svg\"><title id=\"chart-title\">{} certificates expire in the next {DAYS} days; \
             the busiest day has {}</title>",
            self.total(),
            self.per_day.iter().copied().max().unwrap_or(0)
        );
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"0\" y1=\"{0}\" x2=\"{WIDTH}\" y2=\"{0}\"/>",
            HEIGHT - AXIS
        );
        let warn_x = usize::try_from(warning_days.clamp(0, DAYS as i64)).unwrap_or(0) * BAR;
        let _ = write!(
            out,
            "<rect class=\"window\" x=\"0\" y=\"{TOP}\" width=\"{warn_x}\" height=\"{plot}\"/>"
        );
        for (day, &count) in self.per_day.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let height = (count as usize * plot).div_ceil(max as usize).max(2);
            let x = day * BAR;
            let y = HEIGHT - AXIS - height;
            let class = if (day as i64) < warning_days {
                "bar warn"
            } else {
                "bar"
            };
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{height}\"><title>{count} in {}–{} days</title></rect>",
                x + 1,
                BAR - 2,
                day,
                day + 1
            );
        }
        for day in [0usize, 30, 60, 90] {
            let anchor = match day {
                0 => "start",
                DAYS => "end",
                _ => "middle",
            };
            let _ = write!(
                out,
                "<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                day * BAR,
                HEIGHT - 6,
                if day == 0 {
                    "today".to_owned()
                } else {
                    format!("{day} days")
                }
            );
        }
        let _ = write!(
            out,
            "<text class=\"label\" x=\"4\" y=\"12\">{max} max/day</text></svg>"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_for_days_with_expiries() {
        let mut per_day = vec![0; DAYS];
        per_day[0] = 1;
        per_day[10] = 3;
        per_day[40] = 2;
        let chart = Expiries { per_day };
        assert_eq!(chart.total(), 6);
        let svg = chart.svg(30);
        assert_eq!(svg.matches("class=\"bar warn\"").count(), 2);
        assert_eq!(svg.matches("class=\"bar\"").count(), 1);
        assert!(svg.contains("<title>3 in 10–11 days</title>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
