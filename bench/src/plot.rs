//! Charts for `sequent-bench report`, as SVG and PNG: the percentile spectrum (latency against
//! 1/(1−percentile) on a log axis, HdrHistogram's usual plot) with several series on one chart,
//! and latency against offered rate for stepped-rate runs.
//!
//! Text is drawn with a subset of DejaVu Sans bundled in the binary (`bench/assets`, Bitstream
//! Vera licence beside it) through plotters' `ab_glyph` feature, so no system font library is
//! needed to build or to run.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

/// ASCII, µ and × of DejaVu Sans (14 KB), subset with fontTools' `pyftsubset`.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const FONT_FAMILY: &str = "sans-serif";
/// Chart size in pixels (the SVG's user units too).
const SIZE: (u32, u32) = (900, 540);

/// A plotting failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {message}")]
pub struct PlotError {
    pub path: String,
    pub message: String,
}

/// One line of a chart: (x, y) in the chart's units (see each function).
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled font parses"));
    });
}

/// The percentile spectrum: each line's points are (percentile 0..100, latency ns). Points at
/// 100 % have no place on a 1/(1−p) axis and are left out. Writes `stem.svg` and `stem.png`.
pub fn spectrum(stem: &Path, title: &str, lines: &[Line]) -> Result<Vec<PathBuf>, PlotError> {
    let lines: Vec<Line> = lines
        .iter()
        .map(|line| Line {
            label: line.label.clone(),
            points: line
                .points
                .iter()
                .filter(|(p, ns)| *p < 100.0 && *ns > 0.0)
                .map(|&(p, ns)| (1.0 / (1.0 - p / 100.0), ns / 1_000.0))
                .collect(),
        })
        .filter(|line| !line.points.is_empty())
        .collect();
    draw_both(
        stem,
        title,
        &lines,
        &Axes {
            x_desc: "percentile (log of 1/(1-p))",
            y_desc: "latency (µs, log)",
            x_min: 1.0,
            x_label: &|v: &f64| format_percentile(*v),
        },
    )
}

/// Latency against offered rate: each line's points are (offered per second, latency ns).
/// Writes `stem.svg` and `stem.png`.
pub fn throughput_latency(
    stem: &Path,
    title: &str,
    lines: &[Line],
) -> Result<Vec<PathBuf>, PlotError> {
    let lines: Vec<Line> = lines
        .iter()
        .map(|line| Line {
            label: line.label.clone(),
            points: line
                .points
                .iter()
                .filter(|(rate, ns)| *rate > 0.0 && *ns > 0.0)
                .map(|&(rate, ns)| (rate, ns / 1_000.0))
                .collect(),
        })
        .filter(|line| !line.points.is_empty())
        .collect();
    let x_min = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(f64::INFINITY, f64::min);
    draw_both(
        stem,
        title,
        &lines,
        &Axes {
            x_desc: "offered rate (per second, log)",
            y_desc: "latency (µs, log)",
            x_min: if x_min.is_finite() { x_min / 1.5 } else { 1.0 },
            x_label: &|v: &f64| crate::report::format_rate(v.round() as u64),
        },
    )
}

/// `1 → 0%`, `10 → 90%`, `1000 → 99.9%`.
fn format_percentile(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let nines = x.log10().round() as usize;
    if (x.log10() - x.log10().round()).abs() < 1e-6 && nines >= 3 {
        format!("{p:.prec$}%", prec = nines - 2)
    } else if p >= 99.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

struct Axes<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    x_min: f64,
    x_label: &'a dyn Fn(&f64) -> String,
}

fn draw_both(
    stem: &Path,
    title: &str,
    lines: &[Line],
    axes: &Axes<'_>,
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |message: String| PlotError { path, message }
    };
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        chart(&root, title, lines, axes).map_err(failed(&svg))?;
        root.present().map_err(|e| failed(&svg)(e.to_string()))?;
    }
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        chart(&root, title, lines, axes).map_err(failed(&png))?;
        root.present().map_err(|e| failed(&png)(e.to_string()))?;
    }
    Ok(vec![svg, png])
}

/// Log–log axes sized to the data, one coloured line with point markers per series, a legend.
fn chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Line],
    axes: &Axes<'_>,
) -> Result<(), String> {
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(text)?;
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = points().map(|p| p.0).fold(axes.x_min * 10.0, f64::max) * 1.5;
    let y_min = points().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = points().map(|p| p.1).fold(0.0, f64::max);
    let (y_min, y_max) = if y_min.is_finite() && y_max > 0.0 {
        (y_min / 1.5, (y_max * 1.5).max(y_min * 10.0))
    } else {
        (0.1, 1_000.0)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((axes.x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        // Few labels: a log axis labels every minor tick otherwise, and they overlap.
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(axes.x_label)
        .y_label_formatter(&|v: &f64| format_us(*v))
        .label_style((FONT_FAMILY, 13))
        .draw()
        .map_err(text)?;
    for (index, line) in lines.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(text)?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 2, color.filled())),
            )
            .map_err(text)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT_FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(text)?;
    Ok(())
}

/// Axis labels in µs: `0.25`, `3`, `1200`.
fn format_us(us: f64) -> String {
    if us < 1.0 {
        format!("{us:.2}")
    } else if us < 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_labels_count_nines() {
        assert_eq!(format_percentile(1.0), "0%");
        assert_eq!(format_percentile(10.0), "90%");
        assert_eq!(format_percentile(100.0), "99.0%");
        assert_eq!(format_percentile(1_000.0), "99.9%");
        assert_eq!(format_percentile(100_000.0), "99.999%");
    }

    #[test]
    fn charts_are_written_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            Line {
                label: "a".to_owned(),
                points: vec![
                    (0.0, 1_000.0),
                    (90.0, 2_000.0),
                    (99.9, 50_000.0),
                    (100.0, 1e6),
                ],
            },
            Line {
                label: "b".to_owned(),
                points: vec![(50.0, 500.0), (99.0, 900.0)],
            },
        ];
        let files = spectrum(&dir.path().join("spectrum"), "test", &lines).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        // plotters writes each text on its own line inside <text>.
        assert!(
            svg.contains("\na\n") && svg.contains("\n99.9%\n"),
            "labels missing"
        );
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let files = throughput_latency(
            &dir.path().join("rate"),
            "test",
            &[Line {
                label: "p99".to_owned(),
                points: vec![(1_000.0, 5_000.0), (10_000.0, 9_000.0)],
            }],
        )
        .unwrap();
        assert!(files.iter().all(|f| f.exists()));
    }
}
