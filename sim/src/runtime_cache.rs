//! Verilator's runtime objects (`verilated.o`, `verilated_threads.o`, and the tracing runtime
//! where tracing is on) are the same for every model built by the same Verilator with the same
//! settings, and were about 10 of the 14 s a small model's build took here (docs/decisions.md).
//! They are kept once per key in the user's cache folder (`$XDG_CACHE_HOME/bql` or
//! `~/.cache/bql`) and copied into a new build's `obj_dir` before `make`, which then finds
//! them up to date.
//!
//! The key covers everything the objects are compiled from: the `VM_*` settings Verilator
//! wrote into the model's makefiles (tracing, timing, coverage...), the make variables, the
//! runtime's own sources (every file of `$VERILATOR_ROOT/include`, by content) and the C++
//! compiler (path, size and time of the program). A cache that cannot be read or written only
//! costs the compile it would have saved.

use std::path::{Path, PathBuf};

/// The cached runtime objects of one key.
pub(crate) struct RuntimeCache {
    dir: PathBuf,
    key: String,
    objects: Vec<String>,
}

impl RuntimeCache {
    /// The cache for the model makefiles in `obj_dir` (prefix `prefix`) built with
    /// `make_vars`, or `None` when there is no cache folder or the makefiles cannot be read.
    pub(crate) fn for_build(obj_dir: &Path, prefix: &str, make_vars: &[&str]) -> Option<Self> {
        let top_mk = std::fs::read_to_string(obj_dir.join(format!("{prefix}.mk"))).ok()?;
        let classes_mk =
            std::fs::read_to_string(obj_dir.join(format!("{prefix}_classes.mk"))).ok()?;
        let root = top_mk
            .lines()
            .find_map(|l| l.strip_prefix("VERILATOR_ROOT = "))?
            .trim();
        // The same Verilator reached through another path (`cli/../.venv`) is the same key.
        let root = std::fs::canonicalize(root).ok()?;
        let mut settings = compile_settings(&top_mk);
        settings.extend(compile_settings(&classes_mk));
        let objects = global_objects(&classes_mk);
        let key = [
            settings.join("\n"),
            make_vars.join(" "),
            format!(
                "{} {:016x}",
                root.display(),
                sources_digest(&root.join("include"))?
            ),
            compiler_identity(),
        ]
        .join("\n");
        let digest = bql_protocol::fnv1a64([key.as_bytes()]);
        let dir = cache_root()?.join(format!("verilator-runtime-{digest:016x}"));
        Some(RuntimeCache { dir, key, objects })
    }

    /// The folder the objects are kept in.
    pub(crate) fn folder(&self) -> &Path {
        &self.dir
    }

    /// Copies the cached objects into `obj_dir` (those the cache holds; fresh copies, so that
    /// make finds them newer than their sources).
    pub(crate) fn seed(&self, obj_dir: &Path) {
        for o in &self.objects {
            let cached = self.dir.join(o);
            if cached.is_file() {
                // A failed copy leaves the object to make.
                let _ = std::fs::copy(&cached, obj_dir.join(o));
            }
        }
    }

    /// Keeps the objects of a successful build that the cache does not hold yet (each written
    /// under a temporary name and renamed, so a concurrent build never reads half a file).
    pub(crate) fn store(&self, obj_dir: &Path) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // What the objects were built from, for whoever wonders why there are several folders.
        let _ = std::fs::write(self.dir.join("key.txt"), &self.key);
        for o in &self.objects {
            let (built, cached) = (obj_dir.join(o), self.dir.join(o));
            if cached.is_file() || !built.is_file() {
                continue;
            }
            let partial = self.dir.join(format!("{o}.{}.partial", std::process::id()));
            if std::fs::copy(&built, &partial).is_ok() {
                let _ = std::fs::rename(&partial, &cached);
            }
            let _ = std::fs::remove_file(&partial);
        }
    }
}

