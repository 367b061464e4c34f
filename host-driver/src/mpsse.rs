//! An FTDI channel in MPSSE mode as an SPI master: the iCEBreaker's FT2232H channel A, which
//! also programs the flash, drives SCK, MOSI and the FPGA's chip select after configuration.
//!
//! Facts used (FTDI AN_108 "Command Processor for MPSSE and MCU Host Bus Emulation Modes",
//! AN_135 "FTDI MPSSE Basics", DS_FT2232H): the vendor requests reset (0), set latency timer
//! (9) and set bit mode (0x0B, mode 2 = MPSSE) address a channel by `index` = channel number
//! (A = 1); channel A's endpoints are bulk OUT 0x02 and bulk IN 0x81; every packet read from
//! the chip starts with two modem-status bytes (packets of 512 bytes at high speed); with the
//! divide-by-5 prescaler off, SCK = 60 MHz / (2 (1 + divisor)). ADBUS0 is SCK, ADBUS1 MOSI,
//! ADBUS2 MISO; on the iCEBreaker ADBUS3 is the FPGA's chip select (the AUX CS jumper to LEDR_N)
//! and ADBUS4 the flash's, held high so that the flash stays off the bus. ADBUS7 (CRESET
//! through a resistor) stays an input: the FPGA keeps running.
//!
//! The USB side uses `nusb` (pure Rust, no libusb). On Linux the `ftdi_sio` driver holds the
//! channel as `/dev/ttyUSB0`; opening detaches it (the UART on channel B stays).

use std::time::Duration;

use nusb::transfer::{Control, ControlType, Recipient, RequestBuffer};

use crate::error::{Error, ErrorKind, Result};
use crate::spi::{SpiBus, MAX_TRANSACTION};

/// USB ids of the FT2232H.
pub const FT2232H: (u16, u16) = (0x0403, 0x6010);

/// ADBUS bits that are outputs: SCK, MOSI, FPGA chip select, flash chip select.
const DIRECTION: u8 = 0b0001_1011;
/// ADBUS levels between transactions: both chip selects high, SCK low.
const IDLE_PINS: u8 = 0b0001_1000;
/// ADBUS levels during a transaction: the FPGA selected, the flash not.
const SELECTED_PINS: u8 = 0b0001_0000;
/// Clock bytes out on SCK's falling edge and in on the falling edge, MSB first: the board
/// changes MISO on the rising edge (`bql_hdl_gen::blocks::spi`).
const CLOCK_BYTES_BOTH: u8 = 0x35;
/// Bytes per USB packet from a high-speed FTDI chip (two of them modem status).
const PACKET: usize = 512;

/// The MPSSE divisor for the fastest SCK not above `sck_hz`, and that SCK.
pub fn divisor_for(sck_hz: u64) -> (u16, u64) {
    let div = (60_000_000u64.div_ceil(2 * sck_hz.max(1))).saturating_sub(1);
    let div = div.min(u16::MAX as u64);
    (div as u16, 60_000_000 / (2 * (1 + div)))
}

/// Commands that set the clock and the pins after MPSSE mode is entered.
pub fn setup_commands(sck_hz: u64) -> Vec<u8> {
    let (div, _) = divisor_for(sck_hz);
    vec![
        0x8A, // 60 MHz base clock (divide-by-5 off)
        0x97, // no adaptive clocking
        0x8D, // no three-phase clocking
        0x85, // no loopback
        0x86,
        div as u8,
        (div >> 8) as u8,
        0x80,
        IDLE_PINS,
        DIRECTION,
    ]
}

/// The commands of one transaction: select, clock `mosi` both ways, deselect, flush.
pub fn transaction_commands(mosi: &[u8]) -> Vec<u8> {
    assert!(mosi.len() <= MAX_TRANSACTION, "transaction too long");
    let mut c = Vec::with_capacity(mosi.len() + 12);
    c.extend_from_slice(&[0x80, SELECTED_PINS, DIRECTION]);
    if !mosi.is_empty() {
        let n = (mosi.len() - 1) as u16;
        c.extend_from_slice(&[CLOCK_BYTES_BOTH, n as u8, (n >> 8) as u8]);
        c.extend_from_slice(mosi);
    }
    c.extend_from_slice(&[0x80, IDLE_PINS, DIRECTION, 0x87]);
    c
}

/// The data bytes of what a bulk IN read returned: each packet's first two bytes are modem
/// status.
pub fn strip_status(read: &[u8]) -> Vec<u8> {
    read.chunks(PACKET)
        .flat_map(|p| p.get(2..).unwrap_or(&[]).iter().copied())
        .collect()
}

/// An FT2232H's channel A as an SPI master.
pub struct MpsseBus {
    interface: nusb::Interface,
    sck_hz: u64,
    name: String,
}

