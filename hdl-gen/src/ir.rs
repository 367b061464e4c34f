//! The hardware IR: modules, ports, nets, registers, memories, instances and expressions, with
//! widths known at run time. Blocks build it; `verilog` prints it and makes no decisions.

/// Bits needed to count `0..=n` (at least 1): the width of a counter, address or index.
pub fn bits_for(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).max(1) as usize
}

/// Port direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Input port.
    In,
    /// Output port.
    Out,
}

/// A module port. Outputs driven from an `always` block are declared `reg` by the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Name.
    pub name: String,
    /// Direction.
    pub dir: Dir,
    /// Width in bits (>= 1).
    pub width: usize,
    /// True when the output is assigned in an `always` block.
    pub is_reg: bool,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `&`
    And,
    /// `|`
    Or,
    /// `^`
    Xor,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<` (unsigned)
    Lt,
    /// `>` (unsigned)
    Gt,
    /// `>=` on signed operands (`$signed(a) >= $signed(b)`)
    SignedGe,
    /// `&&`
    LogicAnd,
    /// `||`
    LogicOr,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `~`
    Not,
    /// `!`
    LogicNot,
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A named net, register or port.
    Ref(String),
    /// A sized constant `width'd value`.
    Const {
        /// Width in bits.
        width: usize,
        /// Value (must fit the width).
        value: u64,
    },
    /// `name[hi:lo]`
    Slice(String, usize, usize),
    /// `name[index]` with a constant index.
    Bit(String, usize),
    /// `name[base +: width]` with a run-time base.
    PartSelect(String, Box<Expr>, usize),
    /// `mem[addr]`
    MemRead(String, Box<Expr>),
    /// Unary operation.
    Un(UnOp, Box<Expr>),
    /// Binary operation.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `{a, b, ...}` (first element is most significant)
    Concat(Vec<Expr>),
    /// `{n{e}}`
    Repl(usize, Box<Expr>),
    /// `c ? a : b`
    Mux(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// A declared signal, as the declaring call returns it: its name and width. Builders refer to
/// signals through these handles rather than through strings, so a name cannot be misspelt, a
/// slice is checked against the width when it is built, and constants compared with or
/// assigned to a signal take its width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sig {
    name: String,
    width: usize,
}

impl Sig {
    /// The handle of a signal declared elsewhere (a port of another module, for instance).
    pub fn new(name: impl Into<String>, width: usize) -> Self {
        Sig {
            name: name.into(),
            width,
        }
    }
    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Width in bits.
    pub fn width(&self) -> usize {
        self.width
    }
    /// The whole signal as an expression.
    pub fn e(&self) -> Expr {
        Expr::Ref(self.name.clone())
    }
    /// Bit `i`.
    pub fn bit(&self, i: usize) -> Expr {
        assert!(i < self.width, "{}[{i}] of {} bits", self.name, self.width);
        Expr::Bit(self.name.clone(), i)
    }
    /// Bits `hi..=lo`.
    pub fn slice(&self, hi: usize, lo: usize) -> Expr {
        assert!(
            lo <= hi && hi < self.width,
            "{}[{hi}:{lo}] of {} bits",
            self.name,
            self.width
        );
        Expr::Slice(self.name.clone(), hi, lo)
    }
    /// A constant of this signal's width.
    pub fn k(&self, value: u64) -> Expr {
        e::k(self.width, value)
    }
    /// `self == value`.
    pub fn is(&self, value: u64) -> Expr {
        e::eq(self.e(), self.k(value))
    }
    /// `self <= value;`
    pub fn set(&self, value: Expr) -> Stmt {
        Stmt::Assign(self.e(), value)
    }
    /// `self <= width'dvalue;`
    pub fn set_k(&self, value: u64) -> Stmt {
        self.set(self.k(value))
    }
    /// `self <= self + 1;` (wrapping).
    pub fn inc(&self) -> Stmt {
        self.set(e::add(self.e(), self.k(1)))
    }
}

impl From<&Sig> for Expr {
    fn from(s: &Sig) -> Expr {
        s.e()
    }
}

/// A declared memory: reads and writes through its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mem {
    name: String,
    width: usize,
    depth: usize,
}

impl Mem {
    /// Word width.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Words.
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// `mem[addr]`.
    pub fn read(&self, addr: Expr) -> Expr {
        Expr::MemRead(self.name.clone(), Box::new(addr))
    }
    /// `mem[addr] <= data;`
    pub fn write(&self, addr: Expr, data: Expr) -> Stmt {
        Stmt::MemWrite(self.name.clone(), addr, data)
    }
}

