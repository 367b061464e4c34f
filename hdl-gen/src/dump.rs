//! What `--dump-after PASS` writes: the plan as a table and as JSON, and the checked hardware
//! IR as an outline a person can read (every module's ports, signals with their widths and
//! drivers, memories, instances and how many statements each `always` block holds).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::ir::{Dir, Expr, Item, Module, Stmt};

/// The outline of every module, in name order.
pub fn lower(modules: &BTreeMap<String, Module>) -> String {
    modules
        .values()
        .map(|m| outline(m, modules))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One module's outline; `design` holds the modules its instances refer to.
pub fn outline(m: &Module, design: &BTreeMap<String, Module>) -> String {
    let drivers = drivers(m, design);
    let driver = |n: &str| drivers.get(n).map_or("-".to_string(), |d| d.join(", "));
    let mut s = String::new();
    let _ = writeln!(s, "module {}", m.name);
    let _ = writeln!(
        s,
        "  {:<8} {:>6}  {:<28} driven by",
        "kind", "width", "name"
    );
    for p in &m.ports {
        let kind = match (p.dir, p.is_reg) {
            (Dir::In, _) => "input",
            (Dir::Out, false) => "output",
            (Dir::Out, true) => "out reg",
        };
        let by = if p.dir == Dir::In {
            "(outside)".into()
        } else {
            driver(&p.name)
        };
        let _ = writeln!(s, "  {kind:<8} {:>6}  {:<28} {by}", p.width, p.name);
    }
    let mut blocks = 0;
    for item in &m.items {
        match item {
            Item::Wire(n, w) => {
                let _ = writeln!(s, "  {:<8} {w:>6}  {n:<28} {}", "wire", driver(n));
            }
            Item::Reg(n, w) => {
                let _ = writeln!(s, "  {:<8} {w:>6}  {n:<28} {}", "reg", driver(n));
            }
            Item::RegInit(n, w, v) => {
                let _ = writeln!(
                    s,
                    "  {:<8} {w:>6}  {n:<28} {} (power-on {v})",
                    "reg",
                    driver(n)
                );
            }
            Item::Memory {
                name,
                width,
                depth,
                init,
                ..
            } => {
                let init = init
                    .as_deref()
                    .map_or(String::new(), |f| format!(", image {f}"));
                let _ = writeln!(
                    s,
                    "  {:<8} {width:>6}  {name:<28} {depth} words, written by {}{init}",
                    "memory",
                    driver(name)
                );
            }
            Item::Instance { module, name, .. } => {
                let _ = writeln!(s, "  instance {name}: {module}");
            }
            Item::Primitive { module, name, .. } => {
                let _ = writeln!(s, "  primitive {name}: {module}");
            }
            Item::Cell { primitive, .. } => {
                if let Item::Primitive { module, name, .. } = primitive.as_ref() {
                    let _ = writeln!(s, "  cell {name}: {module} (with a simulation model)");
                }
            }
            Item::Always(clk, body) | Item::KeptAlways(clk, body) => {
                let _ = writeln!(
                    s,
                    "  always #{blocks} @(posedge {clk}): {} statements",
                    count(body)
                );
                blocks += 1;
            }
            Item::AlwaysReset {
                clock,
                reset,
                on_reset,
                body,
            } => {
                let _ = writeln!(
                    s,
                    "  always #{blocks} @(posedge {clock} or posedge {reset}): {} statements",
                    count(on_reset) + count(body)
                );
                blocks += 1;
            }
            Item::Assign(..) | Item::Comment(_) => {}
        }
    }
    s
}

fn count(body: &[Stmt]) -> usize {
    body.iter()
        .map(|st| match st {
            Stmt::If(_, t, f) => 1 + count(t) + count(f),
            _ => 1,
        })
        .sum()
}

/// Who drives each name: `assign`, `always #i`, `instance.port`.
fn drivers(m: &Module, design: &BTreeMap<String, Module>) -> BTreeMap<String, Vec<String>> {
    let mut d: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |n: String, by: String| {
        let v = d.entry(n).or_default();
        if !v.contains(&by) {
            v.push(by);
        }
    };
    let mut block = 0;
    for item in &m.items {
        match item {
            Item::Assign(l, _) => targets(l).into_iter().for_each(|n| add(n, "assign".into())),
            Item::Always(_, body) | Item::KeptAlways(_, body) | Item::AlwaysReset { body, .. } => {
                let mut names = Vec::new();
                assigned(body, &mut names);
                for n in names {
                    add(n, format!("always #{block}"));
                }
                block += 1;
            }
            Item::Instance {
                module,
                name,
                conns,
            } => {
                let is_output = |port: &str| {
                    design.get(module).is_some_and(|md| {
                        md.ports.iter().any(|p| p.name == port && p.dir == Dir::Out)
                    })
                };
                for (port, e) in conns.iter().filter(|(p, _)| is_output(p)) {
                    for n in targets(e) {
                        add(n, format!("{name}.{port}"));
                    }
                }
            }
            Item::Primitive { name, outputs, .. } => {
                for (port, e) in outputs {
                    for n in targets(e) {
                        add(n, format!("{name}.{port}"));
                    }
                }
            }
            Item::Cell { primitive, .. } => {
                let Item::Primitive { name, outputs, .. } = primitive.as_ref() else {
                    continue;
                };
                for (port, e) in outputs {
                    for n in targets(e) {
                        add(n, format!("{name}.{port}"));
                    }
                }
            }
            _ => {}
        }
    }
    d
}

fn targets(e: &Expr) -> Vec<String> {
    match e {
        Expr::Ref(n) | Expr::Slice(n, ..) | Expr::Bit(n, _) => vec![n.clone()],
        Expr::Concat(parts) => parts.iter().flat_map(targets).collect(),
        _ => Vec::new(),
    }
}

fn assigned(body: &[Stmt], out: &mut Vec<String>) {
    for st in body {
        match st {
            Stmt::Assign(l, _) => out.extend(targets(l)),
            Stmt::MemWrite(n, ..) => out.push(n.clone()),
            Stmt::If(_, t, f) => {
                assigned(t, out);
                assigned(f, out);
            }
        }
    }
}
