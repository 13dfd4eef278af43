"""File helpers shared by every stage: YAML with one-line errors, atomic writes, folder locks.

Every YAML file the tool reads goes through ``read_yaml``: unique keys, and aliases bounded
(``MAX_YAML_NODES`` values once expanded), so a 1 KB "billion laughs" file is refused instead of
growing to gigabytes; input files are at most ``MAX_TEXT_BYTES``. ``comment_lines`` makes script
and YAML comments from any text (a newline in a value cannot end the comment).

Atomic: write to ``.<name>.<pid>.tmp`` beside the target, then rename, so a reader never sees a
half-written file in ``outputs/``. `folder_lock`: one sweep or plan at a time per output folder.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from .errors import InputError


# How `run.resolve_path` finds a relative path, for the "not found" messages that name one
PATH_LOOKUP = "relative paths are taken from the current folder, then the project root"


def path_lookup(path: str | Path) -> str:
    """How a path that was not found was looked up, for its one-line error: a params file's paths come
    through `run.resolve_path` (absolute by then); a command-line path as typed, from the current folder."""
    return PATH_LOOKUP if Path(path).is_absolute() else "a relative path is taken from the current folder"


def read_text_file(path: str | Path, what: str, example: str) -> str:
    """A UTF-8 text file's content; missing, unreadable or undecodable is an `InputError` naming it."""
    path = Path(path)
    field = f"{what} {path}"
    if path.is_dir():
        raise InputError(field, f"is a folder, not a file; e.g. {example}")
    if not path.is_file():
        raise InputError(field, f"not found; check the path ({path_lookup(path)}), e.g. {example}")
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise InputError(field, f"is {path.stat().st_size / 2**20:,.0f} MiB; input files of at most "
                                    f"{MAX_TEXT_BYTES // 2**20} MiB are read")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(field, f"cannot be read ({exc.strerror}); check its permissions") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(field, f"is not UTF-8 text (undecodable byte at offset {exc.start}); "
                                "save it as UTF-8") from exc


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key repeated in one mapping is an error (YAML says keys are unique)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:   # unhashable key: safe_load reports it itself
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}; each key may appear once", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node


class YamlTooLarge(yaml.YAMLError):
    """A YAML document larger than the bound once its aliases are expanded."""


MAX_YAML_NODES = 100_000    # values in one YAML file once aliases are expanded (every params file has < 10,000)
MAX_TEXT_BYTES = 100 * 2**20   # bytes in one YAML/JSON/text input file