/// Shorthands for building expressions.
pub mod e {
    use super::{BinOp, Expr, UnOp};

    /// A reference.
    pub fn r(name: impl Into<String>) -> Expr {
        Expr::Ref(name.into())
    }
    /// A constant.
    pub fn k(width: usize, value: u64) -> Expr {
        Expr::Const { width, value }
    }
    /// A binary operation.
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Bin(op, Box::new(a), Box::new(b))
    }
    /// `~a`
    pub fn not(a: Expr) -> Expr {
        Expr::Un(UnOp::Not, Box::new(a))
    }
    /// `!a`
    pub fn lnot(a: Expr) -> Expr {
        Expr::Un(UnOp::LogicNot, Box::new(a))
    }
    /// `a && b`
    pub fn and(a: Expr, b: Expr) -> Expr {
        bin(BinOp::LogicAnd, a, b)
    }
    /// `a == b`
    pub fn eq(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Eq, a, b)
    }
    /// `a + b`
    pub fn add(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Add, a, b)
    }
    /// `c ? a : b`
    pub fn mux(c: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Mux(Box::new(c), Box::new(a), Box::new(b))
    }
    /// `items[sel]`: a tree of multiplexers on the bits of `sel`, `items.len()` a power of two
    /// of at most `2^sel.width()`.
    pub fn select(sel: &super::Sig, items: Vec<Expr>) -> Expr {
        assert!(items.len().is_power_of_two(), "select over a power of two");
        let mut level = items;
        let mut bit = 0;
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / 2);
            let mut pairs = level.into_iter();
            while let (Some(low), Some(high)) = (pairs.next(), pairs.next()) {
                let b = if sel.width() == 1 {
                    sel.e()
                } else {
                    sel.bit(bit)
                };
                next.push(mux(b, high, low));
            }
            level = next;
            bit += 1;
        }
        level.pop().expect("at least one item")
    }
    /// `a - b`.
    pub fn sub(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Sub, a, b)
    }
    /// `a || b`.
    pub fn or(a: Expr, b: Expr) -> Expr {
        bin(BinOp::LogicOr, a, b)
    }
    /// `a != b`.
    pub fn ne(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Ne, a, b)
    }
    /// `a < b` (unsigned).
    pub fn lt(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Lt, a, b)
    }
    /// Bit `i` of signal `name`.
    pub fn bit(name: &str, i: usize) -> Expr {
        Expr::Bit(name.into(), i)
    }
    /// Bits `hi..=lo` of signal `name`.
    pub fn sl(name: &str, hi: usize, lo: usize) -> Expr {
        Expr::Slice(name.into(), hi, lo)
    }
    /// The XOR of several one-bit terms (a constant 0 when there are none).
    pub fn xor_all(terms: Vec<Expr>) -> Expr {
        terms
            .into_iter()
            .reduce(|a, b| bin(BinOp::Xor, a, b))
            .unwrap_or(k(1, 0))
    }
    /// Zero-extends `a` of width `from` to `to` bits (`to >= from`).
    pub fn zext(a: Expr, from: usize, to: usize) -> Expr {
        assert!(to >= from, "zext from {from} to {to}");
        if to == from {
            a
        } else {
            Expr::Concat(vec![k(to - from, 0), a])
        }
    }
    /// Sign-extends `a` (a named signal `name` of width `from`) to `to` bits.
    pub fn sext(name: &str, from: usize, to: usize) -> Expr {
        assert!(to >= from, "sext from {from} to {to}");
        if to == from {
            r(name)
        } else {
            Expr::Concat(vec![
                Expr::Repl(to - from, Box::new(Expr::Bit(name.to_string(), from - 1))),
                r(name),
            ])
        }
    }
}

/// A statement inside a clocked `always` block (all assignments are non-blocking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `lhs <= rhs;`
    Assign(Expr, Expr),
    /// `if (c) begin .. end else begin .. end`
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    /// `mem[addr] <= data;`
    MemWrite(String, Expr, Expr),
}

/// Statement constructors, so that state machines read close to the Verilog they print.
pub mod s {
    use super::{Expr, Stmt};

