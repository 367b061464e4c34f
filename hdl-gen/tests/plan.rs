//! The folding planner on real models and boards: the default model fits the iCEBreaker with
//! its layer inputs in block-RAM buffers, buffers appear only where their conditions hold, and
//! the link floor keeps designs from outrunning the UART.

use std::path::PathBuf;

use bql_hdl_gen::board;
use bql_hdl_gen::plan::{self, InputMode, OutputKind};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn default_model() -> bql_model::Network {
    bql_model::format::load(&root().join("models/default.bqm")).unwrap()
}

/// Every buffered layer is fed by a producer that can pack into its words.
fn check_modes(p: &plan::Plan) {
    for (i, l) in p.layers.iter().enumerate() {
        match (l.input, i.checked_sub(1).map(|j| &p.layers[j])) {
            (InputMode::Buffer, None) => assert!(l.simd <= 64 && l.simd <= l.inputs),
            (InputMode::Buffer, Some(prev)) => {
                assert!(!prev.overlap && prev.output == OutputKind::Threshold);
                assert_eq!(
                    l.simd % prev.pe,
                    0,
                    "layer {i}: P of layer {} divides S",
                    i - 1
                );
                assert_eq!(prev.stream_out, Some(l.simd));
            }
            (_, Some(prev)) => assert_eq!(prev.stream_out, None),
            (_, None) => {}
        }
    }
}

#[test]
fn the_default_model_fits_the_icebreaker_with_input_buffers() {
    let net = default_model();
    let b = board::load(&root().join("constraints"), "icebreaker").unwrap();
    let floor = bql_hdl_gen::link_interval(&net, &b, b.file.clock_mhz, bql_hdl_gen::LinkKind::Uart);
    // 3 Mbaud, 8N1, an INFER frame of 98 image bytes + 7: 1,050 bits = 4,200 cycles at 12 MHz.
    assert_eq!(floor, 4200);
    let p = plan::plan(&net, &b.device, &[], Some(floor)).unwrap();
    check_modes(&p);
    assert!(p.logic_overfull.is_none(), "{:?}", p.logic_overfull);
    assert!(p.layers.iter().all(|l| l.input == InputMode::Buffer));
    let budget = (b.device.luts as f64 * b.device.lut_fill) as usize;
    assert!(p.estimate.cells(b.device.family) <= budget);
    assert!(p.estimate.bram_blocks <= b.device.bram_blocks);
    assert!(p.estimate.spram_blocks <= b.device.spram_blocks);
    // Balanced: within 25 % of the ideal interval for its lanes.
    assert!((p.cycles_per_inference as f64) <= 1.25 * p.ideal_cycles);
}

/// Under the link floor the planner takes the fewest lanes that keep pace at about the least
/// logic, and a lane count need not divide the layer (the last fold is padded): the shipped MLPs
/// on the two FT2232H boards stay within 1.25x of the ideal cycles for their lanes. With S
/// limited to divisors, powers of two and multiples of 8, mnist-u8 took 4 lanes where 3 keep
/// pace (256 inputs: 86 folds) and was planned at 1.37x (iCEBreaker) and 1.46x (ECP5-EVN).
#[test]
fn shipped_mlps_get_balanced_plans_under_the_link_floor() {
    for model in ["default", "small", "mnist-u8"] {
        let net = bql_model::format::load(&root().join(format!("models/{model}.bqm"))).unwrap();
        for id in ["icebreaker", "ecp5-evn"] {
            let b = board::load(&root().join("constraints"), id).unwrap();
            let link = bql_hdl_gen::LinkKind::Uart;
            let floor = bql_hdl_gen::link_interval(&net, &b, b.file.clock_mhz, link);
            let p = plan::plan(&net, &b.device, &[], Some(floor)).unwrap();
            check_modes(&p);
            let ratio = p.cycles_per_inference as f64 / p.ideal_cycles;
            assert!(
                ratio <= 1.25,
                "{model} on {id}: {ratio:.2}x the ideal cycles"
            );
            let slowest = p.layers.iter().map(|l| l.cycles()).max().unwrap();
            assert!(slowest <= floor, "{model} on {id}: {slowest} > {floor}");
        }
    }
}

