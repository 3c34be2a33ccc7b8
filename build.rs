//! Embeds `templates/` into the binary (so `invited` runs from an empty
//! directory) and makes new migration files rebuild the crate (`sqlx::migrate!`
//! reads them at compile time).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations-sqlite");
    // Read when the script runs, not when it is compiled: a build script
    // compiled for one checkout may be run for another that shares its
    // target directory, and must read that checkout's templates.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("templates");
    let mut files = Vec::new();
    for locale in std::fs::read_dir(&root).expect("templates/ exists") {
        let locale = locale.expect("templates/ is readable").path();
        if !locale.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", locale.display());
        for file in std::fs::read_dir(&locale).expect("a locale directory is readable") {
            let file = file.expect("a locale directory is readable").path();
            if file.is_file() {
                println!("cargo:rerun-if-changed={}", file.display());
                let name = file.strip_prefix(&root).expect("under templates/");
                files.push((name.to_string_lossy().replace('\\', "/"), file));
            }
        }
    }
    files.sort();
    let mut out =
        String::from("/// `templates/` as built into the binary: (`<locale>/<file>`, contents).\n");
    out.push_str("pub static EMBEDDED_TEMPLATES: &[(&str, &str)] = &[\n");
    for (name, path) in &files {
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a string");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("embedded_templates.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
