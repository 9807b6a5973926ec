//! `--plot FILE.svg`: one recipient's timeline, as SVG (plotters, no font files needed: the SVG
//! names a generic sans-serif family and the viewer draws it).
//!
//! From top to bottom, on one time axis (scenario seconds):
//! 1. the flips and incidents, each a vertical label over a dashed line;
//! 2. the predictor's probability that this recipient switches to each stream within 5 s, the
//!    threshold it is compared with, the staged periods (shaded in the stream's colour) and
//!    this recipient's switches (green: seamless, red: cold);
//! 3. which stream is active (solid) and which are staged (light), per stream;
//! 4. each stream's rate on its live path (what a subscriber receives), per second.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use harmonizer_sim::scripted::lockstep::{Sample, Timeline};
use harmonizer_sim::scripted::scenario::Scenario;
use harmonizer_sim::scripted::world::{World, NO_FLIP};
use harmonizer_sim::scripted::PolicyKind;

const W: u32 = 1900;
const H: u32 = 1200;
const LEFT: u32 = 110;
/// Right of the plots: the legends.
const RIGHT: u32 = 340;
const FONT: &str = "sans-serif";

/// Colour of stream `s`.
fn stream_color(s: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
    ];
    C[s % C.len()]
}

const SEAMLESS: RGBColor = RGBColor(0, 150, 60);
const COLD: RGBColor = RGBColor(214, 39, 40);
const FLIP_COLOR: RGBColor = RGBColor(60, 60, 60);
const INCIDENT_COLOR: RGBColor = RGBColor(150, 90, 20);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws `tl` (from a run of `policy` on `world`) to `path`.
pub fn draw(
    path: &Path,
    sc: &Scenario,
    world: &World,
    policy: PolicyKind,
    tl: &Timeline,
) -> Result<(), String> {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    draw_on(&root, sc, world, policy, tl).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_on(
    root: &Area<'_>,
    sc: &Scenario,
    world: &World,
    policy: PolicyKind,
    tl: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let streams = sc.streams as usize;
    let dur = world.duration_ns as f64 / 1e9;
    let preset = if policy == PolicyKind::Predictor {
        format!(" ({} preset)", sc.predictor.preset.name())
    } else {
        String::new()
    };
    let (title, rest) = root.split_vertically(70);
    title.draw(&Text::new(
        format!(
            "harmonize: recipient {} of scenario \"{}\" under the {}{} policy",
            tl.id,
            sc.name,
            policy.name(),
            preset
        ),
        (LEFT as i32, 14),
        (FONT, 26).into_font().style(FontStyle::Bold).color(&BLACK),
    ))?;
    title.draw(&Text::new(
        "When does the recipient stage a candidate stream, and is each switch seamless? Scenario time on every axis; all recipients see the same flips.",
        (LEFT as i32, 46),
        (FONT, 16).into_font().color(&RGBColor(70, 70, 70)),
    ))?;
    let (strip, rest) = rest.split_vertically(190);
    let (prob_area, rest) = rest.split_vertically(470);
    let lane_h = 40 + 28 * streams as u32;
    let (lane_area, rate_area) = rest.split_vertically(lane_h);

    // 2. Probabilities, threshold, staging, switches.
    let mut chart = ChartBuilder::on(&prob_area)
        .margin_left(0)
        .margin_right(RIGHT)
        .margin_top(8)
        .x_label_area_size(34)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..dur, 0f64..1f64)?;
    chart
        .configure_mesh()
        .y_desc("P(switch to stream within 5 s)")
        .x_desc("scenario time (s)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    // Staged periods, shaded per stream.
    for s in 0..streams {
        let c = stream_color(s);
        for (a, b) in runs(tl, |x| x.staged & (1 << s) != 0) {
            chart.draw_series(std::iter::once(Rectangle::new([(a, 0.0), (b, 1.0)], c.mix(0.13).filled())))?;
        }
    }
    // This recipient's switches.
    let mut last_label: Option<(i32, f64)> = None;
    for sw in &tl.switches {
        let x = sw.t_ns as f64 / 1e9;
        let c = if sw.seamless { SEAMLESS } else { COLD };
        chart.draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, 1.0)], c.stroke_width(3))))?;
        // Labels of switches close together go one line lower.
        let (px, _) = chart.backend_coord(&(x, 0.93));
        let ly = match last_label {
            Some((lx, ly)) if px - lx < 80 && ly > 0.9 => 0.86,
            _ => 0.93,
        };
        last_label = Some((px, ly));
        let (px, py) = chart.backend_coord(&(x, ly));
        let (bx, by) = prob_area.get_base_pixel();
        let what = if sw.seamless { String::new() } else { format!(", {:.0} ms", sw.stall_ns as f64 / 1e6) };
        prob_area.draw(&Text::new(
            format!("s{}→s{}{what}", sw.from, sw.to),
            (px - bx + 5, py - by),
            (FONT, 14).into_font().color(&c),
        ))?;
    }
    // Switches refused by content verification (docs/verify.md): a dashed line and its label.
    for (t, note) in &tl.notes {
        if !note.contains("blocked") {
            continue;
        }
        let x = *t as f64 / 1e9;
        chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, 1.0)], 6, 4, COLD.stroke_width(2)))?;
        let (px, py) = chart.backend_coord(&(x, 0.79));
        let (bx, by) = prob_area.get_base_pixel();
        prob_area.draw(&Text::new(
            "switch refused: data differs".to_string(),
            (px - bx + 5, py - by),
            (FONT, 14).into_font().color(&COLD),
        ))?;
    }
    // Probability per candidate stream (breaks where the stream is active), and the threshold.
    let has_prob = tl.samples.iter().any(|x| x.prob.iter().any(|p| p.is_finite()));
    for s in 0..streams {
        let c = stream_color(s);
        for seg in segments(tl, |x| x.prob.get(s).copied().filter(|p| p.is_finite())) {
            chart.draw_series(LineSeries::new(seg, c.stroke_width(2)))?;
        }
    }
    if has_prob {
        let pts: Vec<(f64, f64)> = tl
            .samples
            .iter()
            .filter(|x| x.threshold.is_finite())
            .map(|x| (x.t_ns as f64 / 1e9, x.threshold))
            .collect();
        chart.draw_series(DashedLineSeries::new(pts, 6, 4, BLACK.stroke_width(2)))?;
    } else {
        chart.draw_series(std::iter::once(Text::new(
            format!("no probabilities: the {} policy does not predict", policy.name()),
            (dur * 0.35, 0.55),
            (FONT, 20).into_font().color(&RGBColor(90, 90, 90)),
        )))?;
    }
    // 1. Flips and incidents: dashed lines through the probability panel, labels above it,
    // nudged right (with a leader line) where they would overlap.
    let (strip_x0, _) = strip.get_base_pixel();
    let (_, strip_h) = strip.dim_in_pixel();
    let base = strip_h as i32 - 22;
    for (text, color, y) in [("flips", FLIP_COLOR, base - 40), ("incidents", INCIDENT_COLOR, base - 20)] {
        strip.draw(&Text::new(
            text,
            (LEFT as i32 - 12, y),
            (FONT, 15).into_font().color(&color).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    let mut next_free = i32::MIN;
    for m in &world.marks {
        let x = m.t_ns as f64 / 1e9;
        let color = if m.flip { FLIP_COLOR } else { INCIDENT_COLOR };
        let (px, _) = chart.backend_coord(&(x, 1.0));
        let line_style = if m.flip { color.stroke_width(1) } else { color.mix(0.7).stroke_width(1) };
        chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, 1.0)], 5, 5, line_style))?;
        let lx = (px - strip_x0).max(next_free);
        next_free = lx + 19;
        strip.draw(&PathElement::new(
            vec![(lx, base + 2), (px - strip_x0, strip_h as i32)],
            color.stroke_width(1),
        ))?;
        let style = (FONT, 15)
            .into_font()
            .color(&color)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Left, VPos::Center));
        strip.draw(&Text::new(m.label.clone(), (lx, base), style))?;
    }

    // The legend, right of the plot.
    let mut entries: Vec<(Key, String)> = Vec::new();
    if has_prob {
        for st in 0..streams {
            entries.push((Key::Line(stream_color(st)), format!("P(switch to stream {st})")));
        }
        entries.push((Key::Dashed(BLACK), "threshold (adaptive)".into()));
    }
    entries.push((Key::Shade(stream_color(0)), "staged (shaded in the".into()));
    entries.push((Key::None, "stream's colour)".into()));
    entries.push((Key::Bar(SEAMLESS), "switch of this recipient:".into()));
    entries.push((Key::None, "seamless".into()));
    entries.push((Key::Bar(COLD), "switch of this recipient:".into()));
    entries.push((Key::None, "cold (fetched), with stall".into()));
    entries.push((Key::Dashed(FLIP_COLOR), "flip (all recipients)".into()));
    entries.push((Key::Dashed(INCIDENT_COLOR), "incident on a stream".into()));
    legend(&prob_area, &entries)?;

    // 3. Active and staged, per stream.
    let mut lane = ChartBuilder::on(&lane_area)
        .margin_left(0)
        .margin_right(RIGHT)
        .margin_top(6)
        .x_label_area_size(0)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..dur, 0f64..streams as f64)?;
    lane.configure_mesh().disable_x_mesh().disable_y_mesh().y_labels(0).x_labels(0).draw()?;
    for s in 0..streams {
        let c = stream_color(s);
        let y0 = (streams - 1 - s) as f64 + 0.15;
        let y1 = y0 + 0.7;
        for (a, b) in runs(tl, |x| x.staged & (1 << s) != 0) {
            lane.draw_series(std::iter::once(Rectangle::new([(a, y0), (b, y1)], c.mix(0.3).filled())))?;
        }
        for (a, b) in runs(tl, |x| x.active as usize == s) {
            lane.draw_series(std::iter::once(Rectangle::new([(a, y0), (b, y1)], c.filled())))?;
        }
        let (_, py) = lane.backend_coord(&(0.0, (y0 + y1) / 2.0));
        let (_, by) = lane_area.get_base_pixel();
        lane_area.draw(&Text::new(
            format!("stream {s}"),
            (LEFT as i32 - 10, py - by),
            (FONT, 15).into_font().color(&c).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    let (_, lh) = lane_area.dim_in_pixel();
    lane_area.draw(&Text::new(
        "solid: active (delivering); light: staged (pre-buffered)",
        (LEFT as i32 + 6, lh as i32 - 4),
        (FONT, 14).into_font().color(&RGBColor(70, 70, 70)).pos(Pos::new(HPos::Left, VPos::Bottom)),
    ))?;

    // 4. Stream rates on the live path.
    let rates = live_rates(world, streams);
    let max_rate = rates.iter().flat_map(|r| r.iter().copied()).fold(0.0f64, f64::max).max(1.0) * 1.1;
    let mut rc = ChartBuilder::on(&rate_area)
        .margin_left(0)
        .margin_right(RIGHT)
        .margin_top(14)
        .margin_bottom(8)
        .x_label_area_size(44)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..dur, 0f64..max_rate)?;
    rc.configure_mesh()
        .y_desc("events/s on the live path")
        .x_desc("scenario time (s)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    // Lower streams drawn wider, so lines that coincide all stay visible.
    for (s, r) in rates.iter().enumerate() {
        let c = stream_color(s);
        let width = (2 * (streams - s) as u32).max(2);
        let pts: Vec<(f64, f64)> = r.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v)).collect();
        rc.draw_series(LineSeries::new(pts, c.stroke_width(width)))?;
    }
    let mut entries: Vec<(Key, String)> =
        (0..streams).map(|st| (Key::Line(stream_color(st)), format!("stream {st}"))).collect();
    entries.push((Key::None, "(lines that coincide".into()));
    entries.push((Key::None, "are drawn wider below)".into()));
    legend(&rate_area, &entries)?;
    Ok(())
}

