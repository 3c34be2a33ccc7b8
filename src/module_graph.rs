//! The crate's top-level modules form no cycle, and the core never reaches
//! up to the ways in. Read from the sources: a module depends on another
//! when one of its files names `crate::other` (paths across modules are
//! written from `crate::`, never with `super::super`).
//!
//! ```text
//! app      --> every module (the composition root)
//! ingress  --> http, events (the NATS bus), store
//! http     --> actors, service, store, config, domain, metrics
//! actors   --> service, events, store, config, domain, metrics
//! service  --> store, mail, config, domain, metrics, dns
//! dns      --> (no module: hickory only)
//! events   --> store, domain
//! store, config --> domain
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules that call into the rest: nothing else may depend on them.
const WAYS_IN: [&str; 3] = ["app", "http", "ingress"];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules a source text names through `crate::`, outside
/// comments: `crate::a::x`, and each item of `crate::{b, c::{y, z}}`.
fn named_modules(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `mycrate::`, not `crate::`
            }
            match rest.strip_prefix('{') {
                Some(group) => {
                    let mut depth = 1;
                    let mut item_start = true;
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 1 => break,
                            '}' => depth -= 1,
                            ',' if depth == 1 => item_start = true,
                            c if c.is_whitespace() => {}
                            _ if item_start && depth == 1 => {
                                names.insert(ident(&group[i..]).to_string());
                                item_start = false;
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    names.insert(ident(rest).to_string());
                }
            }
        }
    }
    names.retain(|n| !n.is_empty() && n != "self");
    names
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library's top-level modules and what each depends on. `lib.rs`
/// only declares them; `main.rs` and `bin/` are other crates; this file
/// names modules in its own tests.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let top = top.to_str().unwrap().trim_end_matches(".rs").to_string();
        if matches!(top.as_str(), "lib" | "main" | "bin" | "module_graph") {
            continue;
        }
        let deps = named_modules(&std::fs::read_to_string(&file).unwrap());
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(deps.into_iter().filter(|d| *d != top));
    }
    graph
}

/// A cycle in the graph, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = graph();
    for module in ["actors", "app", "http", "ingress", "service", "store"] {
        assert!(graph.contains_key(module), "{module} not seen: {graph:?}");
    }
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn only_the_composition_root_and_ingress_depend_on_the_ways_in() {
    let graph = graph();
    for (module, deps) in &graph {
        for way_in in WAYS_IN {
            let allowed = match way_in {
                "app" => false,
                "ingress" => module == "app",
                _ => module == "app" || module == "ingress",
            };
            assert!(
                allowed || !deps.contains(way_in),
                "{module} depends on {way_in}: the actors, use cases, store, domain, mail and \
                 events are called by the ways in, never the other way round"
            );
        }
    }
}

#[test]
fn the_scanner_sees_paths_groups_and_skips_comments() {
    let source = "use crate::http::x;\n\
                  use crate::{ingress, store::{a, b}, self};\n\
                  // crate::app in a comment\n\
                  let y = mycrate::events::z; f(crate::domain::Id)\n";
    assert_eq!(
        named_modules(source),
        BTreeSet::from(["domain", "http", "ingress", "store"].map(String::from))
    );
    let cyclic = Graph::from([
        ("a".into(), BTreeSet::from(["b".into()])),
        ("b".into(), BTreeSet::from(["c".into()])),
        ("c".into(), BTreeSet::from(["a".into()])),
    ]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    let acyclic = Graph::from([
        ("a".into(), BTreeSet::from(["b".into(), "c".into()])),
        ("b".into(), BTreeSet::from(["c".into()])),
    ]);
    assert_eq!(find_cycle(&acyclic), None);
}
