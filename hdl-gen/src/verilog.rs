//! The Verilog back end: prints the IR. It makes no decisions; what it prints is what the
//! blocks built.

use std::fmt::Write;

use crate::ir::{BinOp, Dir, Expr, Item, Module, Stmt, UnOp};

/// `[w-1:0] `, also for one bit (`[0:0]`), so that every signal can be sliced uniformly.
fn range(width: usize) -> String {
    format!("[{}:0] ", width - 1)
}

/// Prints an expression.
pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Ref(n) => n.clone(),
        Expr::Const { width, value } => format!("{width}'d{value}"),
        Expr::Slice(n, hi, lo) => format!("{n}[{hi}:{lo}]"),
        Expr::Bit(n, i) => format!("{n}[{i}]"),
        Expr::PartSelect(n, base, w) => format!("{n}[{} +: {w}]", expr(base)),
        Expr::MemRead(n, a) => format!("{n}[{}]", expr(a)),
        Expr::Un(op, a) => {
            let o = match op {
                UnOp::Not => "~",
                UnOp::LogicNot => "!",
            };
            format!("{o}({})", expr(a))
        }
        Expr::Bin(BinOp::SignedGe, a, b) => {
            format!("($signed({}) >= $signed({}))", expr(a), expr(b))
        }
        Expr::Bin(op, a, b) => {
            let o = match op {
                BinOp::Add => "+",
                BinOp::Sub => "-",
                BinOp::And => "&",
                BinOp::Or => "|",
                BinOp::Xor => "^",
                BinOp::Eq => "==",
                BinOp::Ne => "!=",
                BinOp::Lt => "<",
                BinOp::Gt => ">",
                BinOp::LogicAnd => "&&",
                BinOp::LogicOr => "||",
                BinOp::SignedGe => unreachable!("printed above"),
            };
            format!("({} {o} {})", expr(a), expr(b))
        }
        Expr::Concat(parts) => {
            format!(
                "{{{}}}",
                parts.iter().map(expr).collect::<Vec<_>>().join(", ")
            )
        }
        Expr::Repl(n, a) => format!("{{{n}{{{}}}}}", expr(a)),
        Expr::Mux(c, a, b) => format!("({} ? {} : {})", expr(c), expr(a), expr(b)),
    }
}

fn stmts(out: &mut String, body: &[Stmt], indent: usize) {
    let pad = "    ".repeat(indent);
    for s in body {
        match s {
            Stmt::Assign(l, r) => {
                let _ = writeln!(out, "{pad}{} <= {};", expr(l), expr(r));
            }
            Stmt::MemWrite(m, a, d) => {
                let _ = writeln!(out, "{pad}{m}[{}] <= {};", expr(a), expr(d));
            }
            Stmt::If(c, t, f) => {
                let _ = writeln!(out, "{pad}if ({}) begin", expr(c));
                stmts(out, t, indent + 1);
                if f.is_empty() {
                    let _ = writeln!(out, "{pad}end");
                } else {
                    let _ = writeln!(out, "{pad}end else begin");
                    stmts(out, f, indent + 1);
                    let _ = writeln!(out, "{pad}end");
                }
            }
        }
    }
}