/// A legend entry's key.
enum Key {
    Line(RGBColor),
    Dashed(RGBColor),
    Shade(RGBColor),
    Bar(RGBColor),
    None,
}

/// Draws a legend in the right margin of `area`.
fn legend(area: &Area<'_>, entries: &[(Key, String)]) -> Result<(), Box<dyn std::error::Error>> {
    let (w, _) = area.dim_in_pixel();
    let x = w as i32 - RIGHT as i32 + 30;
    let mut y = 24;
    for (key, text) in entries {
        match key {
            Key::Line(c) => area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], c.stroke_width(3)))?,
            Key::Dashed(c) => {
                for i in 0..3 {
                    area.draw(&PathElement::new(
                        vec![(x + i * 10, y), (x + i * 10 + 6, y)],
                        c.stroke_width(2),
                    ))?
                }
            }
            Key::Shade(c) => {
                area.draw(&Rectangle::new([(x, y - 7), (x + 28, y + 7)], c.mix(0.25).filled()))?
            }
            Key::Bar(c) => {
                area.draw(&PathElement::new(vec![(x + 14, y - 8), (x + 14, y + 8)], c.stroke_width(3)))?
            }
            Key::None => {}
        }
        area.draw(&Text::new(
            text.clone(),
            (x + 38, y),
            (FONT, 15).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += 21;
    }
    Ok(())
}

