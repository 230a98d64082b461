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

/// Where a node's frame goes, given its parent frame (`pt`, with its key and depth) and its own frame: the
/// parent's frame itself (`None`: elided, a run of identical frames, or the depth limit) or a child with `key`.
#[inline]
fn placement(
    parent_key: &Key,
    parent_depth: u32,
    parent_is_root: bool,
    key: Key,
    elided: bool,
    max_depth: usize,
) -> Option<Key> {
    if elided || (!parent_is_root && *parent_key == key) || parent_depth as usize >= max_depth {
        None
    } else {
        Some(key)
    }
}

/// Add nodes `range` (preorder numbers) to `trie`, whose parents' trie nodes are in `at` (indexed from
/// `at_base`) or, for parents before `range`, given by `outside`.
fn add_nodes(
    (g, d, opts): (&Graph, &DomTree, &FlameOptions),
    trie: &mut Trie,
    canon: &mut Canon,
    range: std::ops::Range<usize>,
    at: &mut [u32],
    at_base: usize,
    mut outside: impl FnMut(&mut Trie, &mut Canon, u32) -> u32,
) -> u64 {
    let mut objects = 0;
    for w in range {
        let v = d.order[w];
        let p = d.idom_pre[w] as usize;
        let pt = if p >= at_base {
            at[p - at_base]
        } else {
            outside(trie, canon, p as u32)
        };
        let (key, elided) = frame_of(g, d, canon, v, w as u32);
        let f = &trie.f[pt as usize];
        let t = match placement(&f.key, f.depth, pt == 0, key, elided, opts.max_depth) {
            None => {
                if !elided && pt != 0 && f.key == key {
                    // a run of identical frames (a linked list, a deep tree): fold
                    let run = &mut trie.f[pt as usize].run;
                    *run = run.saturating_add(1);
                }
                pt
            }
            Some(k) => trie.child(pt, k),
        };
        at[w - at_base] = t;
        let f = &mut trie.f[t as usize];
        f.bytes += d.own(g, v);
        if !g.is_virtual(v) && g.flags[v as usize] & crate::heap::graph::STATIC == 0 {
            f.count += 1;
            objects += 1;
        }
    }
    objects
}

