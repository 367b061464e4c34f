//! The checking pass: runs on every generated design before it is printed (always, not only in
//! tests), so that a generator bug stops with the module and signal named instead of reaching
//! Verilator's lint or, worse, a bitstream.
//!
//! What it proves for each module:
//! - every name refers to a declared port, net, register or memory, and every instance to a
//!   module of the design with each port connected once;
//! - widths match exactly: both sides of an assignment, the operands of every operator, a
//!   multiplexer's arms, port connections, memory data and addresses; conditions are one bit;
//!   constants fit their width; slices lie inside their signal;
//! - every bit of a net or output has exactly one driver (a continuous assignment or an instance
//!   output), every register is assigned from exactly one `always` block, nothing is driven both
//!   ways;
//! - every bit of every input, net and register is read somewhere, except signals whose name
//!   says `unused` (the convention Verilator's lint follows too).

use std::collections::BTreeMap;
use std::fmt;

use crate::ir::{BinOp, Dir, Expr, Item, Module, Stmt, UnOp};

/// What a check found.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A name that nothing declares (or a module that the design does not contain).
    UnknownName,
    /// A name declared twice.
    Redeclared,
    /// Widths that should agree do not.
    WidthMismatch,
    /// A slice or bit outside its signal, or a constant too large for its width.
    OutOfRange,
    /// Bits driven more than once.
    MultipleDrivers,
    /// Bits (or a register, or a memory) that nothing drives.
    Undriven,
    /// Bits that nothing reads.
    Unused,
    /// Something assigned that cannot be (an input, a wire in an `always` block, a register
    /// in a continuous assignment, an expression).
    NotAssignable,
    /// An instance's ports connected wrongly (missing, twice, or unknown).
    BadConnection,
}

/// A check failure, naming the module and the signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    /// What kind of failure.
    pub kind: CheckKind,
    /// The module.
    pub module: String,
    /// The signal (or instance) concerned.
    pub signal: String,
    /// Details.
    pub detail: String,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "module {}, signal {}: {:?}: {}",
            self.module, self.signal, self.kind, self.detail
        )
    }
}

impl std::error::Error for CheckError {}

/// What a name declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decl {
    Input,
    Output { is_reg: bool },
    Wire,
    Reg { has_init: bool },
    Memory { depth: usize, has_init: bool },
}

/// One declared name and what the pass learned about it.
#[derive(Debug, Clone)]
struct Signal {
    decl: Decl,
    width: usize,
    /// Per bit: how many continuous drivers.
    drivers: Vec<u32>,
    /// The `always` blocks that assign it.
    blocks: Vec<usize>,
    /// Per bit: read somewhere.
    read: Vec<bool>,
}

/// Checks every module of a design (instances refer to modules of the same list).
pub fn check_design<'a>(
    modules: impl IntoIterator<Item = &'a Module> + Clone,
) -> Result<(), CheckError> {
    let by_name: BTreeMap<&str, &Module> = modules
        .clone()
        .into_iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    for m in modules {
        check_module(m, &by_name)?;
    }
    Ok(())
}

/// Checks one module; `design` holds the modules its instances may refer to.
pub fn check_module(m: &Module, design: &BTreeMap<&str, &Module>) -> Result<(), CheckError> {
    let mut c = Checker {
        module: m,
        signals: BTreeMap::new(),
        design,
    };
    c.declare_all()?;
    for (index, item) in m.items.iter().enumerate() {
        c.item(index, item)?;
    }
    c.finish()
}

struct Checker<'a> {
    module: &'a Module,
    signals: BTreeMap<String, Signal>,
    design: &'a BTreeMap<&'a str, &'a Module>,
}