def _check_expanded_size(root) -> None:
    """Refuse a YAML document whose aliases expand past `MAX_YAML_NODES` values ("billion laughs": a
    1 KB file whose values, written out by str() or json, would take gigabytes). Counted on the node
    graph with each shared node's size memoised, so the check itself is linear in the file."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 0                   # a node that contains itself counts once
            children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) \
                else node.value if isinstance(node, yaml.SequenceNode) else []
            total = 1
            for child in children:
                total += size(child)
                if total > MAX_YAML_NODES:
                    break
            sizes[key] = total
        return sizes[key]

    if size(root) > MAX_YAML_NODES:
        raise YamlTooLarge(f"its aliases (*name) expand to more than {MAX_YAML_NODES:,} values; "
                             "write the values out, or use fewer anchors")


# YAML 1.1 (PyYAML) reads 1e3 or 1e-6 as text; YAML 1.2 and people read them as numbers.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml(path: str | Path, what: str, example: str) -> Any:
    """Parse a YAML file strictly (UTF-8, unique keys); a bad file is one `InputError` naming it."""
    text = read_text_file(path, what, example)
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except YamlTooLarge as exc:
        raise InputError(f"{what} {path}", str(exc)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {path}", f"is not valid YAML ({' '.join(str(exc).split())})") from exc
    except RecursionError as exc:
        raise InputError(f"{what} {path}", "is nested too deeply to be a parameter file") from exc


def read_json(path: str | Path, what: str, example: str, *, allow_nan: bool = False) -> Any:
    """Parse a JSON file strictly: UTF-8, unique keys, no NaN/Infinity (unless `allow_nan`: tools such as
    vllm bench serve write NaN for statistics of nothing); errors are one `InputError`."""
    text = read_text_file(path, what, example)

    def unique(pairs):
        keys = [k for k, _ in pairs]
        for k in keys:
            if keys.count(k) > 1:
                raise InputError(f"{what} {path}", f"has the key {k!r} twice in one object; each key may appear once")
        return dict(pairs)

    def constant(name):
        raise InputError(f"{what} {path}", f"holds {name}, which is not a number; give a finite number")

    try:
        return json.loads(text, object_pairs_hook=unique, parse_constant=float if allow_nan else constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {path}", f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except RecursionError as exc:
        raise InputError(f"{what} {path}", "is nested too deeply to be a config") from exc


NAME_MAX = 255      # bytes in one file or folder name (Linux, macOS)
PATH_MAX = 4096     # bytes in a whole path


def check_path_length(path: str | Path, field: str) -> Path:
    """A path whose every name fits the file system (and whose leading ``.name.pid.tmp`` sibling
    does too), checked before any work: an over-long name is one line, not an OSError."""
    path = Path(path)
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in path.parts), default=0)
    if longest > NAME_MAX - 24 or len(str(path).encode("utf-8", "surrogateescape")) > PATH_MAX - 64:
        raise InputError(field, f"has a name of {longest} bytes; file and folder names may have at most "
                                f"{NAME_MAX - 24}: choose a shorter path")
    return path


def check_output_file(path: str | Path, field: str) -> Path:
    """Fail before any work if `path` cannot become a file: a folder there, a file where a folder
    is due on the way, or a folder we may not write into. Creates nothing."""
    path = check_path_length(path, field)
    if str(path).endswith(("/", os.sep)) or path.is_dir():
        raise InputError(field, f"{path} is a folder; give a file name, e.g. {path / 'result.json'}")
    return _check_parent(path, field)


def check_output_dir(path: str | Path, field: str) -> Path:
    """Fail before any work if `path` cannot become a folder (a file is there or on the way, or no write access)."""
    path = check_path_length(path, field)
    if path.exists() and not path.is_dir():
        raise InputError(field, f"{path} is a file, not a folder; give a folder name or move the file")
    return _check_parent(path / "x", field).parent


def _check_parent(path: Path, field: str) -> Path:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(field, f"{parent} is a file, so nothing can be written under it; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(field, f"cannot write into {parent} (permission denied); choose a writable folder")
            break
    return path


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside `path`, then rename it over `path`.

    A path that cannot be written (folder in the way, no permission, disk full) is an `InputError`
    naming it, and nothing is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")   # per process: concurrent writers never share it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        tmp.replace(path)
    except (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError) as exc:
        raise InputError(f"output {path}", f"cannot be written ({exc.strerror or type(exc).__name__}); "
                                            "choose a writable file path") from exc
    except OSError as exc:
        if exc.errno is None:
            raise
        raise InputError(f"output {path}", f"cannot be written ({exc.strerror}); choose another path") from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def comment_lines(text: str, mark: str = "#") -> str:
    """`text` as comment lines of a script or YAML file: every line (a newline inside a value too)
    starts with `mark`, and control characters become ``?``, so no text can end the comment."""
    lines = str(text).splitlines() or [""]
    return "".join(f"{mark} " + "".join(c if c.isprintable() else "?" for c in line) + "\n" for line in lines)


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


class FolderLocked(InputError):
    """Another sweep or plan is writing the output folder."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of an output folder: ``.<name>.lock`` beside it, so the folder people zip and
    share holds no lock file."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def folder_lock(folder: str | Path, *, by: str) -> Iterator[Path]:
    """Hold the exclusive lock of the output `folder` (`lock_path`, a `filelock.FileLock`) while one
    `by` (sweep, plan) writes it; raise `FolderLocked` at once when another process holds it. The
    lock file says who holds it (``pid N``) and is emptied on release."""
    from filelock import FileLock, Timeout

    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        try:
            holder = path.read_text().strip()
        except OSError:
            holder = ""
        raise FolderLocked("output folder", f"{Path(folder).resolve()} is in use by another {by} "
                                            f"({holder or 'another process'}); wait for it to finish or choose "
                                            "another -o") from exc
    try:
        path.write_text(f"pid {os.getpid()}\n")
        yield path
    finally:
        try:
            path.write_text("")
        finally:
            lock.release()
