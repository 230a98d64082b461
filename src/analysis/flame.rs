//! Flamegraph stacks from the dominator tree: `--by path` (each object at its retaining path) and `--by type`
//! (each type, then who retains it). Siblings with the same frame merge, runs of identical frames fold into one.

use super::DomTree;
use crate::heap::graph::Graph;
use crate::heap::label::{Label, Packed};
use rustc_hash::FxHashMap;

/// Limits that keep a huge heap's flamegraph readable and small.
#[derive(Debug, Clone)]
pub struct FlameOptions {
    /// Deepest frame; deeper objects are added to the frame at this depth.
    pub max_depth: usize,
    /// Frames narrower than this fraction of the total are merged into their parent.
    pub min_fraction: f64,
}

impl Default for FlameOptions {
    fn default() -> Self {
        FlameOptions {
            max_depth: 48,
            min_fraction: 0.0005,
        }
    }
}

/// A frame's identity: how it is referred to (a packed label with field names made canonical, see `Canon`;
/// `Packed::ABSENT` for none), what it is (type key), and whether it is a root or extra frame rather than an object.
type Key = (Packed, u32, bool);

/// One frame of the trie, kept together: the loops read a frame's key, depth and run and add to its bytes and
/// count for every object.
#[derive(Clone, Copy)]
struct Frame {
    key: Key,
    parent: u32,
    depth: u32,
    /// longest run of identical frames folded into this one
    run: u32,
    bytes: u64,
    count: u64,
}

struct Trie {
    f: Vec<Frame>,
    map: FxHashMap<(u32, Key), u32>,
    /// the last children looked up under each node: siblings repeat (a list's items, an object's attributes),
    /// and this spares hashing a key per object
    recent: Vec<[(Key, u32); RECENT]>,
}

const RECENT: usize = 4;
const NO_KEY: (Key, u32) = ((Packed::ABSENT, u32::MAX, true), u32::MAX);

impl Trie {
    fn new() -> Trie {
        Trie {
            f: vec![Frame {
                key: (Packed::ABSENT, u32::MAX, true),
                parent: u32::MAX,
                depth: 0,
                run: 1,
                bytes: 0,
                count: 0,
            }],
            map: FxHashMap::default(),
            recent: vec![[NO_KEY; RECENT]],
        }
    }
    fn child(&mut self, parent: u32, key: Key) -> u32 {
        let recent = &mut self.recent[parent as usize];
        if let Some(&(_, c)) = recent.iter().find(|r| r.0 == key && r.1 != u32::MAX) {
            return c;
        }
        if let Some(&c) = self.map.get(&(parent, key)) {
            recent.rotate_right(1);
            recent[0] = (key, c);
            return c;
        }
        let c = self.f.len() as u32;
        let depth = self.f[parent as usize].depth + 1;
        self.f.push(Frame {
            key,
            parent,
            depth,
            run: 1,
            bytes: 0,
            count: 0,
        });
        self.recent.push([NO_KEY; RECENT]);
        self.map.insert((parent, key), c);
        let recent = &mut self.recent[parent as usize];
        recent.rotate_right(1);
        recent[0] = (key, c);
        c
    }
}

/// Folded stacks (`frame;frame;frame BYTES`), heaviest first.
pub struct Stacks {
    pub lines: Vec<(Vec<String>, u64)>,
    pub total: u64,
    pub objects: u64,
}

impl Stacks {
    pub fn folded(&self) -> String {
        let mut s = String::new();
        for (frames, v) in &self.lines {
            s.push_str(&frames.join(";"));
            s.push(' ');
            s.push_str(&v.to_string());
            s.push('\n');
        }
        s
    }
}

/// Make a frame safe for folded stacks: no `;`, no line breaks or control characters.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ';' => ',',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Packed labels compared as numbers: a field name (`Label::Field`) packs its string's address, and the same name
/// may live at several addresses, so each field label is replaced by the first one seen with that text.
struct Canon {
    by_bits: FxHashMap<Packed, Packed>,
    by_text: FxHashMap<&'static str, Packed>,
    dict: Packed,
    shared: Packed,
    other_key: Packed,
}