impl Checker<'_> {
    fn fail(&self, kind: CheckKind, signal: &str, detail: String) -> CheckError {
        CheckError {
            kind,
            module: self.module.name.clone(),
            signal: signal.to_string(),
            detail,
        }
    }

    fn declare(&mut self, name: &str, decl: Decl, width: usize) -> Result<(), CheckError> {
        if width == 0 {
            return Err(self.fail(CheckKind::OutOfRange, name, "declared 0 bits wide".into()));
        }
        let bits = match decl {
            Decl::Memory { .. } => 1,
            _ => width,
        };
        let s = Signal {
            decl,
            width,
            drivers: vec![0; bits],
            blocks: Vec::new(),
            read: vec![false; bits],
        };
        if self.signals.insert(name.to_string(), s).is_some() {
            return Err(self.fail(CheckKind::Redeclared, name, "declared twice".into()));
        }
        Ok(())
    }

    fn declare_all(&mut self) -> Result<(), CheckError> {
        for p in &self.module.ports {
            let decl = match p.dir {
                Dir::In => Decl::Input,
                Dir::Out => Decl::Output { is_reg: p.is_reg },
            };
            self.declare(&p.name, decl, p.width)?;
        }
        for item in &self.module.items {
            match item {
                Item::Wire(n, w) => self.declare(n, Decl::Wire, *w)?,
                Item::Reg(n, w) => self.declare(n, Decl::Reg { has_init: false }, *w)?,
                Item::RegInit(n, w, v) => {
                    self.declare(n, Decl::Reg { has_init: true }, *w)?;
                    self.constant(*w, *v)?;
                }
                Item::Memory {
                    name,
                    width,
                    depth,
                    init,
                    ..
                } => self.declare(
                    name,
                    Decl::Memory {
                        depth: *depth,
                        has_init: init.is_some(),
                    },
                    *width,
                )?,
                _ => {}
            }
        }
        Ok(())
    }

    fn signal(&self, name: &str) -> Result<&Signal, CheckError> {
        self.signals
            .get(name)
            .ok_or_else(|| self.fail(CheckKind::UnknownName, name, "not declared".into()))
    }

    /// The width of a plain (non-memory) signal.
    fn plain(&self, name: &str) -> Result<usize, CheckError> {
        let s = self.signal(name)?;
        if let Decl::Memory { .. } = s.decl {
            return Err(self.fail(
                CheckKind::WidthMismatch,
                name,
                "a memory used as a plain signal".into(),
            ));
        }
        Ok(s.width)
    }

    fn mark_read(&mut self, name: &str, lo: usize, hi: usize) {
        if let Some(s) = self.signals.get_mut(name) {
            let top = hi.min(s.read.len() - 1);
            for b in &mut s.read[lo.min(top)..=top] {
                *b = true;
            }
        }
    }

    fn constant(&self, width: usize, value: u64) -> Result<usize, CheckError> {
        if width == 0 || (width < 64 && value >> width != 0) {
            return Err(self.fail(
                CheckKind::OutOfRange,
                &format!("{width}'d{value}"),
                "the constant does not fit its width".into(),
            ));
        }
        Ok(width)
    }

    fn range(&self, name: &str, hi: usize, lo: usize) -> Result<usize, CheckError> {
        let w = self.plain(name)?;
        if lo > hi || hi >= w {
            return Err(self.fail(
                CheckKind::OutOfRange,
                name,
                format!("[{hi}:{lo}] of a {w}-bit signal"),
            ));
        }
        Ok(hi - lo + 1)
    }

    fn same(&self, what: &str, a: usize, b: usize, at: &Expr) -> Result<usize, CheckError> {
        if a != b {
            return Err(self.fail(
                CheckKind::WidthMismatch,
                &crate::verilog::expr(at),
                format!("{what}: {a} bits against {b}"),
            ));
        }
        Ok(a)
    }

    fn one_bit(&self, what: &str, e: &Expr, w: usize) -> Result<(), CheckError> {
        self.same(what, w, 1, e).map(|_| ())
    }

    /// The width of `e`; marks what it reads.
    fn expr(&mut self, e: &Expr) -> Result<usize, CheckError> {
        match e {
            Expr::Ref(n) => {
                let w = self.plain(n)?;
                self.mark_read(n, 0, w - 1);
                Ok(w)
            }
            Expr::Const { width, value } => self.constant(*width, *value),
            Expr::Slice(n, hi, lo) => {
                let w = self.range(n, *hi, *lo)?;
                self.mark_read(n, *lo, *hi);
                Ok(w)
            }
            Expr::Bit(n, i) => {
                self.range(n, *i, *i)?;
                self.mark_read(n, *i, *i);
                Ok(1)
            }
            Expr::PartSelect(n, base, w) => {
                let full = self.plain(n)?;
                if *w == 0 || *w > full {
                    return Err(self.fail(
                        CheckKind::OutOfRange,
                        n,
                        format!("[+: {w}] of a {full}-bit signal"),
                    ));
                }
                self.expr(base)?;
                self.mark_read(n, 0, full - 1);
                Ok(*w)
            }
            Expr::MemRead(n, addr) => self.memory_access(n, addr, true),
            Expr::Un(UnOp::Not, a) => self.expr(a),
            Expr::Un(UnOp::LogicNot, a) => {
                let w = self.expr(a)?;
                self.one_bit("operand of !", a, w)?;
                Ok(1)
            }
            Expr::Bin(op, a, b) => self.binary(*op, a, b, e),
            Expr::Concat(parts) => parts.iter().map(|p| self.expr(p)).sum(),
            Expr::Repl(n, a) => Ok(n * self.expr(a)?),
            Expr::Mux(c, a, b) => {
                let wc = self.expr(c)?;
                self.one_bit("multiplexer condition", c, wc)?;
                let (wa, wb) = (self.expr(a)?, self.expr(b)?);
                self.same("multiplexer arms", wa, wb, e)
            }
        }
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr, e: &Expr) -> Result<usize, CheckError> {
        let (wa, wb) = (self.expr(a)?, self.expr(b)?);
        let w = self.same(&format!("operands of {op:?}"), wa, wb, e)?;
        Ok(match op {
            BinOp::Add | BinOp::Sub | BinOp::And | BinOp::Or | BinOp::Xor => w,
            BinOp::LogicAnd | BinOp::LogicOr => {
                self.one_bit(&format!("operands of {op:?}"), e, w)?;
                1
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Gt | BinOp::SignedGe => 1,
        })
    }

    /// A memory read or write: the address is exactly as wide as the depth needs.
    fn memory_access(&mut self, n: &str, addr: &Expr, read: bool) -> Result<usize, CheckError> {
        let s = self.signal(n)?;
        let (Decl::Memory { depth, .. }, width) = (s.decl, s.width) else {
            return Err(self.fail(CheckKind::WidthMismatch, n, "not a memory".into()));
        };
        let want = crate::ir::bits_for(depth.max(2) - 1);
        let wa = self.expr(addr)?;
        if wa != want {
            return Err(self.fail(
                CheckKind::WidthMismatch,
                n,
                format!("a {wa}-bit address for a {depth}-word memory (needs {want})"),
            ));
        }
        if read {
            self.mark_read(n, 0, 0);
        }
        Ok(width)
    }

    /// The bits an assignment target covers: (name, lo, hi) per part, most significant first.
    fn targets(&self, l: &Expr) -> Result<Vec<(String, usize, usize)>, CheckError> {
        match l {
            Expr::Ref(n) => {
                let w = self.plain(n)?;
                Ok(vec![(n.clone(), 0, w - 1)])
            }
            Expr::Slice(n, hi, lo) => {
                self.range(n, *hi, *lo)?;
                Ok(vec![(n.clone(), *lo, *hi)])
            }
            Expr::Bit(n, i) => {
                self.range(n, *i, *i)?;
                Ok(vec![(n.clone(), *i, *i)])
            }
            Expr::Concat(parts) => {
                let mut v = Vec::new();
                for p in parts {
                    v.extend(self.targets(p)?);
                }
                Ok(v)
            }
            other => Err(self.fail(
                CheckKind::NotAssignable,
                &crate::verilog::expr(other),
                "only names, slices, bits and their concatenations can be assigned".into(),
            )),
        }
    }

    /// A continuous driver (an `assign` or an instance output) of `l`, `width` bits wide.
    fn drive(&mut self, l: &Expr, width: usize) -> Result<(), CheckError> {
        let parts = self.targets(l)?;
        let total: usize = parts.iter().map(|(_, lo, hi)| hi - lo + 1).sum();
        self.same("assignment", total, width, l)?;
        for (n, lo, hi) in parts {
            let s = self.signals.get_mut(&n).expect("checked by targets");
            if !matches!(s.decl, Decl::Wire | Decl::Output { is_reg: false }) {
                return Err(self.fail(
                    CheckKind::NotAssignable,
                    &n,
                    "continuously driven but not a wire or a wire output".into(),
                ));
            }
            for d in &mut s.drivers[lo..=hi] {
                *d += 1;
            }
        }
        Ok(())
    }

    fn item(&mut self, index: usize, item: &Item) -> Result<(), CheckError> {
        match item {
            Item::Assign(l, r) => {
                let w = self.expr(r)?;
                self.drive(l, w)
            }
            Item::Always(clk, body) | Item::KeptAlways(clk, body) => {
                let w = self.plain(clk)?;
                self.one_bit("clock", &Expr::Ref(clk.clone()), w)?;
                self.mark_read(clk, 0, 0);
                self.stmts(index, body)
            }
            Item::AlwaysReset {
                clock,
                reset,
                on_reset,
                body,
            } => {
                for (what, name) in [("clock", clock), ("reset", reset)] {
                    let w = self.plain(name)?;
                    self.one_bit(what, &Expr::Ref(name.clone()), w)?;
                    self.mark_read(name, 0, 0);
                }
                let split = [Stmt::If(
                    Expr::Ref(reset.clone()),
                    on_reset.clone(),
                    body.clone(),
                )];
                self.stmts(index, &split)
            }
            Item::Instance {
                module,
                name,
                conns,
            } => self.instance(module, name, conns),
            Item::Primitive {
                inputs, outputs, ..
            } => {
                for (_, e) in inputs {
                    self.expr(e)?;
                }
                for (_, e) in outputs {
                    let parts = self.targets(e)?;
                    let w = parts.iter().map(|(_, lo, hi)| hi - lo + 1).sum();
                    self.drive(e, w)?;
                }
                Ok(())
            }
            Item::Cell { primitive, model } => self.cell(primitive, model),
            Item::Comment(_)
            | Item::Wire(..)
            | Item::Reg(..)
            | Item::RegInit(..)
            | Item::Memory { .. } => Ok(()),
        }
    }

    /// A cell's model drives its nets; the primitive reads its inputs and must drive exactly
    /// what the model drives.
    fn cell(&mut self, primitive: &Item, model: &[(Expr, Expr)]) -> Result<(), CheckError> {
        let Item::Primitive {
            name,
            inputs,
            outputs,
            ..
        } = primitive
        else {
            return Err(self.fail(
                CheckKind::BadConnection,
                "cell",
                "a cell holds a vendor primitive".into(),
            ));
        };
        for (_, e) in inputs {
            self.expr(e)?;
        }
        for (l, r) in model {
            let w = self.expr(r)?;
            self.drive(l, w)?;
        }
        let mut modelled: Vec<&Expr> = model.iter().map(|(l, _)| l).collect();
        for (port, e) in outputs {
            match modelled.iter().position(|l| *l == e) {
                Some(i) => {
                    modelled.swap_remove(i);
                }
                None => {
                    return Err(self.fail(
                        CheckKind::BadConnection,
                        name,
                        format!("output {port} has no assignment in the cell's model"),
                    ))
                }
            }
        }
        match modelled.first() {
            Some(l) => Err(self.fail(
                CheckKind::BadConnection,
                name,
                format!("the model drives {l:?}, which the primitive does not"),
            )),
            None => Ok(()),
        }
    }

    fn instance(
        &mut self,
        module: &str,
        name: &str,
        conns: &[(String, Expr)],
    ) -> Result<(), CheckError> {
        let Some(target) = self.design.get(module).copied() else {
            return Err(self.fail(
                CheckKind::UnknownName,
                name,
                format!("instance of {module}, which the design does not contain"),
            ));
        };
        for p in &target.ports {
            let n = conns.iter().filter(|(c, _)| *c == p.name).count();
            if n != 1 {
                return Err(self.fail(
                    CheckKind::BadConnection,
                    name,
                    format!("port {}.{} connected {n} times", module, p.name),
                ));
            }
        }
        for (port, e) in conns {
            let Some(p) = target.ports.iter().find(|p| p.name == *port) else {
                return Err(self.fail(
                    CheckKind::BadConnection,
                    name,
                    format!("{module} has no port {port}"),
                ));
            };
            match p.dir {
                Dir::In => {
                    let w = self.expr(e)?;
                    self.same(&format!("port {port} of {name}"), w, p.width, e)?;
                }
                Dir::Out => self.drive(e, p.width)?,
            }
        }
        Ok(())
    }

    fn stmts(&mut self, block: usize, body: &[Stmt]) -> Result<(), CheckError> {
        for s in body {
            match s {
                Stmt::Assign(l, r) => {
                    let w = self.expr(r)?;
                    self.assign_reg(block, l, w)?;
                }
                Stmt::If(c, t, f) => {
                    let w = self.expr(c)?;
                    self.one_bit("condition", c, w)?;
                    self.stmts(block, t)?;
                    self.stmts(block, f)?;
                }
                Stmt::MemWrite(n, addr, data) => {
                    let width = self.memory_access(n, addr, false)?;
                    let w = self.expr(data)?;
                    self.same(&format!("data written to {n}"), w, width, data)?;
                    let s = self.signals.get_mut(n).expect("checked by memory_access");
                    if !s.blocks.contains(&block) {
                        s.blocks.push(block);
                    }
                }
            }
        }
        Ok(())
    }

    fn assign_reg(&mut self, block: usize, l: &Expr, width: usize) -> Result<(), CheckError> {
        let parts = self.targets(l)?;
        let total: usize = parts.iter().map(|(_, lo, hi)| hi - lo + 1).sum();
        self.same("assignment", total, width, l)?;
        for (n, _, _) in parts {
            let s = self.signals.get_mut(&n).expect("checked by targets");
            if !matches!(s.decl, Decl::Reg { .. } | Decl::Output { is_reg: true }) {
                return Err(self.fail(
                    CheckKind::NotAssignable,
                    &n,
                    "assigned in an always block but not a register".into(),
                ));
            }
            if !s.blocks.contains(&block) {
                s.blocks.push(block);
            }
        }
        Ok(())
    }

    /// Driver and use counts, once every item has been seen.
    fn finish(&self) -> Result<(), CheckError> {
        for (n, s) in &self.signals {
            self.check_drivers(n, s)?;
            let exempt =
                n.to_ascii_lowercase().contains("unused") || matches!(s.decl, Decl::Output { .. });
            if let Some(bit) = s.read.iter().position(|r| !r).filter(|_| !exempt) {
                return Err(self.fail(
                    CheckKind::Unused,
                    n,
                    format!("bit {bit} of {} is never read", s.width),
                ));
            }
        }
        Ok(())
    }

    fn check_drivers(&self, n: &str, s: &Signal) -> Result<(), CheckError> {
        match s.decl {
            Decl::Input => Ok(()),
            Decl::Wire | Decl::Output { is_reg: false } => {
                if let Some(bit) = s.drivers.iter().position(|&d| d == 0) {
                    return Err(self.fail(CheckKind::Undriven, n, format!("bit {bit} undriven")));
                }
                if let Some(bit) = s.drivers.iter().position(|&d| d > 1) {
                    return Err(self.fail(
                        CheckKind::MultipleDrivers,
                        n,
                        format!("bit {bit} driven {} times", s.drivers[bit]),
                    ));
                }
                Ok(())
            }
            Decl::Reg { .. } | Decl::Output { is_reg: true } | Decl::Memory { .. } => {
                let initialised = matches!(
                    s.decl,
                    Decl::Reg { has_init: true } | Decl::Memory { has_init: true, .. }
                );
                match s.blocks.len() {
                    0 if initialised => Ok(()),
                    0 => Err(self.fail(CheckKind::Undriven, n, "never assigned".into())),
                    1 => Ok(()),
                    k => Err(self.fail(
                        CheckKind::MultipleDrivers,
                        n,
                        format!("assigned from {k} always blocks"),
                    )),
                }
            }
        }
    }
}
