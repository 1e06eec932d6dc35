//! The series pages' charts (DESIGN §7 "Series"): line charts drawn on the server as SVG
//! with plotters, one `<circle>` per data point, scaled to the page's width, with a title
//! for screen readers. A chart is a pure function of its numbers.

use plotters::prelude::*;

use crate::core::format::escape_html;

/// The drawing's size in SVG units; the page scales it to its width (on a phone, about
/// 0.8 of a unit a pixel: the labels stay about 12 pixels high).
const WIDTH: u32 = 480;
const HEIGHT: u32 = 260;
/// Label size (plotters draws text at this over 1.24).
const FONT: u32 = 18;

/// Colours of the lines, told apart in the legend the page writes under the chart
/// ([`colour`]), and by their names in the data table.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x5f, 0xa8),
    RGBColor(0xc2, 0x4e, 0x00),
    RGBColor(0x2e, 0x7d, 0x32),
    RGBColor(0x8e, 0x24, 0xaa),
    RGBColor(0xb0, 0x00, 0x20),
    RGBColor(0x45, 0x5a, 0x64),
];

/// The colour of line `i` as CSS (`#1f5fa8`), for the page's legend.
pub fn colour(i: usize) -> String {
    let RGBColor(r, g, b) = COLOURS[i % COLOURS.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// One line of a chart: its name (for the legend) and one value per meeting.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub values: Vec<f64>,
}

/// A chart: one x position per meeting (`x_labels`, oldest first), one or more lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The element id, unique on the page (`[a-z-]`).
    pub id: &'static str,
    pub title: String,
    pub y_label: &'static str,
    pub x_labels: Vec<String>,
    pub lines: Vec<Line>,
}

impl Chart {
    /// How many points it draws (one circle each).
    pub fn points(&self) -> usize {
        self.lines.iter().map(|l| l.values.len()).sum()
    }
}

/// The chart as an `<svg>` element to put inline in a page: `width="100%"` with its
/// `viewBox`, `role="img"` and a `<title>`. `None` when plotters fails (never with finite
/// values).
pub fn svg(chart: &Chart) -> Option<String> {
    let mut buf = String::new();
    draw(chart, &mut buf)
        .inspect_err(|e| tracing::warn!(chart = chart.id, error = %e, "chart not drawn"))
        .ok()?;
    Some(accessible_root(chart, &buf))
}

fn draw(chart: &Chart, buf: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let n = chart.x_labels.len();
    let top = chart
        .lines
        .iter()
        .flat_map(|l| l.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    // Headroom above the highest point, and a scale of at least 0..1.
    let top = (top * 1.15).max(1.0);
    let root = SVGBackend::with_string(buf, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    // One segment per meeting (0 to n - 1, both in), its point in the middle.
    let last = i32::try_from(n.max(1) - 1).unwrap_or(i32::MAX);
    let mut c = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(52)
        .build_cartesian_2d((0..last).into_segmented(), 0.0..top)?;
    let labels = &chart.x_labels;
    // As many labels as fit side by side (about 9 units a character).
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let fit = (WIDTH as usize - 60) / (widest * 9 + 12);
    c.configure_mesh()
        .x_labels(n.clamp(1, fit.max(1)))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| labels.get(i))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        // Counts: whole numbers only, at most 6 of them.
        .y_labels(y_labels(top))
        .y_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .disable_x_mesh()
        .y_desc(chart.y_label)
        .label_style(("sans-serif", FONT))
        .axis_desc_style(("sans-serif", FONT))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, line) in chart.lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(SegmentValue<i32>, f64)> = line
            .values
            .iter()
            .enumerate()
            .map(|(x, v)| {
                let x = i32::try_from(x).unwrap_or(i32::MAX);
                (SegmentValue::CenterOf(x), v.max(0.0))
            })
            .collect();
        c.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
        c.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 5, colour.filled())),
        )?;
    }
    root.present()?;
    Ok(())
}

/// How many y labels to ask plotters for: one per whole number up to `top`, at most 6.
fn y_labels(top: f64) -> usize {
    if top.is_finite() && top < 5.0 {
        // A small positive float: the cast is exact enough.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 < top < 5"
        )]
        let whole = top.floor() as usize;
        whole + 1
    } else {
        6
    }
}

/// Replaces plotters' `<svg width=.. height=..>` with one that scales to the page and says
/// what it shows: the `<title>` names the chart for screen readers.
fn accessible_root(chart: &Chart, drawn: &str) -> String {
    let body = drawn
        .find('>')
        .map_or(drawn, |end| &drawn[end + 1..])
        .trim_start();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" \
         preserveAspectRatio=\"xMidYMid meet\" role=\"img\" aria-labelledby=\"{id}-title\" \
         class=\"chart\" data-points=\"{points}\">\n<title id=\"{id}-title\">{title}</title>\n{body}",
        id = chart.id,
        points = chart.points(),
        title = escape_html(&chart.title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(lines: Vec<Line>, n: usize) -> Chart {
        Chart {
            id: "attendance",
            title: "Attendance <per> meeting".to_owned(),
            y_label: "people",
            x_labels: (0..n).map(|i| format!("12-0{i}")).collect(),
            lines,
        }
    }

    #[test]
    fn one_circle_per_point_and_the_svg_scales_and_is_titled() {
        let c = chart(
            vec![Line {
                label: "people".to_owned(),
                values: vec![3.0, 4.0, 2.0],
            }],
            3,
        );
        let svg = svg(&c).unwrap();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(svg.starts_with("<svg xmlns="), "{svg}");
        assert!(
            svg.contains("viewBox=\"0 0 480 260\" width=\"100%\""),
            "{svg}"
        );
        let root = svg.lines().next().unwrap();
        assert!(!root.contains("height="), "{root}");
        assert!(svg.contains("role=\"img\" aria-labelledby=\"attendance-title\""));
        assert!(
            svg.contains("<title id=\"attendance-title\">Attendance &lt;per&gt; meeting</title>")
        );
        assert!(svg.contains("data-points=\"3\""));
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        // The meetings' dates label the x axis.
        for label in ["12-00", "12-01", "12-02"] {
            assert!(svg.contains(label), "{label}: {svg}");
        }
    }

    #[test]
    fn several_lines_draw_a_circle_per_point_each_in_its_colour() {
        let c = chart(
            vec![
                Line {
                    label: "alice".to_owned(),
                    values: vec![5.0, 0.0],
                },
                Line {
                    label: "<bob>".to_owned(),
                    values: vec![1.0, 7.0],
                },
            ],
            2,
        );
        let svg = svg(&c).unwrap();
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert_eq!(colour(0), "#1f5fa8");
        for i in 0..2 {
            let fill = format!("fill=\"{}\"", colour(i).to_uppercase());
            assert_eq!(svg.matches(&fill).count(), 2, "{fill}: {svg}");
        }
    }

    #[test]
    fn a_single_meeting_and_zeros_still_draw() {
        let c = chart(
            vec![Line {
                label: "x".to_owned(),
                values: vec![0.0],
            }],
            1,
        );
        let svg = svg(&c).unwrap();
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }
}