/// At full speed the planner takes the cheapest design within 1/32 of the fastest interval:
/// `small` on the ULX3S was planned at 22 cycles with 49,897 flip-flops and 5.5x the ideal
/// cycles for its lanes (its tiny last layer given 256 lanes to save one cycle); now the same
/// 22 cycles take about 7,000, and every shipped MLP's full-speed ULX3S plan stays balanced.
#[test]
fn full_speed_plans_do_not_buy_a_cycle_with_many_lanes() {
    let b = board::load(&root().join("constraints"), "ulx3s").unwrap();
    for model in ["default", "small", "mnist-u8"] {
        let net = bql_model::format::load(&root().join(format!("models/{model}.bqm"))).unwrap();
        let p = plan::plan(&net, &b.device, &[], None).unwrap();
        check_modes(&p);
        let ratio = p.cycles_per_inference as f64 / p.ideal_cycles;
        assert!(ratio <= 1.25, "{model}: {ratio:.2}x the ideal cycles");
    }
}

#[test]
fn the_link_floor_folds_an_ecp5_design_down_to_the_uart_rate() {
    let net = default_model();
    let b = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let floor = bql_hdl_gen::link_interval(&net, &b, b.file.clock_mhz, bql_hdl_gen::LinkKind::Uart);
    // The FT231X's 1.0909 Mbaud (3 MHz x 8 / 22; 23 clocks per bit): 1,050 bits = 24,063 cycles.
    assert_eq!(floor, 24_063, "1.0909 Mbaud at 25 MHz");
    let linked = plan::plan(&net, &b.device, &[], Some(floor)).unwrap();
    let full = plan::plan(&net, &b.device, &[], None).unwrap();
    check_modes(&linked);
    check_modes(&full);
    // Linked: the slowest layer keeps pace with the link, and no layer is much faster than
    // needed; full speed: an order of magnitude more lanes.
    let slowest = linked.layers.iter().map(|l| l.cycles()).max().unwrap();
    assert!(slowest <= floor, "{slowest} > {floor}");
    let lanes = |p: &plan::Plan| p.layers.iter().map(|l| l.lanes()).sum::<usize>();
    assert!(
        lanes(&full) >= 10 * lanes(&linked),
        "{} vs {}",
        lanes(&full),
        lanes(&linked)
    );
    assert!(full.cycles_per_inference * 10 <= linked.cycles_per_inference);
}

#[test]
fn modes_hold_their_conditions_on_every_board_and_on_pinned_folds() {
    let net = default_model();
    for id in ["icebreaker", "upduino", "ulx3s", "ecp5-evn"] {
        let b = board::load(&root().join("constraints"), id).unwrap();
        check_modes(&plan::plan(&net, &b.device, &[], None).unwrap());
        // P = 3 does not divide S = 16: layer 2 must fall back to an input register.
        let p = plan::plan(&net, &b.device, &[(1, 3, 16), (2, 1, 16)], None).unwrap();
        check_modes(&p);
        assert_eq!(p.layers[2].input, InputMode::Register, "{id}");
        // S = 98 > 64 for the first layer: the loader cannot write whole words. (On the UP5K
        // 98 lanes of weights need 7 SPRAMs of its 4.)
        if b.device.spram_blocks == 0 {
            let p = plan::plan(&net, &b.device, &[(0, 2, 98)], None).unwrap();
            check_modes(&p);
            assert_ne!(p.layers[0].input, InputMode::Buffer, "{id}");
        }
    }
}

#[test]
fn input_mode_indices_follow_their_list() {
    for (i, m) in InputMode::ALL.iter().enumerate() {
        assert_eq!(m.index(), i, "{m:?}");
    }
}

