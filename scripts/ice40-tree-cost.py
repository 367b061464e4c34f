#!/usr/bin/env python3
"""The cost model of docs/hardware.md for XNOR-popcount trees in iCE40 logic cells: the cheapest
tree over `n` lanes by dynamic programming, counted in logic cells (a LUT4 with its carry logic).

Parts of a tree:
  - a lane alone: its XOR in one LUT (a 1-bit count);
  - a pair leaf: two lanes into two LUTs, their sum bit and carry bit (a 2-bit count);
  - a ripple adder of two counts: one cell per bit of the wider operand (the LUT makes the sum
    bit, the carry logic MAJ(I1, I2, CI) the carry), and one more cell when the sum needs a bit
    more than the wider operand (a chain's carry out reaches the fabric only through a cell);
  - optionally a third lane as the adder's carry in: its XOR LUT, plus `--carry-in-cost` cells to
    get it into the chain. An iCE40 chain's first carry input is a constant or the carry out of
    the cell below; nextpnr-ice40 brings a fabric signal in through one extra cell ("LCs used to
    legalise carry chains"; measured with yosys 0.23 and nextpnr-ice40 0.4 on an instantiated
    SB_LUT4 + SB_CARRY adder whose CI is a LUT output), so the realistic cost is 1. A lane whose
    value the carry logic itself can make (MAJ(x, w, 0) = x AND w in that extra cell) would
    enter for 0 more cells: that is the AND form of docs/hardware.md, not built.

The generator's search (hdl-gen/src/blocks/compressor_ice40.rs) uses this model with the default
cost; the trees it builds then place the XORs of lanes that are registered before use in the
feed-in cells' free LUTs, which this model does not count (64 lanes: 146 cells built, 164 here).

Usage: scripts/ice40-tree-cost.py [--carry-in-cost C] [LANES...]
"""
import argparse
import functools


def bits(n):
    return max(1, n.bit_length())


def adder_cells(a, b, carry_in, carry_in_cost):
    """Cells of a ripple adder of an a-lane and a b-lane count (and a carry-in lane)."""
    wider = max(bits(a), bits(b))
    out = bits(a + b + carry_in)
    cells = wider + (1 if out > wider else 0)
    if carry_in:
        cells += 1 + carry_in_cost
    return cells


def cheapest(n, carry_in_cost):
    @functools.lru_cache(maxsize=None)
    def tree(n):
        if n <= 2:
            return n  # one XOR LUT, or a pair leaf's two LUTs
        best = None
        for carry_in in (0, 1):
            rest = n - carry_in
            for a in range(1, rest // 2 + 1):
                c = tree(a) + tree(rest - a) + adder_cells(a, rest - a, carry_in, carry_in_cost)
                best = c if best is None else min(best, c)
        return best

    return tree(n)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--carry-in-cost", type=int, default=1, help="cells to bring a lane into a chain")
    p.add_argument("lanes", type=int, nargs="*", default=[8, 16, 32, 64, 128, 256])
    a = p.parse_args()
    print(f"carry-in lane costs its XOR LUT + {a.carry_in_cost} cell(s)")
    for n in a.lanes:
        c = cheapest(n, a.carry_in_cost)
        print(f"  {n:4d} lanes: {c:5d} cells, {c / n:.2f} per lane")


if __name__ == "__main__":
    main()