impl Canon {
    fn new() -> Canon {
        let mut c = Canon {
            by_bits: FxHashMap::default(),
            by_text: FxHashMap::default(),
            dict: Packed::ABSENT,
            shared: Packed::ABSENT,
            other_key: Packed::pack(Label::OtherKey(0)),
        };
        c.dict = c.get(Packed::pack(Label::Field("__dict__")));
        c.shared = c.get(Packed::pack(Label::Field("shared")));
        c
    }
    #[inline]
    fn get(&mut self, p: Packed) -> Packed {
        if !p.is_field() {
            return p;
        }
        if let Some(&c) = self.by_bits.get(&p) {
            return c;
        }
        let Label::Field(text) = p.unpack() else {
            return p;
        };
        let c = *self.by_text.entry(text).or_insert(p);
        self.by_bits.insert(p, c);
        c
    }
}

/// The frame of node `v`, whose preorder number in the dominator tree is `w`, and whether it is elided: a
/// `__dict__` is shown as part of its owner (its bytes go to the owner's frame, its items below the owner).
#[inline]
fn frame_of(g: &Graph, d: &DomTree, canon: &mut Canon, v: u32, w: u32) -> (Key, bool) {
    if g.is_virtual(v) {
        return ((Packed::pack(Label::Text(v)), u32::MAX, true), false);
    }
    let mut l = canon.get(d.packed_label_at(w));
    let ty = g.ty(v);
    let p = d.idom_pre[w as usize];
    let elided = l == canon.dict && g.type_kinds[ty as usize] == crate::heap::types::Kind::Dict;
    if l.is_absent() {
        // dominated by no single root: reachable from several
        if p == 0 {
            l = canon.shared;
        }
    } else if let Some(k) = l.str_key() {
        // values of an object's __dict__ are its attributes
        if p != u32::MAX && canon.get(d.packed_label_at(p)) == canon.dict {
            l = Packed::pack(Label::Attr(k));
        }
    } else if l.is_other_key() {
        // siblings under any non-str key merge
        l = canon.other_key;
    }
    ((l, ty, false), elided)
}

/// Type key of frames that show an entry of `extra` (allocation sites) instead of a type.
const EXTRA: u32 = u32::MAX - 1;

fn frame_text(g: &Graph, key: &Key, extra: &[String]) -> String {
    let (label, ty, virt) = *key;
    let label = (!label.is_absent()).then(|| label.unpack());
    if ty == EXTRA {
        return match label {
            Some(Label::OtherKey(i)) => extra[i as usize].clone(),
            _ => extra.last().cloned().unwrap_or_default(),
        };
    }
    if virt {
        return match label {
            Some(Label::Text(v)) => g.vname[v as usize].clone(),
            _ => "all".into(),
        };
    }
    let tname = {
        let (m, n) = &g.type_names[ty as usize];
        if m.is_empty() || m == "builtins" {
            n.clone()
        } else {
            format!("{m}.{n}")
        }
    };
    match label {
        Some(Label::Module(_)) => g.render_label(label.unwrap()),
        Some(Label::Field("shared")) => format!("shared {tname}"),
        Some(Label::Text(_)) | None | Some(Label::None) => tname,
        Some(l) => format!("{} {}", g.render_label(l), tname),
    }
}

/// Stacks by retaining path: every object's own size at its dominator-tree path.
pub fn by_path(g: &Graph, d: &DomTree, opts: &FlameOptions) -> Stacks {
    let t0 = std::time::Instant::now();
    let mut trie = Trie::new();
    // trie node of each dominator-tree node, by preorder number
    let mut at = vec![0u32; d.order.len()];
    let mut objects = 0;
    let mut canon = Canon::new();
    for (w, &v) in d.order.iter().enumerate().skip(1) {
        let w = w as u32;
        let pt = at[d.idom_pre[w as usize] as usize];
        let (key, elided) = frame_of(g, d, &mut canon, v, w);
        let t = if elided {
            pt
        } else if pt != 0 && trie.f[pt as usize].key == key {
            // a run of identical frames (a linked list, a deep tree): fold
            let run = &mut trie.f[pt as usize].run;
            *run = run.saturating_add(1);
            pt
        } else if trie.f[pt as usize].depth as usize >= opts.max_depth {
            pt
        } else {
            trie.child(pt, key)
        };
        at[w as usize] = t;
        trie.f[t as usize].bytes += d.own(g, v);
        if !g.is_virtual(v) && g.flags[v as usize] & crate::heap::graph::STATIC == 0 {
            trie.f[t as usize].count += 1;
            objects += 1;
        }
    }
    log::debug!(
        "stacks: trie of {} frames in {:?}",
        trie.f.len(),
        t0.elapsed()
    );
    emit(g, &trie, opts, objects, &[])
}

