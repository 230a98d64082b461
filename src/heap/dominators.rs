//! Dominator tree (semi-NCA: Lengauer–Tarjan semidominators with path compression, then nearest common
//! ancestors). Retained sizes are the flamegraph's widths (analysis::flame); the node-indexed helpers below serve
//! the tests' reference algorithms.

const NONE: u32 = u32::MAX;

/// Immediate dominators of every node reachable from `root`; `NONE` for unreachable nodes and for the root.
/// `succ(v, f)` calls `f` for every successor of `v`.
#[cfg(test)]
pub fn dominators(n: usize, root: u32, succ: impl Fn(u32, &mut dyn FnMut(u32))) -> Vec<u32> {
    semi_nca(n, root, |v, out| succ(v, &mut |w| out.push(w)), |_| false).idom_by_node()
}

/// The same over a graph in compressed sparse rows: successors of `v` are `to[off[v]..off[v+1]]`.
#[cfg(test)]
pub fn dominators_csr(n: usize, root: u32, off: &[u64], to: &[u32]) -> Vec<u32> {
    semi_nca(
        n,
        root,
        |v, out| out.extend_from_slice(&to[off[v as usize] as usize..off[v as usize + 1] as usize]),
        |_| false,
    )
    .idom_by_node()
}

/// A dominator tree in depth-first preorder.
pub struct Dom {
    /// node -> preorder number (NONE if not reached)
    pub pre: Vec<u32>,
    /// preorder number -> node
    pub vertex: Vec<u32>,
    /// by preorder number: the preorder number of the immediate dominator (NONE for the root). A dominator is a
    /// depth-first ancestor, so it always comes first in preorder.
    pub idom: Vec<u32>,
    /// nodes numbered by the search; the leaves follow them
    pub searched: usize,
}

impl Dom {
    /// Immediate dominator of every node (NONE for the root and unreachable nodes).
    #[cfg(test)]
    pub fn idom_by_node(&self) -> Vec<u32> {
        let mut out = vec![NONE; self.pre.len()];
        for (w, &v) in self.vertex.iter().enumerate().skip(1) {
            out[v as usize] = self.vertex[self.idom[w] as usize];
        }
        out
    }
}

/// Semi-NCA over the graph that `succ(v, out)` describes (it appends `v`'s successors). One iterative
/// depth-first search numbers the nodes and keeps only the non-tree edges as predecessors: most heap objects have
/// a single referrer (their tree edge), and the semidominator pass evaluates paths only for the others.
///
/// `leaf(v)` may say that `v` has exactly one incoming edge and no outgoing ones (an int or str held by one
/// object): its dominator is its referrer, and it is numbered after all the others, outside the search.
pub fn semi_nca(
    n: usize,
    root: u32,
    mut succ: impl FnMut(u32, &mut Vec<u32>),
    leaf: impl Fn(u32) -> bool,
) -> Dom {
    match search(n, root, &mut succ, &leaf) {
        Some(d) => d,
        // a node said to be a leaf had a second referrer: the claim was wrong, so do without it
        None => {
            log::warn!("dominators: a leaf had two referrers; searching every node");
            search(n, root, &mut succ, &|_| false).expect("no leaves, no conflict")
        }
    }
}

