//! Per-version CPython struct layouts: one JSON table per version family (data, in `tables/`), chosen by version
//! range and corrected, on 3.13+, by the `_Py_DebugOffsets` the target itself carries.

pub mod debug_offsets;

use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

pub use debug_offsets::DebugOffsets;

/// `micro` of a version known only as major.minor (from a file name).
pub const MICRO_UNKNOWN: u8 = 255;

/// A CPython version as in `PY_VERSION_HEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyVersion {
    pub major: u8,
    pub minor: u8,
    pub micro: u8,
    /// 0xA alpha, 0xB beta, 0xC candidate, 0xF final
    pub level: u8,
    pub serial: u8,
}

impl PyVersion {
    pub fn from_hex(v: u64) -> PyVersion {
        PyVersion {
            major: (v >> 24) as u8,
            minor: (v >> 16) as u8,
            micro: (v >> 8) as u8,
            level: ((v >> 4) & 0xf) as u8,
            serial: (v & 0xf) as u8,
        }
    }
    pub fn new(major: u8, minor: u8, micro: u8) -> PyVersion {
        PyVersion {
            major,
            minor,
            micro,
            level: 0xf,
            serial: 0,
        }
    }
    /// Parse "3.12.1", "3.13.0rc2", "3.14" (micro 0).
    pub fn parse(s: &str) -> Option<PyVersion> {
        let mut parts = s.splitn(3, '.');
        let major: u8 = parts.next()?.parse().ok()?;
        let minor: u8 = parts.next()?.parse().ok()?;
        let rest = parts.next().unwrap_or("0");
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let micro: u8 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        let (level, serial) = match tail.get(..1) {
            Some("a") => (0xa, tail[1..].parse().unwrap_or(0)),
            Some("b") => (0xb, tail[1..].parse().unwrap_or(0)),
            Some("r") => (0xc, tail.trim_start_matches("rc").parse().unwrap_or(0)),
            _ => (0xf, 0),
        };
        Some(PyVersion {
            major,
            minor,
            micro,
            level,
            serial,
        })
    }
    pub fn at_least(&self, minor: u8) -> bool {
        self.major > 3 || (self.major == 3 && self.minor >= minor)
    }
    pub fn is(&self, minor: u8) -> bool {
        self.major == 3 && self.minor == minor
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.micro == MICRO_UNKNOWN {
            return write!(f, "{}.{}", self.major, self.minor);
        }
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)?;
        match self.level {
            0xa => write!(f, "a{}", self.serial),
            0xb => write!(f, "b{}", self.serial),
            0xc => write!(f, "rc{}", self.serial),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("Python {0} is not supported: pymemspy supports CPython 3.8 to 3.15")]
    Unsupported(PyVersion),
    #[error(
        "Python {0} is newer than this pymemspy knows (3.15) and its _Py_DebugOffsets do not match the newest known layout; upgrade pymemspy"
    )]
    TooNew(PyVersion),
    #[error("layout table {table} lacks field {field}")]
    MissingField { table: String, field: String },
    #[error("_Py_DebugOffsets of the target: {0}")]
    DebugOffsets(String),
}

/// One version family's table: label -> offset (None = field absent in that version).
#[derive(Debug, Clone)]
pub struct Table {
    pub build: String,
    pub min: PyVersion,
    pub max_exclusive: PyVersion,
    pub source: String,
    fields: HashMap<String, Option<i64>>,
}

const TABLES: &[(&str, &str)] = &[
    ("3.8.18", include_str!("tables/v3_8_18.json")),
    ("3.9.18", include_str!("tables/v3_9_18.json")),
    ("3.10.13", include_str!("tables/v3_10_13.json")),
    ("3.11.7", include_str!("tables/v3_11_7.json")),
    ("3.12.1", include_str!("tables/v3_12_1.json")),
    ("3.13.0", include_str!("tables/v3_13_0.json")),
    ("3.13.18", include_str!("tables/v3_13_18.json")),
    ("3.14.0", include_str!("tables/v3_14_0.json")),
    ("3.14.1", include_str!("tables/v3_14_1.json")),
    ("3.14.3", include_str!("tables/v3_14_3.json")),
    ("3.14.4", include_str!("tables/v3_14_4.json")),
    ("3.14.10", include_str!("tables/v3_14_10.json")),
    ("3.15.2", include_str!("tables/v3_15_2.json")),
];

