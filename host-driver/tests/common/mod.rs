//! Helpers shared by the board tests (UART and SPI).

/// Checks that `got` holds the answers to `PING` with sequence number 7 and `INFO` with 8,
/// the latter equal to `expected`.
pub fn check_ping_and_info(got: &[u8], expected: &bql_protocol::Info) {
    let mut d = bql_protocol::Decoder::responses(64);
    d.push(got);
    let Some(bql_protocol::Decoded::Frame(ping)) = d.next_frame() else {
        panic!("no PING answer in {got:02x?}")
    };
    assert_eq!((ping.head, ping.seq), (0, 7));
    assert_eq!(ping.payload, bql_protocol::PING_MAGIC);
    let Some(bql_protocol::Decoded::Frame(info)) = d.next_frame() else {
        panic!("no INFO answer in {got:02x?}")
    };
    assert_eq!(info.seq, 8);
    let info = bql_protocol::Info::from_bytes(&info.payload).unwrap();
    assert_eq!(&info, expected);
}

/// The host's writes that load `net` into a design of `plan`: every memory (`all`) or the SPRAM
/// ones.
pub fn memory_writes(
    net: &bql_model::Network,
    plan: &bql_hdl_gen::plan::Plan,
    all: bool,
) -> Vec<bql_host_driver::MemoryWrite> {
    bql_sim::harness::memory_images(net, plan, all)
        .into_iter()
        .map(|(sel, words)| bql_host_driver::MemoryWrite {
            sel: sel as u8,
            addr: 0,
            words,
        })
        .collect()
}
