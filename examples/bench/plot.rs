//! The PNG: trigger lag (p50, p99) and CPU per run against N, one line per controller.
//! Text is drawn with Debian's DejaVu Sans (fonts-dejavu-core), loaded at run time.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Row;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

type Series = (String, Vec<(f64, f64)>, RGBColor);

/// Lines per controller of the scenarios run alone (not "both at once").
fn series(rows: &[Row], value: impl Fn(&Row) -> f64, suffix: &str) -> Vec<Series> {
    let mut controllers: Vec<String> = rows.iter().map(|r| r.controller.clone()).collect();
    controllers.dedup();
    controllers.sort();
    controllers.dedup();
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    controllers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.controller == c && !r.scenario.starts_with("both"))
                .map(|r| (r.n as f64, value(r)))
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (format!("{c} {suffix}"), points, colors[i % colors.len()])
        })
        .filter(|(_, p, _)| !p.is_empty())
        .collect()
}

fn bounds(all: &[Series]) -> ((f64, f64), (f64, f64)) {
    let xs = all.iter().flat_map(|(_, p, _)| p.iter().map(|(x, _)| *x));
    let ys = all.iter().flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    ((x0 / 1.5, x1 * 1.5), (y0 / 2.0, y1 * 2.0))
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    lines: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    if lines.is_empty() {
        return Ok(());
    }
    let ((x0, x1), (y0, y1)) = bounds(lines);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("schedules (N)")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    for (name, points, color) in lines {
        let dashed = name.ends_with("p50");
        let style = if dashed {
            color.mix(0.5).stroke_width(2)
        } else {
            color.stroke_width(3)
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

pub fn draw(rows: &[Row], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let font = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "cannot read the font".to_string())?;
    let root = BitMapBackend::new(out, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let mut lag = series(rows, |r| r.p99_ms, "p99");
    lag.extend(series(rows, |r| r.p50_ms, "p50"));
    panel(&left, "Trigger lag (tick → Job observed)", "milliseconds", &lag)?;
    let cpu = series(rows, |r| r.cpu_ms_per_run, "");
    panel(&right, "Controller CPU per run", "CPU milliseconds", &cpu)?;
    root.present()?;
    Ok(())
}
