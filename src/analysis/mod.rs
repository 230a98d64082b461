//! Analysis of the reference graph: dominator tree and retained sizes, flamegraph stacks (by retaining path, by
//! type), and shortest reference chains from the roots.

pub mod alloc;
pub mod flame;
pub mod paths;

use crate::heap::dominators::semi_nca;
use crate::heap::graph::{Graph, NONE};
use crate::heap::label::{Label, Packed};

/// Which size an object contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeModel {
    Footprint,
    Getsizeof,
}

/// The dominator tree of a graph, with the label of each node's edge from its dominator.
pub struct DomTree {
    /// immediate dominator by node (NONE for the root and nodes not reached)
    pub idom: Vec<u32>,
    /// nodes with every dominator before the nodes it dominates (depth-first preorder)
    pub order: Vec<u32>,
    /// label of an edge idom(v) -> v by node, `Packed::ABSENT` if there is none
    label: Vec<Packed>,
    model: SizeModel,
}

impl DomTree {
    /// No dominator tree (views that do not need one).
    pub fn empty() -> DomTree {
        DomTree {
            idom: vec![],
            order: vec![],
            label: vec![],
            model: SizeModel::Footprint,
        }
    }

    /// The size object `v` contributes.
    #[inline]
    pub fn own(&self, g: &Graph, v: u32) -> u64 {
        match self.model {
            SizeModel::Footprint => g.footprint[v as usize],
            SizeModel::Getsizeof => g.size[v as usize],
        }
    }

    /// The label of an edge from `v`'s immediate dominator to `v`, if there is one.
    #[inline]
    pub fn label(&self, v: u32) -> Option<Label> {
        let p = self.label[v as usize];
        (!p.is_absent()).then(|| p.unpack())
    }

    /// Retained size of every node: its own size plus that of everything it dominates.
    pub fn retained(&self, g: &Graph) -> Vec<u64> {
        let mut r: Vec<u64> = (0..g.len() as u32).map(|v| self.own(g, v)).collect();
        for &v in self.order.iter().rev() {
            let d = self.idom[v as usize];
            if d != NONE {
                r[d as usize] += r[v as usize];
            }
        }
        r
    }

    pub fn new(g: &Graph, model: SizeModel) -> DomTree {
        let n = g.len();
        // context edges (class, globals, builtins) count only towards nodes reachable in no other way
        let d = semi_nca(n, 0, |v, out: &mut Vec<(u32, Packed)>| {
            g.for_each_succ(v, |t, l| {
                if !l.is_context() || g.context_only(t) {
                    out.push((t, l));
                }
            })
        });
        let t0 = std::time::Instant::now();
        // the label of an edge from the dominator: the first that says more than "key" or "unknown field"
        let mut label = vec![Packed::ABSENT; n];
        for (w, &v) in d.vertex.iter().enumerate().skip(1) {
            let mut best = Packed::ABSENT;
            for l in d.idom_edges(w) {
                if best.is_absent() {
                    best = l;
                }
                if !matches!(l.unpack(), Label::None | Label::DictKey) {
                    best = l;
                    break;
                }
            }
            label[v as usize] = best;
        }
        log::debug!("dominators: labels {:?}", t0.elapsed());
        let idom = d.idom_by_node(n);
        DomTree {
            idom,
            order: d.vertex,
            label,
            model,
        }
    }
}