/// The `VM_* = value` settings of a model makefile that reach the runtime's compile (each with
/// its continuation lines): all but the model's names and its own classes and folders.
fn compile_settings(mk: &str) -> Vec<String> {
    const MODEL_ONLY: &[&str] = &[
        "VM_PREFIX",
        "VM_MODPREFIX",
        "VM_USER_CLASSES",
        "VM_USER_DIR",
    ];
    let mut settings = Vec::new();
    let mut continued = false;
    for line in mk.lines() {
        if continued {
            settings.push(line.to_string());
        } else if let Some((name, _)) = line.split_once(" = ") {
            if !name.starts_with("VM_") || MODEL_ONLY.contains(&name) {
                continue;
            }
            settings.push(line.to_string());
        } else {
            continue;
        }
        continued = line.ends_with('\\');
    }
    settings
}

/// The runtime objects the makefile builds (`VM_GLOBAL_FAST` and `VM_GLOBAL_SLOW`), as file
/// names: lines `VM_GLOBAL_FAST += \` followed by `  name \` lines.
fn global_objects(classes_mk: &str) -> Vec<String> {
    let mut objects = Vec::new();
    let mut in_list = false;
    for line in classes_mk.lines() {
        if line.starts_with("VM_GLOBAL_") && line.contains("+=") {
            in_list = true;
        } else if in_list {
            let name = line.trim().trim_end_matches('\\').trim();
            if name.is_empty() {
                in_list = false;
            } else {
                objects.push(format!("{name}.o"));
            }
        }
    }
    objects
}

/// A digest of every file directly in `include` (names and contents, in name order).
fn sources_digest(include: &Path) -> Option<u64> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(include)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut parts = Vec::new();
    for f in &files {
        parts.push(f.file_name()?.to_string_lossy().into_owned().into_bytes());
        parts.push(std::fs::read(f).ok()?);
    }
    Some(bql_protocol::fnv1a64(parts.iter().map(Vec::as_slice)))
}

/// The C++ compiler make runs (`$CXX`, else `g++`): its resolved path, size and modification
/// time, or its name alone when it is not found on `PATH`.
fn compiler_identity() -> String {
    let name = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let flags = std::env::var("CXXFLAGS").unwrap_or_default();
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    });
    let program = found.and_then(|p| std::fs::canonicalize(p).ok());
    let stamp = program.as_ref().and_then(|p| {
        let m = std::fs::metadata(p).ok()?;
        let modified = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!(
            "{} {} {}",
            p.display(),
            m.len(),
            modified.as_nanos()
        ))
    });
    format!("{} [{flags}]", stamp.unwrap_or(name))
}

/// `$XDG_CACHE_HOME/bql`, else `$HOME/.cache/bql`.
fn cache_root() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("bql"))
}

#[cfg(test)]
mod tests {
    use super::{compile_settings, global_objects};

    #[test]
    fn the_key_takes_the_settings_but_not_the_model_names() {
        let mk = "VM_PREFIX = Vbql_core\nVM_TRACE = 1\nVM_USER_CFLAGS = \\\n  -DX \\\n\n\
                  VM_USER_CLASSES = \\\n  sim_main \\\n\nOTHER = 2\n";
        assert_eq!(
            compile_settings(mk),
            ["VM_TRACE = 1", "VM_USER_CFLAGS = \\", "  -DX \\", ""]
        );
    }

    #[test]
    fn the_runtime_objects_are_read_from_the_classes_makefile() {
        let mk = "VM_TRACE = 1\n\nVM_GLOBAL_FAST += \\\n  verilated \\\n  verilated_threads \\\n\n\
                  VM_GLOBAL_SLOW += \\\n  verilated_vcd_c \\\n\n# end\n";
        assert_eq!(
            global_objects(mk),
            ["verilated.o", "verilated_threads.o", "verilated_vcd_c.o"]
        );
    }
}
