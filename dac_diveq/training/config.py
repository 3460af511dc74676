"""The training scripts' configuration (argbind ymls and command line), checked before it is used.

argbind itself accepts anything: a typo'd key (``DiVeQDAC.noise_vr``) in a yml or on the command
line is kept in the arguments and never read, so the run silently trains with the default. It also
reads ymls with PyYAML's unsafe loader, which runs the code a ``!!python/...`` tag names, and parses
with argparse's default, which takes ``--args.loa``, ``--args.l=FILE`` or ``--num_iter`` for the
options they abbreviate (argbind then lets the yml override an abbreviated command-line value).
:func:`parse_args` parses with abbreviations refused, reads every yml (and its ``$include`` files)
with the safe loader only (:func:`load_yml` stands in for argbind's loader while argbind parses),
and checks every key against the parameters of the bound functions: an unknown or abbreviated
option, a repeated ``--args.load``, a missing file, broken YAML or a code tag is a
:class:`ConfigError` with one line naming the key or file (and the closest known key).
"""
from __future__ import annotations

import contextlib
import difflib
import os
import sys
import typing
from pathlib import Path
from typing import Any, Iterable, Iterator, NoReturn, Optional, Sequence

import yaml

from ..errors import ConfigError  # noqa: F401  (raised here; its home is the neutral errors module)
from . import userfiles

#: Keys argbind itself puts in the parsed arguments.
ARGBIND_KEYS = frozenset({"args.load", "args.save", "args.debug", "args.unknown"})
#: argbind's own command-line options.
ARGBIND_OPTIONS = frozenset({"args.load", "args.save", "args.debug"})


