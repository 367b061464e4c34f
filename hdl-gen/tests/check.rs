//! The checking pass: a small correct design passes, and each kind of fault, built into a copy
//! of it on purpose, is caught with the module and the signal named.

use std::collections::BTreeMap;

use bql_hdl_gen::check::{check_design, check_module, CheckKind};
use bql_hdl_gen::ir::{e, s, Expr, Item, Module, Stmt};

/// A 4-bit counter with an enable, its output through a wire, and a memory it writes.
fn counter() -> Module {
    let mut m = Module::new("counter");
    m.input("clk", 1);
    m.input("en", 1);
    m.output("count", 4);
    m.reg("value", 4);
    m.push(Item::Memory {
        name: "history".into(),
        width: 4,
        depth: 16,
        init: None,
        ram_style: None,
        no_rw_check: false,
    });
    m.output_reg("last", 4);
    m.push(Item::Always(
        "clk".into(),
        vec![
            s::when(
                e::r("en"),
                vec![s::set_r("value", e::add(e::r("value"), e::k(4, 1)))],
            ),
            Stmt::MemWrite("history".into(), e::r("value"), e::r("value")),
            s::set_r(
                "last",
                Expr::MemRead("history".into(), Box::new(e::r("value"))),
            ),
        ],
    ));
    m.push(Item::Assign(e::r("count"), e::r("value")));
    m
}

/// `counter` inside a parent that uses both outputs.
fn parent() -> Module {
    let mut m = Module::new("parent");
    m.input("clk", 1);
    m.output("both", 8);
    m.push(Item::Wire("c".into(), 4));
    m.push(Item::Wire("l".into(), 4));
    m.push(Item::Instance {
        module: "counter".into(),
        name: "u".into(),
        conns: vec![
            ("clk".into(), e::r("clk")),
            ("en".into(), e::k(1, 1)),
            ("count".into(), e::r("c")),
            ("last".into(), e::r("l")),
        ],
    });
    m.push(Item::Assign(
        e::r("both"),
        Expr::Concat(vec![e::r("c"), e::r("l")]),
    ));
    m
}

fn design_result(mods: &[Module]) -> Result<(), bql_hdl_gen::check::CheckError> {
    check_design(mods.iter())
}

/// Checks `m` alone and returns what failed.
fn fault(m: &Module) -> (CheckKind, String, String) {
    let design = BTreeMap::new();
    let e = check_module(m, &design).expect_err("the fault is caught");
    assert_eq!(e.module, m.name);
    (e.kind, e.signal.clone(), e.to_string())
}

fn replace_item(m: &mut Module, pred: impl Fn(&Item) -> bool, with: Item) {
    let i = m.items.iter().position(pred).expect("item present");
    m.items[i] = with;
}

#[test]
fn correct_modules_pass() {
    design_result(&[counter(), parent()]).unwrap();
}

#[test]
fn an_unknown_name_is_caught() {
    let mut m = counter();
    replace_item(
        &mut m,
        |i| matches!(i, Item::Assign(..)),
        Item::Assign(e::r("count"), e::r("valeu")),
    );
    let (kind, signal, _) = fault(&m);
    assert_eq!((kind, signal.as_str()), (CheckKind::UnknownName, "valeu"));
}

#[test]
fn width_mismatches_are_caught_in_assignments_operators_and_muxes() {
    let cases = [
        Item::Assign(e::r("count"), e::k(3, 1)),
        Item::Assign(e::r("count"), e::add(e::r("value"), e::k(3, 1))),
        Item::Assign(
            e::r("count"),
            e::mux(e::r("value"), e::r("value"), e::r("value")),
        ),
        Item::Assign(
            e::r("count"),
            e::mux(e::r("en"), e::r("value"), e::sl("value", 2, 0)),
        ),
    ];
    for item in cases {
        let mut m = counter();
        replace_item(&mut m, |i| matches!(i, Item::Assign(..)), item.clone());
        let (kind, _, text) = fault(&m);
        assert_eq!(kind, CheckKind::WidthMismatch, "{item:?}: {text}");
    }
}

#[test]
fn out_of_range_slices_and_constants_are_caught() {
    for rhs in [e::sl("value", 4, 1), e::k(4, 16)] {
        let mut m = counter();
        replace_item(
            &mut m,
            |i| matches!(i, Item::Assign(..)),
            Item::Assign(e::r("count"), rhs),
        );
        assert_eq!(fault(&m).0, CheckKind::OutOfRange);
    }
}

#[test]
fn a_memory_address_of_the_wrong_width_is_caught() {
    let mut m = counter();
    let Item::Always(_, body) = m
        .items
        .iter_mut()
        .find(|i| matches!(i, Item::Always(..)))
        .unwrap()
    else {
        unreachable!()
    };
    body[1] = Stmt::MemWrite("history".into(), e::sl("value", 2, 0), e::r("value"));
    let (kind, signal, text) = fault(&m);
    assert_eq!(
        (kind, signal.as_str()),
        (CheckKind::WidthMismatch, "history"),
        "{text}"
    );
}

#[test]
fn two_drivers_and_missing_drivers_are_caught() {
    let mut m = counter();
    m.push(Item::Assign(e::bit("count", 0), e::k(1, 0)));
    let (kind, signal, _) = fault(&m);
    assert_eq!(
        (kind, signal.as_str()),
        (CheckKind::MultipleDrivers, "count")
    );

    let mut m = counter();
    m.items.retain(|i| !matches!(i, Item::Assign(..)));
    m.push(Item::Assign(e::sl("count", 3, 1), e::sl("value", 3, 1)));
    m.push(Item::Wire("unused_low".into(), 1));
    m.push(Item::Assign(e::r("unused_low"), e::bit("value", 0)));
    let (kind, signal, text) = fault(&m);
    assert_eq!(
        (kind, signal.as_str()),
        (CheckKind::Undriven, "count"),
        "{text}"
    );

    let mut m = counter();
    m.push(Item::Always(
        "clk".into(),
        vec![s::set_r("value", e::k(4, 0))],
    ));
    let (kind, signal, _) = fault(&m);
    assert_eq!(
        (kind, signal.as_str()),
        (CheckKind::MultipleDrivers, "value")
    );
}

