"""Every argparse error of the command line, on any subcommand: one line ``error: <argparse's message>`` on
stderr naming the option or value, no usage block, exit status 2; ``--help`` still prints the usage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli import main

CASES = [  # (argv after --workspace, what the line must name)
    (["explain", "--run", "R-x", "--split", "bogus"], "bogus"),  # a bad choice
    (["explain", "--text", "hi"], "--run"),  # a missing required option
    (["runs", "--bogus"], "--bogus"),  # an unknown option
    (["runs", "--limit", "ten"], "ten"),  # a bad int
    (["compare", "--split", "nope"], "nope"),
    (["compare", "--pair", "a"], "--pair"),  # too few values
    (["show"], "run"),  # a missing positional
    (["store", "rebuilt"], "rebuilt"),
    (["build-dataset", "--dataset", "demo", "--num_train", "1.5"], "1.5"),
    (["export-eraser", "--run", "R-x"], "--out"),
    (["download-dataset", "movies", "--source", "kaggle"], "kaggle"),
    (["roar", "--run", "R-x", "--seed", "s"], "s"),
    (["annotations"], "ACTION"),  # a nested subcommand's parser
    (["annotations", "agreement", "hum", "--top", "many"], "many"),
    (["queue", "--all", "yes"], "yes"),
    (["explain", "--run", "R-x", "--top-k", "lots"], "lots"),
]


@pytest.mark.parametrize("argv,named", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_an_argparse_error_is_one_line_naming_it_exit_2(tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as e:
        main(["--workspace", str(tmp_path), *argv])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert "usage:" not in err and out == ""
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_value_with_a_line_break_stays_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--workspace", str(tmp_path), "runs", "--limit", "1\nusage: x"])
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_the_override_vocabulary_keeps_its_own_parser(tmp_path, capsys):
    # `--workspace` without a folder before key=value overrides: the same one line
    with pytest.raises(SystemExit) as e:
        main(["data=demo", "--workspace"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.splitlines() == ["error: argument --workspace: expected one argument"]
    # a word that is neither a command nor an override is still refused by the CLI's own message
    assert main(["--workspace", str(tmp_path), "explian"]) == 2
    assert "neither a command" in capsys.readouterr().err


def test_help_is_unchanged_and_the_real_command_line_exits_2(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "unirex", "explain", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("usage: ") and "--run RUN" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "unirex", "--workspace", str(tmp_path), "explain", "--split", "bogus",
                          "--run", "R-x"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == ["error: argument --split: invalid choice: 'bogus' "
                                       "(choose from 'train', 'dev', 'test')"]
