//! A model card as a document: laid out once from its content JSON, then written as PDF (A4,
//! the standard Helvetica fonts, so nothing is embedded and every reader shows it) and as HTML.

use crate::targets::model_cards::CardVersion;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use serde_json::{Map, Value};

/// The sections of the model-card schema, in SageMaker's order, with their headings.
const SECTIONS: [(&str, &str); 5] = [
    ("model_overview", "Model overview"),
    ("intended_uses", "Intended uses"),
    ("training_details", "Training details"),
    ("evaluation_details", "Evaluation details"),
    ("additional_information", "Additional information"),
];

/// One block of the document, in reading order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section (level 1) or a nested object's heading (level 2).
    Heading { level: u8, text: String },
    /// A label and its value.
    Field { label: String, text: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub title: String,
    /// `Version 3 · Approved · last modified …`.
    pub subtitle: String,
    pub blocks: Vec<Block>,
}

/// `model_description` → `Model description`.
fn label(key: &str) -> String {
    let mut out = key.replace('_', " ");
    if let Some(first) = out.get(..1) {
        let upper = first.to_ascii_uppercase();
        out.replace_range(..1, &upper);
    }
    out
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            Some(items.iter().filter_map(scalar).collect::<Vec<_>>().join(", "))
        }
        // Matrices and graphs: compact JSON.
        Value::Array(items) if items.iter().all(Value::is_array) => Some(value.to_string()),
        _ => None,
    }
}

fn walk(key: &str, value: &Value, blocks: &mut Vec<Block>) {
    if let Some(text) = scalar(value) {
        blocks.push(Block::Field { label: label(key), text });
        return;
    }
    match value {
        Value::Object(map) => {
            // A metric reads best on one line: `name: value`.
            let metric_keys = ["name", "value", "type", "notes", "x_axis_name", "y_axis_name"];
            if let (Some(name), Some(v)) = (map.get("name").and_then(Value::as_str), map.get("value"))
                && map.keys().all(|k| metric_keys.contains(&k.as_str()))
            {
                blocks.push(Block::Field { label: name.to_string(), text: scalar(v).unwrap_or_else(|| v.to_string()) });
                return;
            }
            let heading = map.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| label(key));
            blocks.push(Block::Heading { level: 2, text: heading });
            for (k, v) in map {
                if k != "name" {
                    walk(k, v, blocks);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(key, item, blocks);
            }
        }
        _ => {}
    }
}

pub fn document(card: &CardVersion) -> Document {
    let content: Map<String, Value> = serde_json::from_str(&card.content).unwrap_or_default();
    let mut blocks = Vec::new();
    for (key, heading) in SECTIONS {
        let Some(section) = content.get(key) else { continue };
        blocks.push(Block::Heading { level: 1, text: heading.to_string() });
        match section {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(k, v, &mut blocks)),
            other => walk(key, other, &mut blocks),
        }
    }
    let modified =
        card.modified_at.map(|t| format!(" · last modified {}", t.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default();
    Document {
        title: card.name.clone(),
        subtitle: format!("Model card · version {} · {}{modified}", card.version, card.status),
        blocks,
    }
}

// --- PDF -----------------------------------------------------------------------------------

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// Helvetica's advance widths (per 1000 em) for U+0020..=U+007E, from Adobe's published font
/// metrics: the standard fonts are not embedded, so their metrics are needed to wrap lines, and
/// no maintained crate offers them without a whole font stack. Other characters use 556.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The width of `text` at `size`, in points; bold is Helvetica-Bold's about 6 % wider average.
fn width(text: &str, size: f32, bold: bool) -> f32 {
    let units: u32 =
        text.chars().map(|c| if (' '..='~').contains(&c) { HELVETICA[c as usize - 32] as u32 } else { 556 }).sum();
    let scale = if bold { 1.06 } else { 1.0 };
    units as f32 * size / 1000.0 * scale
}

/// Words into lines no wider than `max`; a word longer than a line is cut.
fn wrap(text: &str, size: f32, bold: bool, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if width(&candidate, size, bold) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let mut rest = word.to_string();
            while width(&rest, size, bold) > max {
                let mut cut = rest.len();
                while cut > 1 && width(&rest[..cut], size, bold) > max {
                    cut = rest[..cut].char_indices().last().map(|(i, _)| i).unwrap_or(1);
                }
                lines.push(rest[..cut].to_string());
                rest = rest[cut..].to_string();
            }
            line = rest;
        }
        lines.push(line);
    }
    lines
}

