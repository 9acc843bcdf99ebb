"""The command line's help: it answers without importing torch, and every help text renders as written."""

import subprocess
import sys
import textwrap

import typer
from typer.testing import CliRunner

from anisocert.cli import app


def _commands() -> dict:
    """{command name: click command} of the app, as `anisocert` builds them."""
    return typer.main.get_command(app).commands


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_the_help_of_every_command_imports_no_torch():
    """Importing the CLI and rendering the help of the app and of each command leave torch unimported."""
    names = sorted(_commands())
    code = f"""
        import sys
        from typer.testing import CliRunner
        import anisocert.cli
        runner = CliRunner()
        for args in [["--help"]] + [[name, "--help"] for name in {names!r}]:
            result = runner.invoke(anisocert.cli.app, args)
            assert result.exit_code == 0 and "Usage" in result.output, (args, result.output)
        heavy = sorted(m for m in ("torch", "torchvision", "matplotlib") if m in sys.modules)
        assert not heavy, heavy
        print("checked", len({names!r}))
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert f"checked {len(names)}" in done.stdout


def test_the_entry_points_import_no_torch_for_help():
    """`python -m anisocert certify --help` (what the console script `anisocert.cli:main` runs too):
    no torch in Python's own import log."""
    for target in ("anisocert", "anisocert.cli"):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", target, "certify", "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "--workers" in done.stdout
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert "anisocert.cli" in imported  # the log is read right
        assert not {m for m in imported if m.split(".")[0] in ("torch", "torchvision")}


def test_the_package_imports_its_public_names_on_first_use():
    code = """
        import sys
        import anisocert
        assert "torch" not in sys.modules
        from anisocert import Smoothed, certify_dataset, __version__
        assert "torch" in sys.modules and Smoothed.__module__ == "anisocert.core.smooth"
        assert set(anisocert.__all__) <= set(dir(anisocert))
        for name in anisocert.__all__:
            getattr(anisocert, name)
        try:
            anisocert.no_such_name
        except AttributeError as err:
            assert "no_such_name" in str(err)
        else:
            raise AssertionError("an unknown name must raise AttributeError")
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr


def _flat(text: str) -> str:
    """Whitespace-normalised text; the commands' help is stored escaped for rich (\\[ for [): as written."""
    return " ".join(text.replace("\\[", "[").split())


def test_every_help_text_renders_as_written():
    """Each command's help and each option's help appear whole in the rendered help, brackets included
    (rich would take '[ray]' or '[default: ...]' for a style tag and drop it)."""
    runner = CliRunner()
    bracketed = 0
    for name, command in _commands().items():
        # a terminal wide enough that no help text is wrapped
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "4000", "TERMINAL_WIDTH": "4000"})
        assert result.exit_code == 0, result.output
        shown = _flat(result.output)
        texts = [p.help for p in command.params if getattr(p, "help", None)]
        texts.append(command.help.split("\n\n")[0])
        for text in texts:
            assert _flat(text) in shown, f"`anisocert {name} --help` does not show {text!r}"
            bracketed += "[" in text
    assert bracketed >= 4  # --noise, --sigma, --iso-sigma-min/max, --workers at least
    assert "anisocert[ray]" in runner.invoke(app, ["certify", "--help"], env={"COLUMNS": "4000"}).output
