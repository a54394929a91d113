"""One error base: every error class paperlib defines derives from PaperlibError, which the CLI prints as one line."""

import importlib
import inspect
import pkgutil

import paperlib
from paperlib.cli import main
from paperlib.runtime.errors import PaperlibError


def error_classes() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(paperlib.__path__, "paperlib."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_paperlib_error_derives_from_the_base():
    classes = error_classes()
    assert len(classes) >= 15  # the base, UserError and one per concern (config, audio, vectors, ...)
    strays = sorted(name for name, cls in classes.items() if not issubclass(cls, PaperlibError))
    assert strays == []


def test_a_library_error_is_one_line_on_the_command_line(tmp_path, capsys):
    """A ConfigError raised in paperlib.runtime.config (no command-line check) reaches the user as one line, exit
    status 2."""
    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\n")
    assert main(["profile", "--params", str(params), "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"paperlib profile: error: --set: train is not a parameter of {params}"