    /// `l <= r`.
    pub fn set(l: Expr, r: Expr) -> Stmt {
        Stmt::Assign(l, r)
    }
    /// `name <= r`.
    pub fn set_r(name: &str, r: Expr) -> Stmt {
        Stmt::Assign(Expr::Ref(name.into()), r)
    }
    /// `if (c) begin .. end`.
    pub fn when(c: Expr, then: Vec<Stmt>) -> Stmt {
        Stmt::If(c, then, Vec::new())
    }
    /// `if (c) .. else ..`.
    pub fn when_else(c: Expr, then: Vec<Stmt>, otherwise: Vec<Stmt>) -> Stmt {
        Stmt::If(c, then, otherwise)
    }
    /// `body`, then `if (rst) resets`: the reset overrides the body's assignments to the
    /// registers it names, and the registers it does not name update as if there were no reset,
    /// so that the reset stays out of their enables (in an `if (rst) .. else body` every
    /// register of the body waits for it: on the UP5K, the reset's fan-out into those enables
    /// was a critical path at 48 MHz).
    pub fn reset_last(rst: Expr, resets: Vec<Stmt>, mut body: Vec<Stmt>) -> Vec<Stmt> {
        body.push(Stmt::If(rst, resets, Vec::new()));
        body
    }
    /// `if (c0) .. else if (c1) .. else default`.
    pub fn chain(arms: Vec<(Expr, Vec<Stmt>)>, default: Vec<Stmt>) -> Vec<Stmt> {
        let mut tail = default;
        for (c, body) in arms.into_iter().rev() {
            tail = vec![Stmt::If(c, body, tail)];
        }
        tail
    }
}

/// A module item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A comment line.
    Comment(String),
    /// `wire [w-1:0] name;`
    Wire(String, usize),
    /// `reg [w-1:0] name;` (no initial value: control registers are set by the reset).
    Reg(String, usize),
    /// A register with a power-on value (`initial name = value;`), for the power-on reset
    /// counter: iCE40 and ECP5 flip-flops start from their configured value.
    RegInit(String, usize, u64),
    /// `reg [width-1:0] name [0:depth-1];`, optionally loaded with `$readmemh(file)`.
    Memory {
        /// Name.
        name: String,
        /// Word width.
        width: usize,
        /// Number of words.
        depth: usize,
        /// Hex file (relative to the simulation/synthesis working folder) to load at start.
        init: Option<String>,
        /// yosys's `ram_style`: `"block"` keeps a memory of a few hundred bits in block RAM
        /// (yosys would build it from flip-flops and multiplexers), `"huge"` puts it in UP5K
        /// SPRAM (yosys's cost model otherwise prefers 16 EBR for a 4 x 16384 memory).
        ram_style: Option<&'static str>,
        /// yosys's `no_rw_check`: a read of the word being written in the same cycle is never
        /// used (the block guarantees it), so synthesis need not build the old-data bypass,
        /// which yosys 0.23 adds for every block RAM of either family (a flip-flop for each
        /// written bit and a multiplexer for each read bit).
        no_rw_check: bool,
    },
    /// `assign lhs = rhs;`
    Assign(Expr, Expr),
    /// `always @(posedge clock)` with statements.
    Always(String, Vec<Stmt>),
    /// `(* keep *) always @(posedge clock)`: registers that synthesis keeps apart from equal
    /// ones (yosys merges registers with the same input, and the attribute on the block is the
    /// one it honours: on a `reg` it does not), for a copy of a signal per consumer.
    KeptAlways(String, Vec<Stmt>),
    /// `always @(posedge clock or posedge reset)`: `on_reset` while `reset` is high, else
    /// `body`. Only for a domain whose clock stops: the SPI slave's shift registers, realigned
    /// by the chip select between transactions (no clock edge comes while it is high).
    AlwaysReset {
        /// Clock.
        clock: String,
        /// Asynchronous reset, active high.
        reset: String,
        /// Statements while the reset is high.
        on_reset: Vec<Stmt>,
        /// Statements on a clock edge.
        body: Vec<Stmt>,
    },
    /// A module instance.
    Instance {
        /// Module name.
        module: String,
        /// Instance name.
        name: String,
        /// Port connections.
        conns: Vec<(String, Expr)>,
    },
    /// An instance of a vendor primitive with parameters (for the PLL), each value printed as
    /// given (`"SIMPLE"`, `4'd0`, `25`).
    Primitive {
        /// Primitive name, e.g. `SB_PLL40_PAD`.
        module: String,
        /// Instance name.
        name: String,
        /// Parameters and their Verilog values.
        params: Vec<(String, String)>,
        /// Input port connections.
        inputs: Vec<(String, Expr)>,
        /// Output port connections (each drives its net).
        outputs: Vec<(String, Expr)>,
    },
    /// A vendor cell for synthesis with its behavioural model for simulation: printed as
    /// `` `ifdef SYNTHESIS `` (yosys defines it) the primitive, else the model's assignments.
    /// The model drives exactly the primitive's outputs; a test runs the primitive's vendor
    /// model against it (the popcount compressors' CCU2C cells).
    Cell {
        /// The primitive ([`Item::Primitive`]).
        primitive: Box<Item>,
        /// `assign lhs = rhs;` per output.
        model: Vec<(Expr, Expr)>,
    },
}

