//! Labelled image datasets: the MNIST layout (IDX files, plain or gzipped) and the CIFAR-10
//! binary format (`data_batch_*.bin`, `test_batch.bin`, plain or gzipped).
//!
//! Whatever the source, a [`Dataset`] holds its pixels row-major in `(y, x, c)` order (channels
//! interleaved per pixel), the order of docs/semantics.md; CIFAR-10's channel-planar records are
//! interleaved on load.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::idx;

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images.
    Train,
    /// The test images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Images (8-bit pixels, row-major, channels interleaved) with their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels per pixel (1 for grey, 3 for RGB).
    pub channels: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Pairs an image tensor (N x H x W) with a label tensor (N), checking that they agree.
    pub fn from_idx(images: idx::IdxU8, labels: idx::IdxU8, what: &str) -> Result<Self> {
        let err = |m: String| Error::new(ErrorKind::Dataset, format!("{what}: {m}"));
        if images.dims.len() != 3 {
            return Err(err(format!(
                "images have {} dimensions, expected 3 (count x height x width)",
                images.dims.len()
            )));
        }
        if labels.dims.len() != 1 {
            return Err(err(format!(
                "labels have {} dimensions, expected 1",
                labels.dims.len()
            )));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(err(format!(
                "{} images but {} labels",
                images.dims[0], labels.dims[0]
            )));
        }
        Ok(Dataset {
            height: images.dims[1],
            width: images.dims[2],
            channels: 1,
            pixels: images.data,
            labels: labels.data,
        })
    }

    /// Loads one split from a folder holding `train-images-idx3-ubyte[.gz]`,
    /// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
    pub fn load_dir(dir: &Path, split: Split) -> Result<Self> {
        let images = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        Self::from_idx(
            idx::read(&images)?,
            idx::read(&labels)?,
            &dir.display().to_string(),
        )
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixel values per image (`height * width * channels`).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// How many of `predicted` (one class per image, in order) equal the labels.
    pub fn count_correct(&self, predicted: &[usize]) -> usize {
        predicted
            .iter()
            .zip(&self.labels)
            .filter(|(&p, &l)| p == l as usize)
            .count()
    }

    /// The first `n` images (all when `n` is larger).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * self.image_len());
    }

    /// Drops the first `n` images (all when `n` is larger).
    pub fn drop_first(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.drain(..n);
        self.pixels.drain(..n * self.image_len());
    }

    /// The images and labels as IDX bytes (images, labels); grey images only.
    pub fn to_idx(&self) -> (Vec<u8>, Vec<u8>) {
        (
            idx::encode(&[self.len(), self.height, self.width], &self.pixels),
            idx::encode(&[self.len()], &self.labels),
        )
    }
}

/// Bytes of one CIFAR-10 record: a label, then 1,024 red, 1,024 green and 1,024 blue pixels.
const CIFAR_RECORD: usize = 1 + 3 * 1024;

impl Dataset {
    /// Loads one split of CIFAR-10 in its binary format from `dir`: `test_batch.bin` for the
    /// test split, every `data_batch_<n>.bin` present (n = 1..=5) for the training split, each
    /// plain or gzipped.
    pub fn load_cifar10(dir: &Path, split: Split) -> Result<Self> {
        let stems: Vec<String> = match split {
            Split::Test => vec!["test_batch.bin".into()],
            Split::Train => (1..=5).map(|n| format!("data_batch_{n}.bin")).collect(),
        };
        let files: Vec<PathBuf> = stems.iter().filter_map(|s| find(dir, s).ok()).collect();
        if files.is_empty() {
            return Err(Error::new(
                ErrorKind::Dataset,
                format!(
                    "{} has no {} (the CIFAR-10 binary format, plain or .gz)",
                    dir.display(),
                    stems.join(" or ")
                ),
            ));
        }
        let mut data = Dataset {
            height: 32,
            width: 32,
            channels: 3,
            pixels: Vec::new(),
            labels: Vec::new(),
        };
        for f in files {
            data.append_cifar_records(&idx::read_bytes(&f)?, &f.display().to_string())?;
        }
        Ok(data)
    }

    fn append_cifar_records(&mut self, bytes: &[u8], what: &str) -> Result<()> {
        if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
            return Err(Error::new(
                ErrorKind::Dataset,
                format!(
                    "{what}: {} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 \
                     records (label + 3 x 1,024 pixels)",
                    bytes.len()
                ),
            ));
        }
        for record in bytes.chunks_exact(CIFAR_RECORD) {
            if record[0] > 9 {
                return Err(Error::new(
                    ErrorKind::Dataset,
                    format!(
                        "{what}: label {} is not a CIFAR-10 class (0..=9)",
                        record[0]
                    ),
                ));
            }
            self.labels.push(record[0]);
            let planes = &record[1..];
            for p in 0..1024 {
                self.pixels
                    .extend([planes[p], planes[1024 + p], planes[2048 + p]]);
            }
        }
        Ok(())
    }
}

/// True when `dir` holds a CIFAR-10 test split in the binary format.
pub fn is_cifar10_dir(dir: &Path) -> bool {
    find(dir, "test_batch.bin").is_ok()
}

/// True when `dir` holds both splits of an MNIST-layout dataset.
pub fn is_dataset_dir(dir: &Path) -> bool {
    [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    .iter()
    .all(|s| find(dir, s).is_ok())
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for candidate in [dir.join(stem), dir.join(format!("{stem}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::new(
        ErrorKind::Dataset,
        format!(
            "{} has no {stem} or {stem}.gz; fetch the dataset with `bql data fetch mnist`",
            dir.display()
        ),
    ))
}
