//! The `bql` binary end to end on the committed MNIST slice and the embedded default model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bql"))
        .args(args)
        .env("BQL_HOME", root())
        .output()
        .expect("bql runs")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `bql sim` builds in `build/sim-<board>` under the project root: one at a time per process.
static SIM_FOLDER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn json(args: &[&str]) -> serde_json::Value {
    let _sim = (args.first() == Some(&"sim"))
        .then(|| SIM_FOLDER.lock().unwrap_or_else(|e| e.into_inner()));
    let out = bql(args);
    assert!(
        out.status.success(),
        "bql {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bql {args:?} printed no single JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `bql eval --json` of a model on the committed slice.
fn eval_on_slice(model: &str) -> serde_json::Value {
    json(&[
        "eval",
        "--json",
        "--dataset",
        "mnist-slice",
        "--model",
        model,
    ])
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bql-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn info_describes_the_default_model() {
    let v = json(&["info", "--json"]);
    assert_eq!(v["arch"], "784-256-256-256-10");
    assert_eq!(v["layers"].as_array().unwrap().len(), 4);
    assert_eq!(v["weight_bits"], 784 * 256 + 2 * 256 * 256 + 256 * 10);
    assert_eq!(v["macs"], v["weight_bits"]);
    // It must fit an iCE40 UP5K's memories (1 Mbit).
    assert!(v["weight_bits"].as_u64().unwrap() <= 1 << 20);
}

#[test]
fn eval_on_the_slice_is_accurate_and_agrees_with_the_float_graph() {
    let v = json(&["eval", "--json", "--dataset", "mnist-slice"]);
    assert_eq!(v["images"], 1000);
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.95, "default model accuracy on the slice: {acc}");
    assert_eq!(v["float_disagreements"], 0);
}

#[test]
fn bench_reports_rates() {
    let v = json(&[
        "bench",
        "--json",
        "--dataset",
        "mnist-slice",
        "--limit",
        "300",
        "--repeat",
        "1",
    ]);
    assert_eq!(v["images"], 300);
    for k in ["images_per_s", "f32_images_per_s", "speedup_vs_f32"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
}

#[test]
fn train_is_deterministic_and_its_model_loads() {
    let d = tmp("train");
    let (a, b) = (d.join("a.bqm"), d.join("b.bqm"));
    for out in [&a, &b] {
        let v = json(&[
            "train",
            "--json",
            "--dataset",
            "mnist-slice",
            "--arch",
            "784-48-10",
            "--epochs",
            "3",
            "--input",
            "u8",
            "--seed",
            "5",
            "--out",
            out.to_str().unwrap(),
        ]);
        // 1,000 training images and 3 epochs: far above chance (10 %).
        assert!(v["accuracy"].as_f64().unwrap() > 0.5, "{v}");
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same model"
    );
    let e = eval_on_slice(a.to_str().unwrap());
    assert_eq!(e["float_disagreements"], 0);
    let i = json(&["info", "--json", "--model", a.to_str().unwrap()]);
    assert_eq!(i["arch"], "784-48-10");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_inputs_give_clear_errors() {
    let d = tmp("bad");
    let junk = d.join("junk.bqm");
    std::fs::write(&junk, b"not a model").unwrap();
    for (args, expect) in [
        (
            vec!["info", "--model", junk.to_str().unwrap()],
            "not a bql model file",
        ),
        (
            vec!["info", "--model", "/nonexistent/m.bqm"],
            "cannot read model file",
        ),
        (vec!["eval", "--dataset", "/nonexistent"], "bql data fetch"),
        (vec!["train", "--arch", "784-x-10"], "is not a layer"),
        (
            vec!["train", "--arch", "c8k3-p2"],
            "must end in a dense layer",
        ),
        (
            vec!["train", "--arch", "c8k9-f10", "--dataset", "mnist-slice"],
            "kernel 9 is outside 1..=7",
        ),
        (
            vec![
                "train",
                "--arch",
                "c8k3-p99-f10",
                "--dataset",
                "mnist-slice",
            ],
            "pool needs",
        ),
        (
            vec!["eval", "--dataset", "cifar10:/nonexistent"],
            "no CIFAR-10 test_batch.bin",
        ),
        (vec!["data", "fetch", "cifar"], "unknown dataset"),
    ] {
        let out = bql(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn data_fetch_from_a_folder() {
    let d = tmp("fetch");
    let v = json(&[
        "data",
        "fetch",
        "mnist",
        "--json",
        "--from",
        root().join("data/slice/mnist").to_str().unwrap(),
        "--dest",
        d.to_str().unwrap(),
    ]);
    assert_eq!(v["train_images"], 1000);
    assert_eq!(v["test_images"], 1000);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn gen_dumps_the_plan_and_the_ir_and_build_refuses_what_cannot_fit() {
    let out = tmp("dump");
    let o = bql(&[
        "gen",
        "--dump-after",
        "plan",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = std::fs::read_to_string(out.join("dump/plan.txt")).unwrap();
    // The plan as the table people read, and as JSON for scripts.
    assert!(
        plan.contains("layer      in    out     P     S   cycles") && plan.contains("steady state"),
        "{plan}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("dump/plan.json")).unwrap())
            .unwrap();
    assert_eq!(json["layers"].as_array().unwrap().len(), 4, "{json}");
    let o = bql(&[
        "gen",
        "--dump-after",
        "lower",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let ir = std::fs::read_to_string(out.join("dump/lower.txt")).unwrap();
    // The checked IR as an outline: every module, its signals with widths and drivers.
    assert!(ir.contains("module bql_top\n"), "{ir}");
    assert!(ir.contains("module layer0_mvtu\n"), "{ir}");
    assert!(
        ir.lines()
            .any(|l| l.contains("memory") && l.contains("frame_buf") && l.contains("always #")),
        "{ir}"
    );
    // Layer 1 pinned to 16 x 16 lanes needs more logic cells than the UP5K has: refused before
    // any tool runs, with the shortfall in the message. (8 x 32 fits since the iCE40's popcounts
    // are instantiated logic cells.)
    let o = bql(&[
        "build",
        "--board",
        "icebreaker",
        "--fold",
        "1:16:16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("logic cells") && err.contains("short by"),
        "{err}"
    );
    assert!(!out.join("yosys.log").exists(), "a tool ran");
    std::fs::remove_dir_all(&out).ok();
}

/// Trains a small CNN on the slice with `args` added; returns the model's path.
fn train_cnn(dir: &std::path::Path, name: &str, extra: &[&str]) -> (PathBuf, serde_json::Value) {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--json",
        "--dataset",
        "mnist-slice",
        "--arch",
        "c8k3same-p2-c16k3-p2-f32-f10",
        "--epochs",
        "2",
        "--seed",
        "9",
        // Only 20 steps per epoch: running BatchNorm statistics must follow fast.
        "--bn-momentum",
        "0.3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (out.clone(), json(&args))
}

#[test]
fn a_cnn_trains_deterministically_evaluates_and_benchmarks() {
    let d = tmp("cnn");
    let (a, v) = train_cnn(&d, "a.bqm", &["--input", "binary"]);
    let (b, _) = train_cnn(&d, "b.bqm", &["--input", "binary"]);
    // 1,000 images, 2 epochs of a tiny binary CNN: far above chance (10 %), nowhere near done.
    assert!(v["accuracy"].as_f64().unwrap() > 0.3, "{v}");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same CNN"
    );
    let model = a.to_str().unwrap();
    let e = eval_on_slice(model);
    assert_eq!(e["float_disagreements"], 0);
    assert_eq!(e["accuracy"], v["accuracy"]);
    let i = json(&["info", "--json", "--model", model]);
    assert_eq!(i["arch"], "28x28x1-c8k3same-p2-c16k3-p2-f32-f10");
    let kinds: Vec<&str> = i["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "conv2d",
            "maxpool2d",
            "conv2d",
            "maxpool2d",
            "flatten",
            "dense",
            "dense"
        ]
    );
    // 28x28x8 outputs of a 3x3x1 window, then 12x12x16 of 3x3x8, then the dense layers.
    let macs = 28 * 28 * 8 * 9 + 12 * 12 * 16 * 72 + 576 * 32 + 32 * 10;
    assert_eq!(i["macs"], macs);
    assert_eq!(i["weight_bits"], 8 * 9 + 16 * 72 + 576 * 32 + 32 * 10);
    let bench = json(&[
        "bench",
        "--json",
        "--dataset",
        "mnist-slice",
        "--limit",
        "200",
        "--repeat",
        "1",
        "--model",
        model,
    ]);
    assert!(bench["images_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(bench["macs_per_image"], macs);
    // BatchNorm re-estimated on 800 training images (200 left for validation), refolded exactly.
    let r = d.join("recalibrated.bqm");
    let v = json(&[
        "recalibrate",
        "--json",
        "--dataset",
        "mnist-slice",
        "--limit",
        "800",
        "--model",
        model,
        "--out",
        r.to_str().unwrap(),
    ]);
    assert_eq!(v["images"], 800);
    assert_eq!(v["validation_images"], 200);
    let e = eval_on_slice(r.to_str().unwrap());
    assert_eq!(e["float_disagreements"], 0);
    assert_eq!(e["accuracy"], v["test_accuracy_after"]);
    // The 8-bit first layer trains and folds too.
    let (u8_model, v) = train_cnn(&d, "u8.bqm", &["--input", "u8"]);
    assert!(v["accuracy"].as_f64().unwrap() > 0.3, "{v}");
    let e = eval_on_slice(u8_model.to_str().unwrap());
    assert_eq!(e["float_disagreements"], 0);
    // The hardware generator plans the convolutions for the default board.
    let g = json(&[
        "gen",
        "--model",
        model,
        "--out",
        d.join("gen").to_str().unwrap(),
        "--json",
    ]);
    assert!(g["layers"].as_array().is_some_and(|l| l.len() >= 2), "{g}");
    std::fs::remove_dir_all(&d).ok();
}

/// CIFAR-10 (the shared JPEG-copy test batch, 3 channels): read as a dataset and trained on for
/// one epoch of a tiny CNN (the test batch stands in for a training batch).
#[test]
fn a_cnn_trains_on_cifar10_binary_files() {
    let shared = root().join("../shared/data/cifar10-jpeg-test-1k/test_batch.bin.gz");
    if !shared.is_file() {
        eprintln!(
            "SKIPPED: {} is absent (a user's clone has no ../shared; see the README's Data section)",
            shared.display()
        );
        return;
    }
    let d = tmp("cifar");
    for name in ["test_batch.bin.gz", "data_batch_1.bin.gz"] {
        std::fs::copy(&shared, d.join(name)).unwrap();
    }
    let dataset = format!("cifar10:{}", d.display());
    let model = d.join("cifar.bqm");
    let v = json(&[
        "train",
        "--json",
        "--dataset",
        &dataset,
        "--arch",
        "c8k3-p2-f10",
        "--input",
        "u8",
        "--epochs",
        "1",
        "--bn-momentum",
        "0.5",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert_eq!(v["test_images"], 1000);
    // Ten classes: above chance after one short epoch.
    assert!(v["accuracy"].as_f64().unwrap() > 0.15, "{v}");
    let e = json(&[
        "eval",
        "--json",
        "--dataset",
        &dataset,
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(e["float_disagreements"], 0);
    let i = json(&["info", "--json", "--model", model.to_str().unwrap()]);
    assert_eq!(i["arch"], "32x32x3-c8k3-p2-f10");
    std::fs::remove_dir_all(&d).ok();
}

/// Boards are compiled in: a `bql` copied out of the project, run from an unrelated folder with
/// no BQL_HOME, still lists and generates for them; a BQL_BOARDS folder adds one.
#[test]
fn boards_are_embedded_and_a_folder_adds_one() {
    let elsewhere = tmp("installed");
    let exe = elsewhere.join("bql");
    std::fs::copy(env!("CARGO_BIN_EXE_bql"), &exe).unwrap();
    let run = |args: &[&str], boards: Option<&std::path::Path>| {
        let mut c = Command::new(&exe);
        c.args(args).current_dir(&elsewhere).env_remove("BQL_HOME");
        match boards {
            Some(b) => c.env("BQL_BOARDS", b),
            None => c.env_remove("BQL_BOARDS"),
        };
        c.output().unwrap()
    };
    let o = run(&["boards", "--json"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["boards"].as_array().unwrap().len(), 5, "{v}");
    let out = elsewhere.join("design");
    let o = run(
        &["gen", "--board", "ulx3s", "--out", out.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("ulx3s.lpf").is_file());

    let extra = elsewhere.join("boards");
    std::fs::create_dir_all(&extra).unwrap();
    let toml = std::fs::read_to_string(root().join("constraints/upduino.toml")).unwrap();
    std::fs::write(
        extra.join("myboard.toml"),
        toml.replace("id = \"upduino\"", "id = \"myboard\""),
    )
    .unwrap();
    std::fs::copy(
        root().join("constraints/upduino.pcf"),
        extra.join("upduino.pcf"),
    )
    .unwrap();
    let o = run(&["boards"], Some(&extra));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("myboard") && text.contains("icebreaker"),
        "{text}"
    );
}

/// BNN-PYNQ's LFC-W1A1 (from ../shared) imports, reports both output rules, and its design for
/// the ULX3S (192 of 208 block RAMs) simulates bit-exact.
#[test]
fn a_bnn_pynq_network_imports_and_simulates_bit_exact() {
    let params = root().join("../shared/third-party/bnn-pynq/bnn/params/mnist/lfcW1A1");
    if !params.is_dir() {
        eprintln!(
            "SKIPPED: {} is absent (a user's clone has no ../shared; see the README)",
            params.display()
        );
        return;
    }
    let out = tmp("lfc").join("lfc.bqm");
    let v = json(&[
        "import",
        "bnn-pynq",
        params.to_str().unwrap(),
        "--dataset",
        "mnist-slice",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["arch"], "784-1024-1024-1024-10");
    assert_eq!(v["images"], 1000);
    assert!(v["accuracy_source_rule"].as_f64().unwrap() > 0.97, "{v}");
    assert!(v["accuracy_bql_argmax"].as_f64().unwrap() > 0.97, "{v}");
    simulates_bit_exact_on_the_ulx3s(&out, "mnist-slice", 100);
}

/// `bql sim` of `model` on the ULX3S plan: `images` images of `dataset`, every score equal.
fn simulates_bit_exact_on_the_ulx3s(model: &Path, dataset: &str, images: usize) {
    let limit = images.to_string();
    let s = json(&[
        "sim",
        "--model",
        model.to_str().unwrap(),
        "--board",
        "ulx3s",
        "--dataset",
        dataset,
        "--limit",
        &limit,
        "--json",
    ]);
    assert_eq!(
        (s["images"].as_u64(), s["mismatches"].as_u64()),
        (Some(images as u64), Some(0)),
        "{s}"
    );
}

/// CNV-W1A1 imports with its shape from config.h and reports CIFAR-10 accuracy under both
/// rules; `bql gen` refuses its pixel table with a message that says why.
#[test]
fn bnn_pynq_cnv_imports_generates_and_simulates_bit_exact_on_the_ulx3s() {
    let shared = root().join("../shared");
    let params = shared.join("third-party/bnn-pynq/bnn/params/cifar10/cnvW1A1");
    let cifar = shared.join("data/cifar10-jpeg-test-1k");
    if !params.is_dir() || !cifar.is_dir() {
        eprintln!("SKIPPED: ../shared is absent (a user's clone has none; see the README)");
        return;
    }
    let out = tmp("cnv").join("cnv.bqm");
    let dataset = format!("cifar10:{}", cifar.display());
    let v = json(&[
        "import",
        "bnn-pynq",
        params.to_str().unwrap(),
        "--dataset",
        &dataset,
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["images"], 1000);
    assert!(v["accuracy_source_rule"].as_f64().unwrap() > 0.7, "{v}");
    assert_eq!(v["predictions_differing"], 0, "{v}");
    let g = json(&[
        "gen",
        "--model",
        out.to_str().unwrap(),
        "--board",
        "ulx3s",
        "--out",
        tmp("cnv-gen").to_str().unwrap(),
        "--json",
    ]);
    // Six convolutions and three dense layers, each an MVTU.
    assert_eq!(g["layers"].as_array().map(Vec::len), Some(9), "{g}");
    // Twenty CIFAR-10 images through the generated design in Verilator: every score compared.
    simulates_bit_exact_on_the_ulx3s(&out, &dataset, 20);
}

/// Post-training quantization end to end: a float model, binarized with re-estimated BatchNorm
/// statistics (its float graph and integer fold then agree on every image), and QAT from it.
#[test]
fn a_float_model_quantizes_and_initializes_qat() {
    let d = tmp("ptq");
    let (float, ptq, ft) = (d.join("f.bqf"), d.join("ptq.bqm"), d.join("ft.bqm"));
    let slice = ["--dataset", "mnist-slice"];
    let common = [&slice[..], &["--arch", "784-64-64-10", "--json"]].concat();
    let f = json(
        &[
            &["train"][..],
            &common[..],
            &[
                "--precision",
                "float",
                "--epochs",
                "4",
                "-o",
                float.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(f["float_test_accuracy"].as_f64().unwrap() > 0.5, "{f}");
    let q = json(
        &[
            &["quantize"][..],
            &slice[..],
            &[
                float.to_str().unwrap(),
                "--calibrate",
                "500",
                "--json",
                "-o",
                ptq.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(q["calibration_images"], 500);
    // Four float epochs on the slice leave a weak model (about 0.54 here), so the check is
    // relative: well above chance, and the re-estimated statistics beat the float ones (0.29).
    let binarized = q["binarized_accuracy"].as_f64().unwrap();
    let with_float_statistics = q["binarized_accuracy_float_statistics"].as_f64().unwrap();
    assert!(
        binarized > 0.35 && binarized > with_float_statistics + 0.1,
        "{q}"
    );
    let e = eval_on_slice(ptq.to_str().unwrap());
    assert_eq!(e["accuracy"].as_f64().unwrap(), binarized);
    assert_eq!(
        e["float_disagreements"], 0,
        "the re-estimated fold is exact"
    );
    let t = json(
        &[
            &["train"][..],
            &common[..],
            &[
                "--init",
                float.to_str().unwrap(),
                "--epochs",
                "1",
                "-o",
                ft.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    // One QAT epoch from the weak float model: well above chance (0.48 here).
    assert!(t["accuracy"].as_f64().unwrap() > 0.35, "{t}");
    // Clear errors: another architecture, a file that is not a checkpoint.
    let out = bql(&[
        &["train"][..],
        &slice[..],
        &[
            "--arch",
            "784-32-10",
            "--init",
            float.to_str().unwrap(),
            "-o",
            ft.to_str().unwrap(),
        ],
    ]
    .concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("784-64-64-10") && err.contains("--arch"),
        "{err}"
    );
    let out = bql(&[
        "quantize",
        ptq.to_str().unwrap(),
        "-o",
        ft.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ptq.bqm"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}
