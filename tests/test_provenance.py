"""Provenance (issue 20, part 4): every output records how it was made, and `napari-colorize info` reads it."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import napari_colorize as nc
from napari_colorize.io import read_embedded_text, read_image, write_image
from napari_colorize.models.registry import weights_dir
from napari_colorize.provenance import (FORMAT, ProvenanceError, check_sidecar, dumps, loads, named, pixels_digest,
                                        sidecar_path, write_sidecar)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "napari_colorize.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 52)) * 255).astype(np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray((rng.random((30, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / "ref.png")
    Image.fromarray((rng.random((30, 34, 3)) * 255).astype(np.uint8)).save(tmp_path / "ref2.png")
    np.save(tmp_path / "stack.npy", (rng.random((4, 24, 24)) * 255).astype(np.uint8))
    return tmp_path


def test_pixels_digest_is_of_the_pixels_not_the_container():
    a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert pixels_digest(a) == pixels_digest(np.asfortranarray(a))
    assert pixels_digest(a) != pixels_digest(a.astype(np.uint16))  # another dtype: other pixels
    assert pixels_digest(a) != pixels_digest(a.reshape(4, 2, 3))  # another shape too
    b = a.copy()
    b[0, 0, 0] += 1
    assert pixels_digest(a) != pixels_digest(b)


def test_colorize_records_model_weights_references_and_settings():
    rng = np.random.default_rng(1)
    grey = rng.random((32, 40)).astype(np.float32)
    r1, r2 = [(rng.random((20, 20, 3)) * 255).astype(np.uint8) for _ in range(2)]
    res = nc.colorize("exemplar", grey, reference=[r1, r2], size=64)
    rec = res.provenance
    assert rec["format"] == FORMAT and rec["software"]["napari-colorize"] == nc.__version__
    assert rec["model"]["name"] == "exemplar"
    shipped = hashlib.sha256((weights_dir() / "exemplar.safetensors").read_bytes()).hexdigest()
    assert rec["model"]["weights_sha256"] == shipped
    assert [e["sha256"] for e in rec["references"]] == [pixels_digest(r1), pixels_digest(r2)]
    assert rec["settings"]["size"] == 64 and rec["settings"]["working_shape"] == list(res.working_shape)
    assert rec["target"] == {"shape": [32, 40], "dtype": "float32"}
    assert loads(dumps(rec)) == rec  # JSON through and back
    # a baseline has no weights file; a histogram guide is recorded by its hash
    h = nc.colorize("reinhard", grey, reference=r1).provenance
    assert h["model"]["weights_sha256"] is None and len(h["references"]) == 1


def test_keyframes_are_recorded_at_their_positions():
    rng = np.random.default_rng(2)
    stack = rng.random((5, 16, 16)).astype(np.float32)
    r1, r2 = [(rng.random((12, 12, 3)) * 255).astype(np.uint8) for _ in range(2)]
    rec = nc.colorize("reinhard", stack, references={0: r1, -1: [r1, r2]}, blend="nearest", rgb=False).provenance
    assert sorted(rec["keyframes"]) == ["0", "4"]  # -1: the last slice
    assert [e["sha256"] for e in rec["keyframes"]["4"]] == [pixels_digest(r1), pixels_digest(r2)]
    assert rec["blend"] == "nearest" and "references" not in rec


def test_named_takes_layer_names_and_files(files):
    rec = nc.colorize("reinhard", read_image(files / "grey.png"), reference=read_image(files / "ref.png")).provenance
    by_layer = named(rec, ["my layer"], target="layer 'grey'", files=False)
    assert by_layer["references"][0]["name"] == "my layer" and "path" not in by_layer["references"][0]
    by_file = named(rec, [str(files / "ref.png")])
    assert by_file["references"][0]["path"] == str((files / "ref.png").resolve())
    assert rec["references"][0]["name"] == "reference"  # (a copy: the record itself is unchanged)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".npy"])
def test_cli_outputs_carry_it_and_info_prints_it(files, suffix):
    out = files / f"out{suffix}"
    r = cli("colorize", files / "grey.png", "-r", files / "ref.png", "-r", files / "ref2.png", "-m", "reinhard",
            "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    info = cli("info", out, "--json")
    assert info.returncode == 0, info.stderr
    rec = json.loads(info.stdout)
    want = [pixels_digest(read_image(files / n)) for n in ("ref.png", "ref2.png")]  # the files' own pixels
    assert [e["sha256"] for e in rec["references"]] == want
    assert [e["path"] for e in rec["references"]] == [str((files / n).resolve()) for n in ("ref.png", "ref2.png")]
    assert rec["target"]["path"] == str((files / "grey.png").resolve())
    assert (suffix == ".npy") == sidecar_path(out).exists()  # (a sidecar only where the format has no place)
    text = cli("info", out)
    assert "reinhard" in text.stdout and "ref2.png" in text.stdout
    assert np.isfinite(read_image(out)).all()  # the image itself reads as before


def test_cli_keyframes_and_confidence_and_relative_paths(files):
    r = cli("colorize", "stack.npy", "--keyframe", "0:ref.png", "--keyframe", "3:ref2.png", "-m", "warp",
            "-o", "out.tif", "--confidence", "conf.tif", "--grey", "-q", cwd=files)
    assert r.returncode == 0, r.stderr
    for f in ("out.tif", "conf.tif"):
        rec = loads(read_embedded_text(files / f))
        assert rec["keyframes"]["3"][0]["path"] == str((files / "ref2.png").resolve())  # absolute, not relative
        assert rec["settings"]["temporal"] == 3 and rec["model"]["name"] == "warp"
    assert read_image(files / "out.tif").shape == (4, 24, 24, 3)


def test_a_confidence_file_with_no_place_for_the_record_gets_a_sidecar(files):
    """--confidence conf.npy: the record beside it as beside an .npy output; without provenance, an earlier
    run's sidecar beside the replaced confidence goes (it would describe the other run)."""
    r = cli("colorize", "grey.png", "-r", "ref.png", "-m", "warp", "-o", "out.npy", "--confidence", "conf.npy",
            "-q", cwd=files)
    assert r.returncode == 0, r.stderr
    for f in ("out.npy", "conf.npy"):
        assert sidecar_path(files / f).exists()
        rec = json.loads(cli("info", files / f, "--json").stdout)
        assert rec["model"]["name"] == "warp" and rec["target"]["path"] == str((files / "grey.png").resolve())
    r = cli("colorize", "grey.png", "-r", "ref.png", "-m", "warp", "-o", "out.npy", "--confidence", "conf.npy",
            "-q", "--overwrite", "--no-provenance", cwd=files)
    assert r.returncode == 0, r.stderr
    assert not sidecar_path(files / "conf.npy").exists() and not sidecar_path(files / "out.npy").exists()


