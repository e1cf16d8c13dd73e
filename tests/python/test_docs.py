"""docs/python.md's example runs as it stands, and prints what its comments say."""

import contextlib
import io
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_python_guide_example_runs_and_prints_what_it_says(tmp_path):
    doc = (ROOT / "docs" / "python.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    code = code.replace("/tmp/state.bin", str(tmp_path / "state.bin"))
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/python.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = out.getvalue()
    # every "print(...)  # value" line's comment is what it printed
    for expected in re.findall(r"^print\(.*\)\s+# (.+)$", code, re.M):
        assert expected in printed, (expected, printed)
