//! `bql_frame_slots`: the receive buffer, `slots` frame slots of `slot` bytes in one memory. The
//! receiver writes a byte per received byte; the executor reads one with a registered output
//! (a block-RAM read), a cycle after it presents the address.

use crate::ir::{s, Item, Module};

use super::Geometry;

/// Builds `bql_frame_slots`.
pub fn module(g: &Geometry) -> Module {
    let aw = g.slot_bits + g.slot_index_bits;
    let mut m = Module::new("bql_frame_slots");
    m.doc.push(format!(
        "bql_frame_slots: {} frame slots of {} bytes; one write port, one registered read port.",
        g.slots, g.slot
    ));
    let clk = m.input("clk", 1);
    let we = m.input("fb_we", 1);
    let waddr = m.input("fb_waddr", aw);
    let wdata = m.input("fb_wdata", 8);
    let raddr = m.input("fb_raddr", aw);
    let q = m.output_reg("buf_q", 8);
    // No read-during-write bypass: the receiver writes only into a slot that is not full and
    // the executor uses bytes only of a full one (it reads the slot it waits for while that is
    // being received, and reads again after). yosys's bypass put a multiplexer after the block
    // RAM's read data, which kept the executor's register after it out of the RAM's output
    // register (the half-device ULX3S design's critical path, 5.83 ns clock to `DOB`).
    let mem = m.memory_unchecked("frame_buf", 8, g.slots * g.slot);
    m.push(Item::Always(
        clk.name().into(),
        vec![
            s::when(we.e(), vec![mem.write(waddr.e(), wdata.e())]),
            q.set(mem.read(raddr.e())),
        ],
    ));
    m
}