def test_no_provenance_and_a_plain_file(files):
    out = files / "plain.png"
    assert cli("colorize", files / "grey.png", "-r", files / "ref.png", "-m", "reinhard", "-o", out, "-q",
               "--no-provenance").returncode == 0
    assert read_embedded_text(out) is None
    r = cli("info", out, files / "ref.png")
    assert r.returncode == 1 and "holds no record" in r.stderr


def test_a_users_sidecar_is_never_replaced(files):
    mine = sidecar_path(files / "out.npy")
    mine.write_text('{"my": "notes"}')
    r = cli("colorize", files / "grey.png", "-r", files / "ref.png", "-m", "reinhard", "-o", files / "out.npy")
    assert r.returncode == 2 and "never replaced" in r.stderr
    assert mine.read_text() == '{"my": "notes"}' and not (files / "out.npy").exists()  # refused before any work
    r = cli("colorize", files / "grey.png", "-r", files / "ref.png", "-m", "reinhard", "-o", files / "out.npy",
            "--overwrite")
    assert r.returncode == 2 and mine.read_text() == '{"my": "notes"}'  # not with --overwrite either
    assert check_sidecar(files / "out.npy") is not None
    with pytest.raises(ProvenanceError):
        write_sidecar(files / "out.npy", {"format": FORMAT})
    # an earlier run's sidecar (ours) without its output: kept unless --overwrite
    mine.unlink()
    assert cli("colorize", files / "grey.png", "-r", files / "ref.png", "-m", "reinhard", "-o",
               files / "out.npy", "-q").returncode == 0
    (files / "out.npy").unlink()
    first = mine.read_text()
    r = cli("colorize", files / "grey.png", "-r", files / "ref2.png", "-m", "reinhard", "-o", files / "out.npy")
    assert r.returncode == 2 and "earlier run" in r.stderr and mine.read_text() == first
    assert cli("colorize", files / "grey.png", "-r", files / "ref2.png", "-m", "reinhard", "-o",
               files / "out.npy", "--overwrite", "-q").returncode == 0
    assert json.loads(mine.read_text())["references"][0]["name"] == "ref2.png"