impl Table {
    fn from_json(text: &str) -> Table {
        let v: Value = serde_json::from_str(text).expect("built-in layout table is valid JSON");
        let obj = v.as_object().expect("layout table is an object");
        let meta = &obj["_meta"];
        let mut fields = HashMap::new();
        for (k, val) in obj {
            if k.starts_with('_') {
                continue;
            }
            // labels may carry a note such as "ts.frame (<=3.10)"; the note is not part of the name
            let key = k.split(" (").next().unwrap_or(k).to_string();
            fields.insert(key, val.as_i64());
        }
        Table {
            build: meta["build"].as_str().unwrap_or("?").to_string(),
            min: PyVersion::parse(meta["min_version"].as_str().unwrap_or("0.0.0")).unwrap(),
            max_exclusive: PyVersion::parse(
                meta["max_version_exclusive"].as_str().unwrap_or("0.0.0"),
            )
            .unwrap(),
            source: meta["source"].as_str().unwrap_or("").to_string(),
            fields,
        }
    }

    /// All built-in tables.
    pub fn all() -> Vec<Table> {
        TABLES.iter().map(|(_, t)| Table::from_json(t)).collect()
    }

    /// Offset of a field, `None` if the field does not exist in this version (or is unknown).
    pub fn get(&self, label: &str) -> Option<i64> {
        self.fields.get(label).copied().flatten()
    }

    pub fn has_label(&self, label: &str) -> bool {
        self.fields.contains_key(label)
    }

    pub fn set(&mut self, label: &str, v: i64) {
        self.fields.insert(label.to_string(), Some(v));
    }

    pub fn covers(&self, v: PyVersion) -> bool {
        let key = |p: PyVersion| (p.major, p.minor, p.micro);
        key(v) >= key(self.min) && key(v) < key(self.max_exclusive)
    }
}

/// How the GC generation lists are organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcKind {
    /// `generations[3]` + permanent (3.8–3.13, 3.14.5+, 3.15)
    Generational,
    /// `young`, `old[2]` + permanent, bit 0 of `_gc_next` is the old-space bit (3.14.0–3.14.4)
    Incremental,
}

/// The chosen layout for one target, with a note of how it was chosen.
#[derive(Debug, Clone)]
pub struct Layout {
    pub version: PyVersion,
    pub table: Table,
    pub gc_kind: GcKind,
    /// Fields taken from (or checked against) the target's `_Py_DebugOffsets`.
    pub debug_offsets_used: usize,
    /// Human-readable notes on the choice (for `inspect`).
    pub notes: Vec<String>,
}

impl Layout {
    /// Pick the table for `version`; on 3.13+ `dbg` (decoded from the target) overrides the fields it covers and
    /// decides between tables of the same minor version whose struct sizes differ.
    pub fn select(version: PyVersion, dbg: Option<&DebugOffsets>) -> Result<Layout, LayoutError> {
        if !version.at_least(8) || version.major != 3 {
            return Err(LayoutError::Unsupported(version));
        }
        let all = Table::all();
        let mut notes = vec![];
        let mut candidates: Vec<Table> =
            all.iter().filter(|t| t.covers(version)).cloned().collect();
        let mut too_new = false;
        if candidates.is_empty() {
            // Newer than every table: accept only if the newest table fits the target's debug offsets exactly.
            let newest = all.iter().max_by_key(|t| t.min).unwrap().clone();
            if version < newest.min {
                return Err(LayoutError::Unsupported(version));
            }
            too_new = true;
            candidates.push(newest);
        }
        let mut chosen = if let Some(d) = dbg {
            // the candidate with the fewest disagreements with the target's own offsets
            candidates
                .into_iter()
                .map(|t| (d.mismatches(&t).len(), t))
                .min_by_key(|(n, _)| *n)
                .map(|(_, t)| t)
                .unwrap()
        } else {
            candidates.into_iter().next().unwrap()
        };
        let mut used = 0;
        if let Some(d) = dbg {
            let mism = d.mismatches(&chosen);
            if too_new && !mism.is_empty() {
                return Err(LayoutError::TooNew(version));
            }
            for (label, table_v, dbg_v) in &mism {
                notes.push(format!(
                    "{label}: table {table_v:?}, _Py_DebugOffsets {dbg_v} (using the latter)"
                ));
            }
            used = d.apply(&mut chosen);
        } else if too_new {
            return Err(LayoutError::TooNew(version));
        }
        if too_new {
            notes.push(format!(
                "{version} is newer than the newest known layout ({}); its _Py_DebugOffsets match that layout, so it is used",
                chosen.build
            ));
        }
        let gc_kind = if chosen.get("gc.young").is_some() {
            GcKind::Incremental
        } else {
            GcKind::Generational
        };
        notes.insert(
            0,
            format!("layout table {} ({})", chosen.build, chosen.source),
        );
        Ok(Layout {
            version,
            table: chosen,
            gc_kind,
            debug_offsets_used: used,
            notes,
        })
    }