/// Stacks by type: the type first, then (when allocation traces exist) where it was allocated, then the frames
/// of its retaining path, nearest first.
pub fn by_type(
    g: &Graph,
    d: &DomTree,
    opts: &FlameOptions,
    sites: Option<(&[u32], &[String])>,
) -> Stacks {
    let mut trie = Trie::new();
    let mut objects = 0;
    let depth = opts.max_depth.min(12);
    let mut canon = Canon::new();
    for (w, &v) in d.order.iter().enumerate().skip(1) {
        let own = d.own(g, v);
        if g.is_virtual(v) || own == 0 {
            continue;
        }
        let mut t = trie.child(0, (Packed::ABSENT, g.ty(v), false));
        if let Some((site_of, _)) = sites {
            let site = site_of[v as usize];
            let k = if site == u32::MAX {
                (Packed::ABSENT, EXTRA, true)
            } else {
                (Packed::pack(Label::OtherKey(site as u64)), EXTRA, true)
            };
            t = trie.child(t, k);
        }
        let mut u = d.idom_pre[w];
        let mut n = 0;
        let mut prev: Option<Key> = None;
        while u != 0 && u != u32::MAX && n < depth {
            let (k, elided) = frame_of(g, d, &mut canon, d.order[u as usize], u);
            if prev != Some(k) && !elided {
                t = trie.child(t, k);
                n += 1;
            }
            prev = Some(k);
            u = d.idom_pre[u as usize];
        }
        trie.f[t as usize].bytes += own;
        trie.f[t as usize].count += 1;
        objects += 1;
    }
    let mut extra: Vec<String> = sites.map(|s| s.1.to_vec()).unwrap_or_default();
    extra.push("allocated before tracing started".into());
    emit(g, &trie, opts, objects, &extra)
}

fn emit(g: &Graph, trie: &Trie, opts: &FlameOptions, objects: u64, extra: &[String]) -> Stacks {
    let n = trie.f.len();
    // subtree totals (children always come after parents)
    let mut total: Vec<u64> = trie.f.iter().map(|f| f.bytes).collect();
    let mut tcount: Vec<u64> = trie.f.iter().map(|f| f.count).collect();
    for i in (1..n).rev() {
        let p = trie.f[i].parent as usize;
        total[p] += total[i];
        tcount[p] += tcount[i];
    }
    let grand = total[0];
    let min = (grand as f64 * opts.min_fraction) as u64;
    // nodes kept: above the threshold, with every ancestor kept; the rest is added to the nearest kept ancestor
    let mut kept = vec![false; n];
    kept[0] = true;
    let mut value = vec![0u64; n];
    for i in 0..n {
        let p = trie.f[i].parent;
        if i > 0 {
            kept[i] = kept[p as usize] && total[i] >= min.max(1);
        }
        let mut k = i;
        while !kept[k] {
            k = trie.f[k].parent as usize;
        }
        value[k] += trie.f[i].bytes;
    }
    let mut texts: Vec<Option<String>> = vec![None; n];
    let mut lines = vec![];
    for i in 1..n {
        if !kept[i] || value[i] == 0 {
            continue;
        }
        let mut frames = vec![];
        let mut k = i;
        while k != 0 {
            if texts[k].is_none() {
                let mut s = frame_text(g, &trie.f[k].key, extra);
                if trie.f[k].run > 1 {
                    s.push_str(&format!(" (run of {})", trie.f[k].run));
                }
                if tcount[k] > 1 && !trie.f[k].key.2 {
                    s.push_str(&format!(" ×{}", tcount[k]));
                }
                texts[k] = Some(sanitize(&s));
            }
            frames.push(texts[k].clone().unwrap());
            k = trie.f[k].parent as usize;
        }
        frames.reverse();
        lines.push((frames, value[i]));
    }
    // top-level frames below the threshold: one frame for all of them, so that the widths add up to the total
    if value[0] > 0 {
        lines.push((
            vec!["(frames below the minimum width)".to_string()],
            value[0],
        ));
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    Stacks {
        lines,
        total: grand,
        objects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_frames() {
        assert_eq!(sanitize("['a;b']\nx"), "['a,b'] x");
    }
}