/// A 1-layer 219 -> 300 network folded to a single lane would need a 65,700-word weight
/// memory: more than the link's 16-bit address reaches (a random fold once generated a design
/// whose address port was wider than the link's register). Pinned, it is refused with the
/// reason; left to the planner, such folds are never chosen.
#[test]
fn memories_deeper_than_the_link_can_address_are_refused() {
    let net = bql_model::testing::random_network(219, &[300], false, 0, 3, false);
    let b = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let err = plan::plan(&net, &b.device, &[(0, 1, 1)], None).unwrap_err();
    assert!(err.to_string().contains("65700 words deep"), "{err}");
    let p = plan::plan(&net, &b.device, &[], Some(1 << 20)).unwrap();
    assert!(p.layers[0].cycles() <= bql_protocol::MAX_MEMORY_WORDS);
}

/// The SPI link's floor follows SCK (8 SCK periods a byte), and a board without the link says so.
#[test]
fn the_spi_link_floor_follows_sck_and_other_boards_refuse_it() {
    let net = default_model();
    let b = board::load(&root().join("constraints"), "icebreaker").unwrap();
    // 105-byte INFER frames: 840 bits at 30 MHz against 1,050 at 3 Mbaud, at 12 MHz.
    let spi = bql_hdl_gen::link_interval(&net, &b, 12.0, bql_hdl_gen::LinkKind::Spi);
    let uart = bql_hdl_gen::link_interval(&net, &b, 12.0, bql_hdl_gen::LinkKind::Uart);
    assert_eq!((spi, uart), (336, 4200));
    let opts = bql_hdl_gen::Options {
        link: bql_hdl_gen::LinkKind::Spi,
        ..Default::default()
    };
    let d = bql_hdl_gen::generate_with(&net, &b, &opts).unwrap();
    assert!(d.files["rtl/spi_slave.v"].contains("posedge spi_sck or posedge spi_cs_n"));
    assert!(
        !d.files["rtl/bql_top.v"].contains("led_red"),
        "its pin is the chip select"
    );
    let ulx3s = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let e = bql_hdl_gen::generate_with(&net, &ulx3s, &opts).unwrap_err();
    assert!(e.to_string().contains("no SPI host link"), "{e}");
}

/// Threshold memories that yosys would build from distributed RAM move into spare block RAM on
/// the ECP5, layer by layer, while the plan stays within 60 % of the device's block RAMs: the
/// half-device ULX3S folds move two layers' (117 of 208, the third would take 130), the
/// full-speed plan none (198 of 208 already), and the iCE40 (no distributed RAM) none.
#[test]
fn spare_block_ram_takes_the_thresholds_off_the_luts() {
    let net = default_model();
    let ulx3s = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let half = [(0, 8, 264), (1, 44, 16), (2, 44, 16), (3, 1, 32)];
    let p = plan::plan(&net, &ulx3s.device, &half, None).unwrap();
    let moved: Vec<bool> = p.layers.iter().map(|l| l.thresholds_in_block_ram).collect();
    assert_eq!(moved, [true, true, false, false]);
    let budget = ulx3s.device.bram_blocks * 6 / 10;
    assert!(
        p.estimate.bram_blocks <= budget,
        "{}",
        p.estimate.bram_blocks
    );
    // The same folds with the thresholds where yosys puts them: fewer blocks, more logic.
    let mut kept = p.layers.clone();
    kept.iter_mut()
        .for_each(|l| l.thresholds_in_block_ram = false);
    let blocks = |ls: &[plan::LayerPlan]| {
        ls.iter()
            .map(|l| plan::estimate_layer(l, &ulx3s.device))
            .fold((0, 0), |(b, lut), e| (b + e.bram_blocks, lut + e.lut))
    };
    let ((moved_blocks, moved_lut), (kept_blocks, kept_lut)) = (blocks(&p.layers), blocks(&kept));
    assert!(moved_blocks > kept_blocks && moved_lut + 500 < kept_lut);
    let full = plan::plan(&net, &ulx3s.device, &[], None).unwrap();
    assert!(full.layers.iter().all(|l| !l.thresholds_in_block_ram));
    let icebreaker = board::load(&root().join("constraints"), "icebreaker").unwrap();
    let ice = plan::plan(&net, &icebreaker.device, &[], None).unwrap();
    assert!(ice.layers.iter().all(|l| !l.thresholds_in_block_ram));
}