/// PDF strings in WinAnsiEncoding (what the standard fonts use): Latin-1 maps as it is, a few
/// typographic marks to their Windows-1252 codes, anything else to `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' | '\u{a0}'..='\u{ff}' => c as u8,
            '€' => 0x80,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '…' => 0x85,
            _ => b'?',
        })
        .collect()
}

/// A line set on a page.
struct Line {
    y: f32,
    x: f32,
    size: f32,
    bold: bool,
    text: String,
}

fn layout(doc: &Document) -> Vec<Vec<Line>> {
    let usable = PAGE_W - 2.0 * MARGIN;
    let bottom = MARGIN + 20.0;
    let mut pages: Vec<Vec<Line>> = vec![Vec::new()];
    let mut y = PAGE_H - MARGIN;
    let put = |pages: &mut Vec<Vec<Line>>, y: &mut f32, before: f32, x: f32, size: f32, bold: bool, text: String| {
        *y -= before + size * 1.25;
        if *y < bottom {
            pages.push(Vec::new());
            *y = PAGE_H - MARGIN - size * 1.25;
        }
        pages.last_mut().expect("one page at least").push(Line { y: *y, x, size, bold, text });
    };
    for line in wrap(&doc.title, 20.0, true, usable) {
        put(&mut pages, &mut y, 0.0, MARGIN, 20.0, true, line);
    }
    for line in wrap(&doc.subtitle, 10.0, false, usable) {
        put(&mut pages, &mut y, 4.0, MARGIN, 10.0, false, line);
    }
    for block in &doc.blocks {
        match block {
            Block::Heading { level, text } => {
                let (size, before) = if *level == 1 { (14.0, 16.0) } else { (11.0, 8.0) };
                for line in wrap(text, size, true, usable) {
                    put(&mut pages, &mut y, before, MARGIN, size, true, line);
                }
            }
            Block::Field { label, text } => {
                for line in wrap(label, 9.0, true, usable) {
                    put(&mut pages, &mut y, 5.0, MARGIN, 9.0, true, line);
                }
                for line in wrap(if text.is_empty() { "—" } else { text }, 10.0, false, usable - 12.0) {
                    put(&mut pages, &mut y, 1.0, MARGIN + 12.0, 10.0, false, line);
                }
            }
        }
    }
    pages
}

/// The document as a PDF: a page tree of A4 pages, each with a footer naming the card and the
/// page, and the card's name as the document title.
pub fn pdf(doc: &Document) -> Vec<u8> {
    let pages = layout(doc);
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first = 6;
    let page_ids: Vec<Ref> = (0..pages.len()).map(|i| Ref::new(first + 2 * i as i32)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().copied()).count(pages.len() as i32);
    pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info).title(TextStr(&doc.title)).producer(TextStr("mlops-orchestrator"));
    let total = pages.len();
    for (index, lines) in pages.iter().enumerate() {
        let page_id = page_ids[index];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H)).parent(tree).contents(content_id);
        page.resources().fonts().pair(REGULAR, regular).pair(BOLD, bold);
        page.finish();
        let mut content = Content::new();
        for line in lines {
            content.begin_text();
            content.set_font(if line.bold { BOLD } else { REGULAR }, line.size);
            content.next_line(line.x, line.y);
            content.show(Str(&win_ansi(&line.text)));
            content.end_text();
        }
        let footer = format!("{} · page {} of {}", doc.title, index + 1, total);
        content.begin_text();
        content.set_font(REGULAR, 8.0);
        content.next_line(MARGIN, MARGIN - 20.0);
        content.show(Str(&win_ansi(&footer)));
        content.end_text();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