/// `semi_nca`, or None if a leaf turns out to have two referrers.
fn search(
    n: usize,
    root: u32,
    succ: &mut impl FnMut(u32, &mut Vec<u32>),
    leaf: &impl Fn(u32) -> bool,
) -> Option<Dom> {
    let t0 = std::time::Instant::now();
    // depth-first search: successors are pushed in reverse so they are entered in order; a node already numbered
    // when its edge is considered makes that edge a non-tree edge: (target, source) in preorder numbers
    let mut pre = vec![NONE; n];
    let mut vertex: Vec<u32> = Vec::with_capacity(n);
    let mut parent: Vec<u32> = Vec::with_capacity(n);
    let mut nontree: Vec<(u32, u32)> = vec![];
    let mut stack: Vec<(u32, u32)> = vec![(root, NONE)];
    let mut buf: Vec<u32> = vec![];
    // leaves met, with their referrer's preorder number
    let mut leaves: Vec<(u32, u32)> = vec![];
    const LEAF: u32 = NONE - 1;
    while let Some((w, pp)) = stack.pop() {
        let pw = pre[w as usize];
        if pw != NONE {
            nontree.push((pw, pp));
            continue;
        }
        let i = vertex.len() as u32;
        pre[w as usize] = i;
        vertex.push(w);
        parent.push(pp);
        buf.clear();
        succ(w, &mut buf);
        for &x in buf.iter().rev() {
            match pre[x as usize] {
                NONE if leaf(x) => {
                    pre[x as usize] = LEAF;
                    leaves.push((x, i));
                }
                NONE => stack.push((x, i)),
                LEAF => return None,
                px => nontree.push((px, i)),
            }
        }
    }
    drop((stack, buf));
    log::debug!(
        "dominators: search {:?}, {} non-tree edges",
        t0.elapsed(),
        nontree.len()
    );
    let m = vertex.len();
    // non-tree edges grouped by target (a counting sort; `pred_off` doubles as the fill cursor)
    assert!(
        nontree.len() < u32::MAX as usize,
        "more than 2^32 references"
    );
    let mut pred_off = vec![0u32; m + 1];
    for &(t, _) in &nontree {
        pred_off[t as usize + 1] += 1;
    }
    for i in 0..m {
        pred_off[i + 1] += pred_off[i];
    }
    let mut pred_src = vec![0u32; nontree.len()];
    for &(t, src) in &nontree {
        let k = &mut pred_off[t as usize];
        pred_src[*k as usize] = src;
        *k += 1;
    }
    drop(nontree);
    for i in (1..=m).rev() {
        pred_off[i] = pred_off[i - 1];
    }
    pred_off[0] = 0;
    // semidominators, in reverse preorder; `label` and `ancestor` form the path-compressed forest
    let mut semi: Vec<u32> = (0..m as u32).collect();
    let mut label: Vec<u32> = (0..m as u32).collect();
    let mut ancestor = vec![NONE; m];
    let mut path = Vec::new();
    for w in (1..m).rev() {
        let mut s = parent[w];
        for &v in &pred_src[pred_off[w] as usize..pred_off[w + 1] as usize] {
            let u = eval(v, &mut ancestor, &mut label, &semi, &mut path);
            s = s.min(semi[u as usize]);
        }
        semi[w] = s;
        ancestor[w] = parent[w];
    }
    drop((label, ancestor, path, pred_off, pred_src));
    // immediate dominators: the nearest ancestor of the parent at or above the semidominator (in place: `semi`
    // below w already holds immediate dominators)
    let mut idom = semi;
    if m > 0 {
        idom[0] = NONE;
    }
    for w in 1..m {
        let s = idom[w];
        let mut x = parent[w];
        while x > s {
            x = idom[x as usize];
        }
        idom[w] = x;
    }
    for (k, &(x, ip)) in leaves.iter().enumerate() {
        pre[x as usize] = (m + k) as u32;
        vertex.push(x);
        idom.push(ip);
    }
    log::debug!(
        "dominators: tree {:?} ({} leaves outside the search)",
        t0.elapsed(),
        leaves.len()
    );
    Some(Dom {
        pre,
        vertex,
        idom,
        searched: m,
    })
}

/// The vertex with the least semidominator on the compressed path from `v` up to its forest root.
#[inline]
fn eval(v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<u32>) -> u32 {
    if ancestor[v as usize] == NONE {
        return v;
    }
    path.clear();
    let mut u = v;
    while ancestor[ancestor[u as usize] as usize] != NONE {
        path.push(u);
        u = ancestor[u as usize];
    }
    for &x in path.iter().rev() {
        let a = ancestor[x as usize];
        if semi[label[a as usize] as usize] < semi[label[x as usize] as usize] {
            label[x as usize] = label[a as usize];
        }
        ancestor[x as usize] = ancestor[a as usize];
    }
    label[v as usize]
}

