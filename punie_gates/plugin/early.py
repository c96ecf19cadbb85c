"""The rootdir and config file pytest would have found had it known the suite's options.

pytest picks its rootdir and config file (pyproject.toml) from the paths on the command
line before it loads any installed plugin, so it reads `--candidate ~/models/x` as the
unknown option `--candidate` and the test path `~/models/x`: the search starts there, finds
no pyproject.toml, and the run loses the checkout's testpaths, addopts, markers and
filterwarnings (a bare `pytest --candidate PATH` would then collect the self-tests as
well). The entry point makes the option known a moment later, so `recover_setup`, run as
the plugin's first `pytest_load_initial_conftests`, redoes that search with the option
values set apart and, when it finds another rootdir or config file, puts the run on it:
the config values, its addopts, the conftest cut-off. Nothing changes when pytest already
got it right (the `=` form, or no path options).

This uses pytest's own setup function and a few private attributes of its Config (pytest
has no hook that runs before the search). Should they change, the run stops with a
UsageError saying to use the `=` form, rather than silently running elsewhere.
"""

from __future__ import annotations

import copy
import inspect

import pytest


def recover_setup(early_config, parser, args: list[str]) -> None:
    """Re-determine rootdir and config file from the command line as parsed with every
    option known; adopt them when they differ from what pytest found without the plugin."""
    namespace = early_config.known_args_namespace  # re-parsed after the entry points loaded
    try:
        from _pytest.config.findpaths import determine_setup

        known = {
            "inifile": namespace.inifilename,
            "override_ini": namespace.override_ini,
            "args": namespace.file_or_dir,
            "rootdir_cmd_arg": namespace.rootdir or None,
            "invocation_dir": early_config.invocation_params.dir,
        }
        accepted = inspect.signature(determine_setup).parameters
        found = determine_setup(**{k: v for k, v in known.items() if k in accepted})
        rootpath, inipath, inicfg = found[:3]
        if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
            return
        early_config._rootpath, early_config._inipath, early_config._inicfg = rootpath, inipath, inicfg
        if len(found) > 3:
            early_config._ignored_config_files = found[3]
        early_config._inicache.clear()
        parser.extra_info["rootdir"] = str(rootpath)
        parser.extra_info["inifile"] = str(inipath)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise pytest.UsageError(
            "pytest chose its rootdir before it knew punie-gates' options, and this pytest version does not let "
            f"the plugin correct it ({type(exc).__name__}: {exc}); write path options with '=' "
            "(--candidate=PATH, --training-data=PATH)"
        ) from None
    # The config file's addopts were never applied: apply them as pytest would have.
    addopts = early_config._validate_args(early_config.getini("addopts"), "via addopts config")
    args[:0] = addopts
    early_config.pluginmanager.consider_preparse(addopts, exclude_only=False)
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
    if early_config.known_args_namespace.confcutdir is None:
        early_config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)