fn usb_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "FTDI MPSSE: {what}: {e}. Is the board plugged in, and may you use it (a udev rule \
             for 0403:6010, as for iceprog)?"
        ),
    )
}

impl MpsseBus {
    /// Opens the first FT2232H (or the one whose serial number is `serial`), puts channel A
    /// into MPSSE mode and sets SCK to the fastest rate not above `sck_hz`.
    pub fn open(serial: Option<&str>, sck_hz: u64) -> Result<MpsseBus> {
        let info = nusb::list_devices()
            .map_err(|e| usb_error("cannot list USB devices", e))?
            .find(|d| {
                (d.vendor_id(), d.product_id()) == FT2232H
                    && serial.is_none_or(|s| d.serial_number() == Some(s))
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Io,
                    "no FT2232H (USB 0403:6010) found: is the iCEBreaker plugged in?",
                )
            })?;
        let name = format!(
            "FT2232H {} channel A (bus {} device {})",
            info.serial_number().unwrap_or("?"),
            info.bus_number(),
            info.device_address()
        );
        let device = info.open().map_err(|e| usb_error("cannot open", e))?;
        let interface = device
            .detach_and_claim_interface(0)
            .map_err(|e| usb_error("cannot claim channel A", e))?;
        let (_, actual) = divisor_for(sck_hz);
        let bus = MpsseBus {
            interface,
            sck_hz: actual,
            name,
        };
        bus.vendor(0, 0)?; // reset
        bus.vendor(9, 1)?; // latency timer 1 ms
        bus.vendor(0x0B, 0x0000)?; // bit mode reset
        bus.vendor(0x0B, 0x0200 | u16::from(DIRECTION))?; // MPSSE
        bus.write(&setup_commands(sck_hz))?;
        Ok(bus)
    }

    fn vendor(&self, request: u8, value: u16) -> Result<()> {
        let control = Control {
            control_type: ControlType::Vendor,
            recipient: Recipient::Device,
            request,
            value,
            index: 1,
        };
        self.interface
            .control_out_blocking(control, &[], Duration::from_secs(1))
            .map(|_| ())
            .map_err(|e| usb_error("control request failed", e))
    }

    fn write(&self, bytes: &[u8]) -> Result<()> {
        futures_lite::future::block_on(self.interface.bulk_out(0x02, bytes.to_vec()))
            .into_result()
            .map(|_| ())
            .map_err(|e| usb_error("write failed", e))
    }

    fn read(&self, n: usize) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity(n);
        while data.len() < n {
            let want = (n - data.len()).div_ceil(PACKET - 2) * PACKET;
            let read = futures_lite::future::block_on(
                self.interface
                    .bulk_in(0x81, RequestBuffer::new(want.min(64 * PACKET))),
            )
            .into_result()
            .map_err(|e| usb_error("read failed", e))?;
            data.extend(strip_status(&read));
        }
        data.truncate(n);
        Ok(data)
    }
}

impl SpiBus for MpsseBus {
    fn transfer(&mut self, mosi: &[u8]) -> Result<Vec<u8>> {
        self.write(&transaction_commands(mosi))?;
        self.read(mosi.len())
    }

    fn sck_hz(&self) -> u64 {
        self.sck_hz
    }

    fn describe(&self) -> String {
        format!("{} at SCK {:.1} MHz", self.name, self.sck_hz as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_follow_the_60_mhz_clock() {
        assert_eq!(divisor_for(30_000_000), (0, 30_000_000));
        assert_eq!(divisor_for(29_000_000), (1, 15_000_000));
        assert_eq!(divisor_for(10_000_000), (2, 10_000_000));
        assert_eq!(divisor_for(1), (u16::MAX, 457));
    }

    #[test]
    fn a_transaction_selects_clocks_and_deselects() {
        let c = transaction_commands(&[0xB5, 0x01]);
        assert_eq!(
            c,
            vec![0x80, 0x10, 0x1B, 0x35, 0x01, 0x00, 0xB5, 0x01, 0x80, 0x18, 0x1B, 0x87]
        );
        let long = transaction_commands(&vec![7; MAX_TRANSACTION]);
        assert_eq!(&long[3..6], &[0x35, 0xFF, 0xFF]);
    }

    #[test]
    fn modem_status_bytes_are_removed_per_packet() {
        let mut read = vec![0x32, 0x60];
        read.extend(0..=255u8);
        read.extend(0..=253u8);
        read.extend([0x32, 0x60, 9, 8]);
        let data = strip_status(&read);
        assert_eq!(data.len(), 510 + 2);
        assert_eq!(&data[508..], &[252, 253, 9, 8]);
    }
}
