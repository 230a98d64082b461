//! Analysis of the reference graph: dominator tree and retained sizes, flamegraph stacks (by retaining path, by
//! type), and shortest reference chains from the roots.

pub mod alloc;
pub mod flame;
pub mod paths;

use crate::heap::dominators::semi_nca;
use crate::heap::graph::{Graph, NONE};
use crate::heap::label::{Label, Packed};
use crate::memory::huge::ColumnWriter;

/// Which size an object contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeModel {
    Footprint,
    Getsizeof,
}

/// The dominator tree of a graph, in depth-first preorder (every dominator before the nodes it dominates), with
/// the label of each node's edge from its dominator.
pub struct DomTree {
    /// node -> preorder number (NONE if not reached)
    pre: Vec<u32>,
    /// preorder number -> node
    pub order: Vec<u32>,
    /// `order[..searched]` came from the depth-first search; the rest are leaves (one referrer, no references)
    pub searched: usize,
    /// by preorder number: the preorder number of the immediate dominator (NONE for the root)
    pub idom_pre: Vec<u32>,
    /// by preorder number: label of an edge from the immediate dominator, `Packed::ABSENT` if there is none
    label_pre: Vec<Packed>,
    model: SizeModel,
}

impl DomTree {
    /// No dominator tree (views that do not need one).
    pub fn empty() -> DomTree {
        DomTree {
            pre: vec![],
            order: vec![],
            searched: 0,
            idom_pre: vec![],
            label_pre: vec![],
            model: SizeModel::Footprint,
        }
    }

    /// The size object `v` contributes.
    #[inline]
    pub fn own(&self, g: &Graph, v: u32) -> u64 {
        match self.model {
            SizeModel::Footprint => g.footprint(v),
            SizeModel::Getsizeof => g.size(v),
        }
    }

    /// Preorder number of node `v`, NONE if the tree does not reach it.
    #[inline]
    pub fn pre(&self, v: u32) -> u32 {
        self.pre.get(v as usize).copied().unwrap_or(NONE)
    }

    /// Immediate dominator of node `v` (NONE for the root and nodes not reached).
    #[inline]
    pub fn idom(&self, v: u32) -> u32 {
        match self.pre(v) {
            NONE => NONE,
            w => match self.idom_pre[w as usize] {
                NONE => NONE,
                d => self.order[d as usize],
            },
        }
    }

    /// The label of an edge from the immediate dominator to the node with preorder number `w`, if there is one.
    #[inline]
    pub fn label_at(&self, w: u32) -> Option<Label> {
        let p = self.label_pre[w as usize];
        (!p.is_absent()).then(|| p.unpack())
    }

    /// `label_at` packed, `Packed::ABSENT` if there is none.
    #[inline]
    pub fn packed_label_at(&self, w: u32) -> Packed {
        self.label_pre[w as usize]
    }

    /// The label of an edge from `v`'s immediate dominator to `v`, if there is one.
    #[inline]
    pub fn label(&self, v: u32) -> Option<Label> {
        match self.pre(v) {
            NONE => None,
            w => self.label_at(w),
        }
    }

    pub fn new(g: &Graph, model: SizeModel) -> DomTree {
        let n = g.len();
        // context edges (class, globals, builtins) count only towards nodes reachable in no other way
        let d = semi_nca(
            n,
            0,
            |v, out: &mut Vec<u32>| g.for_each_dominator_succ(v, |t| out.push(t)),
            |v| g.dominator_leaf(v),
        );
        let t0 = std::time::Instant::now();
        // labels: every edge v -> t whose target v dominates immediately, one pass over the edges in node order
        // (on every core: only the thread scanning v writes the labels of the nodes v dominates); the first label
        // that says more than "key" or "unknown field" wins
        let mut label_pre = vec![Packed::ABSENT; d.vertex.len()];
        {
            let w = ColumnWriter::for_slice(&mut label_pre);
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8);
            let per = n.div_ceil(threads).max(1) as u32;
            let d = &d;
            std::thread::scope(|s| {
                for c in 0..threads as u32 {
                    s.spawn(move || {
                        for v in c * per..((c + 1) * per).min(n as u32) {
                            let i = d.pre[v as usize];
                            if i == NONE {
                                continue;
                            }
                            g.for_each_succ(v, |t, l| {
                                let j = d.pre[t as usize];
                                if j != NONE && d.idom[j as usize] == i {
                                    // SAFETY: slot j is written only by the thread scanning its immediate
                                    // dominator v, which is this one; `label_pre` outlives the scope.
                                    unsafe {
                                        let cur = w.get(j as usize);
                                        if cur.is_absent()
                                            || matches!(cur.unpack(), Label::None | Label::DictKey)
                                        {
                                            w.set(j as usize, l);
                                        }
                                    }
                                }
                            });
                        }
                    });
                }
            });
        }
        log::debug!("dominators: labels {:?}", t0.elapsed());
        DomTree {
            searched: d.searched,
            pre: d.pre,
            order: d.vertex,
            idom_pre: d.idom,
            label_pre,
            model,
        }
    }
}
