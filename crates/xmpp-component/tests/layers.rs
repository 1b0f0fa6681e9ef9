//! The crate's layering as a test: `roles` → `link` → `stream`, imports pointing only down, and
//! no import cycle between its modules. Reads the sources at test time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crate's modules by path (`stream::reader`), each with its source text up to its unit
/// tests (a module's tests may use its neighbours; files of tests are left out).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("src readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.to_string_lossy().ends_with("_tests.rs")
            {
                let mut text = fs::read_to_string(&path).expect("source readable");
                if let Some(tests) = text.find("#[cfg(test)]") {
                    text.truncate(tests);
                }
                modules.insert(module_of(&src, &path), text);
            }
        }
    }
    modules
}

/// `src/stream/reader.rs` → `stream::reader`; `src/link/mod.rs` → `link`; `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let relative: PathBuf = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The layer a module belongs to: its first path segment.
fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

/// The crate paths a source names (`crate::link::handler::IqReply` → `link::handler::IqReply`),
/// comments included: a doc link upward is a dependency too.
fn crate_paths(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .filter(|(at, _)| {
            // Not the tail of another name (e.g. `other_crate::`).
            !text[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, m)| {
            text[at + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect::<String>()
                .trim_end_matches(':')
                .to_owned()
        })
        .collect()
}

/// The module of `modules` a crate path points into: its longest module prefix.
fn target(modules: &BTreeMap<String, String>, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|prefix| modules.contains_key(prefix))
}

/// Where each layer may import from (besides itself); `config` and `metrics` (the metric
/// names, docs/metrics.md) are leaves every layer uses, and import nothing of the crate.
fn may_import(from: &str, to: &str) -> bool {
    from == to
        || to == "config"
        || to == "metrics"
        || matches!(
            (from, to),
            ("link", "stream") | ("roles", "link" | "stream")
        )
}

#[test]
fn imports_point_from_roles_to_link_to_stream() {
    let modules = modules();
    for layer_name in ["stream", "link", "roles"] {
        assert!(
            modules.contains_key(layer_name),
            "the {layer_name} layer is a folder with a mod.rs"
        );
    }
    let mut upward = Vec::new();
    for (module, text) in &modules {
        let from = layer(module);
        if module.is_empty() || from == "config" {
            continue;
        }
        for path in crate_paths(text) {
            let to = match target(&modules, &path) {
                Some(to) => layer(&to).to_owned(),
                // A name re-exported at the crate root hides its layer: not allowed inside.
                None => String::from("<crate root>"),
            };
            if !may_import(from, &to) {
                upward.push(format!("{module} → crate::{path}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layering:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_config_module_imports_nothing_of_the_crate() {
    let modules = modules();
    let config = &modules["config"];
    assert!(crate_paths(config).is_empty(), "config is a leaf");
}

#[test]
fn no_import_cycle_between_modules() {
    let modules = modules();
    // Edges between modules, by the crate paths each one names (a parent's `mod` declarations
    // are not imports).
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &modules {
        let targets = edges.entry(module.as_str()).or_default();
        for path in crate_paths(text) {
            let Some(to) = target(&modules, &path) else {
                continue;
            };
            // A parent's re-export hides the module the name lives in, and with it a cycle.
            assert!(
                !module.starts_with(&format!("{to}::")),
                "{module} names crate::{path} through its parent's re-export"
            );
            if to != *module && !to.is_empty() {
                targets.insert(to);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        module: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            let mut cycle: Vec<String> = path[at..].iter().map(|m| m.to_string()).collect();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module);
        for next in edges.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next.as_str(), edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module);
        None
    }
    let mut done = BTreeSet::new();
    let mut cycles = BTreeSet::new();
    for module in edges.keys() {
        if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            cycles.insert(cycle.join(" → "));
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles:\n{}",
        Vec::from_iter(cycles).join("\n")
    );
}
