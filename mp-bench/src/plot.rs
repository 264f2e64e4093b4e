//! `docs/benchmarks.svg`: for each scenario, mp, Python and the machine's floor
//! as speed relative to Python (fork), on a log scale (the scenarios have
//! different units; relative speed puts them on one axis).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{advantage, num};
use crate::{BoxError, Outcome, Run};

const WIDTH: u32 = 1100;
const LEFT: u32 = 300;
const SLOT: f64 = 22.0;
/// Empty slots below the last group, where the legend goes.
const LEGEND_SLOTS: usize = 5;

/// Bar kinds: legend text and colour.
const KINDS: [(&str, RGBColor); 6] = [
    ("mp", RGBColor(31, 119, 180)),
    ("Python fork", RGBColor(255, 127, 14)),
    ("Python forkserver", RGBColor(255, 170, 90)),
    ("Python spawn", RGBColor(255, 205, 150)),
    ("machine floor (no library)", RGBColor(150, 150, 150)),
    (
        "Python mpi4py.futures (cluster rows)",
        RGBColor(214, 39, 40),
    ),
];

struct Bar {
    kind: usize,
    /// Speed relative to the group's reference (higher is better).
    rel: f64,
    label: String,
}

struct Group {
    title: String,
    bars: Vec<Bar>,
    /// Shown in the mp bar's place when mp has no figure.
    note: Option<String>,
}

fn python_kind(method: &str) -> usize {
    match method {
        "fork" => 1,
        "forkserver" => 2,
        "spawn" => 3,
        crate::cluster::PYTHON_SIDE => 5,
        _ => 1,
    }
}

fn groups(run: &Run) -> Vec<Group> {
    let mut out = Vec::new();
    for s in &run.scenarios {
        let unit = s.unit;
        let better = s.scenario.unit.better;
        let mp = s.mp.median();
        let python: Vec<(usize, &str, f64)> = s
            .python
            .iter()
            .filter_map(|p| {
                let m = p.outcome.median()?;
                Some((python_kind(p.start_method), p.start_method, m))
            })
            .collect();
        // The reference: Python fork, else the first Python figure (mpi4py on
        // the cluster rows), else mp.
        let Some(reference) = python
            .iter()
            .find(|p| p.0 == 1)
            .or(python.first())
            .map(|p| p.2)
            .or(mp)
        else {
            continue;
        };
        let rel = |x: f64| advantage(x, reference, better);
        let mut bars = Vec::new();
        let note = match (&s.mp, mp) {
            (_, Some(m)) => {
                bars.push(Bar {
                    kind: 0,
                    rel: rel(m),
                    label: format!("{} {unit} ({}×)", num(m), num(rel(m))),
                });
                None
            }
            (Outcome::NotAvailable, _) => Some("mp: not yet available".to_string()),
            _ => Some("mp: no figure".to_string()),
        };
        for (kind, method, m) in python {
            let label = if s.python.len() > 1 {
                format!("{} {unit} ({method})", num(m))
            } else {
                format!("{} {unit}", num(m))
            };
            bars.push(Bar {
                kind,
                rel: rel(m),
                label,
            });
        }
        if let Some(b) = s.baselines.first()
            && let Some(m) = b.outcome.median()
        {
            bars.push(Bar {
                kind: 4,
                rel: rel(m),
                label: format!("{} {} ({})", num(m), b.unit, b.title),
            });
        }
        out.push(Group {
            title: s.title.clone(),
            bars,
            note,
        });
    }
    out
}

/// An axis label: `0.1×`, `1×`, `100×`.
fn tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}×")
    } else {
        let digits = (-v.log10()).ceil().max(1.0) as usize;
        format!("{v:.digits$}×")
    }
}

/// Writes the chart to `path`.
pub(crate) fn write_svg(run: &Run, path: &Path) -> Result<(), BoxError> {
    let groups = groups(run);
    let slots: usize = groups
        .iter()
        .map(|g| g.bars.len() + usize::from(g.note.is_some()) + 1)
        .sum::<usize>()
        + LEGEND_SLOTS;
    let total = slots as f64;
    let height = (slots as f64 * SLOT) as u32 + 130;

    let rels = groups.iter().flat_map(|g| g.bars.iter().map(|b| b.rel));
    let (min, max) = rels.fold((1.0f64, 1.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let lo = 10f64.powf((min.log10() - 0.5).floor()).min(0.1);
    // Room on the right for the labels of the longest bars.
    let hi = 10f64.powf(max.log10().ceil() + 1.5);

    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "mp vs Python: speed relative to Python (fork; mpi4py.futures on the cluster rows), log scale",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(LEFT)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..total)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("speed relative to Python (fork): higher is better")
        .x_label_formatter(&|v| tick(*v))
        .draw()?;

    // Slot `i` (from the top) spans y in [total - i - 1, total - i].
    let mut placed = Vec::new();
    let mut titles = Vec::new();
    let mut notes = Vec::new();
    let mut slot = 0usize;
    for g in &groups {
        let first = slot;
        if let Some(note) = &g.note {
            notes.push((note.clone(), total - slot as f64 - 0.5));
            slot += 1;
        }
        for b in &g.bars {
            placed.push((b, total - slot as f64 - 0.85, total - slot as f64 - 0.15));
            slot += 1;
        }
        titles.push((g.title.as_str(), total - (first + slot) as f64 / 2.0));
        slot += 1;
    }

    for (kind, (name, color)) in KINDS.iter().enumerate() {
        let rects: Vec<_> = placed
            .iter()
            .filter(|(b, _, _)| b.kind == kind)
            .map(|(b, y0, y1)| Rectangle::new([(lo, *y0), (b.rel, *y1)], color.filled()))
            .collect();
        if rects.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart.draw_series(LineSeries::new(
        [(1.0, 0.0), (1.0, total)],
        BLACK.stroke_width(1),
    ))?;

    let small =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (b, y0, y1) in &placed {
        let (x, y) = chart.backend_coord(&(b.rel, (y0 + y1) / 2.0));
        root.draw(&Text::new(b.label.clone(), (x + 4, y), small.clone()))?;
    }
    for (note, y) in &notes {
        let (x, y) = chart.backend_coord(&(lo, *y));
        root.draw(&Text::new(note.clone(), (x + 4, y), small.clone()))?;
    }
    let title_style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (title, y) in &titles {
        let (x, y) = chart.backend_coord(&(lo, *y));
        root.draw(&Text::new(
            title.to_string(),
            (x - 8, y),
            title_style.clone(),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