    pub fn get(&self, label: &str) -> Option<i64> {
        self.table.get(label)
    }

    /// A field that must exist for this version.
    pub fn req(&self, label: &str) -> Result<i64, LayoutError> {
        self.get(label).ok_or_else(|| LayoutError::MissingField {
            table: self.table.build.clone(),
            field: label.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_parses_and_has_core_fields() {
        for t in Table::all() {
            for f in [
                "type.tp_name",
                "type.tp_flags",
                "dict.ma_keys",
                "list.ob_item",
                "sizeof(PyTypeObject)",
            ] {
                assert!(t.get(f).is_some(), "{} lacks {f}", t.build);
            }
            assert!(t.min < t.max_exclusive, "{}", t.build);
        }
    }

    #[test]
    fn ranges_cover_38_to_315_without_gaps() {
        let tables = Table::all();
        for minor in 8..=15u8 {
            for micro in [0u8, 1, 4, 5, 18, 30] {
                let v = PyVersion::new(3, minor, micro);
                assert!(tables.iter().any(|t| t.covers(v)), "no table for {v}");
            }
        }
        // 3.14.0-3.14.4 and 3.14.5+ are different families
        let pick = |v| Layout::select(v, None).unwrap().table.build;
        assert_eq!(pick(PyVersion::new(3, 14, 0)), "3.14.0");
        assert_eq!(pick(PyVersion::new(3, 14, 2)), "3.14.1");
        assert_eq!(pick(PyVersion::new(3, 14, 3)), "3.14.3");
        assert_eq!(pick(PyVersion::new(3, 14, 4)), "3.14.4");
        assert_eq!(pick(PyVersion::new(3, 14, 5)), "3.14.10");
        assert_eq!(
            Layout::select(PyVersion::new(3, 14, 2), None)
                .unwrap()
                .gc_kind,
            GcKind::Incremental
        );
        assert_eq!(
            Layout::select(PyVersion::new(3, 14, 10), None)
                .unwrap()
                .gc_kind,
            GcKind::Generational
        );
    }

    #[test]
    fn refuses_old_and_unknown_new_versions() {
        assert!(matches!(
            Layout::select(PyVersion::new(3, 7, 16), None),
            Err(LayoutError::Unsupported(_))
        ));
        assert!(matches!(
            Layout::select(PyVersion::new(2, 7, 18), None),
            Err(LayoutError::Unsupported(_))
        ));
        assert!(matches!(
            Layout::select(PyVersion::new(3, 16, 0), None),
            Err(LayoutError::TooNew(_))
        ));
    }

    #[test]
    fn version_parsing() {
        assert_eq!(
            PyVersion::parse("3.12.1").unwrap(),
            PyVersion::new(3, 12, 1)
        );
        assert_eq!(PyVersion::parse("3.13.0rc2").unwrap().level, 0xc);
        assert_eq!(PyVersion::from_hex(0x030d12f0), PyVersion::new(3, 13, 18));
        assert_eq!(PyVersion::from_hex(0x030f02f0).to_string(), "3.15.2");
    }
}