def parse_args(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """``argbind.parse_args()`` with abbreviations refused, every yml read safely and every key
    checked after.

    Call it after the script bound its functions (``argbind.bind``): the keys they accept are
    the known ones.

    Args:
        argv: the command line (None: ``sys.argv[1:]``).

    Returns:
        argbind's arguments.

    Raises:
        ConfigError: a yml that is missing, broken or carries code; ``--args.load`` given more
            than once; an unknown or abbreviated option or key; a value argparse refuses (one line).
    """
    import argbind

    parser = build_parser()
    argv = with_resume_value(list(sys.argv[1:] if argv is None else argv))
    argv = normalise_flags(argv, parser)
    argv, containers = container_values(argv, container_keys())
    loaded = _loaded_files(argv)
    if len(loaded) > 1:
        raise ConfigError(f"--args.load is given {len(loaded)} times ({', '.join(loaded)}); argbind reads one "
                          "yml: pass one (it can $include the others)")
    conf = loaded[0] if loaded else ""
    if conf:
        check_yml(conf)
    saved = sys.argv
    sys.argv = [saved[0] if saved else "train", *argv]
    try:
        with safe_argbind_loading():
            args = argbind.parse_args(parser)
    finally:
        sys.argv = saved
    check_keys(args, known_keys(), conf)
    args.update(containers)  # the command line overrides the ymls, as for every other key
    check_types(args, scalar_annotations(), conf)
    return args


def build_parser() -> Any:
    """argbind's parser of the bound functions, refusing abbreviated options, with argparse's
    errors raised as :class:`ConfigError` (one line, not usage text and ``SystemExit``).

    With argparse's default (``allow_abbrev=True``), ``--args.loa FILE`` loads ``FILE`` unseen by a
    check that looks for ``--args.load``, and ``--num_iter 2`` sets ``num_iters`` only until the
    yml's value overrides it (argbind tells command-line keys from yml keys by their spelling).
    """
    import argbind

    parser = argbind.build_parser()
    parser.allow_abbrev = False  # read by argparse at parse time

    def error(message: str) -> NoReturn:
        raise ConfigError(message)

    parser.error = error
    return parser


@contextlib.contextmanager
def safe_argbind_loading() -> Iterator[None]:
    """While the block runs, argbind loads every yml (``--args.load`` and each ``$include``) with
    :func:`load_yml`, YAML's safe loader, instead of its own ``yaml.Loader``, which runs the code
    a ``!!python/...`` tag names."""
    import argbind

    module = argbind.argbind
    previous = module.load_args
    module.load_args = load_yml
    try:
        yield
    finally:
        module.load_args = previous


def container_keys() -> set[str]:
    """Keys of bound parameters annotated (or defaulting to) a ``list``, ``tuple`` or ``dict``.

    argbind hands a plain ``list`` option's command-line value to ``list(...)``, so
    ``--save_iters "[500, 1000]"`` became a list of characters (and no milestone was ever kept),
    and takes ``List[int]`` only space-separated: :func:`container_values` parses them all.
    """
    import inspect

    import argbind

    keys = set()
    for prefix, (func, patterns, without_prefix, positional, _) in argbind.argbind.PARSE_FUNCS.items():
        for name, parameter in inspect.signature(func).parameters.items():
            annotation, default = parameter.annotation, parameter.default
            container = annotation in (list, tuple, dict) or typing.get_origin(annotation) in (list, tuple, dict)
            if container or (annotation is inspect.Parameter.empty and isinstance(default, (list, tuple, dict))):
                key = name if without_prefix else f"{prefix}.{name}"
                keys.add(key)
                keys.update(f"{pattern}/{key}" for pattern in patterns or ())
    return keys


def container_values(argv: Sequence[str], keys: set[str]) -> tuple[list[str], dict[str, Any]]:
    """Take ``--key VALUE...`` of container ``keys`` out of ``argv``, each parsed as YAML.

    ``--save_iters "[500, 1000]"``, ``--save_iters 500 1000`` and ``--save_iters "500 1000"`` all
    give ``[500, 1000]``; ``--lambdas "{mel/loss: 15}"`` a dict.

    Returns:
        ``(argv without those options, {key: value})``.

    Raises:
        ConfigError: a value that is not valid YAML, or a key given without a value.
    """
    rest: list[str] = []
    values: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        key = argv[i][2:] if argv[i].startswith("--") else None
        if key not in keys:
            rest.append(argv[i])
            i += 1
            continue
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        tokens = list(argv[i + 1:j])
        if not tokens:
            raise ConfigError(f"--{key} needs a value (e.g. --{key} \"[1, 2]\")")
        text = tokens[0] if len(tokens) == 1 else "[" + ", ".join(tokens) + "]"
        try:
            value = yaml.safe_load(text)
            if not isinstance(value, (list, dict)):  # "500 1000" or "0.9,0.999": separated items
                value = [yaml.safe_load(t) for t in text.replace(",", " ").split()]
        except yaml.YAMLError as exc:
            raise ConfigError(f"--{key} {' '.join(tokens)!r} is not a list or mapping ({_yaml_problem(exc)})") from None
        values[key] = value
        i = j
    return rest, values


def with_resume_value(argv: Sequence[str]) -> list[str]:
    """``argv`` with a bare ``--resume`` (no value follows) read as ``--resume true``, as it meant
    when the option was a flag."""
    out = list(argv)
    for i in reversed(range(len(out))):
        if out[i] == "--resume" and (i + 1 == len(out) or out[i + 1].startswith("--")):
            out.insert(i + 1, "true")
    return out


def normalise_flags(argv: list[str], parser: Any) -> list[str]:
    """``--flag true|false|1|0`` -> ``--flag`` or nothing, for argbind's boolean options.

    argbind makes a ``bool`` parameter a bare flag: ``--resume false`` used to *set* it (the
    ``false`` was left over and ignored). Both spellings are accepted and mean what they say.
    """
    flags = {option for action in parser._actions if type(action).__name__ == "_StoreTrueAction"
             for option in action.option_strings}
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        value = argv[i + 1].lower() if i + 1 < len(argv) else ""
        if arg in flags and value in ("true", "false", "1", "0", "yes", "no"):
            if value in ("true", "1", "yes"):
                out.append(arg)
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def known_keys() -> set[str]:
    """Every key a bound function reads: ``Function.param`` (or ``param`` for functions bound
    ``without_prefix``), each also under the function's scope patterns (``train/AudioDataset.duration``).

    Taken from the bound functions' signatures, not from argbind's parser: the parser has no
    option for a parameter annotated e.g. ``Union[int, list]``, yet a yml may set it.
    """
    import inspect

    import argbind

    keys = set()
    for prefix, (func, patterns, without_prefix, positional, _) in argbind.argbind.PARSE_FUNCS.items():
        for name, parameter in inspect.signature(func).parameters.items():
            if parameter.default is inspect.Parameter.empty and not positional:
                continue  # argbind binds keyword parameters only
            key = name if without_prefix else f"{prefix}.{name}"
            keys.add(key)
            keys.update(f"{pattern}/{key}" for pattern in patterns or ())
    return keys


def check_keys(args: dict[str, Any], known: Iterable[str], conf: str = "") -> None:
    """Refuse a key no bound function reads.

    Args:
        args: argbind's parsed arguments (yml keys included, command-line leftovers in
            ``args.unknown``).
        known: the keys of the bound functions.
        conf: the ``--args.load`` yml, named in the message.

    Raises:
        ConfigError: the first unknown key, with the closest known one.
    """
    known = set(known)
    for item in args.get("args.unknown") or []:
        key = item.split("=", 1)[0]
        if key.startswith("--"):
            full = sorted(k for k in known | ARGBIND_OPTIONS if k.startswith(key[2:]))
            if len(full) == 1 and key[2:]:
                raise ConfigError(f"unknown option {key}: options are not abbreviated, did you mean --{full[0]}?")
            raise ConfigError(f"unknown option {key}{_closest(key[2:], known, '--')}")
        raise ConfigError(f"unexpected argument {item!r} (options are --key value)")
    for key in args:
        if key not in known and key not in ARGBIND_KEYS:
            where = f" in {conf} (or a file it includes)" if conf else ""
            raise ConfigError(f"unknown configuration key {key!r}{where}{_closest(key, known)}")


#: What a yml value must be for a parameter annotated with each of these types (``Optional``
#: also takes ``None``): an ``int`` serves as a ``float``, a ``bool`` as neither.
_SCALARS = {int: ((int,), "an integer"), float: ((int, float), "a number"), bool: ((bool,), "true or false")}


def scalar_annotations() -> dict[str, tuple[type, bool]]:
    """``{key: (int | float | bool, optional)}`` for every bound parameter annotated with one of
    those types (or ``Optional`` of one), under every spelling :func:`known_keys` gives it."""
    import inspect

    import argbind

    found = {}
    for prefix, (func, patterns, without_prefix, positional, _) in argbind.argbind.PARSE_FUNCS.items():
        for name, parameter in inspect.signature(func).parameters.items():
            annotation, optional = parameter.annotation, False
            if typing.get_origin(annotation) is typing.Union:
                members = [a for a in typing.get_args(annotation) if a is not type(None)]
                optional = len(members) < len(typing.get_args(annotation))
                annotation = members[0] if len(members) == 1 else None
            if annotation not in _SCALARS:
                continue
            optional = optional or parameter.default is None  # ``latent_dim: int = None``
            key = name if without_prefix else f"{prefix}.{name}"
            for spelling in (key, *(f"{pattern}/{key}" for pattern in patterns or ())):
                found[spelling] = (annotation, optional)
    return found


def check_types(args: dict[str, Any], annotations: dict[str, tuple[type, bool]], conf: str = "") -> None:
    """Refuse a value of the wrong type for an ``int``, ``float`` or ``bool`` parameter.

    argbind passes a yml's ``num_iters: abc`` on as the string ``"abc"``, which fails only where
    it is first used (a traceback, maybe steps into training).

    Args:
        args: argbind's parsed arguments.
        annotations: :func:`scalar_annotations`.
        conf: the ``--args.load`` yml, named in the message.

    Raises:
        ConfigError: the first such key, with what it must be.
    """
    for key, value in args.items():
        if key not in annotations:
            continue
        kind, optional = annotations[key]
        allowed, words = _SCALARS[kind]
        is_bool = isinstance(value, bool)
        if (value is None and optional) or (isinstance(value, allowed) and (kind is bool or not is_bool)):
            continue
        where = f" in {conf} (or a file it includes)" if conf else ""
        raise ConfigError(f"configuration key {key!r}{where} must be {words}, got {str(value)[:60]!r}")


def check_yml(path: str | os.PathLike, included_from: Optional[Path] = None,
              seen: tuple[Path, ...] = ()) -> None:
    """Read a yml and the files it ``$include``s with YAML's safe loader.

    Raises:
        ConfigError: a missing file (naming the file that includes it), broken YAML (with its
            line), a ``!!python`` tag (refused: it runs code), a top level that is not a mapping,
            an ``$include`` that is not a list of file names, or an include cycle.
    """
    _read_yml(Path(path), included_from, seen)


def load_yml(path: str | os.PathLike) -> dict[str, Any]:
    """What ``argbind.load_args(path)`` returns, read with YAML's safe loader only.

    The files ``path`` ``$include``s are read first, in order (their paths as written, relative
    to the working folder, as argbind reads them), then ``path``'s own keys override theirs; a
    string value (or list item) ``$NAME`` is replaced by ``$vars``' ``NAME`` or the environment
    variable ``NAME`` when one is set; ``args.debug`` is argbind's default unless set.

    Raises:
        ConfigError: as :func:`check_yml`.
    """
    import argbind

    data = _read_yml(Path(path), None, (), merged=True)
    data.setdefault("args.debug", argbind.argbind.DEBUG)
    return data


def _read_yml(path: Path, included_from: Optional[Path], seen: tuple[Path, ...],
              merged: bool = False) -> dict[str, Any]:
    """A yml (and its includes) read safely and checked; with ``merged``, the includes merged
    and ``$vars`` substituted as argbind does (see :func:`load_yml`)."""
    origin = f" (included from {included_from})" if included_from else ""
    if path.resolve() in seen:
        raise ConfigError(f"{path}{origin} includes itself")
    kind = userfiles.file_kind(path)
    if kind == "missing":
        raise ConfigError(f"configuration file {path}{origin} not found")
    if kind != "file":  # a named pipe would block the reader
        raise ConfigError(f"configuration file {path}{origin} is not a regular file ({kind})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.constructor.ConstructorError as exc:
        tag = (exc.problem or "an unknown tag").split("tag ")[-1].strip("'").replace("tag:yaml.org,2002:", "!!")
        raise ConfigError(f"refusing to load {path}{origin}: it uses the YAML tag {tag}, which would run "
                          "code (a configuration holds plain values only)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}{origin} is not valid YAML ({_yaml_problem(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}{origin} ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}{origin} is not a mapping of keys to values")
    includes = data.pop("$include", [])
    if not isinstance(includes, list) or not all(isinstance(include, str) for include in includes):
        raise ConfigError(f"{path}{origin}: $include must be a list of file names")
    variables = data.pop("$vars", {})
    if not isinstance(variables, dict):
        raise ConfigError(f"{path}{origin}: $vars must be a mapping of names to values")
    loaded = {}
    for include in includes:
        loaded.update(_read_yml(Path(include), path, (*seen, path.resolve()), merged))
    if not merged:
        return data
    loaded.update(data)
    lookup = {**os.environ, **variables}

    def substitute(value: Any) -> Any:
        return lookup[value[1:]] if isinstance(value, str) and value.startswith("$") and value[1:] in lookup else value

    return {key: [substitute(item) for item in value] if isinstance(value, list) else substitute(value)
            for key, value in loaded.items()}


def _yaml_problem(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _loaded_files(argv: Sequence[str]) -> list[str]:
    """Every value of ``--args.load`` on the command line (abbreviations are refused by the parser)."""
    files = []
    for i, arg in enumerate(argv):
        if arg == "--args.load" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--args.load="):
            files.append(arg.split("=", 1)[1])
    return files


def _closest(key: str, known: set[str], prefix: str = "") -> str:
    """``"; did you mean 'X'?"`` for the closest known key, or ''."""
    match = difflib.get_close_matches(key, sorted(known - ARGBIND_KEYS), n=1, cutoff=0.6)
    return f"; did you mean {prefix}{match[0]}?" if match else ""


def takes_config(config_class: type, *, exclude: Sequence[str] = ()) -> Any:
    """Give a training script's bound function the fields of ``config_class`` (a loop config
    dataclass) as its parameters, so that the dataclass is the one declaration of their names,
    types and defaults.

    The decorated function declares a ``config`` parameter (and its own, script-only ones); its
    signature, which argbind binds from the ymls and the command line and records with the run,
    becomes its own parameters followed by the dataclass's fields (the function takes them as
    ``config_class(**fields)``; field validation errors are the dataclass's, raised there).

    Args:
        config_class: a dataclass such as :class:`~dac_diveq.training.loop.LoopConfig` or a subclass.
        exclude: fields the script does not expose (the dataclass default applies).

    Returns:
        The decorator.
    """
    import copy
    import dataclasses
    import functools
    import inspect

    hints = typing.get_type_hints(config_class)
    fields = [f for f in dataclasses.fields(config_class) if f.init and f.name not in exclude]
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in fields}

    def decorate(func: Any) -> Any:
        own = [p for name, p in inspect.signature(func).parameters.items() if name != "config"]
        clash = sorted({p.name for p in own} & set(defaults))
        if clash:
            raise TypeError(f"{func.__name__} declares {clash}, which {config_class.__name__} declares")
        parameters = own + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=defaults[f.name],
                                              annotation=hints[f.name]) for f in fields]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) if name in kwargs else copy.deepcopy(default)
                      for name, default in defaults.items()}
            return func(*args, config=config_class(**values), **kwargs)

        wrapper.__signature__ = inspect.Signature(parameters)  # what argbind binds and records
        return wrapper

    return decorate
