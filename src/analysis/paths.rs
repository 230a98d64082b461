//! Shortest reference chains from the roots to chosen objects ("path to GC roots").

use crate::heap::graph::Graph;
use crate::heap::label::Label;
use std::collections::VecDeque;

/// Which objects to explain.
pub enum Target {
    /// by type name: "Order" or "module.Order"
    Type(String),
    Address(u64),
}

/// Up to `limit` chains, each a list of (edge label shown, node shown), root first.
pub fn shortest_paths(g: &Graph, target: &Target, limit: usize) -> Vec<Vec<String>> {
    let n = g.len();
    let matches = |v: u32| -> bool {
        if g.is_virtual(v) {
            return false;
        }
        match target {
            Target::Address(a) => g.addr(v) == *a,
            Target::Type(t) => {
                let (m, name) = &g.type_names[g.ty(v) as usize];
                name == t || format!("{m}.{name}") == *t
            }
        }
    };
    let mut parent = vec![(u32::MAX, Label::None); n];
    let mut seen = vec![false; n];
    let mut q = VecDeque::from([0u32]);
    seen[0] = true;
    let mut found = vec![];
    while let Some(v) = q.pop_front() {
        if matches(v) {
            found.push(v);
            if found.len() >= limit {
                break;
            }
        }
        for (t, l) in g.succ(v) {
            // references to a type object (`__class__`) explain nothing
            if !seen[t as usize] && l != Label::Class {
                seen[t as usize] = true;
                parent[t as usize] = (v, l);
                q.push_back(t);
            }
        }
    }
    found
        .into_iter()
        .map(|v| {
            let mut chain = vec![];
            let mut x = v;
            while x != 0 {
                let (p, l) = parent[x as usize];
                let node = if g.is_virtual(x) {
                    g.vname[x as usize].clone()
                } else {
                    g.type_label(x)
                };
                let step = match l {
                    Label::Text(_) => node,
                    Label::Module(_) => g.render_label(l),
                    Label::Item => format!(
                        "[{}] {node}",
                        item_index(g, p, x)
                            .map(|i| i.to_string())
                            .unwrap_or("*".into())
                    ),
                    _ => format!("{} {node}", g.render_label(l)),
                };
                chain.push((l, step));
                x = p;
            }
            chain.reverse();
            // `→ __dict__ dict → ['name'] X` reads better as `→ .name X`
            let mut out: Vec<String> = vec![];
            let mut i = 0;
            while i < chain.len() {
                if chain[i].0 == Label::Field("__dict__")
                    && let Some((Label::StrKey(k), step)) = chain.get(i + 1)
                {
                    let key = format!("['{}']", g.name(0, *k));
                    out.push(step.replacen(&key, &format!(".{}", g.name(0, *k)), 1));
                    i += 2;
                    continue;
                }
                out.push(chain[i].1.clone());
                i += 1;
            }
            out
        })
        .collect()
}

fn item_index(g: &Graph, p: u32, x: u32) -> Option<usize> {
    g.succ(p)
        .filter(|(_, l)| *l == Label::Item)
        .position(|(t, _)| t == x)
}
