//! Progress bars on stderr (hidden when stderr is not a terminal, so logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` items with a message.
pub fn bar(total: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Prints a finished line above the bar (or plainly when there is no bar).
pub fn line(pb: &ProgressBar, text: &str) {
    if pb.is_hidden() {
        eprintln!("{text}");
    } else {
        pb.println(text);
    }
}