/// Prints a module as a complete Verilog file.
pub fn module(m: &Module) -> String {
    let mut out = String::new();
    for line in &m.doc {
        let _ = writeln!(out, "// {line}");
    }
    out.push_str("`default_nettype none\n\n");
    let _ = writeln!(out, "module {} (", m.name);
    let ports: Vec<String> = m
        .ports
        .iter()
        .map(|p| {
            let dir = match (p.dir, p.is_reg) {
                (Dir::In, _) => "input  wire",
                (Dir::Out, false) => "output wire",
                (Dir::Out, true) => "output reg ",
            };
            format!("    {dir} {}{}", range(p.width), p.name)
        })
        .collect();
    out.push_str(&ports.join(",\n"));
    out.push_str("\n);\n");
    for item in &m.items {
        match item {
            Item::Comment(c) => {
                let _ = writeln!(out, "\n    // {c}");
            }
            Item::Wire(n, w) => {
                let _ = writeln!(out, "    wire {}{n};", range(*w));
            }
            Item::Reg(n, w) => {
                let _ = writeln!(out, "    reg {}{n};", range(*w));
            }
            Item::RegInit(n, w, v) => {
                let _ = writeln!(out, "    reg {}{n};", range(*w));
                let _ = writeln!(out, "    initial {n} = {w}'d{v};");
            }
            Item::Memory {
                name,
                width,
                depth,
                init,
                ram_style,
                no_rw_check,
            } => {
                if let Some(style) = ram_style {
                    let _ = writeln!(out, "    (* ram_style = \"{style}\" *)");
                }
                if *no_rw_check {
                    let _ = writeln!(out, "    (* no_rw_check *)");
                }
                let _ = writeln!(out, "    reg {}{name} [0:{}];", range(*width), depth - 1);
                if let Some(f) = init {
                    let _ = writeln!(out, "    initial $readmemh(\"{f}\", {name});");
                }
            }
            Item::Assign(l, r) => {
                let _ = writeln!(out, "    assign {} = {};", expr(l), expr(r));
            }
            Item::Always(clk, body) | Item::KeptAlways(clk, body) => {
                let keep = if matches!(item, Item::KeptAlways(..)) {
                    "(* keep *) "
                } else {
                    ""
                };
                let _ = writeln!(out, "    {keep}always @(posedge {clk}) begin");
                stmts(&mut out, body, 2);
                out.push_str("    end\n");
            }
            Item::AlwaysReset {
                clock,
                reset,
                on_reset,
                body,
            } => {
                let _ = writeln!(
                    out,
                    "    always @(posedge {clock} or posedge {reset}) begin"
                );
                let split = [Stmt::If(
                    Expr::Ref(reset.clone()),
                    on_reset.clone(),
                    body.clone(),
                )];
                stmts(&mut out, &split, 2);
                out.push_str("    end\n");
            }
            Item::Instance {
                module,
                name,
                conns,
            } => {
                let _ = writeln!(out, "    {module} {name} (");
                out.push_str(&named_list(conns.iter().map(|(p, e)| (p, expr(e)))));
                out.push_str("\n    );\n");
            }
            Item::Primitive { .. } => primitive(&mut out, item),
            Item::Cell {
                primitive: cell,
                model,
            } => {
                out.push_str("`ifdef SYNTHESIS\n");
                primitive(&mut out, cell);
                out.push_str("`else\n");
                for (l, r) in model {
                    let _ = writeln!(out, "    assign {} = {};", expr(l), expr(r));
                }
                out.push_str("`endif\n");
            }
        }
    }
    out.push_str("endmodule\n\n`default_nettype wire\n");
    out
}

/// A vendor primitive's instance with its parameters.
fn primitive(out: &mut String, item: &Item) {
    let Item::Primitive {
        module,
        name,
        params,
        inputs,
        outputs,
    } = item
    else {
        unreachable!("the checking pass admits only primitives in cells")
    };
    let _ = writeln!(out, "    {module} #(");
    out.push_str(&named_list(params.iter().map(|(n, v)| (n, v.clone()))));
    let _ = writeln!(out, "\n    ) {name} (");
    let conns = inputs.iter().chain(outputs);
    out.push_str(&named_list(conns.map(|(p, e)| (p, expr(e)))));
    out.push_str("\n    );\n");
}

/// `.name(value)` entries, one per line, comma-separated (ports or parameters).
fn named_list<'a>(items: impl Iterator<Item = (&'a String, String)>) -> String {
    items
        .map(|(n, v)| format!("        .{n}({v})"))
        .collect::<Vec<_>>()
        .join(",\n")
}
