//! Transports: how bytes reach a board. One small trait, so that a PCIe DMA transport can join
//! the serial port later without touching the client.

use std::io::{Read, Write};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// A byte pipe to a board.
pub trait Transport: Send {
    /// Sends every byte.
    fn send(&mut self, bytes: &[u8]) -> Result<()>;
    /// Reads what arrives within `timeout` into `buf`; `Ok(0)` when nothing came.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize>;
    /// Bytes per second the line carries (a UART sends 10 bits per byte), when known.
    fn line_rate(&self) -> Option<f64>;
    /// What this transport is connected to, for messages.
    fn describe(&self) -> String;
    /// The byte the board sends when it has nothing to send, if the link has one (SPI): not
    /// garbage, so not a sign of a damaged answer.
    fn idle_byte(&self) -> Option<u8> {
        None
    }
}

/// A serial port (a USB-UART bridge, or the simulated board's pseudo-terminal).
pub struct Serial {
    port: Box<dyn serialport::SerialPort>,
    path: String,
    baud: u32,
}

impl Serial {
    /// Opens `path` at `baud` (8N1, no flow control).
    pub fn open(path: &str, baud: u32) -> Result<Serial> {
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(50))
            .open()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "cannot open serial port {path}: {e}. Is the board plugged in, and is \
                         {path} its UART (for the iCEBreaker the second FTDI interface, usually \
                         /dev/ttyUSB1)? You may need to be in the `dialout` group."
                    ),
                )
            })?;
        Ok(Serial {
            port,
            path: path.to_string(),
            baud,
        })
    }
}

impl Transport for Serial {
    /// Writes every byte. A full output buffer (a slow reader: the simulated board, or a
    /// board busy for a moment) only delays the write, up to two seconds beyond the bytes' own
    /// transmission time; the bytes already written are never sent twice.
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let fail = |e: std::io::Error| {
            Error::new(ErrorKind::Io, format!("{}: write failed: {e}", self.path))
        };
        let airtime = bytes.len() as f64 * 10.0 / self.baud.max(1) as f64;
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(airtime + 2.0);
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.port.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) && std::time::Instant::now() < deadline => {}
                Err(e) => return Err(fail(e)),
            }
        }
        self.port.flush().map_err(fail)
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.port
            .set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", self.path)))?;
        match self.port.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(Error::new(
                ErrorKind::Io,
                format!("{}: read failed: {e} (was the board unplugged?)", self.path),
            )),
        }
    }

    fn line_rate(&self) -> Option<f64> {
        Some(self.baud as f64 / 10.0)
    }

    fn describe(&self) -> String {
        format!("{} at {} baud", self.path, self.baud)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        (**self).send(bytes)
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        (**self).recv(buf, timeout)
    }

    fn line_rate(&self) -> Option<f64> {
        (**self).line_rate()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }

    fn idle_byte(&self) -> Option<u8> {
        (**self).idle_byte()
    }
}
