//! Decoding `_Py_DebugOffsets` (CPython 3.13+, at `_PyRuntime+0`) with the field list of the target's minor version.

use super::{LayoutError, PyVersion, Table};
use serde_json::Value;
use std::collections::HashMap;

const SPEC: &str = include_str!("tables/debug_offsets.json");
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// The decoded offsets: "section.field" -> value.
#[derive(Debug, Clone)]
pub struct DebugOffsets {
    pub version: PyVersion,
    pub free_threaded: bool,
    /// Which minor version's field list decoded it.
    pub field_list: String,
    pub fields: HashMap<String, u64>,
}

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("built-in debug offsets spec is valid JSON")
}

/// Number of bytes to read at `_PyRuntime` to decode any known field list.
pub fn max_len() -> usize {
    let s = spec();
    let n = s["fields"]
        .as_object()
        .unwrap()
        .values()
        .map(|secs| {
            secs.as_array()
                .unwrap()
                .iter()
                .map(|s| s[1].as_array().unwrap().len())
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    8 + 8 * (2 + n)
}

impl DebugOffsets {
    /// True if `raw` starts with the cookie.
    pub fn present(raw: &[u8]) -> bool {
        raw.len() >= 24 && &raw[..8] == COOKIE
    }

    /// Decode. A version newer than every known field list is decoded with the newest list (the caller then
    /// checks that the result fits the newest layout before trusting it).
    pub fn parse(raw: &[u8]) -> Result<DebugOffsets, LayoutError> {
        if !Self::present(raw) {
            return Err(LayoutError::DebugOffsets("no xdebugpy cookie".into()));
        }
        let rd = |i: usize| -> Option<u64> {
            raw.get(8 + 8 * i..16 + 8 * i)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        };
        let version = PyVersion::from_hex(rd(0).unwrap());
        let free_threaded = rd(1).unwrap_or(0) != 0;
        let s = spec();
        let lists = s["fields"].as_object().unwrap();
        let key = format!("{}.{}", version.major, version.minor);
        let (list_name, list) = match lists.get(&key) {
            Some(l) => (key, l),
            None => {
                let newest = lists.keys().max_by_key(|k| PyVersion::parse(k)).unwrap();
                if PyVersion::parse(newest).unwrap() > version {
                    return Err(LayoutError::DebugOffsets(format!(
                        "no field list for {version}"
                    )));
                }
                (newest.clone(), &lists[newest])
            }
        };
        let mut fields = HashMap::new();
        let mut i = 2;
        for sec in list.as_array().unwrap() {
            let name = sec[0].as_str().unwrap();
            for f in sec[1].as_array().unwrap() {
                let v = rd(i).ok_or_else(|| LayoutError::DebugOffsets("truncated".into()))?;
                fields.insert(format!("{name}.{}", f.as_str().unwrap()), v);
                i += 1;
            }
        }
        Ok(DebugOffsets {
            version,
            free_threaded,
            field_list: list_name,
            fields,
        })
    }

    /// (table label, table value, debug-offsets value) for every covered field where the two disagree.
    pub fn mismatches(&self, t: &Table) -> Vec<(String, Option<i64>, u64)> {
        let s = spec();
        let mut out = vec![];
        for (dk, label) in s["map"].as_object().unwrap() {
            if let Some(&v) = self.fields.get(dk) {
                let label = label.as_str().unwrap();
                if t.get(label) != Some(v as i64) {
                    out.push((label.to_string(), t.get(label), v));
                }
            }
        }
        out.sort();
        out
    }

    /// Overwrite the covered fields of `t` with the target's values; returns how many fields are covered.
    pub fn apply(&self, t: &mut Table) -> usize {
        let s = spec();
        let mut n = 0;
        for (dk, label) in s["map"].as_object().unwrap() {
            if let Some(&v) = self.fields.get(dk) {
                t.set(label.as_str().unwrap(), v as i64);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_for(version: u64, vals: &[u64]) -> Vec<u8> {
        let mut v = COOKIE.to_vec();
        v.extend(version.to_le_bytes());
        v.extend(0u64.to_le_bytes());
        for x in vals {
            v.extend(x.to_le_bytes());
        }
        v.resize(max_len() + 64, 0);
        v
    }

    #[test]
    fn decodes_by_position() {
        // runtime_state: size finalizing interpreters_head, then interpreter_state.size ...
        let raw = raw_for(0x030d00f0, &[283320, 608, 632, 194968]);
        let d = DebugOffsets::parse(&raw).unwrap();
        assert_eq!(d.version, PyVersion::new(3, 13, 0));
        assert_eq!(d.fields["runtime_state.interpreters_head"], 632);
        assert_eq!(d.fields["interpreter_state.size"], 194968);
        assert_eq!(d.field_list, "3.13");
    }

    #[test]
    fn rejects_missing_cookie() {
        assert!(DebugOffsets::parse(&[0u8; 100]).is_err());
    }
}
