"""The Python examples run and agree with the library: compare_logits finds the golden cases within the
tolerance (and says so in its exit code), perplexity.py prints the CLI's figure for the same text."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "python"
CLI = pathlib.Path(os.environ.get("GRIFFIN_CLI", ROOT / "build" / "examples" / "griffin"))


def run(*argv):
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, timeout=120)


def test_compare_logits_reports_the_worst_error_within_tolerance():
    case = ROOT / "tests" / "data" / "tiny-griffin"
    out = run(EXAMPLES / "compare_logits.py", case, case / "golden.safetensors")
    assert out.returncode == 0, out.stderr
    worst = [float(x) for x in re.findall(r"worst \|griffin - reference\| = ([0-9.e+-]+)", out.stdout)]
    assert len(worst) == 2 and max(worst) <= 1e-4 and min(worst) > 0


def test_compare_logits_exits_1_above_the_tolerance():
    out = run(EXAMPLES / "compare_logits.py", ROOT / "tests" / "data" / "tiny-griffin",
              ROOT / "tests" / "data" / "tiny-griffin" / "golden.safetensors", "--weights", "int8", "--tolerance", "1e-6")
    assert out.returncode == 1 and "ABOVE the tolerance" in out.stdout


def test_perplexity_script_matches_the_cli():
    script = run(EXAMPLES / "perplexity.py", "--chunk", "300")
    assert script.returncode == 0, script.stderr
    cli = subprocess.run([str(CLI), "perplexity"], capture_output=True, text=True, timeout=120, check=True)
    figure = re.compile(r"nats/token ([0-9.]+) · bits/byte ([0-9.]+)")
    assert figure.search(script.stdout).groups() == figure.search(cli.stdout + cli.stderr).groups()
