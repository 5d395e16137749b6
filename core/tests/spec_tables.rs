//! SPEC.md §3's word tables must say what `core/src/pack/` packs: every field of `EntryWord`,
//! `AccessWord` and `FrameWord`, by name, first bit and width, and nothing else (issue 18: the
//! tables had drifted from the code). The parser is checked to catch a drifted table too.

use pagecore::internals::pack::{AccessWord, EntryWord, Field, FrameWord};
use std::collections::BTreeMap;

/// Field name -> (first bit, width), as a table or the code says it.
type Layout = BTreeMap<String, (u32, u32)>;

fn code(fields: &[(&str, Field)]) -> Layout {
    fields
        .iter()
        .map(|(n, f)| (n.to_string(), (f.shift(), f.bits())))
        .collect()
}

fn entry_word() -> Layout {
    code(EntryWord::FIELDS)
}

fn access_word() -> Layout {
    code(AccessWord::FIELDS)
}

fn frame_word() -> Layout {
    code(FrameWord::FIELDS)
}

/// The table under the `### \`<word>\`` heading of `spec`: rows `| bits | field | ... |`, where
/// bits is `a..b` (a to b-1) or `a`, and field is a backticked name or `reserved`.
fn table(spec: &str, word: &str) -> Result<Layout, String> {
    let head = format!("### `{word}`");
    let start = spec
        .find(&head)
        .ok_or_else(|| format!("no section {head}"))?;
    let mut out = Layout::new();
    for line in spec[start..].lines().skip(1) {
        if line.starts_with("### ") || line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        let (a, b) = match cells[1].split_once("..") {
            Some((a, b)) => (a.parse::<u32>(), b.parse::<u32>()),
            None => (
                cells[1].parse::<u32>(),
                cells[1].parse::<u32>().map(|x| x + 1),
            ),
        };
        let (a, b) = (
            a.map_err(|e| format!("{line}: {e}"))?,
            b.map_err(|e| format!("{line}: {e}"))?,
        );
        if b <= a {
            return Err(format!("{line}: empty bit range"));
        }
        let name = cells[2].trim_matches('`').to_string();
        if out.insert(name.clone(), (a, b - a)).is_some() {
            return Err(format!("{word}: field {name} listed twice"));
        }
    }
    if out.is_empty() {
        return Err(format!("{word}: no table rows"));
    }
    Ok(out)
}

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SPEC.md")).expect("SPEC.md")
}

fn check(spec: &str, word: &str, code: Layout) -> Result<(), String> {
    let t = table(spec, word)?;
    if t != code {
        return Err(format!(
            "SPEC.md's {word} table differs from pack/:\n  SPEC: {t:?}\n  code: {code:?}"
        ));
    }
    Ok(())
}

#[test]
fn spec_word_tables_match_the_code() {
    let s = spec();
    check(&s, "EntryWord", entry_word()).unwrap();
    check(&s, "AccessWord", access_word()).unwrap();
    check(&s, "FrameWord", frame_word()).unwrap();
}

/// The check fails on a drifted table: a field one bit off, a wider field, a renamed field, a
/// field missing, and the `a` (single bit) form read right.
#[test]
fn a_drifted_table_is_caught() {
    let s = spec();
    for (from, to) in [
        ("| 32..45 | `PINS` |", "| 32..46 | `PINS` |"),
        ("| 57 | `DIRTY` |", "| 58 | `DIRTY` |"),
        ("| 47 | `COW` |", "| 47 | `SHARED` |"),
        ("| 16..20 | `ASKED` |", "| 16..21 | `ASKED` |"),
        ("| 0..2 | `TAG` |", ""),
    ] {
        assert!(s.contains(from), "SPEC.md no longer has the row {from}");
        let drifted = s.replacen(from, to, 1);
        let caught = check(&drifted, "EntryWord", entry_word()).is_err()
            || check(&drifted, "AccessWord", access_word()).is_err()
            || check(&drifted, "FrameWord", frame_word()).is_err();
        assert!(caught, "a table with {from:?} -> {to:?} passed");
    }
}

/// The levels SPEC.md §5.1's lock-hierarchy table lists, in order (its first column).
fn hierarchy(spec: &str) -> Result<Vec<String>, String> {
    let start = spec
        .find("### 5.1 Lock hierarchy")
        .ok_or("SPEC.md has no §5.1 Lock hierarchy")?;
    let rest = &spec[start..];
    let table = rest
        .find("| level |")
        .ok_or("§5.1 has no table headed `| level |`")?;
    Ok(rest[table..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect())
}

fn code_levels() -> Vec<String> {
    pagecore::internals::sync::Level::ALL
        .iter()
        .map(|l| format!("{l:?}"))
        .collect()
}

#[test]
fn spec_lock_hierarchy_matches_the_code() {
    assert_eq!(
        hierarchy(&spec()).unwrap(),
        code_levels(),
        "SPEC.md §5.1's lock hierarchy differs from sync::Level::ALL"
    );
}

#[test]
fn a_reordered_hierarchy_is_caught() {
    let s = spec().replacen("| `Lists` |", "| `Listz` |", 1);
    assert_ne!(hierarchy(&s).unwrap(), code_levels());
}
