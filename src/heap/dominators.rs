//! Dominator tree (Lengauer–Tarjan, with path compression) and retained sizes.

/// Immediate dominators of every node reachable from `root`; `NONE` for unreachable nodes and for the root.
/// `succ(v, f)` calls `f` for every successor of `v`.
pub fn dominators(n: usize, root: u32, succ: impl Fn(u32, &mut dyn FnMut(u32))) -> Vec<u32> {
    let mut off = Vec::with_capacity(n + 1);
    let mut to = Vec::new();
    off.push(0u64);
    for v in 0..n as u32 {
        succ(v, &mut |w| to.push(w));
        off.push(to.len() as u64);
    }
    dominators_csr(n, root, &off, &to)
}

/// The same over a graph in compressed sparse rows: successors of `v` are `to[off[v]..off[v+1]]`.
pub fn dominators_csr(n: usize, root: u32, off: &[u64], to: &[u32]) -> Vec<u32> {
    const NONE: u32 = u32::MAX;
    // iterative depth-first numbering
    let mut dfnum = vec![NONE; n];
    let mut vertex: Vec<u32> = Vec::with_capacity(n);
    let mut par: Vec<u32> = Vec::with_capacity(n); // parent's DFS number, by DFS number
    let mut stack: Vec<(u32, u64)> = vec![(root, off[root as usize])];
    dfnum[root as usize] = 0;
    vertex.push(root);
    par.push(NONE);
    while let Some(top) = stack.last_mut() {
        let (v, ref mut e) = *top;
        let end = off[v as usize + 1];
        let mut next = None;
        while *e < end {
            let w = to[*e as usize];
            *e += 1;
            if dfnum[w as usize] == NONE {
                next = Some(w);
                break;
            }
        }
        match next {
            Some(w) => {
                dfnum[w as usize] = vertex.len() as u32;
                par.push(dfnum[v as usize]);
                vertex.push(w);
                stack.push((w, off[w as usize]));
            }
            None => {
                stack.pop();
            }
        }
    }
    let m = vertex.len();
    // predecessors (in DFS numbers) of reachable nodes, as CSR
    let mut pcount = vec![0u32; m + 1];
    for &v in &vertex {
        for &w in &to[off[v as usize] as usize..off[v as usize + 1] as usize] {
            let dw = dfnum[w as usize];
            if dw != NONE {
                pcount[dw as usize + 1] += 1;
            }
        }
    }
    let mut poff: Vec<u64> = Vec::with_capacity(m + 1);
    let mut acc = 0u64;
    for c in &pcount {
        acc += *c as u64;
        poff.push(acc);
    }
    drop(pcount);
    let mut fill: Vec<u64> = poff.clone();
    let mut preds = vec![0u32; acc as usize];
    for (dv, &v) in vertex.iter().enumerate() {
        for &w in &to[off[v as usize] as usize..off[v as usize + 1] as usize] {
            let dw = dfnum[w as usize];
            if dw != NONE {
                preds[fill[dw as usize] as usize] = dv as u32;
                fill[dw as usize] += 1;
            }
        }
    }
    drop(fill);
    let mut semi: Vec<u32> = (0..m as u32).collect();
    let mut idom = vec![NONE; m];
    let mut ancestor = vec![NONE; m];
    let mut label: Vec<u32> = (0..m as u32).collect();
    let mut bucket_head = vec![NONE; m];
    let mut bucket_next = vec![NONE; m];

    fn eval(
        v: u32,
        ancestor: &mut [u32],
        label: &mut [u32],
        semi: &[u32],
        path: &mut Vec<u32>,
    ) -> u32 {
        if ancestor[v as usize] == u32::MAX {
            return v;
        }
        path.clear();
        let mut u = v;
        while ancestor[ancestor[u as usize] as usize] != u32::MAX {
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

    let mut path = Vec::new();
    for w in (1..m as u32).rev() {
        for &p in &preds[poff[w as usize] as usize..poff[w as usize + 1] as usize] {
            let u = eval(p, &mut ancestor, &mut label, &semi, &mut path);
            if semi[u as usize] < semi[w as usize] {
                semi[w as usize] = semi[u as usize];
            }
        }
        let s = semi[w as usize];
        bucket_next[w as usize] = bucket_head[s as usize];
        bucket_head[s as usize] = w;
        let p = par[w as usize];
        ancestor[w as usize] = p;
        let mut b = bucket_head[p as usize];
        bucket_head[p as usize] = NONE;
        while b != NONE {
            let next = bucket_next[b as usize];
            let u = eval(b, &mut ancestor, &mut label, &semi, &mut path);
            idom[b as usize] = if semi[u as usize] < semi[b as usize] {
                u
            } else {
                p
            };
            b = next;
        }
    }
    for w in 1..m {
        if idom[w] != semi[w] {
            idom[w] = idom[idom[w] as usize];
        }
    }
    let mut out = vec![NONE; n];
    for w in 1..m {
        out[vertex[w] as usize] = vertex[idom[w] as usize];
    }
    out
}

/// Retained size of every node: its own size plus that of everything it dominates.
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
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
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
        let mut seed = 0x2545f4914f6cdd1du64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
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