/// Stacks by retaining path: every object's own size at its dominator-tree path.
///
/// The trie is built in preorder, every node below its dominator's frame. On more than one core the searched
/// nodes are split in two halves: the second half is built into a trie of its own, whose nodes under a
/// dominator from the first half hang from a stand-in for that dominator's frame (its key and depth worked out
/// by following its dominators), and is then merged into the first; the leaves, last in preorder, follow.
pub fn by_path(g: &Graph, d: &DomTree, opts: &FlameOptions) -> Stacks {
    let t0 = std::time::Instant::now();
    let m = d.order.len();
    let m0 = d.searched.min(m).max(1);
    let mut trie = Trie::new();
    let mut canon = Canon::new();
    // trie node of each dominator-tree node, by preorder number
    let mut at = vec![0u32; m];
    let parallel = m0 > 1 << 12 && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let mut objects = 0;
    if !parallel {
        objects += add_nodes(
            (g, d, opts),
            &mut trie,
            &mut canon,
            1..m0,
            &mut at[..m0],
            0,
            |_, _, _| 0,
        );
    } else {
        let h = 1 + (m0 - 1) / 2;
        let (at_a, rest) = at.split_at_mut(h);
        let at_b = &mut rest[..m0 - h];
        let (objects_a, (local, stand_ins, objects_b)) = std::thread::scope(|s| {
            let b = s.spawn(|| {
                let mut local = Trie::new();
                let mut canon = Canon::new();
                // dominators before `h`: a stand-in node each, keyed, placed and deep as their frame will be
                let mut stand_in: FxHashMap<u32, u32> = FxHashMap::default();
                let mut frames: FxHashMap<u32, (Key, u32, bool)> = FxHashMap::default();
                let objects = add_nodes(
                    (g, d, opts),
                    &mut local,
                    &mut canon,
                    h..m0,
                    at_b,
                    h,
                    |local, canon, p| {
                        if let Some(&n) = stand_in.get(&p) {
                            return n;
                        }
                        let (key, depth, is_root) = frame_at(g, d, opts, canon, &mut frames, p);
                        let n = local.f.len() as u32;
                        local.f.push(Frame {
                            key,
                            parent: u32::MAX,
                            depth,
                            run: 1,
                            bytes: 0,
                            count: 0,
                        });
                        local.recent.push([NO_KEY; RECENT]);
                        // a stand-in for the root is never folded into (as the root is not)
                        if is_root {
                            local.f[n as usize].key = (Packed::ABSENT, u32::MAX, true);
                        }
                        stand_in.insert(p, n);
                        n
                    },
                );
                (local, stand_in, objects)
            });
            let objects_a = add_nodes(
                (g, d, opts),
                &mut trie,
                &mut canon,
                1..h,
                at_a,
                0,
                |_, _, _| 0,
            );
            (objects_a, b.join().expect("flamegraph thread panicked"))
        });
        objects += objects_a + objects_b;
        // merge: stand-ins are the first half's frames; the other local nodes come after their parents
        let mut map = vec![u32::MAX; local.f.len()];
        for (&p, &n) in &stand_ins {
            map[n as usize] = at[p as usize];
        }
        for (n, f) in local.f.iter().enumerate().skip(1) {
            let t = if map[n] != u32::MAX {
                map[n]
            } else {
                let t = trie.child(map[f.parent as usize], f.key);
                map[n] = t;
                t
            };
            let main = &mut trie.f[t as usize];
            main.bytes += f.bytes;
            main.count += f.count;
            main.run = main.run.saturating_add(f.run - 1);
        }
        for t in at[h..m0].iter_mut() {
            *t = map[*t as usize];
        }
    }
    // the leaves, whose dominators are all numbered by now
    let (at_searched, at_leaves) = at.split_at_mut(m0);
    let searched = &*at_searched;
    objects += add_nodes(
        (g, d, opts),
        &mut trie,
        &mut canon,
        m0..m,
        at_leaves,
        m0,
        |_, _, p| searched[p as usize],
    );
    log::debug!(
        "stacks: trie of {} frames in {:?}{}",
        trie.f.len(),
        t0.elapsed(),
        if parallel { " (two halves)" } else { "" }
    );
    emit(g, &trie, opts, objects, &[])
}

/// The key, depth and rootness of the trie frame that node `w` (preorder number) ends up in, following its
/// dominators to the root with the rules of `add_nodes` (memoised in `frames`).
fn frame_at(
    g: &Graph,
    d: &DomTree,
    opts: &FlameOptions,
    canon: &mut Canon,
    frames: &mut FxHashMap<u32, (Key, u32, bool)>,
    w: u32,
) -> (Key, u32, bool) {
    let root: (Key, u32, bool) = ((Packed::ABSENT, u32::MAX, true), 0, true);
    let mut chain = vec![];
    let mut x = w;
    let mut known = root;
    while x != 0 && x != u32::MAX {
        if let Some(&f) = frames.get(&x) {
            known = f;
            break;
        }
        chain.push(x);
        x = d.idom_pre[x as usize];
    }
    for &y in chain.iter().rev() {
        let (key, elided) = frame_of(g, d, canon, d.order[y as usize], y);
        let (pk, pd, proot) = known;
        known = match placement(&pk, pd, proot, key, elided, opts.max_depth) {
            None => known,
            Some(k) => (k, pd + 1, false),
        };
        frames.insert(y, known);
    }
    known
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
    // frames may read alike (dict keys that print the same): whole lines sorted, so that the order never depends
    // on how the trie was built
    lines.sort();
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