// --- HTML ----------------------------------------------------------------------------------

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The document as one self-contained HTML page (no scripts, no external resources).
pub fn html(doc: &Document) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape(&doc.title)));
    out.push_str(
        "<style>body{font-family:Helvetica,Arial,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}\
         dt{font-weight:bold;font-size:.9rem;margin-top:.6rem}dd{margin-left:1rem;white-space:pre-wrap}</style>\n",
    );
    out.push_str("</head>\n<body>\n");
    out.push_str(&format!("<h1>{}</h1>\n<p>{}</p>\n", escape(&doc.title), escape(&doc.subtitle)));
    let mut open = false;
    for block in &doc.blocks {
        match block {
            Block::Heading { level, text } => {
                if open {
                    out.push_str("</dl>\n");
                    open = false;
                }
                let tag = if *level == 1 { "h2" } else { "h3" };
                out.push_str(&format!("<{tag}>{}</{tag}>\n", escape(text)));
            }
            Block::Field { label, text } => {
                if !open {
                    out.push_str("<dl>\n");
                    open = true;
                }
                out.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", escape(label), escape(text)));
            }
        }
    }
    if open {
        out.push_str("</dl>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(content: Value) -> CardVersion {
        CardVersion {
            arn: "arn".into(),
            name: "churn-card".into(),
            version: 3,
            status: "Approved".into(),
            content: content.to_string(),
            created_at: None,
            created_by: None,
            modified_at: None,
            modified_by: None,
        }
    }

    #[test]
    fn sections_in_order_with_metrics_on_one_line() {
        let doc = document(&card(json!({
            "intended_uses": {"purpose_of_model": "churn <risk>"},
            "model_overview": {"model_artifact": ["s3://a/m.tar.gz", "s3://a/n"]},
            "evaluation_details": [{"name": "eval-1", "metric_groups": [{"name": "g", "metric_data": [
                {"name": "auc", "type": "number", "value": 0.91}]}]}],
        })));
        assert_eq!(doc.title, "churn-card");
        assert_eq!(doc.subtitle, "Model card · version 3 · Approved");
        assert_eq!(
            doc.blocks,
            [
                Block::Heading { level: 1, text: "Model overview".into() },
                Block::Field { label: "Model artifact".into(), text: "s3://a/m.tar.gz, s3://a/n".into() },
                Block::Heading { level: 1, text: "Intended uses".into() },
                Block::Field { label: "Purpose of model".into(), text: "churn <risk>".into() },
                Block::Heading { level: 1, text: "Evaluation details".into() },
                Block::Heading { level: 2, text: "eval-1".into() },
                Block::Heading { level: 2, text: "g".into() },
                Block::Field { label: "auc".into(), text: "0.91".into() },
            ]
        );
        let html = html(&doc);
        assert!(html.contains("<dd>churn &lt;risk&gt;</dd>"), "{html}");
    }

    #[test]
    fn long_text_wraps_within_the_margins_and_spills_onto_new_pages() {
        let long = "word ".repeat(4000);
        let doc = document(&card(json!({"additional_information": {"caveats_and_recommendations": long}})));
        let pages = layout(&doc);
        assert!(pages.len() > 3, "{} pages", pages.len());
        for line in pages.iter().flatten() {
            assert!(line.x + width(&line.text, line.size, line.bold) <= PAGE_W - MARGIN + 0.01, "{}", line.text);
            assert!(line.y >= MARGIN);
        }
        let unbroken = "x".repeat(500);
        assert!(wrap(&unbroken, 10.0, false, 100.0).iter().all(|l| width(l, 10.0, false) <= 100.0));
        assert_eq!(win_ansi("é€✓"), [0xe9, 0x80, b'?']);
    }
}