def test_an_output_replaced_without_a_record_takes_its_old_record_away(files):
    """`--overwrite --no-provenance` over an earlier .npy output: its sidecar described the replaced run, so it
    goes (`info` no longer reports the earlier model); a file of the user's of that name stays; a .tif output
    of the same stem (its record inside) leaves the .npy's sidecar alone."""
    run = ("colorize", files / "grey.png", "-r", files / "ref.png", "-o", files / "x.npy", "-q")
    assert cli(*run, "-m", "welsh").returncode == 0
    side = sidecar_path(files / "x.npy")
    assert json.loads(side.read_text())["model"]["name"] == "welsh"
    assert cli("colorize", files / "grey.png", "-r", files / "ref.png", "-o", files / "x.tif", "-q", "-m",
               "reinhard", "--no-provenance").returncode == 0
    assert side.exists()  # (x.tif's record would go inside it: the .npy's sidecar is not its business)
    assert cli(*run, "-m", "reinhard", "--overwrite", "--no-provenance").returncode == 0
    assert not side.exists()
    r = cli("info", files / "x.npy")
    assert r.returncode == 1 and "welsh" not in r.stdout + r.stderr
    side.write_text("my notes")  # the user's file of that name: never touched
    assert cli(*run, "-m", "reinhard", "--overwrite", "--no-provenance").returncode == 0
    assert side.read_text() == "my notes"


def test_a_record_that_cannot_be_written_after_the_output_is_a_warning(files, monkeypatch, capsys):
    """The sidecar is written once the output is in place: if it fails then, the output is reported written with
    a warning (not 'nothing was written'), and no earlier run's record stays beside it."""
    from napari_colorize import provenance
    from napari_colorize.cli import main

    run = ["colorize", str(files / "grey.png"), "-r", str(files / "ref.png"), "-o", str(files / "y.npy"), "-q"]
    assert main(run + ["-m", "welsh"]) == 0 and sidecar_path(files / "y.npy").exists()

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(provenance, "write_sidecar", full)
    assert main(run + ["-m", "reinhard", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "written, but its record could not be written" in err and "nothing was written" not in err
    assert (files / "y.npy").exists() and not sidecar_path(files / "y.npy").exists()


def test_untrusted_records_are_refused(tmp_path):
    with pytest.raises(ProvenanceError, match="not a napari-colorize"):
        loads('{"format": "something else"}')
    with pytest.raises(ProvenanceError, match="not valid JSON"):
        loads("{nope")
    with pytest.raises(ProvenanceError, match="characters long"):
        loads(" " * (5 * 2**20))
    # an image whose text chunk is not ours: info says so, nothing else happens
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("napari-colorize", '{"format": "forged", "__class__": "os.system"}')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "forged.png", pnginfo=info)
    r = cli("info", tmp_path / "forged.png")
    assert r.returncode == 1 and "not a napari-colorize provenance record" in r.stderr


def test_volume_records_it_in_the_zarr_attributes(files):
    pytest.importorskip("ome_zarr")
    from napari_colorize.volume import PROVENANCE_ATTR, colorize_volume, read_provenance

    vol = (np.random.default_rng(3).random((3, 20, 20)) * 255).astype(np.uint8)
    out = colorize_volume(vol, files / "v.zarr", "reinhard", references={0: str(files / "ref.png"),
                                                                         -1: str(files / "ref2.png")},
                          chunks=(1, 20, 20))
    rec = read_provenance(out)
    assert sorted(rec["keyframes"]) == ["0", "2"]
    assert rec["keyframes"]["2"][0]["sha256"] == pixels_digest(read_image(files / "ref2.png"))
    assert rec["target"]["shape"] == [3, 20, 20]
    import zarr

    assert zarr.open_group(str(out), mode="r").attrs[PROVENANCE_ATTR] == rec
    r = cli("info", out)
    assert r.returncode == 0 and "keyframe 2" in r.stdout

    # an unfinished run says so (its record is written when it completes)
    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_volume(vol, files / "w.zarr", "reinhard", reference=str(files / "ref.png"), chunks=(1, 20, 20),
                        progress=stop)
    with pytest.raises(ProvenanceError, match="unfinished"):
        read_provenance(files / "w.zarr")


def test_write_image_keeps_the_text(tmp_path):
    rgb = np.random.default_rng(4).random((2, 8, 8, 3)).astype(np.float32)
    for name in ("a.tif", "b.npy"):
        write_image(tmp_path / name, rgb, text="hello" if name.endswith(".tif") else None)
    assert read_embedded_text(tmp_path / "a.tif") == "hello" and read_image(tmp_path / "a.tif").shape == rgb.shape
    assert read_embedded_text(tmp_path / "b.npy") is None
