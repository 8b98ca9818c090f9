//! SVG charts drawn with plotters: req/s against connections per server
//! (one chart per pipeline depth), and p99 latency against connections
//! (one panel per pipeline depth).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Result;
use crate::model::{Point, Results, Server, Transport};
use crate::report::{fmt_rps, fmt_us};

/// One line of a chart: x = connections, y = median, with the run spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub server: Server,
    /// (connections, median, min, max)
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// The pipeline depths measured over TCP with `payload`, ascending.
pub fn pipelines(results: &Results, transport: Transport, payload: u32) -> Vec<u32> {
    let mut d: Vec<u32> = results
        .points()
        .iter()
        .filter(|p| p.transport == transport && p.payload == payload)
        .map(|p| p.pipeline)
        .collect();
    d.sort();
    d.dedup();
    d
}

/// The lines of req/s (`p99 == false`) or p99 latency in µs (`p99 ==
/// true`) against connections, one per server, at one pipeline depth.
pub fn lines(
    results: &Results,
    transport: Transport,
    payload: u32,
    pipeline: u32,
    p99: bool,
) -> Vec<Line> {
    let points: Vec<Point> = results
        .points()
        .into_iter()
        .filter(|p| p.transport == transport && p.payload == payload && p.pipeline == pipeline)
        .collect();
    let mut servers: Vec<Server> = points.iter().flat_map(|p| results.servers_at(*p)).collect();
    servers.sort();
    servers.dedup();
    servers
        .into_iter()
        .map(|server| {
            let mut pts: Vec<(f64, f64, f64, f64)> = points
                .iter()
                .filter_map(|p| {
                    let s = results.summary(*p, server)?;
                    let x = f64::from(p.conns);
                    if p99 {
                        let y = s.p99_us?;
                        Some((x, y, y, y))
                    } else {
                        Some((x, s.rps.median, s.rps.min, s.rps.max))
                    }
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Line {
                server,
                points: pts,
            }
        })
        .filter(|l| !l.points.is_empty())
        .collect()
}

/// A colour per adapter; its baseline twin gets the same hue, paler.
fn color(s: Server) -> RGBColor {
    let RGBColor(r, g, b) = match s.current() {
        Server::Tokio => RGBColor(31, 119, 180),
        Server::Std => RGBColor(255, 127, 14),
        Server::AsyncStd => RGBColor(44, 160, 44),
        Server::Smol => RGBColor(148, 103, 189),
        _ => RGBColor(214, 39, 40),
    };
    if s.is_baseline() {
        let pale = |c: u8| c + (255 - c) / 2;
        RGBColor(pale(r), pale(g), pale(b))
    } else {
        RGBColor(r, g, b)
    }
}

const X_RANGE: std::ops::Range<f64> = 0.7..1500.0;

/// Writes the req/s chart of one pipeline depth to `path`.
pub fn draw_rps(path: &Path, title: &str, lines: &[Line]) -> Result<()> {
    let root = SVGBackend::new(path, (820, 500)).into_drawing_area();
    draw_rps_on(&root, title, lines)
        .and_then(|()| root.present().map_err(|e| e.to_string()))
        .map_err(|e| format!("drawing {}: {e}", path.display()).into())
}

fn draw_rps_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Line],
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let ymax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.3))
        .fold(0.0, f64::max)
        .max(1.0)
        // Headroom for the legend in the upper left.
        * 1.4;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(X_RANGE.log_scale(), 0.0..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("connections (log scale)")
        .y_desc("requests/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| fmt_rps(*y))
        .draw()
        .map_err(e)?;
    for l in lines {
        let c = color(l.server);
        chart
            .draw_series(LineSeries::new(
                l.points.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))
            .map_err(e)?
            .label(l.server.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(
                l.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 3, c.filled())),
            )
            .map_err(e)?;
        // The spread of the runs: a vertical bar from min to max.
        chart
            .draw_series(
                l.points
                    .iter()
                    .filter(|p| p.3 > p.2)
                    .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], c.stroke_width(1))),
            )
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Writes the p99 chart: one panel per pipeline depth in `panels`.
pub fn draw_p99(path: &Path, title: &str, panels: &[(u32, Vec<Line>)]) -> Result<()> {
    let cols = panels.len().clamp(1, 2);
    let rows = panels.len().div_ceil(2).max(1);
    let root = SVGBackend::new(path, (820, 40 + 340 * rows as u32)).into_drawing_area();
    let draw = || -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let body = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        for (area, (pipeline, lines)) in body.split_evenly((rows, cols)).iter().zip(panels) {
            draw_p99_panel(area, *pipeline, lines)?;
        }
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(|e| format!("drawing {}: {e}", path.display()).into())
}

fn draw_p99_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pipeline: u32,
    lines: &[Line],
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let ymin = ys.clone().fold(f64::INFINITY, f64::min);
    let ymax = ys.fold(0.0, f64::max);
    // At least two decades, so the log axis has labelled ticks.
    let (ymin, ymax) = if ymin.is_finite() && ymax > 0.0 {
        let lo = (ymin / 3.0).max(0.1);
        (lo, (ymax * 3.0).max(lo * 100.0))
    } else {
        (1.0, 1000.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("pipeline {pipeline}"), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(65)
        .build_cartesian_2d(X_RANGE.log_scale(), (ymin..ymax).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("p99 latency")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| fmt_us(*y))
        .draw()
        .map_err(e)?;
    for l in lines {
        let c = color(l.server);
        chart
            .draw_series(LineSeries::new(
                l.points.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))
            .map_err(e)?
            .label(l.server.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(
                l.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 3, c.filled())),
            )
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        // Latency grows with connections: the lower right stays empty.
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;

    fn results() -> Results {
        let mut r = Results::new(1);
        for (conns, rps) in [(50, 2000.0), (1, 1000.0)] {
            for server in [Server::Tokio, Server::Redis] {
                let p = Point {
                    transport: Transport::Tcp,
                    payload: 32,
                    pipeline: 1,
                    conns,
                };
                let sample = Sample {
                    rps,
                    p50_us: Some(5.0),
                    p99_us: Some(50.0),
                    cpu_us_per_req: None,
                    requests: 1,
                };
                r.record(p, server, 0, Some(sample));
            }
        }
        r
    }

    #[test]
    fn lines_are_per_server_sorted_by_connections() {
        let l = lines(&results(), Transport::Tcp, 32, 1, false);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].server, Server::Tokio);
        assert_eq!(
            l[0].points,
            vec![
                (1.0, 1000.0, 1000.0, 1000.0),
                (50.0, 2000.0, 2000.0, 2000.0)
            ]
        );
        let p = lines(&results(), Transport::Tcp, 32, 1, true);
        assert_eq!(p[1].points[0].1, 50.0);
        assert!(lines(&results(), Transport::Tcp, 32, 16, false).is_empty());
        assert_eq!(pipelines(&results(), Transport::Tcp, 32), vec![1]);
    }

    #[test]
    fn charts_render_to_svg() {
        let tmp = harness::TempDir::new("xtask-chart-test").unwrap();
        let dir = tmp.path();
        let r = results();
        let rps = dir.join("rps.svg");
        draw_rps(&rps, "req/s", &lines(&r, Transport::Tcp, 32, 1, false)).unwrap();
        let p99 = dir.join("p99.svg");
        draw_p99(&p99, "p99", &[(1, lines(&r, Transport::Tcp, 32, 1, true))]).unwrap();
        let svg = std::fs::read_to_string(&rps).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("adapter-tokio"));
        assert!(
            std::fs::read_to_string(&p99)
                .unwrap()
                .contains("pipeline 1")
        );
    }
}