/// Retained size of every node: its own size plus that of everything it dominates.
#[cfg(test)]
pub fn retained(idom: &[u32], own: &[u64], root: u32) -> Vec<u64> {
    let mut r = own.to_vec();
    // children lists, then a post-order accumulation
    let order = preorder(idom, root);
    for &v in order.iter().rev() {
        let d = idom[v as usize];
        if d != u32::MAX {
            r[d as usize] += r[v as usize];
        }
    }
    r
}

/// Nodes of the dominator tree in pre-order (parents before children).
#[cfg(test)]
pub fn preorder(idom: &[u32], root: u32) -> Vec<u32> {
    let n = idom.len();
    let mut head = vec![u32::MAX; n];
    let mut next = vec![u32::MAX; n];
    for v in (0..n as u32).rev() {
        let d = idom[v as usize];
        if d != u32::MAX {
            next[v as usize] = head[d as usize];
            head[d as usize] = v;
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut stack = vec![root];
    while let Some(v) = stack.pop() {
        out.push(v);
        let mut c = head[v as usize];
        while c != u32::MAX {
            stack.push(c);
            c = next[c as usize];
        }
    }
    out
}

/// A small xorshift generator for the tests' random graphs: `rnd(m)` is in `0..m`.
#[cfg(test)]
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |m| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: d dominates v iff v is unreachable from the root once d is removed.
    fn brute(n: usize, adj: &[Vec<u32>], root: u32) -> Vec<u32> {
        let reach = |skip: u32| {
            let mut seen = vec![false; n];
            if skip == root {
                return seen;
            }
            let mut st = vec![root];
            seen[root as usize] = true;
            while let Some(v) = st.pop() {
                for &w in &adj[v as usize] {
                    if w != skip && !seen[w as usize] {
                        seen[w as usize] = true;
                        st.push(w);
                    }
                }
            }
            seen
        };
        let all = reach(u32::MAX);
        let mut doms: Vec<Vec<u32>> = vec![vec![]; n];
        for d in 0..n as u32 {
            let r = reach(d);
            for v in 0..n {
                if all[v] && !r[v] && v as u32 != d {
                    doms[v].push(d);
                }
            }
        }
        // the immediate dominator is the strict dominator dominated by all others (the one with most dominators)
        (0..n)
            .map(|v| {
                if !all[v] || v as u32 == root {
                    return u32::MAX;
                }
                *doms[v]
                    .iter()
                    .max_by_key(|&&d| doms[d as usize].len())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_on_random_graphs() {
        let mut rnd = xorshift(0x9e3779b97f4a7c15u64);
        for case in 0..300 {
            let n = 2 + rnd(40) as usize;
            let edges = rnd((n * 3) as u64) as usize;
            let mut adj = vec![vec![]; n];
            for _ in 0..edges {
                let a = rnd(n as u64) as u32;
                let b = rnd(n as u64) as u32;
                adj[a as usize].push(b);
            }
            let got = dominators(n, 0, |v, f| {
                for &w in &adj[v as usize] {
                    f(w)
                }
            });
            assert_eq!(got, brute(n, &adj, 0), "case {case}: {adj:?}");
        }
    }

    #[test]
    fn leaves_outside_the_search_change_nothing() {
        let mut rnd = xorshift(0x853c49e6748fea9bu64);
        for case in 0..300 {
            let n = 2 + rnd(40) as usize;
            let mut adj = vec![vec![]; n];
            for _ in 0..rnd((n * 2) as u64) {
                let a = rnd(n as u64) as u32;
                let b = rnd(n as u64) as u32;
                adj[a as usize].push(b);
            }
            let mut indeg = vec![0; n];
            for e in adj.iter().flatten() {
                indeg[*e as usize] += 1;
            }
            let leaf = |v: u32| v != 0 && indeg[v as usize] == 1 && adj[v as usize].is_empty();
            let d = semi_nca(n, 0, |v, out| out.extend_from_slice(&adj[v as usize]), leaf);
            let truth = brute(n, &adj, 0);
            assert_eq!(d.idom_by_node(), truth, "case {case}: {adj:?}");
            // a wrong claim (any node without successors, whatever its referrers) is caught and undone
            let wrong = |v: u32| v != 0 && adj[v as usize].is_empty();
            let d2 = semi_nca(
                n,
                0,
                |v, out| out.extend_from_slice(&adj[v as usize]),
                wrong,
            );
            assert_eq!(
                d2.idom_by_node(),
                truth,
                "case {case} (wrong leaves): {adj:?}"
            );
            // every dominator is numbered before the nodes it dominates
            for (w, &i) in d.idom.iter().enumerate().skip(1) {
                assert!((i as usize) < w, "case {case}");
            }
        }
    }

    #[test]
    fn retained_sums_subtrees() {
        // 0 -> 1 -> 2, 0 -> 3, 1 -> 3 : idom(3) = 0
        let adj = [vec![1, 3], vec![2, 3], vec![], vec![]];
        let idom = dominators(4, 0, |v, f| {
            for &w in &adj[v as usize] {
                f(w)
            }
        });
        assert_eq!(idom, vec![u32::MAX, 0, 1, 0]);
        assert_eq!(retained(&idom, &[0, 10, 5, 7], 0), vec![22, 15, 5, 7]);
    }
}

#[cfg(test)]
mod bigger {
    use super::*;

    /// Cooper, Harvey and Kennedy's iterative algorithm, as an independent reference for larger graphs.
    fn chk(n: usize, adj: &[Vec<u32>], root: u32) -> Vec<u32> {
        let mut order = vec![];
        let mut seen = vec![false; n];
        let mut stack = vec![(root, 0usize)];
        seen[root as usize] = true;
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            if *i < adj[v as usize].len() {
                let w = adj[v as usize][*i];
                *i += 1;
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    stack.push((w, 0));
                }
            } else {
                order.push(v);
                stack.pop();
            }
        }
        order.reverse();
        let mut rpo = vec![usize::MAX; n];
        for (i, &v) in order.iter().enumerate() {
            rpo[v as usize] = i;
        }
        let mut preds = vec![vec![]; n];
        for v in 0..n {
            if seen[v] {
                for &w in &adj[v] {
                    preds[w as usize].push(v as u32);
                }
            }
        }
        let mut idom = vec![u32::MAX; n];
        idom[root as usize] = root;
        let mut changed = true;
        while changed {
            changed = false;
            for &v in order.iter().skip(1) {
                let mut new = u32::MAX;
                for &p in &preds[v as usize] {
                    if idom[p as usize] == u32::MAX {
                        continue;
                    }
                    new = if new == u32::MAX {
                        p
                    } else {
                        let (mut a, mut b) = (p, new);
                        while a != b {
                            while rpo[a as usize] > rpo[b as usize] {
                                a = idom[a as usize];
                            }
                            while rpo[b as usize] > rpo[a as usize] {
                                b = idom[b as usize];
                            }
                        }
                        a
                    };
                }
                if idom[v as usize] != new {
                    idom[v as usize] = new;
                    changed = true;
                }
            }
        }
        idom[root as usize] = u32::MAX;
        idom
    }

    #[test]
    fn matches_iterative_algorithm_on_larger_graphs() {
        let mut rnd = xorshift(0x2545f4914f6cdd1du64);
        for case in 0..40 {
            let n = 100 + rnd(3000) as usize;
            let mut adj = vec![vec![]; n];
            // a spanning chain of sorts plus random edges, some of them "heap-like" fan-outs
            for v in 1..n {
                let p = rnd(v as u64) as u32;
                adj[p as usize].push(v as u32);
            }
            for _ in 0..n * 2 {
                let a = rnd(n as u64) as usize;
                let b = rnd(n as u64) as u32;
                adj[a].push(b);
            }
            let got = dominators(n, 0, |v, f| {
                for &w in &adj[v as usize] {
                    f(w)
                }
            });
            assert_eq!(got, chk(n, &adj, 0), "case {case}");
        }
    }
}
