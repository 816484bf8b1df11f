"""The command line's help and progress: every command listed in plain text, bench says what it
times and shows progress, a reference among the targets is not coloured."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from napari_colorize.cli import build_parser, main


def test_help_lists_every_command_in_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"models", "colorize", "info", "suggest", "demo", "bench"}
    listed = out.split("commands:")[1]
    for name in commands:
        assert re.search(rf"\n +{name} +\w", listed), out


def test_every_bench_option_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "random weights" in out and "--pretrained" in out
    parser = build_parser()._subparsers._group_actions[0].choices["bench"]
    assert all(a.help for a in parser._actions), [a.dest for a in parser._actions if not a.help]


def test_bench_says_it_uses_random_weights_and_shows_progress_per_size(capsys):
    assert main(["bench", "-m", "histogram", "--repeats", "1", "--sizes", "32", "48"]) == 0
    c = capsys.readouterr()
    assert "timing histogram (random weights" in c.err and "--pretrained" in c.err
    assert "size 32 (1 of 2) ..." in c.err and "size 48 (2 of 2) ..." in c.err
    assert [line.split()[1] for line in c.out.splitlines()[1:]] == ["32", "48"]
    assert main(["bench", "-m", "welsh", "--repeats", "1", "--sizes", "32"]) == 0
    assert "a baseline: no network" in capsys.readouterr().err
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


def test_a_reference_among_the_targets_is_skipped(tmp_path, small_pair, capsys):
    grey, ref, _ = small_pair
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.fromarray(grey).save(scans / "a.png")
    Image.fromarray(ref).save(scans / "ref.png")
    out = tmp_path / "out"
    code = main(["colorize", str(scans / "a.png"), str(scans / "ref.png"), "-r", str(scans / "ref.png"),
                 "-m", "reinhard", "-o", str(out) + "/", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"note: skipping {scans / 'ref.png'}: it is the reference" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_colour.png"]
    # given twice (the glob and -r): only the guide is left
    assert main(["colorize", str(scans / "ref.png"), str(scans / "./ref.png"), "-r", str(scans / "ref.png"),
                 "-m", "reinhard", "-o", str(out) + "/"]) == 2
    assert "nothing to colourise" in capsys.readouterr().err