/// A Verilog module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Module name (also the file name, `<name>.v`).
    pub name: String,
    /// Lines for the header comment.
    pub doc: Vec<String>,
    /// Ports, in order.
    pub ports: Vec<Port>,
    /// Body.
    pub items: Vec<Item>,
}

impl Module {
    /// An empty module.
    pub fn new(name: impl Into<String>) -> Self {
        Module {
            name: name.into(),
            doc: Vec::new(),
            ports: Vec::new(),
            items: Vec::new(),
        }
    }
    /// Adds an input port.
    pub fn input(&mut self, name: &str, width: usize) -> Sig {
        self.port(name, Dir::In, width, false)
    }
    /// Adds an output driven by `assign`.
    pub fn output(&mut self, name: &str, width: usize) -> Sig {
        self.port(name, Dir::Out, width, false)
    }
    /// Adds an output driven from an `always` block.
    pub fn output_reg(&mut self, name: &str, width: usize) -> Sig {
        self.port(name, Dir::Out, width, true)
    }
    fn port(&mut self, name: &str, dir: Dir, width: usize, is_reg: bool) -> Sig {
        self.ports.push(Port {
            name: name.into(),
            dir,
            width,
            is_reg,
        });
        Sig::new(name, width)
    }
    /// An instance of `child` named `name` whose every port connects to the signal of the same
    /// name in this module (declared by the caller; the checking pass proves they exist and
    /// their widths match).
    pub fn instance_of(child: &Module, name: &str) -> Item {
        Item::Instance {
            module: child.name.clone(),
            name: name.into(),
            conns: child
                .ports
                .iter()
                .map(|p| (p.name.clone(), Expr::Ref(p.name.clone())))
                .collect(),
        }
    }
    /// Adds an item.
    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }
    /// Adds a vendor cell ([`Item::Cell`]): `primitive` (an [`Item::Primitive`]) for synthesis,
    /// `model` (`lhs = rhs` per output) for simulation.
    pub fn cell(&mut self, primitive: Item, model: Vec<(Expr, Expr)>) {
        self.items.push(Item::Cell {
            primitive: Box::new(primitive),
            model,
        });
    }
    /// Declares a wire and assigns it.
    pub fn wire(&mut self, name: &str, width: usize, value: Expr) -> Sig {
        self.items.push(Item::Wire(name.into(), width));
        self.items.push(Item::Assign(Expr::Ref(name.into()), value));
        Sig::new(name, width)
    }
    /// Declares a wire that something else drives (an instance output).
    pub fn net(&mut self, name: &str, width: usize) -> Sig {
        self.items.push(Item::Wire(name.into(), width));
        Sig::new(name, width)
    }
    /// Declares a register (control registers get their value from the synchronous reset).
    pub fn reg(&mut self, name: &str, width: usize) -> Sig {
        self.items.push(Item::Reg(name.into(), width));
        Sig::new(name, width)
    }
    /// Declares a register with a power-on value.
    pub fn reg_init(&mut self, name: &str, width: usize, value: u64) -> Sig {
        self.items.push(Item::RegInit(name.into(), width, value));
        Sig::new(name, width)
    }
    /// Declares a memory without an initial image.
    pub fn memory(&mut self, name: &str, width: usize, depth: usize) -> Mem {
        self.memory_styled(name, width, depth, None)
    }

    /// [`Module::memory`] without the read-during-write check (`no_rw_check`): a read of the
    /// address being written returns either word, so the caller never uses such a read.
    pub fn memory_unchecked(&mut self, name: &str, width: usize, depth: usize) -> Mem {
        let mem = self.memory(name, width, depth);
        if let Some(Item::Memory { no_rw_check, .. }) = self.items.last_mut() {
            *no_rw_check = true;
        }
        mem
    }

    /// [`Module::memory`] with yosys's `ram_style` attribute.
    pub fn memory_styled(
        &mut self,
        name: &str,
        width: usize,
        depth: usize,
        ram_style: Option<&'static str>,
    ) -> Mem {
        self.items.push(Item::Memory {
            name: name.into(),
            width,
            depth,
            init: None,
            ram_style,
            no_rw_check: false,
        });
        Mem {
            name: name.into(),
            width,
            depth,
        }
    }
}
