//! A design folder never mixes two designs: writing another design empties it (with what was
//! built from the old one), writing the same design keeps the build products, and a folder bql
//! did not write is refused untouched.

use std::path::PathBuf;

use bql_hdl_gen::{board, DESIGN_MARKER};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn design(seed: u64) -> bql_hdl_gen::Design {
    let net = bql_model::testing::random_network(60, &[20, 10], false, 100, seed, false);
    let b = board::load(&root().join("constraints"), "icebreaker").unwrap();
    bql_hdl_gen::generate(&net, &b, &[]).unwrap()
}

#[test]
fn a_folder_holds_one_design_at_a_time() {
    let dir = root().join("target/bql-tests/write-one-design");
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (design(1), design(2));
    assert_ne!(a.digest(), b.digest());

    a.write(&dir).unwrap();
    let marker = std::fs::read_to_string(dir.join(DESIGN_MARKER)).unwrap();
    assert_eq!(marker.trim(), a.digest());
    // A build product of design a.
    std::fs::write(dir.join("bql_top.bin"), "bitstream of a").unwrap();
    a.write(&dir).unwrap();
    assert!(dir.join("bql_top.bin").is_file(), "same design: build kept");

    b.write(&dir).unwrap();
    assert!(
        !dir.join("bql_top.bin").exists(),
        "a's bitstream next to b's sources"
    );
    let marker = std::fs::read_to_string(dir.join(DESIGN_MARKER)).unwrap();
    assert_eq!(marker.trim(), b.digest());
    for name in b.files.keys() {
        assert!(dir.join(name).is_file(), "{name}");
    }
}

#[test]
fn a_folder_bql_did_not_write_is_refused_untouched() {
    let dir = root().join("target/bql-tests/write-foreign");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let err = design(1).write(&dir).unwrap_err();
    assert!(err.to_string().contains("not a bql design folder"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

/// The boards compiled into the binary are the project's board files, byte for byte, and a
/// folder adds boards or overrides embedded ones.
#[test]
fn embedded_boards_are_the_constraint_files_and_a_folder_overrides_them() {
    let folder = board::list(&root().join("constraints")).unwrap();
    let embedded = board::embedded();
    assert_eq!(folder.len(), embedded.len());
    for (f, e) in folder.iter().zip(&embedded) {
        assert_eq!(f.file.id, e.file.id);
        assert_eq!(f.pins, e.pins, "{}", f.file.id);
        assert_eq!(format!("{:?}", f.file), format!("{:?}", e.file));
        assert_eq!(e.source, "embedded");
    }
    let extra = root().join("target/bql-tests/boards-extra");
    let _ = std::fs::remove_dir_all(&extra);
    std::fs::create_dir_all(&extra).unwrap();
    let toml = std::fs::read_to_string(root().join("constraints/icebreaker.toml")).unwrap();
    let pcf = std::fs::read_to_string(root().join("constraints/icebreaker.pcf")).unwrap();
    std::fs::write(
        extra.join("mybreaker.toml"),
        toml.replace("id = \"icebreaker\"", "id = \"mybreaker\""),
    )
    .unwrap();
    std::fs::write(extra.join("icebreaker.pcf"), format!("{pcf}# mine\n")).unwrap();
    std::fs::write(extra.join("icebreaker.toml"), &toml).unwrap();
    let all = board::all(Some(&extra)).unwrap();
    assert_eq!(all.len(), embedded.len() + 1);
    let mine = board::find("mybreaker", Some(&extra)).unwrap();
    assert_eq!(mine.file.device, "up5k");
    let overridden = board::find("icebreaker", Some(&extra)).unwrap();
    assert!(overridden.pins.ends_with("# mine\n"));
    assert!(overridden.source.ends_with("icebreaker.toml"));
    assert_eq!(
        board::find("ulx3s", Some(&extra)).unwrap().source,
        "embedded"
    );
    let err = board::find("nope", Some(&extra)).unwrap_err().to_string();
    assert!(err.contains("mybreaker") && err.contains("ulx3s"), "{err}");
}