/// Time spans (s) over which `f` holds, from the samples.
fn runs(tl: &Timeline, f: impl Fn(&Sample) -> bool) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut start: Option<f64> = None;
    let mut last = 0.0;
    for x in &tl.samples {
        let t = x.t_ns as f64 / 1e9;
        match (f(x), start) {
            (true, None) => start = Some(t),
            (false, Some(a)) => {
                out.push((a, t));
                start = None;
            }
            _ => {}
        }
        last = t;
    }
    if let Some(a) = start {
        out.push((a, last));
    }
    out
}

/// Contiguous segments of `(t, value)` where `f` gives a value.
fn segments(tl: &Timeline, f: impl Fn(&Sample) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for x in &tl.samples {
        match f(x) {
            Some(v) => cur.push((x.t_ns as f64 / 1e9, v)),
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Per stream, data records reaching a live subscriber per 1 s bin.
fn live_rates(world: &World, streams: usize) -> Vec<Vec<f64>> {
    let bins = (world.duration_ns / 1_000_000_000) as usize; // whole seconds only
    let mut out = vec![vec![0.0; bins]; streams];
    for (s, log) in world.streams.iter().enumerate().take(streams) {
        for r in log.iter().filter(|r| r.flip == NO_FLIP && !r.dropped) {
            let b = (r.ts_ns / 1_000_000_000) as usize;
            if let Some(v) = out[s].get_mut(b) {
                *v += 1.0;
            }
        }
    }
    out
}