#[test]
fn unused_bits_are_caught_unless_named_unused() {
    let mut m = counter();
    m.reg("spare", 2);
    m.push(Item::Always(
        "clk".into(),
        vec![s::set_r("spare", e::k(2, 1))],
    ));
    let (kind, signal, _) = fault(&m);
    assert_eq!((kind, signal.as_str()), (CheckKind::Unused, "spare"));

    let mut m = counter();
    m.reg("unused_spare", 2);
    m.push(Item::Always(
        "clk".into(),
        vec![s::set_r("unused_spare", e::k(2, 1))],
    ));
    check_module(&m, &BTreeMap::new()).unwrap();
}

#[test]
fn assigning_the_wrong_kind_of_signal_is_caught() {
    let mut m = counter();
    m.push(Item::Assign(e::r("en"), e::k(1, 0)));
    assert_eq!(fault(&m).0, CheckKind::NotAssignable);
    let mut m = counter();
    replace_item(
        &mut m,
        |i| matches!(i, Item::Assign(..)),
        Item::Assign(e::r("count"), e::r("value")),
    );
    m.push(Item::Wire("w".into(), 1));
    m.push(Item::Always("clk".into(), vec![s::set_r("w", e::k(1, 0))]));
    assert_eq!(fault(&m).0, CheckKind::NotAssignable);
}

/// The module name and connections of `p`'s instance.
fn instance(p: &mut Module) -> (&mut String, &mut Vec<(String, Expr)>) {
    match p
        .items
        .iter_mut()
        .find(|i| matches!(i, Item::Instance { .. }))
    {
        Some(Item::Instance { module, conns, .. }) => (module, conns),
        _ => unreachable!("parent() has an instance"),
    }
}

#[test]
fn bad_instance_connections_are_caught() {
    let mut p = parent();
    let (_, conns) = instance(&mut p);
    conns.retain(|(n, _)| n != "en");
    let e = design_result(&[counter(), p]).unwrap_err();
    assert_eq!(
        (e.kind, e.module.as_str(), e.signal.as_str()),
        (CheckKind::BadConnection, "parent", "u")
    );

    let mut p = parent();
    let (_, conns) = instance(&mut p);
    conns[1].1 = e::k(2, 1);
    let e = design_result(&[counter(), p]).unwrap_err();
    assert_eq!(e.kind, CheckKind::WidthMismatch, "{e}");

    let mut p = parent();
    let (module, _) = instance(&mut p);
    *module = "countr".into();
    let e = design_result(&[counter(), p]).unwrap_err();
    assert_eq!(e.kind, CheckKind::UnknownName, "{e}");
}

#[test]
fn every_generated_design_passes_and_the_printer_prints_what_was_checked() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let net = bql_model::format::load(&root.join("models/default.bqm")).unwrap();
    let board = bql_hdl_gen::board::load(&root.join("constraints"), "icebreaker").unwrap();
    let d = bql_hdl_gen::generate(&net, &board, &[]).unwrap();
    let top = &d.files["rtl/bql_top.v"];
    assert!(top.contains("module bql_top ("));
    // The printer: one line per assignment, widths as declared.
    let text = bql_hdl_gen::verilog::module(&counter());
    assert!(text.contains("    output wire [3:0] count,"), "{text}");
    assert!(text.contains("    output reg  [3:0] last"), "{text}");
    assert!(text.contains("value <= (value + 4'd1);"), "{text}");
    assert!(text.contains("history[value] <= value;"), "{text}");
    assert!(text.contains("assign count = value;"), "{text}");
}

/// Handles: declarations return them, constants take the signal's width, and a slice outside
/// the signal stops the generator where it is built.
#[test]
fn signal_handles_carry_their_width() {
    let mut m = Module::new("h");
    let state = m.reg("state", 3);
    let mem = m.memory("buf", 8, 32);
    assert_eq!((state.name(), state.width()), ("state", 3));
    assert_eq!(state.is(5), e::eq(e::r("state"), e::k(3, 5)));
    assert_eq!(
        state.inc(),
        s::set_r("state", e::add(e::r("state"), e::k(3, 1)))
    );
    assert_eq!(state.slice(2, 1), e::sl("state", 2, 1));
    assert_eq!((mem.width(), mem.depth()), (8, 32));
    assert_eq!(
        bql_hdl_gen::verilog::expr(&mem.read(e::k(5, 3))),
        "buf[5'd3]"
    );
    let out_of_range = std::panic::catch_unwind(|| state.slice(3, 0));
    assert!(out_of_range.is_err(), "state[3:0] of a 3-bit register");
    assert_eq!(bql_hdl_gen::ir::bits_for(0), 1);
    assert_eq!(bql_hdl_gen::ir::bits_for(255), 8);
    assert_eq!(bql_hdl_gen::ir::bits_for(256), 9);
}

#[test]
fn a_name_declared_twice_is_caught() {
    let mut m = counter();
    m.push(Item::Wire("value".into(), 4));
    let (kind, signal, _) = fault(&m);
    assert_eq!((kind, signal.as_str()), (CheckKind::Redeclared, "value"));
}
