"""The command line's verb registry: every verb's module registers what the table says, and the
top-level help (and a mistyped verb) load none of them, so they answer without importing torch."""
import subprocess
import sys

import pytest

from physical.cli.main import PLUGINS, main, plugin_commands


@pytest.mark.parametrize("verb", sorted(PLUGINS))
def test_every_verb_registers_its_table_entry(verb, capsys):
    help, add, handler = plugin_commands(verb)[verb]
    assert help == PLUGINS[verb][1], f"{verb}: the help line in physical.cli.main.PLUGINS differs from its module's"
    assert callable(add) and callable(handler)
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert f"usage: physical {verb}" in capsys.readouterr().out


def _imports_after(args: list[str]) -> tuple[int, str]:
    code = ("import sys\nfrom physical.cli.main import main\ntry:\n    rc = main(%r)\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('TORCH', 'torch' in sys.modules, 'physical.cli.commands' in sys.modules)\nsys.exit(rc)" % (args,))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_help_and_a_mistyped_verb_load_no_torch():
    rc, out = _imports_after(["--help"])
    assert rc == 0 and "TORCH False False" in out and "predict" in out
    rc, out = _imports_after(["rnu"])
    assert rc == 2 and "TORCH False False" in out and "invalid choice: 'rnu'" in out
