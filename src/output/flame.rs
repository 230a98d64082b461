//! Flamegraph outputs: SVG through inferno, folded stacks, and a JSON tree of the same frames.

use crate::analysis::flame::Stacks;
use inferno::flamegraph::{self, Options, Palette, color::BasicPalette};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum FlameError {
    #[error("no live objects matched, so there is nothing to draw")]
    Empty,
    #[error("rendering the flamegraph failed: {0}")]
    Render(String),
}

/// An SVG flamegraph whose widths are bytes.
pub fn svg(stacks: &Stacks, title: &str, subtitle: &str) -> Result<Vec<u8>, FlameError> {
    if stacks.lines.is_empty() {
        return Err(FlameError::Empty);
    }
    let mut opts = Options::default();
    opts.title = title.to_string();
    opts.subtitle = Some(subtitle.to_string());
    opts.count_name = "bytes".to_string();
    opts.name_type = "Retained:".to_string();
    opts.colors = Palette::Basic(BasicPalette::Mem);
    opts.hash = true;
    opts.min_width = 0.1;
    let text = stacks.folded();
    let mut out = Vec::new();
    flamegraph::from_lines(&mut opts, text.lines(), &mut out)
        .map_err(|e| FlameError::Render(e.to_string()))?;
    Ok(out)
}

/// The frames as a JSON tree: each frame with its bytes and objects (itself and everything under it).
pub fn json_tree(stacks: &Stacks, meta: Value, max_depth: usize) -> Value {
    #[derive(Default)]
    struct Node {
        bytes: u64,
        children: Vec<(String, Node)>,
    }
    let mut root = Node::default();
    for (frames, v) in &stacks.lines {
        let mut n = &mut root;
        n.bytes += v;
        for f in frames.iter().take(max_depth) {
            let i = match n.children.iter().position(|(k, _)| k == f) {
                Some(i) => i,
                None => {
                    n.children.push((f.clone(), Node::default()));
                    n.children.len() - 1
                }
            };
            n = &mut n.children[i].1;
            n.bytes += v;
        }
    }
    fn to_json(frame: &str, n: &Node) -> Value {
        let mut kids: Vec<&(String, Node)> = n.children.iter().collect();
        kids.sort_by_key(|k| std::cmp::Reverse(k.1.bytes));
        json!({"frame": frame, "bytes": n.bytes, "children": kids.iter().map(|(k, c)| to_json(k, c)).collect::<Vec<_>>()})
    }
    let mut kids: Vec<&(String, Node)> = root.children.iter().collect();
    kids.sort_by_key(|k| std::cmp::Reverse(k.1.bytes));
    json!({
        "meta": meta,
        "total_bytes": stacks.total,
        "objects": stacks.objects,
        "tree": kids.iter().map(|(k, c)| to_json(k, c)).collect::<Vec<_>>(),
    })
}
