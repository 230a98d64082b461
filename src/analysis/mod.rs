//! Analysis of the reference graph: dominator tree and retained sizes, flamegraph stacks (by retaining path, by
//! type), and shortest reference chains from the roots.

pub mod alloc;
pub mod flame;
pub mod paths;

use crate::heap::dominators::{dominators_csr, retained};
use crate::heap::graph::Graph;
use crate::heap::label::Label;

/// Which size an object contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeModel {
    Footprint,
    Getsizeof,
}

/// The dominator tree of a graph, with retained sizes and the label of each node's edge from its dominator.
pub struct DomTree {
    pub idom: Vec<u32>,
    pub own: Vec<u64>,
    pub retained: Vec<u64>,
    /// label of an edge idom(v) -> v, if one exists
    pub label: Vec<Option<Label>>,
}

impl DomTree {
    /// No dominator tree (views that do not need one).
    pub fn empty() -> DomTree {
        DomTree {
            idom: vec![],
            own: vec![],
            retained: vec![],
            label: vec![],
        }
    }

    pub fn new(g: &Graph, model: SizeModel) -> DomTree {
        let n = g.len();
        // nodes reachable without context edges (class, globals, builtins); context edges count only towards
        // nodes reachable in no other way
        let mut strong = vec![false; n];
        let mut stack = vec![0u32];
        strong[0] = true;
        while let Some(v) = stack.pop() {
            for (t, l) in g.succ(v) {
                if !l.is_context() && !strong[t as usize] {
                    strong[t as usize] = true;
                    stack.push(t);
                }
            }
        }
        let mut off: Vec<u64> = Vec::with_capacity(n + 1);
        let mut to: Vec<u32> = Vec::with_capacity(g.edge_count());
        off.push(0);
        for v in 0..n as u32 {
            for (t, l) in g.succ(v) {
                if !l.is_context() || !strong[t as usize] {
                    to.push(t);
                }
            }
            off.push(to.len() as u64);
        }
        drop(strong);
        let idom = dominators_csr(n, 0, &off, &to);
        drop((off, to));
        let own: Vec<u64> = match model {
            SizeModel::Footprint => g.footprint.clone(),
            SizeModel::Getsizeof => g.size.clone(),
        };
        let ret = retained(&idom, &own, 0);
        let mut label = vec![None; n];
        for v in 0..n as u32 {
            for (t, l) in g.succ(v) {
                let slot = &mut label[t as usize];
                if idom[t as usize] == v
                    && (slot.is_none() || matches!(slot, Some(Label::None | Label::DictKey)))
                {
                    *slot = Some(l);
                }
            }
        }
        DomTree {
            idom,
            own,
            retained: ret,
            label,
        }
    }
}
